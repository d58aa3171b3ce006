"""Shared checks of the partner-type interop tests (docs/partner-types.md): a quiet inbox, the
per-rule decision counters of /metrics, the ledger as fedgate-admin prints it."""

import json
import re
import time

import gwlab
from lab import run


def quiet(sess, pred, seconds=1.5, what="stanza"):
    """Nothing matching pred arrives at sess for `seconds` (a refusal that sends nothing back)."""
    sess.owner.pump(seconds)
    hit = [st for st in sess.inbox if pred(st)]
    assert not hit, f"{sess.jid}: unexpected {what}: {hit[0]}"


def presence_from(frm, ptype=None):
    def ok(st):
        return (st.name == "presence" and st["from"].bare == frm
                and (ptype is None or st["type"] == ptype))
    return ok


def decisions(gw):
    """fedgate_policy_decisions_total by rule, summed over the workers' series."""
    out = {}
    for m in re.finditer(r'^fedgate_policy_decisions_total\{[^}]*rule="([a-z_]+)"[^}]*\}\s+(\d+)',
                         gwlab.metrics(gw), re.M):
        out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    return out


def delta(before, after, rule):
    return after.get(rule, 0) - before.get(rule, 0)


def ledger(store, env=None):
    """The ledger as `fedgate-admin ledger get --json` prints it (a list of entries)."""
    r = run([store.admin, "--store", store.dir, "ledger", "get", "--json"], check=False, env=env)
    assert r.returncode in (0, 3), r
    return json.loads(r.stdout)["ledger"] if r.stdout.strip() else []


def wait_entry(store, local, remote, timeout=5, answered=None):
    """The ledger holds local -> remote (committed by the gateway's group commit)."""
    end = time.monotonic() + timeout
    while True:
        for e in ledger(store):
            if e["local"] == local and e["remote"] == remote and \
                    (answered is None or e["answered"] == answered):
                return e
        if time.monotonic() > end:
            raise AssertionError(f"ledger never held {local} -> {remote}: {ledger(store)}")
        time.sleep(0.1)


def age_entry(store, local, remote, seconds):
    """Moves the ledger entry local -> remote `seconds` into the past, as if it had been made
    that long ago (SubscriptionRefreshInterval is at least 60 s, longer than a test should run).
    Writes the store's `ledger` database like another node would (docs/partner-types.md §3:
    key local NUL remote; value version, flags, invited_at, messaged_at as i64 LE)."""
    import lmdb
    import struct
    env = lmdb.open(store.dir, max_dbs=16, map_size=1 << 30, subdir=True)
    try:
        db = env.open_db(b"ledger", create=False)
        key = local.encode() + b"\0" + remote.encode()
        with env.begin(write=True, db=db) as txn:
            v = txn.get(key)
            assert v is not None and len(v) == 18, (key, v)
            ver, flags, inv, msg = struct.unpack("<BBqq", v)
            txn.put(key, struct.pack("<BBqq", ver, flags, inv - seconds if inv else 0,
                                     msg - seconds if msg else 0))
    finally:
        env.close()
