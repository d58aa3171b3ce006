#!/usr/bin/python3
"""XEP-0368 direct TLS both ways with a real Prosody partner:

  * inbound: `_xmpps-server._tcp.gw.example` points at the gateway's direct-TLS listener; Prosody
    (which tries xmpps-server first) connects there, with SNI, and authenticates with SASL EXTERNAL.
  * outbound: a.example also listens for direct TLS (`s2s_direct_tls_ports`) and publishes
    `_xmpps-server._tcp.a.example`; the gateway's stream to it starts TLS at once (SNI + ALPN).

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
        a_tls_port = lab.ports.get("a.example/s2s-direct-tls")
        a = lab.prosody("a.example", auth="sasl",
                        extra=f"s2s_direct_tls_ports = {{ {a_tls_port} }}\n")
        gw = lab.gateway("gw.example", direct_tls=True)
        a.add_user("alice")
        lab.start()
        lab.dns.add_srv("a.example", a_tls_port, service="_xmpps-server._tcp", priority=0)
        lab.dns.add_srv("a.example", a.s2s_port, priority=10)  # STARTTLS only as the fallback
        lab.dns.reload()
        step("lab up")
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("a.example")
        proc = gwlab.start_gateway(lab, fg, store)
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        alice = a.client("alice")

        alice.send_message("bob@gw.example", "direct in")
        comp.wait_message(frm=alice.jid, body="direct in")
        gwlab.wait_log(proc, "(direct TLS)")
        gwlab.wait_log(proc, "a.example -> gw.example authenticated (sasl")
        step("inbound over direct TLS, SASL EXTERNAL")

        comp.send_message(alice.jid, "direct out", mfrom="bob@gw.example")
        alice.wait_message(frm="bob@gw.example", body="direct out")
        gwlab.wait_log(proc, "gw.example -> a.example: connected (direct TLS)")
        gwlab.wait_log(proc, "gw.example -> a.example authenticated (sasl")
        assert a.wait_auth("gw.example", "out", expect="sasl_external") == "sasl_external"
        assert a.wait_auth("gw.example", "in", expect="sasl_external") == "sasl_external"
        step("outbound over direct TLS, SASL EXTERNAL")
        assert lab.stop_process(proc) == 0, "fedgate did not exit cleanly on SIGTERM"
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
