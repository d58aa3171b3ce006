#!/usr/bin/python3
"""Several XEP-0114 connections of one component (gw.example) on a gateway with 2 workers, with
real Prosody partners a.example and b.example.

The component listener deals connections out over the workers in turn (1st to worker 0, 2nd to
worker 1, 3rd to worker 0, ...). A worker delivers an inbound stanza over a connection of the
component on itself when it has one, else it posts it to the worker of the newest connection (the
owner; when the owner's last connection closes, another worker's takes over) and counts it in
fedgate_stanzas_cross_worker_total.

Which worker a partner's inbound stream lands on is the kernel's choice (SO_REUSEPORT); the test
reads it from the gateway's log (the worker is the top byte of the connection id) and, when both
partners' streams share a worker, has Prosody close one and reconnect, a few times, so stanzas
arrive on both workers. Expectations are computed from the placement observed, so they hold
whatever it is; only their strength depends on it.

Phases (N messages each, from both partners, counted by body over every connection):
  1. two connections, one per worker: each message arrives exactly once, at the connection on the
     worker its partner stream is on, and nothing crosses workers;
  2. the owner's (worker 1) connection closes: everything arrives once at the other, and exactly
     the stanzas received on worker 1 cross; a new connection (worker 0 again) shares the load;
     a fourth (worker 1) and the first closed: the third still serves worker 0, nothing crosses;
  4. a reply from the component over each remaining connection reaches both partner users;
  3. no connection left: a message is bounced to its sender with service-unavailable.
Any error bounced to a partner user in phases 1-2 fails the test. After phase 1 the live stream
table (fedgate_stream_info, built by each worker's stepped sweep) must list both component
connections and both partners' inbound TLS streams, and the parser pool must have lent instances;
after the owner's connection closes, the table must drop it.

How it fails: a worker that ignored its own connection (always posting to the owner) makes the
cross-worker count grow in phase 1; an owner that is not handed over when its last connection
closes bounces worker 1's stanzas in phase 2; a delivery to both connections or none breaks the
exactly-once counts; a listener that does not deal connections out fails the placement checks.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab  # noqa: E402
import gwlab  # noqa: E402
from gwlab import step  # noqa: E402

N = 40
WORKERS = 2
CROSS = "fedgate_stanzas_cross_worker_total"


def metric_sum(gw, name, match="", required=True):
    """Sum of the samples of metric `name` whose label text contains `match`; a metric not
    exported (yet) is an error when required, else 0."""
    total, seen = 0.0, False
    for line in gwlab.metrics(gw).splitlines():
        if line.startswith("#"):
            if line.startswith(f"# TYPE {name} "):
                seen = True
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m and m.group(1) == name and match in (m.group(2) or ""):
            total += float(m.group(3))
            seen = True
    assert seen or not required, f"metric {name} not exported"
    return int(total)


def auth_lines(proc, kind, remote):
    """Worker of each authenticated `kind` ('in', 'component') stream from `remote`, oldest
    first, read from the gateway's log line 'conn <id> <kind> <remote> -> ... authenticated'."""
    pat = re.compile(rf"conn ([0-9a-f]+) {kind} {re.escape(remote)} -> \S+ authenticated")
    return [int(m.group(1), 16) >> 56 for m in pat.finditer(gwlab.log_text(proc))]


def wait_count(fn, want, what, timeout=8):
    end = time.monotonic() + timeout
    while True:
        got = fn()
        if got == want:
            return
        if time.monotonic() > end:
            raise AssertionError(f"{what}: {got}, expected {want}")
        time.sleep(0.05)


class Conns:
    """The component's connections: each connect() must land on the next worker in turn."""

    def __init__(self, lab, gw, proc):
        self.lab, self.gw, self.proc = lab, gw, proc
        self.n = 0

    def open_components(self):
        return metric_sum(self.gw, "fedgate_streams_open", 'dir="component"', required=False)

    def connect(self):
        before = self.open_components()
        c = self.lab.component(self.gw.domain, gwlab.COMPONENT_SECRET, self.gw.component_port)
        want = self.n % WORKERS
        self.n += 1
        wait_count(lambda: len(auth_lines(self.proc, "component", self.gw.domain)), self.n,
                   "authenticated component connections in the log")
        c.worker = auth_lines(self.proc, "component", self.gw.domain)[-1]
        assert c.worker == want, f"component connection {self.n} on worker {c.worker}, not {want}"
        wait_count(self.open_components, before + 1, "open component connections")
        return c

    def disconnect(self, c):
        before = self.open_components()
        c.disconnect()
        wait_count(self.open_components, before - 1, "open component connections")


def stream_table(gw):
    """The live stream table from /metrics: the labels of each fedgate_stream_info series."""
    return [dict(re.findall(r'(\w+)="([^"]*)"', line[:line.index("}")]))
            for line in gwlab.metrics(gw).splitlines() if line.startswith("fedgate_stream_info{")]


def wait_table(gw, pred, what, timeout=4):
    """The stream table once pred(rows) holds; the sweep publishes it once a second."""
    end = time.monotonic() + timeout
    while True:
        rows = stream_table(gw)
        if pred(rows):
            return rows
        if time.monotonic() > end:
            raise AssertionError(f"{what}: {rows}")
        time.sleep(0.1)


def comp_rows(rows):
    return [r for r in rows if r["dir"] == "component"]


def pump_until(xmpp, pred, timeout):
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        xmpp.pump(0.02)
    return pred()


def errors_in(user):
    return [str(s)[:300] for s in user.inbox if s.name == "message" and s["type"] == "error"]


def deliver(lab, users, comps, tag, route, n=N):
    """Send n messages round-robin from users to bob<i>@gw.example and check each arrives exactly
    once over comps; route(user) names the comp it must arrive at, or None for any. Consumes the
    messages. Returns how many each user sent."""
    sent, want = {u.jid: 0 for u in users}, {}
    for i in range(n):
        u = users[i % len(users)]
        body = f"{tag} {i}"
        want[body] = route(u)
        u.send_message(f"bob{i}@gw.example", body)
        sent[u.jid] += 1

    def got():
        return {s["body"] for c in comps for s in c.inbox if s.name == "message"} >= set(want)

    ok = pump_until(lab.xmpp, got, 10)
    lab.xmpp.pump(0.3)  # time for a duplicate to show up
    seen = {}
    for c in comps:
        keep = []
        for s in c.inbox:
            if s.name == "message" and s["body"] in want:
                seen.setdefault(s["body"], []).append(c)
            else:
                keep.append(s)
        c.inbox[:] = keep
    for u in users:
        err = errors_in(u)
        assert not err, f"{tag}: {len(err)} bounced to {u.jid}, e.g. {err[:2]}"
    missing = sorted(set(want) - set(seen))
    assert ok and not missing, f"{tag}: {len(missing)} of {n} never arrived: {missing[:5]}"
    dup = {b: len(cs) for b, cs in seen.items() if len(cs) != 1}
    assert not dup, f"{tag}: delivered more than once: {dup}"
    for body, cs in seen.items():
        if want[body] is not None:
            assert cs[0] is want[body], \
                f"{tag}: {body!r} arrived on worker {cs[0].worker}'s connection, not {want[body].worker}'s"
    return sent


def main(fg, admin):
    with Lab() as lab:
        a = lab.prosody("a.example", auth="sasl")
        b = lab.prosody("b.example", auth="sasl")
        gw = lab.gateway("gw.example")
        a.add_user("alice")
        b.add_user("carol")
        lab.start()
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("a.example")
        store.partner("b.example")
        proc = gwlab.start_gateway(lab, fg, store, workers=WORKERS)
        step("lab up, fedgate with 2 workers")
        conns = Conns(lab, gw, proc)
        c1 = conns.connect()
        c2 = conns.connect()
        step("two component connections, on workers 0 and 1")
        alice, carol = a.client("alice"), b.client("carol")
        users = [alice, carol]
        servers = {alice.jid: a, carol.jid: b}

        # Partner streams: one per partner, on the worker the kernel picks; split them if it can.
        where = {}
        for attempt in range(8):
            deliver(lab, users, [c1, c2], f"warm-up {attempt}", lambda u: None, n=2)
            where = {u.jid: auth_lines(proc, "in", servers[u.jid].domain)[-1] for u in users}
            if len(set(where.values())) == WORKERS:
                break
            b.shell("s2s:close('b.example', 'gw.example')")
            wait_count(lambda: metric_sum(gw, "fedgate_streams_open", 'partner="b.example"'), 0,
                       "open streams with b.example")
        split = len(set(where.values())) == WORKERS
        step(f"partner streams on workers {where}" + ("" if split else
             " (never split: the cross-worker checks are weaker this run)"))
        by_worker = {0: c1, 1: c2}

        cross = metric_sum(gw, CROSS)
        deliver(lab, users, [c1, c2], "phase1", lambda u: by_worker[where[u.jid]])
        assert metric_sum(gw, CROSS) == cross, \
            f"{CROSS} grew by {metric_sum(gw, CROSS) - cross} with a connection on each worker"
        step(f"phase 1: {N} messages, each once, on its own worker's connection, none crossed")

        # Only open streams count: a partner may be opening another one meanwhile.

        def open_in(rows):
            return {r["partner"]: r for r in rows if r["dir"] == "in" and r["state"] == "open"}
        rows = wait_table(gw, lambda r: len(comp_rows(r)) == 2 and open_in(r).keys() >= {
            "a.example", "b.example"}, "stream table with 2 component and 2 open partner streams")
        for r in comp_rows(rows):
            assert r["state"] == "open" and r["auth"] == "component" and r["tls"] == "none", r
        for r in open_in(rows).values():
            assert r["tls"].startswith("TLSv1.") and r["auth"] != "none", r

        def lent():
            return metric_sum(gw, "fedgate_parser_pool_total", 'result="lent"', required=False)
        wait_count(lambda: lent() > 0, True, "parser instances lent")
        workers = sorted(int(r["id"], 16) >> 56 for r in comp_rows(rows))
        step(f"stream table: {len(rows)} streams, components on workers {workers}; "
             f"the parser pool lent {lent()} instances")

        conns.disconnect(c2)
        rows = wait_table(gw, lambda r: len(comp_rows(r)) == 1, "stream table after a component "
                          "connection closed")
        assert int(comp_rows(rows)[0]["id"], 16) >> 56 == 0, rows
        cross = metric_sum(gw, CROSS)
        sent = deliver(lab, users, [c1], "phase2a", lambda u: c1)
        crossed = sum(n for j, n in sent.items() if where[j] == 1)
        assert metric_sum(gw, CROSS) - cross == crossed, \
            f"{CROSS} grew by {metric_sum(gw, CROSS) - cross}, expected {crossed}"
        step(f"phase 2: owner's connection closed: {N} messages at the other, {crossed} crossed")

        c3 = conns.connect()
        cross = metric_sum(gw, CROSS)
        deliver(lab, users, [c1, c3], "phase2b", lambda u: None)
        assert metric_sum(gw, CROSS) - cross == crossed, \
            f"{CROSS} grew by {metric_sum(gw, CROSS) - cross}, expected {crossed}"
        step(f"phase 2: a new connection (worker 0 again): {N} messages once over both, "
             f"{crossed} crossed")

        c4 = conns.connect()
        conns.disconnect(c1)
        by_worker = {0: c3, 1: c4}
        cross = metric_sum(gw, CROSS)
        deliver(lab, users, [c3, c4], "phase2c", lambda u: by_worker[where[u.jid]])
        assert metric_sum(gw, CROSS) == cross, \
            f"{CROSS} grew by {metric_sum(gw, CROSS) - cross} with a connection on each worker"
        step(f"phase 2: worker 1 connected again and worker 0's first connection closed: "
             f"{N} messages, each on its own worker, none crossed")

        for c in (c3, c4):
            for u in users:
                c.send_message(u.jid, f"reply via worker {c.worker}", mfrom="bob@gw.example")
        for c in (c3, c4):
            for u in users:
                u.wait_message(frm="bob@gw.example", body=f"reply via worker {c.worker}", timeout=10)
        step("phase 4: a reply over each connection reached both partner users")

        conns.disconnect(c3)
        conns.disconnect(c4)
        for u in users:
            u.send_message("bob@gw.example", "nobody home")
        for u in users:
            e = u.wait_error(frm="bob@gw.example", timeout=10)
            assert e["error"]["condition"] == "service-unavailable", e
        step("phase 3: no connection left: bounced with service-unavailable to both senders")
        assert lab.stop_process(proc) == 0, "fedgate did not exit cleanly on SIGTERM"
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
