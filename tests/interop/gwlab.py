"""Helpers for the gateway's interop tests: a fedgate store made with fedgate-admin for a lab
Gateway, and fedgate started under the lab's care (see docs/gateway.md)."""

import base64
import os
import socket
import time
import urllib.request

from lab import SKIP_RC, LabSkip, find_binary, requirements, run

COMPONENT_SECRET = "component-secret"

# Start of the test run: the tests import this module first thing, so step() times from there.
T0 = time.monotonic()


def step(msg):
    """A progress line stamped with the seconds since the test started."""
    print(f"[{time.monotonic() - T0:6.2f} s] {msg}", flush=True)


def binaries():
    fg, admin = find_binary("fedgate"), find_binary("fedgate-admin")
    if not fg or not admin:
        raise LabSkip("missing: fedgate or fedgate-admin (build first)")
    return fg, admin


def run_main(body):
    """Runs body(fg, admin) once the lab's packages and the gateway's binaries are found, and
    returns its exit code; SKIP_RC with a `SKIP:` line naming what is missing otherwise. The
    shared start of the gateway interop tests: `sys.exit(gwlab.run_main(main))`."""
    try:
        requirements()
        fg, admin = binaries()
    except LabSkip as e:
        print(f"SKIP: {e}")
        return SKIP_RC
    return body(fg, admin)


class GatewayStore:
    """A store in <lab root>/store for the lab gateway `gw`: its domain hosted with the lab's
    certificate and a component route, listeners on the lab's reserved loopback ports, the lab's
    public DNS as resolver and the test CA as trust anchors."""

    def __init__(self, lab, gw, admin):
        self.lab, self.gw, self.admin = lab, gw, admin
        self.dir = os.path.join(lab.root, "store")
        secret = os.path.join(lab.root, "component.secret")
        with open(secret, "w") as f:
            f.write(COMPONENT_SECRET + "\n")
        self.cli("init")
        self.cli("access", "set", "global", "true")
        cert = gw.cert
        self.cli("domain", "new", gw.domain, "--cert", cert.crt, "--key", cert.key,
                 "--route", "component", "--secret-file", secret)
        self.cli("gateway", "set",
                 "--listen-s2s", f"127.0.0.1:{gw.s2s_port}",
                 "--listen-component", f"127.0.0.1:{gw.component_port}",
                 "--listen-metrics", f"127.0.0.1:{gw.metrics_port}",
                 "--listen-s2s-tls", f"127.0.0.1:{gw.direct_tls_port}" if gw.direct_tls_port else "",
                 "--resolver", f"{gw.dns[0]}:{gw.dns[1]}",
                 "--trust-anchors", gw.ca,
                 "--stream-establishment-timeout", "10")

    def cli(self, *args, check=True):
        return run([self.admin, "--store", self.dir] + list(args), check=check)

    def partner(self, domain, tls="required", sasl="required", dialback="true", type="federated",
                **kw):
        """A partner; Federated unless said otherwise, so partner users may write first (the
        PartnerType rules have their own test)."""
        args = ["partner", "new", domain, "--tls", tls, "--sasl", sasl, "--dialback", dialback,
                "--type", type]
        for k, v in kw.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        return self.cli(*args)


def start_gateway(lab, fg, store, workers=2, extra=()):
    """fedgate under the lab; returns the Proc once its s2s and component ports listen."""
    gw = store.gw
    argv = [fg, "--store", store.dir, "--workers", str(workers), "--log-level", "debug"]
    if not gw.direct_tls_port:
        argv += ["--listen-s2s-tls", ""]
    argv += list(extra)
    return lab.process("fedgate", argv, ready_ports=[gw.s2s_port, gw.component_port])


def metrics(gw):
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=5) as r:
        return r.read().decode()


def log_text(proc):
    with open(proc.log, errors="replace") as f:
        return f.read()


def wait_log(proc, needle, timeout=8):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if needle in log_text(proc):
            return True
        time.sleep(0.1)
    raise AssertionError(f"fedgate log never said {needle!r}")


def presence_round_trip(user, comp, local="bob@gw.example", timeout=15):
    """A presence subscription both ways between a partner user and a component JID: the user
    subscribes and the component approves, then the component subscribes and the user's server
    approves (the lab's users approve automatically)."""
    user.subscribe(local)
    comp.wait_presence(frm=user.jid, ptype="subscribe", timeout=timeout)
    comp.approve(user.jid, mfrom=local)
    user.wait_presence(frm=local, ptype="subscribed", timeout=timeout)
    comp.subscribe(user.jid, mfrom=local)
    comp.wait_presence(frm=user.jid, ptype="subscribed", timeout=timeout)


def round_trip(user, comp, tag, timeout=None):
    """A message each way between a partner user and bob@gw.example, then a presence
    subscription both ways with bob-<tag>@gw.example; timeout (seconds) bounds each message wait,
    the client's default when None."""
    wait = {} if timeout is None else {"timeout": timeout}
    user.send_message("bob@gw.example", f"hi {tag}")
    comp.wait_message(frm=user.jid, body=f"hi {tag}", **wait)
    comp.send_message(user.jid, f"hello {tag}", mfrom="bob@gw.example")
    user.wait_message(frm="bob@gw.example", body=f"hello {tag}", **wait)
    presence_round_trip(user, comp, local=f"bob-{tag}@gw.example")


# A minimal partner a.example speaking s2s by hand (STARTTLS + SASL EXTERNAL), for tests that
# need many streams or byte-level checks.
S2S_HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
              "xmlns:stream='http://etherx.jabber.org/streams' from='a.example' to='gw.example' "
              "version='1.0'>").encode()


def read_until(sock, needle, limit=65536):
    """Read until needle (or, for the features, their empty form) arrives."""
    needles = (needle, b"<stream:features/>") if needle == b"</stream:features>" else (needle,)
    data = b""
    while not any(n in data for n in needles):
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"closed while waiting for {needle!r}: {data[-300:]!r}")
        data += chunk
        assert len(data) < limit
    return data


def sasl_stream(port, ctx):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(S2S_HEADER)
    read_until(s, b"</stream:features>")
    s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    read_until(s, b"<proceed")
    t = ctx.wrap_socket(s, server_hostname="gw.example")
    t.sendall(S2S_HEADER)
    read_until(t, b"</stream:features>")
    authzid = base64.b64encode(b"a.example").decode()
    t.sendall(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>{authzid}</auth>".encode())
    read_until(t, b"<success")
    t.sendall(S2S_HEADER)
    read_until(t, b"</stream:features>")
    return t
