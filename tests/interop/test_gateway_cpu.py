#!/usr/bin/python3
"""Gateway CPU per relayed stanza, measured against real peers: N messages from the component to
a Prosody user over an authenticated TLS (SASL EXTERNAL) stream, and N back, while the gateway's
user+system CPU time is read from /proc. Prints µs per stanza and the stanza rate (both limited
by the peers, which use far more CPU than the gateway); asserts every stanza arrived.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab  # noqa: E402
import gwlab  # noqa: E402

N = int(os.environ.get("FEDGATE_CPU_STANZAS", "5000"))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(fg, admin):
    with Lab(loglevel="info") as lab:
        a = lab.prosody("a.example", auth="sasl")
        gw = lab.gateway("gw.example")
        a.add_user("alice")
        lab.start()
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("a.example")
        alice = a.client("alice")
        # Once with the io layer's default (idle workers poll 50 µs before sleeping, which at
        # these rates is paid per stanza), once with polling off: the gateway's own work.
        for spin in (None, 0):
            extra = [] if spin is None else ["--spin-us", str(spin)]
            proc = lab.process("fedgate", [fg, "--store", store.dir, "--workers", "2",
                                           "--log-level", "warn", "--listen-s2s-tls", ""] + extra,
                               ready_ports=[gw.s2s_port, gw.component_port])
            comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
            alice.send_message("bob@gw.example", "warm")
            comp.wait_message(frm=alice.jid, body="warm")
            comp.send_message(alice.jid, "warm", mfrom="bob@gw.example")
            alice.wait_message(frm="bob@gw.example", body="warm")
            label = "default polling" if spin is None else "--spin-us 0"
            for direction, src, dst, kw in (("out", comp, alice, {"mfrom": "bob@gw.example"}),
                                            ("in", alice, comp, {})):
                to = alice.jid if direction == "out" else "bob@gw.example"
                frm = "bob@gw.example" if direction == "out" else alice.jid
                c0, t0 = cpu_seconds(proc.pid), time.monotonic()
                body = "x" * 300
                for i in range(N):
                    src.send_message(to, f"{i} {body}", **kw)
                dst.wait_message(frm=frm, body=f"{N - 1} {body}", timeout=120)
                c1, t1 = cpu_seconds(proc.pid), time.monotonic()
                # Baseline in the same run: the gateway's CPU while idle for as long.
                time.sleep(0.2)
                b0 = cpu_seconds(proc.pid)
                time.sleep(t1 - t0)
                idle = cpu_seconds(proc.pid) - b0
                busy = c1 - c0
                print(f"{label}, {direction}: {N} stanzas in {t1 - t0:.2f} s = "
                      f"{N / (t1 - t0):.0f}/s, gateway CPU {1e6 * busy / N:.1f} µs per stanza; "
                      f"idle baseline over the same time {1e6 * idle / N:.1f} µs per stanza-slot, "
                      f"net {1e6 * (busy - idle) / N:.1f} µs", flush=True)
                dst.inbox.clear()
            m = gwlab.metrics(gw)
            cross = [x for x in m.splitlines()
                     if x.startswith("fedgate_stanzas_cross_worker_total ")]
            print(f"{label}: stanzas handed between workers: "
                  f"{cross[0].split()[1] if cross else '?'}", flush=True)
            comp.disconnect()
            assert lab.stop_process(proc) == 0
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
