#!/usr/bin/python3
"""Hot policy changes and ProxyFqdn with a real Prosody partner and fedgate:

  * ProxyFqdn overrides DNS: b.example's SRV record points nowhere, its partner record names
    proxy.b.example:<its port>, and a message from the component still reaches b.example.
  * A partner removed with fedgate-admin while its streams are open is disconnected within a
    second (<policy-violation/>), and cannot come back: its next message is refused.
  * A hosted domain added with fedgate-admin while the gateway runs gets its certificate loaded
    (no restart) and a partner reaches its component with SASL EXTERNAL.
  * EnableXmppAccess false for one user of the hosted domain refuses his traffic both ways.
  * Metrics show the streams, the relayed stanzas and the refusal.

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
        b = lab.prosody("b.example", auth="sasl")
        gw = lab.gateway("gw.example")
        a.add_user("alice")
        b.add_user("bert")
        lab.start()
        step("lab up")

        # ProxyFqdn: the gateway's resolver no longer finds b.example by SRV.
        lab.dns.add_srv("b.example", 9, target="nowhere.invalid")
        lab.dns.add_host("proxy.b.example")
        lab.dns.reload()
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("a.example")
        store.partner("b.example", proxy_fqdn=f"proxy.b.example:{b.s2s_port}")
        proc = gwlab.start_gateway(lab, fg, store)
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        bert = b.client("bert")
        comp.send_message(bert.jid, "via proxy", mfrom="bob@gw.example")
        bert.wait_message(frm="bob@gw.example", body="via proxy")
        queries = " ".join(str(q) for q in lab.dns.queries())
        assert "proxy.b.example" in queries, queries
        step("ProxyFqdn used instead of the SRV record")

        alice = a.client("alice")
        alice.send_message("bob@gw.example", "before")
        comp.wait_message(frm=alice.jid, body="before")
        comp.send_message(alice.jid, "reply", mfrom="bob@gw.example")
        alice.wait_message(frm="bob@gw.example", body="reply")
        m = gwlab.metrics(gw)
        assert 'fedgate_streams_open{dir="in",partner="a.example",auth="sasl"' in m, m
        time.sleep(1.1)  # the stream table is republished every second
        m = gwlab.metrics(gw)
        assert 'dir="in",partner="a.example",local="gw.example",remote="a.example",state="open",auth="sasl"' in m, m
        step("a.example streams up both ways")

        # A hosted domain added while running: its certificate is loaded without a restart.
        lab.dns.add_srv("gw2.example", gw.s2s_port)
        lab.dns.reload()
        cert2 = lab.pki.cert("gw2.example")
        store.cli("domain", "new", "gw2.example", "--cert", cert2.crt, "--key", cert2.key,
                  "--route", "component", "--secret-file", os.path.join(lab.root, "component.secret"))
        gwlab.wait_log(proc, "certificates reloaded (2 hosted domains)", timeout=5)
        comp2 = lab.component("gw2.example", gwlab.COMPONENT_SECRET, gw.component_port)
        alice.send_message("bob@gw2.example", "to the new domain")
        comp2.wait_message(frm=alice.jid, body="to the new domain", timeout=15)
        assert a.wait_auth("gw2.example", "out", expect="sasl_external") == "sasl_external"
        step("hosted domain added live: its certificate serves SASL EXTERNAL at once")
        mark = a.log_mark()
        store.cli("domain", "set", "gw2.example", "--enabled", "false")
        gwlab.wait_log(proc, "component gw2.example: no longer a component route, closing", timeout=2)
        gwlab.wait_log(proc, "in a.example: gw2.example is no longer hosted, closing", timeout=2)
        # Until Prosody has read the stream error, it still sends on the stream being closed, and
        # what the gateway receives there after its error is not processed (RFC 6120 §4.9.1.1:
        # the stream is unrecoverable): only a stanza sent afterwards opens a new stream.
        a.wait_log(r"a\.example->gw2\.example closed", timeout=5, since=mark)
        alice.send_message("bob@gw2.example", "to a disabled domain")
        alice.wait_error(frm="bob@gw2.example", timeout=10)
        step("hosted domain disabled live: its component closed (host-gone), stanzas refused")

        store.cli("access", "set", "user:bob@gw.example", "false")
        alice.send_message("bob@gw.example", "no access")
        e = alice.wait_error(frm="bob@gw.example", timeout=10)
        comp.send_message(alice.jid, "no access either", mfrom="bob@gw.example")
        e2 = comp.wait_error(frm=alice.jid, timeout=10)
        assert "<not-allowed" in str(e2), e2  # docs/partner-types.md §2: outbound without access
        alice.send_message("carol@gw.example", "carol has access")
        comp.wait_message(frm=alice.jid, body="carol has access")
        assert "no access" not in str(comp.inbox)
        store.cli("access", "remove", "user:bob@gw.example")
        step(f"EnableXmppAccess false for bob@gw.example: refused both ways ({e['error']['condition']})")

        t = time.monotonic()
        store.cli("partner", "remove", "a.example")
        gwlab.wait_log(proc, "a.example: partner removed, closing", timeout=1.0)
        a.wait_log(r"policy-violation", timeout=5)
        step(f"removed partner disconnected after {time.monotonic() - t:.2f} s")

        alice.send_message("bob@gw.example", "after")
        alice.wait_error(frm="bob@gw.example", timeout=15)
        assert "after" not in str(comp.inbox)
        comp.send_message(alice.jid, "to removed", mfrom="bob@gw.example")
        e = comp.wait_error(frm=alice.jid, timeout=10)
        assert "<policy-violation" in str(e), e
        m = gwlab.metrics(gw)
        assert 'fedgate_streams_refused_total{reason="not-a-partner"}' in m, m
        step("removed partner refused both ways")
        assert lab.stop_process(proc) == 0, "fedgate did not exit cleanly on SIGTERM"
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
