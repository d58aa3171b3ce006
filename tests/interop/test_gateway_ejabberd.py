#!/usr/bin/python3
"""fedgate with real ejabberd partners and a slixmpp component behind gw.example:

  ej.example  test-CA certificate, no dialback module  partner TLS Required, SASL Required
  ek.example  self-signed certificate, dialback         partner TLS Optional, SASL NotSupported

For each, a message goes from an ejabberd user to the component and back, and the authentication
method is asserted from ejabberd's log (SASL EXTERNAL, dialback over TLS) and from fedgate's.

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
        ej = lab.ejabberd("ej.example", auth="sasl")
        ek = lab.ejabberd("ek.example", auth="dialback")
        gw = lab.gateway("gw.example")
        ej.add_user("erin")
        ek.add_user("kim")
        lab.start()
        step("lab up")
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("ej.example", tls="required", sasl="required", dialback="false")
        store.partner("ek.example", tls="optional", sasl="not-supported", dialback="true")
        proc = gwlab.start_gateway(lab, fg, store)
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        step("fedgate and component up")

        erin = ej.client("erin")
        gwlab.round_trip(erin, comp, "ej", timeout=15)
        assert ej.wait_auth("gw.example", "out", expect="sasl_external") == "sasl_external"
        assert ej.wait_auth("gw.example", "in", expect="sasl_external") == "sasl_external"
        gwlab.wait_log(proc, "ej.example -> gw.example authenticated (sasl")
        gwlab.wait_log(proc, "gw.example -> ej.example authenticated (sasl")
        step("ej.example: round trip, SASL EXTERNAL both ways")

        kim = ek.client("kim")
        gwlab.round_trip(kim, comp, "ek", timeout=15)
        assert ek.wait_auth("gw.example", "out", expect="dialback_tls") == "dialback_tls"
        assert ek.wait_auth("gw.example", "in", expect="dialback_tls") == "dialback_tls"
        gwlab.wait_log(proc, "ek.example -> gw.example authenticated (dialback-tls")
        step("ek.example: round trip, dialback over TLS both ways")
        assert lab.stop_process(proc) == 0, "fedgate did not exit cleanly on SIGTERM"
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
