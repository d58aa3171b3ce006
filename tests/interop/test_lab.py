#!/usr/bin/python3
"""Self-test of the interop lab: two Prosody instances and one ejabberd federate with each other
through the lab's DNS in every auth mode the gateway tests rely on, and the lab's way of telling
which mode was used agrees from both ends. Then teardown must leave no process, port or file.

Exit 0 on success, 1 on failure, 77 when a package is missing (scripts/setup.sh --interop).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lab as labmod  # noqa: E402
from lab import Lab, LabSkip, SKIP_RC, port_listening, query  # noqa: E402

WATCHED = ["/etc/hosts", "/etc/resolv.conf", "/etc/prosody", "/etc/ejabberd", "/var/lib/ejabberd",
           "/var/lib/prosody", "/run/dnsmasq.pid", "/var/run/dnsmasq.pid"]

T0 = time.monotonic()


def step(msg):
    print(f"[{time.monotonic() - T0:6.2f} s] {msg}", flush=True)


def fs_snapshot():
    """(path, mtime, size) of the system files the lab must never touch."""
    snap = set()
    for top in WATCHED:
        if os.path.isfile(top):
            st = os.stat(top)
            snap.add((top, st.st_mtime_ns, st.st_size))
        for d, _, files in os.walk(top):
            st = os.stat(d)
            snap.add((d, st.st_mtime_ns, 0))
            for f in files:
                p = os.path.join(d, f)
                try:
                    st = os.lstat(p)
                    snap.add((p, st.st_mtime_ns, st.st_size))
                except FileNotFoundError:
                    pass
    return snap


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def check_auth(x, y, expect):
    """x initiated a stream to y (they exchanged messages both ways, so y initiated one to x too):
    both ends of both streams must report the expected method."""
    for a, b in ((x, y), (y, x)):
        got_out = a.wait_auth(b.domain, "out", expect=expect)
        got_in = b.wait_auth(a.domain, "in", expect=expect)
        step(f"  {a.domain} -> {b.domain}: {a.domain} says {got_out}, {b.domain} says {got_in}")


def check_dns(lab):
    for s in lab.servers + lab.gateways:
        port = s.behind.s2s_port if getattr(s, "behind", None) else s.s2s_port
        rcode, ans = query(lab.dns.port, f"_xmpp-server._tcp.{s.domain}")
        check(rcode == 0 and ans == [(0, 5, port, "localhost")], f"SRV for {s.domain}: {rcode} {ans}")
    rcode, ans = query(lab.dns.port, "_xmpp-server._tcp.nowhere.example")
    check(ans == [], f"unknown domain answered: {ans}")
    check(query(lab.dns.port, "localhost", "A")[1] == ["127.0.0.1"], "localhost A record")


# Stands in for the gateway: accepts on its reserved port and records what each peer sends first.
FAKE_GATEWAY = r"""
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(8)
while True:
    c, _ = srv.accept(); c.settimeout(5)
    try:
        data = c.recv(4096)
    except OSError:
        data = b""
    with open(sys.argv[2], "ab") as f:
        f.write(data.replace(b"\n", b" ") + b"\n")
    c.close()
"""


def check_gateway_reachable(lab, gw, senders):
    """Partners dial the gateway's reserved port when they send to its domain (SRV in the lab DNS)."""
    seen = os.path.join(lab.root, "fake-gateway.seen")
    fake = lab.process("fake-gateway", [sys.executable, "-c", FAKE_GATEWAY, str(gw.s2s_port), seen],
                       ready_ports=[gw.s2s_port])
    for u in senders:
        u.send_message(f"someone@{gw.domain}", "hello gateway")

    def heard():
        try:
            with open(seen) as f:
                text = f.read()
        except FileNotFoundError:
            return False
        return all(f"from='{u.jid.split('@')[1]}'" in text and f"to='{gw.domain}'" in text for u in senders) \
            or all(f'from="{u.jid.split("@")[1]}"' in text for u in senders)

    labmod.wait_until(heard, 10, "partners dialling the gateway port")
    rc = lab.stop_process(fake, timeout=2)
    step(f"  {', '.join(u.jid.split('@')[1] for u in senders)} dialled {gw.domain} on its SRV port "
         f"{gw.s2s_port} (fake gateway exit {rc})")


def check_split_dns(lab, gw, corp):
    pub = dict((d, p) for (svc, d), [(_, p, _, _)] in lab.dns.records().items() if svc == "_xmpp-server._tcp")
    check(pub[corp.domain] == gw.s2s_port, "public view: internal domain must resolve to the gateway")
    rcode, ans = query(corp.dns.port, "_xmpp-server._tcp.a.example")
    check(ans and ans[0][2] == gw.s2s_port, f"internal view: partners must resolve to the gateway: {ans}")
    rcode, ans = query(corp.dns.port, f"_xmpp-server._tcp.{corp.domain}")
    check(ans and ans[0][2] == corp.s2s_port, f"internal view: own domain: {ans}")
    check(gw.internal_servers() == {corp.domain: ("127.0.0.1", corp.s2s_port)}, "gateway's internal routes")
    step(f"split dns ok: partners see {corp.domain} at the gateway, {corp.domain} sees partners at the gateway")


def round_trips(users):
    u1, u2, u3 = users
    for x, y in ((u1, u2), (u1, u3), (u3, u2)):
        rtt = x.message_round_trip(y)
        step(f"  message round trip {x.jid} <-> {y.jid}: {rtt * 1000:.0f} ms")


def connect_users(a, b, ej):
    return [a.client("user1"), b.client("user2"), ej.client("user3")]


def selftest():
    before = fs_snapshot()
    lab = Lab()
    ports = None
    with lab:
        a = lab.prosody("a.example", auth="sasl")
        b = lab.prosody("b.example", auth="sasl")
        ej = lab.ejabberd("ej.example", auth="sasl")
        gw = lab.gateway("gw.example")
        corp = lab.prosody("corp.example", auth="sasl", behind=gw)
        comp = a.add_component("comp.a.example", "s3cret")
        for srv, user in ((a, "user1"), (b, "user2"), (ej, "user3")):
            srv.add_user(user)
        lab.start()
        ports = dict(lab.ports.taken)
        t_up = lab.timings["start"]
        step(f"lab up in {t_up:.2f} s (pki {lab.timings['pki']:.2f}, dns {lab.timings['dns']:.2f}, "
             f"ejabberd ready {lab.timings['ready ej.example']:.2f}) at {lab.root}")
        check_dns(lab)
        check(not port_listening(gw.s2s_port), "nothing may listen on the gateway's reserved port")
        step("dns ok: SRV per server and for the gateway, nothing else")
        check_split_dns(lab, gw, corp)

        step("mode 1: SASL EXTERNAL with test-CA certificates, s2s_secure_auth on")
        users = connect_users(a, b, ej)
        round_trips(users)
        check_auth(a, b, "sasl_external")
        check_auth(a, ej, "sasl_external")
        users[0].subscribe_and_wait(users[2].jid)
        step("  presence subscription user1@a.example -> user3@ej.example approved")
        c = lab.component(comp, "s3cret", a.component_port)
        users[0].send_message(comp, "to component")
        got = c.wait_message(frm=users[0].jid, body="to component")
        c.send_message(got["from"], "from component", mfrom=comp)
        users[0].wait_message(frm=comp, body="from component")
        step("  XEP-0114 component round trip through a.example")
        check_gateway_reachable(lab, gw, [users[0], users[2]])

        # Secure auth against an untrusted peer: only b.example switches (a Prosody restart is cheap).
        lab.xmpp.disconnect_all()
        b.restart(auth="dialback")
        u1, u2, u3 = connect_users(a, b, ej)
        # Bounces may wait for the servers' s2s timeout (lab default 10 s): allow for it.
        u1.send_message(u2.jid, "must not pass")
        err = u1.wait_error(frm=u2.jid, timeout=25)
        step(f"  refused: prosody with secure auth bounces a message for untrusted b.example with "
             f"<{err['error']['condition']}/>")
        u2.send_message(u3.jid, "must not pass either")
        err = u2.wait_error(frm=u3.jid, timeout=25)
        m = ej.wait_log(r"(?s)Failed inbound s2s EXTERNAL authentication b\.example -> ej\.example.*?"
                        r"Closing inbound s2s connection b\.example -> ej\.example")
        check("Accepted inbound" not in m.group(0), "ejabberd in sasl mode accepted b.example after all")
        step(f"  refused: ejabberd without dialback refuses untrusted b.example, sender sees "
             f"<{err['error']['condition']}/>")

        t = time.monotonic()
        lab.xmpp.disconnect_all()
        lab.restart(a, b, ej, auth="dialback")
        step(f"mode 2: dialback over TLS with untrusted self-signed certificates (restart {time.monotonic() - t:.2f} s)")
        users = connect_users(a, b, ej)
        round_trips(users)
        check_auth(a, b, "dialback_tls")
        check_auth(a, ej, "dialback_tls")

        t = time.monotonic()
        lab.xmpp.disconnect_all()
        lab.restart(a, b, ej, auth="plain")
        step(f"mode 3: dialback over plain TCP (restart {time.monotonic() - t:.2f} s)")
        users = connect_users(a, b, ej)
        round_trips(users)
        check_auth(a, b, "dialback_plain")
        check_auth(a, ej, "dialback_plain")
        lab.snapshot_pids()
    step(f"lab down in {lab.timings['stop']:.2f} s")

    left = lab.survivors()
    check(not left, f"lab processes survived teardown: {left}")
    busy = [f"{n}={p}" for n, p in ports.items() if port_listening(p) or port_listening(p, "udp")]
    check(not busy, f"ports still in use after teardown: {busy}")
    check(not os.path.exists(lab.root), f"lab directory left behind: {lab.root}")
    after = fs_snapshot()
    check(before == after, f"system files changed: {sorted(before ^ after)[:6]}")
    step(f"teardown clean: {len(lab.all_pids)} PIDs gone, {len(ports)} ports free, no system file touched")
    return 0


def main():
    try:
        labmod.requirements()
    except LabSkip as e:
        print(f"SKIP: {e}", flush=True)
        return SKIP_RC
    try:
        rc = selftest()
    except (AssertionError, labmod.LabError) as e:
        print(f"FAIL: {e}", flush=True)
        rc = 1
    step("total" + (" (ok)" if rc == 0 else " (failed)"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
