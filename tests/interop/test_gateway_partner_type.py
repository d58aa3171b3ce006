#!/usr/bin/python3
"""PartnerType at the stanza level (lync-spec §4, docs/partner-types.md §2) with a real Prosody
partner a.example (its users: the partner side) and the slixmpp component gw.example (our
users), one gateway, the partner's type changed live with fedgate-admin while the streams stay
open:

  * Federated: subscriptions and messages pass both ways, <status/> kept both ways.
  * PublicVerified: the same, but <status/> stripped from our users' presence.
  * PublicUnverified: a partner user's message is bounced <service-unavailable/>, a subscription
    request is dropped without an answer; our user's message opens a conversation (replies pass,
    a subscription request does not); our user's subscription request is an invitation that lets
    the reverse subscription through; <status/> stripped outbound, kept inbound.
  * Each refusal is counted on /metrics (fedgate_policy_decisions_total{rule=...}), and the
    type change reaches the next stanza without any stream being re-authenticated.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab  # noqa: E402
import gwlab  # noqa: E402
from gwlab import step  # noqa: E402
import ptlab  # noqa: E402
from ptlab import decisions, delta, presence_from, quiet  # noqa: E402


def set_type(store, t):
    store.cli("partner", "set", "a.example", "--type", t)
    time.sleep(0.3)  # the store's commit wakes every worker (inotify); no stream is reopened


def both_ways_pass(alice, comp, bob, strip):
    """Everything passes between alice (partner user) and bob (our user)."""
    alice.send_message(bob, "in hello")
    comp.wait_message(frm=alice.jid, body="in hello")
    alice.subscribe(bob)
    comp.wait_presence(frm=alice.jid, ptype="subscribe")
    alice.send_presence(to=bob, status="in note")
    p = comp.wait_presence(frm=alice.jid, ptype="available")
    assert p["status"] == "in note", p  # inbound presence is never edited
    comp.send_message(alice.jid, "out hello", mfrom=bob)
    alice.wait_message(frm=bob, body="out hello")
    comp.subscribe(alice.jid, mfrom=bob)
    alice.wait_presence(frm=bob, ptype="subscribe")
    comp.send_presence(to=alice.jid, mfrom=bob, status="out note")
    p = alice.wait_presence(frm=bob, ptype="available")
    assert (p["status"] == "") == strip, p


def main(fg, admin):
    with Lab() as lab:
        a = lab.prosody("a.example", auth="sasl")
        gw = lab.gateway("gw.example")
        for n in range(1, 5):
            a.add_user(f"alice{n}")
        lab.start()
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("a.example", type="federated")
        proc = gwlab.start_gateway(lab, fg, store)
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        alice = [None] + [a.client(f"alice{n}", on_subscribe="ignore") for n in range(1, 5)]
        step("lab and gateway up")

        both_ways_pass(alice[1], comp, "bob1@gw.example", strip=False)
        step("Federated: message, subscribe and presence pass both ways, notes kept")

        set_type(store, "public-verified")
        both_ways_pass(alice[2], comp, "bob2@gw.example", strip=True)
        step("PublicVerified (changed live): everything passes, our users' notes stripped")

        set_type(store, "public-unverified")
        bob3, a3 = "bob3@gw.example", alice[3]
        m0 = decisions(gw)
        a3.send_message(bob3, "unsolicited")
        e = a3.wait_error(frm=bob3, timeout=10)
        assert e["error"]["condition"] == "service-unavailable" and e["error"]["type"] == "cancel", e
        a3.subscribe(bob3)
        quiet(comp, presence_from(a3.jid, "subscribe"), what="subscribe from an uninvited user")
        assert not [st for st in a3.inbox if st["from"].bare == bob3], a3.inbox  # no answer at all
        assert not [st for st in comp.inbox if st.name == "message" and st["body"] == "unsolicited"]
        m1 = decisions(gw)
        assert delta(m0, m1, "unverified_message") == 1, (m0, m1)
        assert delta(m0, m1, "unverified_subscribe") == 1, (m0, m1)
        step("PublicUnverified (changed live): message bounced service-unavailable, subscribe "
             "dropped unanswered; both counted")

        a3.send_presence(to=bob3, status="in note")
        p = comp.wait_presence(frm=a3.jid, ptype="available")
        assert p["status"] == "in note", p
        comp.send_presence(to=a3.jid, mfrom=bob3, status="secret note")
        p = a3.wait_presence(frm=bob3, ptype="available")
        assert p["status"] == "", p
        step("PublicUnverified: inbound note kept, outbound note stripped")

        comp.send_message(a3.jid, "hello from bob3", mfrom=bob3)
        a3.wait_message(frm=bob3, body="hello from bob3")
        a3.send_message(bob3, "reply")
        comp.wait_message(frm=a3.jid, body="reply")
        a3.subscribe(bob3)
        quiet(comp, presence_from(a3.jid, "subscribe"), what="subscribe within a conversation")
        a3.send_message("carol@gw.example", "to carol")
        e = a3.wait_error(frm="carol@gw.example", timeout=10)
        assert e["error"]["condition"] == "service-unavailable", e
        step("PublicUnverified: our user's message opens a conversation (replies pass, a "
             "subscription does not, other users still refused)")

        bob4, a4 = "bob4@gw.example", alice[4]
        comp.subscribe(a4.jid, mfrom=bob4)
        a4.wait_presence(frm=bob4, ptype="subscribe")
        e = ptlab.wait_entry(store, bob4, a4.jid)
        assert not e["answered"] and e["state"] == "valid", e
        m0 = decisions(gw)
        a4.subscribe(bob4)
        comp.wait_presence(frm=a4.jid, ptype="subscribe")
        a4.send_message(bob4, "now we are contacts")
        comp.wait_message(frm=a4.jid, body="now we are contacts")
        m1 = decisions(gw)
        assert delta(m0, m1, "answer_invite") == 1, (m0, m1)
        e = ptlab.wait_entry(store, bob4, a4.jid, answered=True)
        step("PublicUnverified: our user's subscription request is an invitation; the reverse "
             "subscription and messages pass, the entry is answered (never expires)")

        comp.send_presence(to=a4.jid, mfrom=bob4, ptype="unsubscribe")
        a4.wait_presence(frm=bob4, ptype="unsubscribe")
        end = time.monotonic() + 5
        while [x for x in ptlab.ledger(store) if x["local"] == bob4] and time.monotonic() < end:
            time.sleep(0.1)
        assert not [x for x in ptlab.ledger(store) if x["local"] == bob4], ptlab.ledger(store)
        step("unsubscribe removes the ledger entry")

        set_type(store, "federated")
        a3.send_message(bob3, "federated again")
        comp.wait_message(frm=a3.jid, body="federated again")
        closed = [ln for ln in gwlab.log_text(proc).splitlines() if ": closed (" in ln]
        assert not closed, closed
        step("Federated again (live): delivered; no stream was closed by the type changes")
        assert lab.stop_process(proc) == 0
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
