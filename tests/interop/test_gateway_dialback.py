#!/usr/bin/python3
"""fedgate with Prosody partners that authenticate with dialback, and one that is not a partner:

  b.example  self-signed certificate, STARTTLS   partner TLS Optional,     SASL NotSupported
  c.example  no TLS at all                        partner TLS NotSupported, SASL NotSupported
  d.example  CA certificate                       not on the partner list: refused both ways
  e.example  self-signed certificate, STARTTLS   partner TLS Required, SASL Required: the
             untrusted certificate cannot do SASL EXTERNAL, so its streams are refused
  f.example  self-signed certificate, STARTTLS   partner TLS Required, SASL Optional: falls back
             to dialback over TLS (the gateway's own stream to it uses SASL EXTERNAL)

For b and c a message goes from a Prosody user to the component behind gw.example and back, and
the authentication method is asserted from Prosody's side (dialback over TLS, dialback over plain
TCP) and from the gateway's log. The gateway verifies the partners' keys with their authoritative
servers and answers their db:verify for gw.example itself.

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
        c = lab.prosody("c.example", auth="plain")
        d = lab.prosody("d.example", auth="sasl")
        e = lab.prosody("e.example", auth="dialback")
        f = lab.prosody("f.example", auth="dialback")
        gw = lab.gateway("gw.example")
        for srv, u in ((b, "bea"), (c, "cid"), (d, "dan"), (e, "eve"), (f, "fay")):
            srv.add_user(u)
        lab.start()
        step("lab up")
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("b.example", tls="optional", sasl="not-supported", dialback="true")
        store.partner("c.example", tls="not-supported", sasl="not-supported", dialback="true")
        store.partner("e.example", tls="required", sasl="required", dialback="false")
        store.partner("f.example", tls="required", sasl="optional", dialback="true")
        proc = gwlab.start_gateway(lab, fg, store)
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        step("fedgate and component up")

        bea = b.client("bea")
        gwlab.round_trip(bea, comp, "b")
        assert b.wait_auth("gw.example", "out", expect="dialback_tls") == "dialback_tls"
        assert b.wait_auth("gw.example", "in", expect="dialback_tls") == "dialback_tls"
        gwlab.wait_log(proc, "b.example -> gw.example authenticated (dialback-tls")
        gwlab.wait_log(proc, "gw.example -> b.example authenticated (dialback-tls")
        step("b.example: round trip, dialback over TLS both ways")

        cid = c.client("cid")
        gwlab.round_trip(cid, comp, "c")
        assert c.wait_auth("gw.example", "out", expect="dialback_plain") == "dialback_plain"
        assert c.wait_auth("gw.example", "in", expect="dialback_plain") == "dialback_plain"
        gwlab.wait_log(proc, "c.example -> gw.example authenticated (dialback-tcp")
        step("c.example: round trip, dialback over plain TCP both ways")

        dan = d.client("dan")
        dan.send_message("bob@gw.example", "hi d")
        err = dan.wait_error(frm="bob@gw.example", timeout=15)
        gwlab.wait_log(proc, "d.example: not a federated partner, refused")
        comp.send_message(dan.jid, "unsolicited", mfrom="bob@gw.example")
        e2 = comp.wait_error(frm=dan.jid, timeout=10)
        # slixmpp's component stanzas read the error element in jabber:client only: check the XML.
        assert "<policy-violation" in str(e2), e2
        step(f"d.example refused inbound ({err['error']['condition']}) and outbound (policy-violation)")

        eve = e.client("eve")
        eve.send_message("bob@gw.example", "hi e")
        eve.wait_error(frm="bob@gw.example", timeout=15)
        assert "hi e" not in str(comp.inbox)
        gwlab.wait_log(proc, "in e.example: closed (policy-violation")
        step("e.example: untrusted certificate with SASL Required refused")

        fay = f.client("fay")
        gwlab.round_trip(fay, comp, "f")
        assert f.wait_auth("gw.example", "out", expect="dialback_tls") == "dialback_tls"
        # Our certificate is trusted by f.example, so SASL Optional uses EXTERNAL toward it.
        assert f.wait_auth("gw.example", "in", expect="sasl_external") == "sasl_external"
        step("f.example: untrusted certificate with SASL Optional fell back to dialback over TLS "
             "(and SASL EXTERNAL the other way)")

        # Tightened live: SASL now required of f.example; its dialback stream no longer qualifies.
        store.cli("partner", "set", "f.example", "--sasl", "required", "--dialback", "false")
        gwlab.wait_log(proc, "in f.example: SASL now required, closing", timeout=2)
        step("f.example: SASL tightened, its dialback stream closed with <policy-violation/>")

        m = gwlab.metrics(gw)
        assert 'fedgate_streams_refused_total{reason="not-a-partner"}' in m, m
        assert 'fedgate_peer_certificates_total{dir="in",result="untrusted"}' in m, m
        assert ('fedgate_partner_last_failure_timestamp_seconds{partner="e.example",'
                'reason="policy-violation"}') in m, m
        assert lab.stop_process(proc) == 0, "fedgate did not exit cleanly on SIGTERM"
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
