#!/usr/bin/python3
"""Two fedgate nodes on one store answer dialback for each other (the shared DialbackPassphrase,
XEP-0185): the component is on node 1, whose outbound stream to b.example (dialback) is verified
by b.example with the authoritative server of gw.example — which DNS says is node 2. Node 2 never
saw the key and answers from the shared secret.

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
        b = lab.prosody("b.example", auth="dialback")
        gw = lab.gateway("gw.example")
        b.add_user("bea")
        lab.start()
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("b.example", tls="optional", sasl="not-supported", dialback="true")
        # Node 2 owns the address DNS gives for gw.example; node 1 has the component.
        n1_s2s, n1_metrics = lab.ports.get("node1/s2s"), lab.ports.get("node1/metrics")
        n2_comp = lab.ports.get("node2/component")
        node2 = lab.process("fedgate-node2", [fg, "--store", store.dir, "--workers", "1",
                                              "--log-level", "debug", "--listen-s2s-tls", "",
                                              "--listen-component", f"127.0.0.1:{n2_comp}",
                                              "--listen-metrics", ""],
                            ready_ports=[gw.s2s_port])
        node1 = lab.process("fedgate-node1", [fg, "--store", store.dir, "--workers", "1",
                                              "--log-level", "debug", "--listen-s2s-tls", "",
                                              "--listen-s2s", f"127.0.0.1:{n1_s2s}",
                                              "--listen-metrics", f"127.0.0.1:{n1_metrics}"],
                            ready_ports=[n1_s2s, gw.component_port])
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        bea = b.client("bea")
        step("two nodes up, component on node 1")

        comp.send_message(bea.jid, "from node 1", mfrom="bob@gw.example")
        bea.wait_message(frm="bob@gw.example", body="from node 1", timeout=15)
        assert b.wait_auth("gw.example", "in", expect="dialback_tls") == "dialback_tls"
        gwlab.wait_log(node1, "gw.example -> b.example authenticated (dialback-tls")
        gwlab.wait_log(node2, "in: accepted from")
        assert "gw.example -> b.example authenticated" not in gwlab.log_text(node2)
        step("b.example verified node 1's key with node 2, which answered from the shared secret")
        assert lab.stop_process(node1) == 0
        assert lab.stop_process(node2) == 0
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
