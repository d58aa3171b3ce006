#!/usr/bin/python3
"""External access policy (EnableXmppAccess, lync-spec §4.2, docs/partner-types.md §2) at
global, hosted-domain and user scope, the most specific scope that is set winning, with a real
Prosody partner a.example (Federated, so only access decides) and the slixmpp component
gw.example (our users):

  * a local user without access: their outbound message is bounced to them with <not-allowed/>
    (type cancel); a partner user's message to them is bounced <service-unavailable/>, and a
    subscription request to them dropped unanswered, exactly as for a user that does not exist;
  * every change applies to the next stanza (no stream is reopened);
  * the refusals are counted on /metrics (rules out_no_access and in_no_access);
  * EnableLoggingAllMessageBodies: the audit line of a message names its endpoints, and its body
    only while the setting is on.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab  # noqa: E402
import gwlab  # noqa: E402
from gwlab import step  # noqa: E402
from ptlab import decisions, delta, presence_from, quiet  # noqa: E402


def main(fg, admin):
    with Lab() as lab:
        a = lab.prosody("a.example", auth="sasl")
        gw = lab.gateway("gw.example")
        a.add_user("alice")
        lab.start()
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("a.example", type="federated")
        proc = gwlab.start_gateway(lab, fg, store)
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        alice = a.client("alice", on_subscribe="ignore")
        step("lab and gateway up")

        def access(scope, value):
            if value is None:
                store.cli("access", "remove", scope)
            else:
                store.cli("access", "set", scope, value)
            time.sleep(0.3)  # the commit wakes every worker; the next stanza sees it

        tag = [0]

        def allowed(bob):
            tag[0] += 1
            body = f"out {tag[0]}"
            comp.send_message(alice.jid, body, mfrom=bob)
            alice.wait_message(frm=bob, body=body)
            body = f"in {tag[0]}"
            alice.send_message(bob, body)
            comp.wait_message(frm=alice.jid, body=body)

        def refused(bob):
            m0 = decisions(gw)
            tag[0] += 1
            comp.send_message(alice.jid, f"out {tag[0]}", mfrom=bob)
            e = comp.wait_error(frm=alice.jid, timeout=10)
            # On a component stream slixmpp does not map <error/> (its plugin is for jabber:client).
            assert '<error type="cancel"><not-allowed ' in str(e), e
            assert str(e["to"]).split("/")[0] == bob, e
            alice.send_message(bob, f"in {tag[0]}")
            e = alice.wait_error(frm=bob, timeout=10)
            assert e["error"]["condition"] == "service-unavailable", e
            assert e["error"]["type"] == "cancel", e
            alice.subscribe(bob)
            quiet(comp, presence_from(alice.jid, "subscribe"), seconds=1.0,
                  what="subscribe to a user without access")
            assert not [st for st in alice.inbox if st["from"].bare == bob], alice.inbox
            m1 = decisions(gw)
            assert delta(m0, m1, "out_no_access") == 1, (m0, m1)
            assert delta(m0, m1, "in_no_access") == 2, (m0, m1)  # the message and the subscribe
            assert not [st for st in comp.inbox if st.name == "message" and st["type"] != "error"]
            assert not [st for st in alice.inbox if st.name == "message" and st["type"] != "error"]

        bob, carol = "bob@gw.example", "carol@gw.example"
        allowed(bob)
        allowed(carol)
        step("global true: both users reach and are reached")

        access("global", "false")
        refused(bob)
        refused(carol)
        step("global false: outbound bounced not-allowed, inbound service-unavailable, "
             "subscribe dropped; counted out_no_access / in_no_access")

        access("domain:gw.example", "true")
        allowed(bob)
        allowed(carol)
        step("domain:gw.example true over global false: allowed")

        access("user:bob@gw.example", "false")
        refused(bob)
        allowed(carol)
        step("user:bob false over domain true: bob refused, carol allowed")

        access("domain:gw.example", "false")
        access("user:bob@gw.example", "true")
        allowed(bob)
        refused(carol)
        step("user:bob true over domain false: bob allowed, carol refused")

        access("user:bob@gw.example", None)
        access("domain:gw.example", None)
        access("global", "true")
        allowed(bob)
        step("scopes removed, global true again: allowed")

        log0 = len(gwlab.log_text(proc))
        comp.send_message(alice.jid, "secret words", mfrom=bob)
        alice.wait_message(frm=bob, body="secret words")
        gwlab.wait_log(proc, f"message out from={bob}")
        new = gwlab.log_text(proc)[log0:]
        assert f"to={alice.jid}" in new and "secret words" not in new, new[-2000:]
        store.cli("gateway", "set", "--log-message-bodies", "true")
        time.sleep(0.3)
        alice.send_message(bob, "logged words")
        comp.wait_message(frm=alice.jid, body="logged words")
        gwlab.wait_log(proc, 'body="logged words"')
        step("audit line: endpoints only by default, the body with EnableLoggingAllMessageBodies")
        assert lab.stop_process(proc) == 0
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
