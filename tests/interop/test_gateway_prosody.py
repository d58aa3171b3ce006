#!/usr/bin/python3
"""fedgate with a real Prosody partner (a.example) and a slixmpp component behind the gateway's
hosted domain gw.example: a message from a Prosody user to the component and back, over SASL
EXTERNAL (test-CA certificates both ways), asserted from Prosody's side and from the gateway's log.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab  # noqa: E402
import gwlab  # noqa: E402
from gwlab import step  # noqa: E402


def main(fg, admin):
    with Lab() as lab:
        a = lab.prosody("a.example", auth="sasl")
        gw = lab.gateway("gw.example")
        a.add_user("alice")
        lab.start()
        step("lab up")
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("a.example", tls="required", sasl="required", dialback="true")
        proc = gwlab.start_gateway(lab, fg, store)
        step("fedgate up")
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        alice = a.client("alice")

        alice.send_message("bob@gw.example", "hi over sasl")
        comp.wait_message(frm=alice.jid, body="hi over sasl")
        step("inbound message delivered to the component")
        comp.send_message(alice.jid, "hello over sasl", mfrom="bob@gw.example")
        alice.wait_message(frm="bob@gw.example", body="hello over sasl")
        step("outbound message delivered to the Prosody user")
        gwlab.presence_round_trip(alice, comp)
        step("presence subscription both ways")

        assert a.wait_auth("gw.example", "out", expect="sasl_external") == "sasl_external"
        assert a.wait_auth("gw.example", "in", expect="sasl_external") == "sasl_external"
        gwlab.wait_log(proc, "authenticated (sasl")
        m = gwlab.metrics(gw)
        assert 'fedgate_stanzas_total{dir="in"}' in m and 'auth="sasl"' in m, m
        step("SASL EXTERNAL both ways, seen by Prosody and fedgate")

        # Message bodies stay out of the log unless EnableLoggingAllMessageBodies is on.
        assert "hi over sasl" not in gwlab.log_text(proc)
        store.cli("gateway", "set", "--log-message-bodies", "true")
        time.sleep(0.2)
        alice.send_message("bob@gw.example", "logged body")
        comp.wait_message(frm=alice.jid, body="logged body")
        gwlab.wait_log(proc, "logged body")
        step("bodies logged only with EnableLoggingAllMessageBodies")

        # A message to a user of the hosted domain with no component connected is bounced.
        comp.disconnect()
        time.sleep(0.3)
        alice.send_message("bob@gw.example", "nobody home")
        e = alice.wait_error(frm="bob@gw.example", timeout=10)
        assert e["error"]["condition"] == "service-unavailable", e
        step("no component connected: bounced with service-unavailable")
        assert lab.stop_process(proc) == 0, "fedgate did not exit cleanly on SIGTERM"
        step("fedgate stopped on SIGTERM")
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
