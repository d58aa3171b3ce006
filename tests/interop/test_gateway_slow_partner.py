#!/usr/bin/python3
"""A partner that stops reading must not hold back what the component sends to other partners.

Two Prosody partners, a.example and b.example (SASL EXTERNAL, test CA), a slixmpp component
behind gw.example, alice@a.example and bob@b.example. After a warm-up message to each user,
a.example's Prosody is frozen with SIGSTOP, so it stops reading its s2s stream from the gateway.
The component then sends far more to alice than the gateway's OUT stream can hold (its send
queue, the kernel's socket buffers and the 4 MiB backlog), with a message to bob after every
BOB_EVERY of them. The component feeds every partner, so flow control never pauses it for one
partner: its stanzas for a.example wait in the OUT stream's backlog and, past it, are bounced with
resource-constraint. Asserts:
  * every message to bob arrives while a.example is still frozen, within BOB_MAX_LATENCY seconds
    of being sent (latencies printed);
  * the backlog really filled (fedgate_flow_backlog_bytes near 4 MiB at its peak), the gateway
    counted refusals (fedgate_stanzas_refused_total{reason="congested"} > 0) and the component
    received exactly that many <error type='wait'><resource-constraint/></error> bounces, each
    for a message it sent to alice (matched by id);
  * after SIGCONT every message to alice is either delivered or was bounced, never both, none
    lost: delivered + bounced == sent; and the gateway counted every stanza the component sent
    (fedgate_stanzas_total{dir="out"});
  * a fresh message to alice arrives after the thaw, and fedgate exits 0 on SIGTERM.
a.example is thawed in a finally as well, so a failing test never leaves a stopped process.

Environment: FEDGATE_SLOW_MESSAGES (messages to alice, default 3500), FEDGATE_BINARY_DIR (the
build whose fedgate runs, e.g. an ASan build).

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab, wait_until  # noqa: E402
import gwlab  # noqa: E402
from gwlab import step  # noqa: E402

N_ALICE = int(os.environ.get("FEDGATE_SLOW_MESSAGES", "3500"))
BODY = "x" * 4000  # ~4 KB per stanza: 3,500 of them are ~14 MB
BOB_EVERY = 100
BOB_MAX_LATENCY = 5.0  # seconds; the gateway only has to read past alice's stanzas
BACKLOG_MAX = 4 << 20  # GW_BACKLOG_MAX (io/gw_flow.h)
OUT = 'dir="out"'


def series(text, name, labels=None):
    """Sum of the /metrics series `name` whose labels contain every label in `labels`."""
    total = 0.0
    for m in re.finditer(r"^" + re.escape(name) + r"(\{[^}]*\})? (\S+)$", text, re.M):
        if labels and not all(lab in (m.group(1) or "") for lab in labels):
            continue
        total += float(m.group(2))
    return total


def socket_queues(port):
    """`ss -tmi` of the TCP connections to 127.0.0.1:port: the state line (Recv-Q, Send-Q) and
    the socket memory (skmem)."""
    try:
        out = subprocess.run(["ss", "-tmin", "dst", f"127.0.0.1:{port}"], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return f"(ss: {e})"
    lines = []
    for ln in out.splitlines()[1:]:
        ln = ln.strip()
        if ln.startswith("skmem:"):
            ln = ln.split()[0]
        if ln:
            lines.append("    " + ln)
    return "\n".join(lines)


def proc_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


class BacklogSampler(threading.Thread):
    """Reads fedgate_flow_backlog_bytes every 10 ms and keeps the peak (the backlog fills and
    partly drains into the growing kernel send buffer within a second)."""

    def __init__(self, gw):
        super().__init__(daemon=True)
        self.gw, self.peak, self.stop = gw, 0.0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, series(gwlab.metrics(self.gw),
                                                  "fedgate_flow_backlog_bytes"))
            except OSError:
                pass
            self.stop.wait(0.01)


def raw_error(xml):
    """(type, condition) of a received error stanza, read from its XML: slixmpp's error plugin
    looks for <error/> in jabber:client only, so on a component stream (jabber:component:accept)
    msg['error'] finds nothing and reports a made-up cancel/feature-not-implemented."""
    for child in xml:
        if child.tag.rsplit("}", 1)[-1] == "error":
            conds = [c.tag.rsplit("}", 1)[-1] for c in child
                     if c.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}")
                     and not c.tag.endswith("}text")]
            return child.get("type"), conds[0] if conds else None
    return None, None


def raw_message(to, sid, body):
    return (f"<message xmlns='jabber:component:accept' from='bob@gw.example' to='{to}' "
            f"id='{sid}' type='chat'><body>{body}</body></message>")


def main(fg, admin):
    print(f"fedgate: {fg}", flush=True)
    # Prosody at info: at debug it logs every one of the thousands of stanzas.
    with Lab(loglevel="info") as lab:
        a = lab.prosody("a.example", auth="sasl")
        b = lab.prosody("b.example", auth="sasl")
        gw = lab.gateway("gw.example")
        a.add_user("alice")
        b.add_user("bob")
        lab.start()
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("a.example")
        store.partner("b.example")
        proc = lab.process("fedgate", [fg, "--store", store.dir, "--workers", "2",
                                       "--log-level", "info", "--listen-s2s-tls", ""],
                           ready_ports=[gw.s2s_port, gw.component_port])
        step("lab and fedgate up")
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        alice, bob = a.client("alice"), b.client("bob")

        # Arrival times and ids, recorded as the stanzas come in (the shared loop runs while
        # the test sends, so these are the times the clients saw them).
        bob_seen, alice_seen, bounces, other_errors = {}, set(), {}, []

        def on_bob(msg):
            body = msg["body"]
            if body.startswith("bob "):
                bob_seen.setdefault(int(body.split()[1]), time.monotonic())

        def on_alice(msg):
            body = msg["body"]
            if msg["type"] != "error" and body.startswith("slow "):
                alice_seen.add(int(body.split()[1]))

        def on_comp(msg):
            sid = msg["id"] or ""
            etype, cond = raw_error(msg.xml)
            if sid.startswith("s") and str(msg["from"]) == alice.jid:
                bounces[int(sid[1:])] = (etype, cond)
            else:
                other_errors.append(str(msg)[:300])

        bob.xmpp.add_event_handler("message", on_bob)
        alice.xmpp.add_event_handler("message", on_alice)
        alice.xmpp.add_event_handler("message_error", lambda msg: other_errors.append(str(msg)[:300]))
        comp.xmpp.add_event_handler("message_error", on_comp)  # slixmpp's event for type='error'

        for user in (alice, bob):
            comp.send_message(user.jid, "warm", mfrom="bob@gw.example")
            user.wait_message(frm="bob@gw.example", body="warm", timeout=15)
        assert a.wait_auth("gw.example", "in", expect="sasl_external") == "sasl_external"
        assert b.wait_auth("gw.example", "in", expect="sasl_external") == "sasl_external"
        step("warm-up: component -> alice@a.example and -> bob@b.example delivered (SASL EXTERNAL)")
        m0 = gwlab.metrics(gw)
        out0 = series(m0, "fedgate_stanzas_total", [OUT])

        frozen = False
        try:
            os.kill(a.proc.pid, signal.SIGSTOP)
            frozen = True
            step(f"a.example frozen (SIGSTOP pid {a.proc.pid})")

            bob_sent = {}
            sampler = BacklogSampler(gw)
            sampler.start()
            t_send = time.monotonic()
            for i in range(N_ALICE):
                comp.send_raw(raw_message(alice.jid, f"s{i}", f"slow {i} {BODY}"))
                if i % BOB_EVERY == 0:
                    j = i // BOB_EVERY
                    bob_sent[j] = time.monotonic()
                    comp.send_raw(raw_message(bob.jid, f"b{j}", f"bob {j}"))
            step(f"sent {N_ALICE} x {len(BODY)} B to alice and {len(bob_sent)} to bob in "
                 f"{time.monotonic() - t_send:.1f} s")

            # bob's messages arrive while a.example is still frozen.
            lab.xmpp.run(wait_for(lambda: len(bob_seen) == len(bob_sent), 30))
            missing = sorted(set(bob_sent) - set(bob_seen))
            assert not missing, f"bob never got {len(missing)} messages: {missing[:10]}"
            lat = sorted(bob_seen[j] - bob_sent[j] for j in bob_sent)
            print(f"bob's latency while a.example is frozen ({len(lat)} messages): "
                  f"min {lat[0] * 1e3:.1f} ms, p50 {lat[len(lat) // 2] * 1e3:.1f} ms, "
                  f"max {lat[-1] * 1e3:.1f} ms", flush=True)
            assert lat[-1] <= BOB_MAX_LATENCY, f"bob waited {lat[-1]:.2f} s for a message"
            step("every message to bob@b.example delivered while a.example is frozen")

            # The gateway has read everything the component sent: counted, backlogged or bounced.
            want_out = out0 + N_ALICE + len(bob_sent)
            m = {}

            def all_read():
                m["text"] = gwlab.metrics(gw)
                return series(m["text"], "fedgate_stanzas_total", [OUT]) >= want_out

            wait_until(all_read, 20, "fedgate_stanzas_total{dir=out} to count every stanza",
                       interval=0.2)
            refused = series(m["text"], "fedgate_stanzas_refused_total", ['reason="congested"'])
            lab.xmpp.run(wait_for(lambda: len(bounces) >= refused, 20))
            lab.xmpp.pump(0.5)  # a late extra bounce would show up now
            sampler.stop.set()
            sampler.join()
            backlog = series(m["text"], "fedgate_flow_backlog_bytes")
            peak_backlog = max(sampler.peak, backlog)
            t = m["text"]
            print(f"gateway: {series(t, 'fedgate_stanzas_total', [OUT]):.0f} stanzas out, "
                  f"backlog {backlog / 1024:.0f} KiB (peak seen {peak_backlog / 1024:.0f} KiB), "
                  f"backlogged {series(t, 'fedgate_flow_backlogged_total'):.0f}, "
                  f"refused congested {refused:.0f}, bounced resource-constraint "
                  f"{series(t, 'fedgate_stanzas_bounced_total', ['resource-constraint']):.0f}, "
                  f"pauses {series(t, 'fedgate_flow_pauses_total'):.0f}", flush=True)
            print(f"socket queues toward a.example (Send-Q = bytes the kernel holds):\n"
                  f"{socket_queues(a.s2s_port)}", flush=True)
            assert proc_state(a.proc.pid) == "T", "a.example is not stopped"
            assert series(t, "fedgate_flow_pauses_total") == 0, "a stream was paused"
            # The gateway counts every stanza its full backlog could not take: that is the proof
            # the backlog filled. The 10 ms sampler only shows it was in use: the kernel's send
            # buffer toward the frozen peer (up to 4 MiB) can drain a full backlog between two
            # samples, so its peak is not asserted against BACKLOG_MAX.
            assert series(t, "fedgate_flow_backlog_full_total") > 0, "the backlog never was full"
            assert 0 < peak_backlog <= BACKLOG_MAX + 64 * 1024, \
                f"backlog peak out of range: {peak_backlog:.0f} bytes"
            assert refused > 0, "nothing refused as congested: the test did not overflow the backlog"
            kinds = {}
            for etype, cond in bounces.values():
                kinds[(etype, cond)] = kinds.get((etype, cond), 0) + 1
            print(f"component: {len(bounces)} bounces for alice's messages {kinds}; "
                  f"other errors: {len(other_errors)}", flush=True)
            assert not other_errors, f"unexpected errors at the component: {other_errors[:3]}"
            assert kinds == {("wait", "resource-constraint"): len(bounces)}, kinds
            assert len(bounces) == refused, \
                f"{len(bounces)} bounces at the component, gateway refused {refused:.0f}"
            # Still frozen, a while later: the stuck OUT stream does not hold bob up either.
            lab.xmpp.pump(2.0)
            late = {}
            for j in range(len(bob_sent), len(bob_sent) + 10):
                bob_sent[j] = late[j] = time.monotonic()
                comp.send_raw(raw_message(bob.jid, f"b{j}", f"bob {j}"))
                lab.xmpp.pump(0.05)
            lab.xmpp.run(wait_for(lambda: all(j in bob_seen for j in late), 15))
            lat = sorted(bob_seen[j] - late[j] for j in late if j in bob_seen)
            assert len(lat) == len(late), f"bob got {len(lat)} of {len(late)} late messages"
            print(f"bob's latency 2 s later, a.example still frozen ({len(lat)} messages): "
                  f"max {lat[-1] * 1e3:.1f} ms", flush=True)
            assert lat[-1] <= BOB_MAX_LATENCY, f"bob waited {lat[-1]:.2f} s for a message"
            assert proc_state(a.proc.pid) == "T", "a.example is not stopped"
            assert not alice_seen, f"alice got {len(alice_seen)} messages while frozen"
            assert all(0 <= i < N_ALICE for i in bounces)
            assert not set(bob_sent) - set(bob_seen)
            step(f"{len(bounces)} bounces (type wait, resource-constraint) match "
                 f"fedgate_stanzas_refused_total{{reason=\"congested\"}}")
        finally:
            if frozen:
                os.kill(a.proc.pid, signal.SIGCONT)

        t_thaw = time.monotonic()
        step("a.example thawed (SIGCONT)")
        expect = N_ALICE - len(bounces)
        lab.xmpp.run(wait_for(lambda: len(alice_seen) >= expect, 60))
        lab.xmpp.pump(1.0)  # a stanza beyond the expected count would arrive now
        both = alice_seen & set(bounces)
        print(f"alice: {len(alice_seen)} delivered after the thaw in "
              f"{time.monotonic() - t_thaw:.1f} s, {len(bounces)} bounced, sent {N_ALICE}; "
              f"delivered and bounced: {len(both)}", flush=True)
        assert not both, f"{len(both)} messages were both delivered and bounced: {sorted(both)[:10]}"
        assert len(alice_seen) + len(bounces) == N_ALICE, \
            f"delivered {len(alice_seen)} + bounced {len(bounces)} != sent {N_ALICE}"
        step("every message to alice delivered after the thaw or bounced, none lost")

        comp.send_message(alice.jid, "after the thaw", mfrom="bob@gw.example")
        alice.wait_message(frm="bob@gw.example", body="after the thaw", timeout=15)
        step("a fresh message to alice@a.example arrives after the thaw")

        assert proc.alive(), "fedgate died"
        m = gwlab.metrics(gw)
        assert series(m, "fedgate_flow_backlog_bytes") == 0, "backlog not empty after the thaw"
        assert lab.stop_process(proc) == 0, "fedgate did not exit cleanly on SIGTERM"
        step("fedgate stopped on SIGTERM (exit 0)")
    return 0


async def wait_for(pred, timeout):
    """Run the clients' loop until pred() holds or timeout seconds pass."""
    import asyncio
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
