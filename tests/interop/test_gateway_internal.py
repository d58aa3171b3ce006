#!/usr/bin/python3
"""Route s2s: an internal Prosody (corp.example) behind the gateway, reached by partners through
the gateway only (split DNS, see docs/interop.md).

  * a.example (partner, SASL EXTERNAL) sends to a corp.example user: the gateway authenticates
    a.example with SASL EXTERNAL and relays over its own stream to the internal server, standing in
    for a.example (dialback, whose db:verify the internal server sends to the gateway).
  * The corp.example user answers: the internal server's stream to a.example ends at the gateway
    (split DNS), which verifies corp.example with the internal server and relays to a.example as
    corp.example with SASL EXTERNAL (the gateway holds corp.example's certificate).

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab  # noqa: E402
import gwlab  # noqa: E402
from gwlab import step  # noqa: E402


def main(fg, admin):
    with Lab() as lab:
        a = lab.prosody("a.example", auth="sasl")
        gw = lab.gateway("gw.example")
        corp = lab.prosody("corp.example", auth="dialback", behind=gw)
        a.add_user("alice")
        corp.add_user("carl")
        lab.start()
        step("lab up")
        store = gwlab.GatewayStore(lab, gw, admin)
        cert = gw.cert_for("corp.example")
        host, port = gw.internal_servers()["corp.example"]
        store.cli("domain", "new", "corp.example", "--cert", cert.crt, "--key", cert.key,
                  "--route", "s2s", "--target", f"{host}:{port}")
        store.partner("a.example")
        proc = gwlab.start_gateway(lab, fg, store)
        step("fedgate up")
        alice = a.client("alice")
        carl = corp.client("carl")

        alice.send_message(carl.jid, "hi carl")
        carl.wait_message(frm=alice.jid, body="hi carl", timeout=15)
        step("partner -> internal server delivered")
        carl.send_message(alice.jid, "hi alice")
        alice.wait_message(frm=carl.jid, body="hi alice", timeout=15)
        step("internal server -> partner delivered")

        assert a.wait_auth("corp.example", "out", expect="sasl_external") == "sasl_external"
        assert a.wait_auth("corp.example", "in", expect="sasl_external") == "sasl_external"
        assert corp.wait_auth("a.example", "in", expect="dialback_tls") == "dialback_tls"
        assert corp.wait_auth("a.example", "out", expect="dialback_tls") == "dialback_tls"
        step("a.example sees SASL EXTERNAL with corp.example; corp.example sees dialback over TLS")
        assert lab.stop_process(proc) == 0, "fedgate did not exit cleanly on SIGTERM"
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
