#!/usr/bin/python3
"""PartnerType (lync-spec §4.1) with a real Prosody partner a.example:

  * PublicUnverified: a partner user cannot write to a local user first (<service-unavailable/>);
    once the local user wrote to them, they can answer; presence the local user sends them loses
    its <status/> note.
  * Federated (changed live with fedgate-admin): anyone may write first and notes are kept.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab, LabSkip, SKIP_RC, requirements  # noqa: E402
import gwlab  # noqa: E402

T0 = time.monotonic()


def step(msg):
    print(f"[{time.monotonic() - T0:6.2f} s] {msg}", flush=True)


def main():
    try:
        requirements()
        fg, admin = gwlab.binaries()
    except LabSkip as e:
        print(f"SKIP: {e}")
        return SKIP_RC
    with Lab() as lab:
        a = lab.prosody("a.example", auth="sasl")
        gw = lab.gateway("gw.example")
        a.add_user("alice")
        lab.start()
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("a.example", type="public-unverified")
        proc = gwlab.start_gateway(lab, fg, store)
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        alice = a.client("alice")
        step("lab and gateway up")

        alice.send_message("bob@gw.example", "unsolicited")
        e = alice.wait_error(frm="bob@gw.example", timeout=10)
        assert e["error"]["condition"] == "service-unavailable", e
        assert "unsolicited" not in str(comp.inbox)
        step("PublicUnverified: unsolicited message refused with service-unavailable")

        comp.send_message(alice.jid, "hello from bob", mfrom="bob@gw.example")
        alice.wait_message(frm="bob@gw.example", body="hello from bob")
        alice.send_message("bob@gw.example", "answer")
        comp.wait_message(frm=alice.jid, body="answer")
        alice.send_message("carol@gw.example", "to carol")
        alice.wait_error(frm="carol@gw.example", timeout=10)
        step("PublicUnverified: answers to a local user who wrote first pass; others still refused")

        comp.send_presence(to=str(alice.jid), mfrom="bob@gw.example", status="secret note")
        p = alice.wait_presence(frm="bob@gw.example", timeout=10)
        assert "secret note" not in str(p), p
        step("PublicUnverified: presence note stripped")

        store.cli("partner", "set", "a.example", "--type", "federated")
        time.sleep(0.2)
        alice.inbox.clear()
        alice.send_message("carol@gw.example", "to carol again")
        comp.wait_message(frm=alice.jid, body="to carol again")
        comp.send_presence(to=str(alice.jid), mfrom="bob@gw.example", status="visible note")
        p = alice.wait_presence(frm="bob@gw.example", timeout=10)
        assert "visible note" in str(p), p
        step("Federated (changed live): unsolicited message delivered, note kept")
        assert lab.stop_process(proc) == 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
