#!/usr/bin/python3
"""The authorisation ledger in the running gateway (docs/partner-types.md §3), PublicUnverified
partner a.example on real Prosody:

  * a restart of fedgate keeps the ledger: an invitation made before the restart still lets the
    reverse subscription through after it;
  * an unanswered invitation expires after SubscriptionRefreshInterval (set to its minimum, 60 s,
    with `fedgate-admin gateway set`; rather than waiting, the test moves the stored entries 120 s
    into the past in the store, as another node writing the ledger would): the reverse
    subscription is then dropped and messages bounced on the next stanza, while an answered
    invitation still lets messages through;
  * SIGKILL of fedgate during a burst of invitations leaves a ledger that decodes with every entry
    valid, and fedgate restarts on it.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing (python3-lmdb too).
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab, LabSkip, SKIP_RC, requirements  # noqa: E402
import gwlab  # noqa: E402
from gwlab import step  # noqa: E402
import ptlab  # noqa: E402
from ptlab import presence_from, quiet  # noqa: E402


def start(lab, fg, store, gw):
    argv = [fg, "--store", store.dir, "--workers", "2", "--log-level", "debug",
            "--listen-s2s-tls", ""]
    proc = lab.process("fedgate", argv, ready_ports=[gw.s2s_port, gw.component_port])
    comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
    return proc, comp


def main():
    try:
        requirements()
        fg, admin = gwlab.binaries()
        import lmdb  # noqa: F401  (ages a ledger entry, see ptlab.age_entry)
    except ImportError:
        print("SKIP: missing: python3-lmdb")
        return SKIP_RC
    except LabSkip as e:
        print(f"SKIP: {e}")
        return SKIP_RC
    with Lab() as lab:
        a = lab.prosody("a.example", auth="sasl")
        gw = lab.gateway("gw.example")
        for n in range(1, 4):
            a.add_user(f"alice{n}")
        lab.start()
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("a.example", type="public-unverified")
        store.cli("gateway", "set", "--subscription-refresh-interval", "60")
        proc, comp = start(lab, fg, store, gw)
        alice = [None] + [a.client(f"alice{n}", on_subscribe="ignore") for n in range(1, 4)]
        step("lab and gateway up, SubscriptionRefreshInterval 60 s")

        for n in (1, 2):
            comp.subscribe(alice[n].jid, mfrom=f"bob{n}@gw.example")
            alice[n].wait_presence(frm=f"bob{n}@gw.example", ptype="subscribe")
            ptlab.wait_entry(store, f"bob{n}@gw.example", alice[n].jid, answered=False)
        step("bob1 and bob2 invited alice1 and alice2 (unanswered, in the ledger)")

        assert lab.stop_process(proc) == 0
        proc, comp = start(lab, fg, store, gw)
        alice[1].subscribe("bob1@gw.example")
        comp.wait_presence(frm=alice[1].jid, ptype="subscribe", timeout=15)
        ptlab.wait_entry(store, "bob1@gw.example", alice[1].jid, answered=True)
        step("restart: the ledger survived, alice1's reverse subscription passed (answered)")

        for n in (1, 2):
            ptlab.age_entry(store, f"bob{n}@gw.example", alice[n].jid, 120)
        later = {e["local"]: e["state"] for e in ptlab.ledger(store)}
        assert later == {"bob1@gw.example": "valid", "bob2@gw.example": "expired"}, later
        alice[2].subscribe("bob2@gw.example")
        quiet(comp, presence_from(alice[2].jid, "subscribe"), seconds=2,
              what="subscribe after the invitation expired")
        alice[2].send_message("bob2@gw.example", "too late")
        e = alice[2].wait_error(frm="bob2@gw.example", timeout=15)
        assert e["error"]["condition"] == "service-unavailable", e
        alice[1].send_message("bob1@gw.example", "still contacts")
        comp.wait_message(frm=alice[1].jid, body="still contacts", timeout=15)
        step("both invitations 120 s old: bob2's unanswered invitation expired (subscribe dropped, message "
             "bounced), bob1's answered one did not")

        assert lab.stop_process(proc) == 0
        proc, comp = start(lab, fg, store, gw)
        sent = 16000
        comp.send_raw("".join(f"<presence from='burst{i % 50}@gw.example' to='user{i}@a.example' "
                              f"type='subscribe'/>" for i in range(sent)))
        comp.owner.pump(0.02)  # the gateway is busy recording them: kill it now
        assert lab.stop_process(proc, sig=signal.SIGKILL) == -signal.SIGKILL
        entries = ptlab.ledger(store)
        burst = [e for e in entries if e["local"].startswith("burst")]
        for e in entries:
            assert e["state"] in ("valid", "conversation", "expired"), e
            assert e["invited_at"] > 0 or e["messaged_at"] > 0, e
            assert "@" in e["local"] and "@" in e["remote"], e
        assert len(burst) <= sent, len(burst)
        step(f"SIGKILL during a burst of {sent} invitations: {len(burst)} committed, every "
             f"entry of {len(entries)} decodes and is valid")

        proc, comp = start(lab, fg, store, gw)
        comp.subscribe(alice[3].jid, mfrom="bob3@gw.example")
        alice[3].wait_presence(frm="bob3@gw.example", ptype="subscribe", timeout=15)
        alice[3].subscribe("bob3@gw.example")
        comp.wait_presence(frm=alice[3].jid, ptype="subscribe", timeout=15)
        step("fedgate restarted on that ledger: a new invitation and its answer pass")
        assert lab.stop_process(proc) == 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
