#!/usr/bin/python3
"""SRV failover (RFC 6120 §3.2.1): a.example publishes two targets; the preferred one accepts TCP
and hangs up at once. The gateway's stream to it fails before authenticating, its queued stanza
moves to a stream to the next target (the real Prosody), and the message arrives.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab  # noqa: E402
import gwlab  # noqa: E402
from gwlab import step  # noqa: E402


def hang_up_server(port, stop):
    """Accepts connections on port and closes each at once (a broken SRV target)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    srv.settimeout(0.1)
    hits = []

    def run():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            hits.append(1)
            c.close()
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return hits


def main(fg, admin):
    stop = threading.Event()
    with Lab() as lab:
        a = lab.prosody("a.example", auth="sasl")
        gw = lab.gateway("gw.example")
        a.add_user("alice")
        lab.start()
        broken = lab.ports.get("a.example/broken")
        hits = hang_up_server(broken, stop)
        lab.dns.add_srv("a.example", broken, priority=0)
        lab.dns.add_srv("a.example", a.s2s_port, priority=10, replace=False)
        lab.dns.reload()
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("a.example")
        proc = gwlab.start_gateway(lab, fg, store)
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        alice = a.client("alice")
        step("lab up; a.example's first SRV target hangs up")

        comp.send_message(alice.jid, "via the second target", mfrom="bob@gw.example")
        alice.wait_message(frm="bob@gw.example", body="via the second target", timeout=15)
        assert hits, "the broken target was never tried"
        gwlab.wait_log(proc, "gw.example -> a.example: stream failed before authentication, "
                             "trying the next endpoint")
        gwlab.wait_log(proc, "gw.example -> a.example authenticated (sasl")
        step("first target failed, the queued message went over the second")
        stop.set()
        assert lab.stop_process(proc) == 0
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
