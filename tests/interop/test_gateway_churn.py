#!/usr/bin/python3
"""The admin changing policy every 10 ms during a fedgate-bench run: the gateway keeps serving
and loses nothing.

  * reference: fedgate-bench (40 streams from p0..p3.bench, SASL EXTERNAL, 2,000 stanzas/s to a
    component sink) without churn;
  * churn: bench/fedgate_churn.py commits a policy change every 10 ms through one
    `fedgate-admin serve` (keepalive, connection limit and additional domains of the bench
    partners, an unrelated partner created/removed and its TLS rule toggled, the gateway's
    KeepAliveInterval/ConnectionLimit), while the same bench runs again next to a second one
    (10 streams from px0.bench to a second hosted domain). Mid-run px0.bench is removed and
    re-added 100 ms later;
  * then: every stream of the first bench opened and every stanza it sent arrived; every stream
    of px0.bench was closed with <policy-violation/>; every stanza the gateway read is delivered,
    bounced or refused by its own counters; at least half the nominal number of changes were
    committed and the workers logged that they saw them; the gateway is alive, answers /metrics
    and serves fresh streams (px0.bench again too); the store shows the state the churn committed
    last; SIGTERM stops the gateway cleanly.

All checks run and are reported together; any failure fails the test.
FEDGATE_BENCH=PATH picks another fedgate-bench binary; FEDGATE_CHURN_MS the interval (10).
Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import base64
import calendar
import json
import os
import re
import socket
import ssl
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab, SKIP_RC, find_binary  # noqa: E402
import gwlab  # noqa: E402
from gwlab import step  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("FEDGATE_SOURCE_DIR") or os.path.join(HERE, "..", "..")
CHURN = os.path.join(SOURCE, "bench", "fedgate_churn.py")
CHURN_MS = float(os.environ.get("FEDGATE_CHURN_MS", "10"))
PARTNERS = [f"p{i}.bench" for i in range(4)]
REMOVED = "px0.bench"
GW2 = "gw2.example"
A_STREAMS, A_RATE, B_STREAMS, B_RATE = 40, 2000, 10, 500
SLOW_STREAMS = 8
RUN_SECS = 6
FAILURES = []


def check(ok, what):
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        FAILURES.append(what)


def bench_result(text):
    """{phase: (stanzas/s, sent, recv)} from fedgate-bench's summary lines."""
    out = {}
    for m in re.finditer(r"^(baseline|run)\s+\d+ streams:\s+(\d+) stanzas/s\s+sent (\d+) recv (\d+)",
                         text, re.M):
        out[m.group(1)] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
    return out


def metric_sum(text, name, match=""):
    total = 0
    for line in text.splitlines():
        if line.startswith(name) and match in line and not line.startswith("#"):
            head, _, val = line.rpartition(" ")
            if head == name or head.startswith(name + "{"):
                total += float(val)
    return int(total)


def slow_stream(port, ctx, domain, pause):
    """A partner stream (STARTTLS + SASL EXTERNAL as `domain`) that waits `pause` seconds before
    each step, as a partner a WAN round trip away does. None when it authenticated, else what the
    gateway sent last."""
    hdr = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
           "xmlns:stream='http://etherx.jabber.org/streams' "
           f"from='{domain}' to='gw.example' version='1.0'>").encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(hdr)
        gwlab.read_until(s, b"</stream:features>")
        time.sleep(pause)
        s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        gwlab.read_until(s, b"<proceed")
        t = ctx.wrap_socket(s, server_hostname="gw.example")
        t.sendall(hdr)
        gwlab.read_until(t, b"</stream:features>")
        time.sleep(pause)
        authzid = base64.b64encode(domain.encode()).decode()
        t.sendall(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>{authzid}"
                  "</auth>".encode())
        gwlab.read_until(t, b"<success")
        t.sendall(hdr)
        gwlab.read_until(t, b"</stream:features>")
        t.close()
        return None
    except (AssertionError, OSError) as e:
        return str(e)[:300]
    finally:
        s.close()


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def main(fg, admin):
    bench = os.environ.get("FEDGATE_BENCH") or find_binary("fedgate-bench")
    if not bench or not os.access(bench, os.X_OK):
        print("SKIP: missing fedgate-bench (build it first)")
        return SKIP_RC
    with Lab(loglevel="info") as lab:
        gw = lab.gateway("gw.example")
        lab.start()
        step(f"lab up; fedgate {fg}, fedgate-bench {bench}")
        store = gwlab.GatewayStore(lab, gw, admin)
        secret = os.path.join(lab.root, "component.secret")
        gw2 = lab.pki.cert(GW2)
        store.cli("domain", "new", GW2, "--cert", gw2.crt, "--key", gw2.key, "--route", "component",
                  "--secret-file", secret)
        store.cli("gateway", "set", "--connection-limit", "1000", "--partner-connection-limit", "200")
        rules = dict(tls="required", sasl="required", dialback="false", type="federated")
        for p in PARTNERS + [REMOVED]:
            store.partner(p, **rules)
            lab.pki.cert(p)  # <pki>/<p>.crt and .key, where fedgate-bench's --cert-dir looks
        proc = lab.process("fedgate", [fg, "--store", store.dir, "--workers", "2",
                                       "--log-level", "debug", "--listen-s2s-tls", ""],
                           ready_ports=[gw.s2s_port, gw.component_port])
        step("fedgate up")

        def bench_argv(domain, fmt, partners, streams, rate, secs):
            return [bench, "--port", str(gw.s2s_port), "--component-port", str(gw.component_port),
                    "--domain", domain, "--secret-file", secret, "--cert-dir", lab.pki.dir,
                    "--ca", lab.pki.ca, "--partner-fmt", fmt, "--partners", str(partners),
                    "--streams", str(streams), "--rate", str(rate), "--duration", str(secs),
                    "--baseline-secs", "1", "--gateway-pid", str(proc.pid)]

        def wait_exit(p, timeout):
            try:
                return p.popen.wait(timeout=timeout)
            except Exception:
                lab.stop_process(p)
                return None

        delivered = 0  # every stanza any sink received: baseline and run phases of every bench

        # Reference, no churn.
        ref = lab.process("bench-ref", bench_argv(gw.domain, "p%d.bench", 4, A_STREAMS, A_RATE, 3))
        rc = wait_exit(ref, 40)
        out = read(ref.log)
        res = bench_result(out)
        delivered += sum(r[2] for r in res.values())
        check(rc == 0 and "failed to open" not in out,
              f"reference bench: exit {rc}, every stream opened, every stanza arrived")
        ref_rate = res.get("run", (0, 0, 0))[0]
        step(f"reference: {ref_rate} stanzas/s over {A_STREAMS} streams without churn")

        # Churn, with the two benches.
        cjson = os.path.join(lab.root, "churn.json")
        churn = lab.process("churn", [sys.executable, CHURN, "--admin", admin, "--store", store.dir,
                                      "--partners", ",".join(PARTNERS), "--interval-ms", str(CHURN_MS),
                                      "--limits", "200,150", "--gateway-limits", "1000,900",
                                      "--json", cjson])
        t_end = time.monotonic() + 20
        while "fedgate_churn: changing" not in read(churn.log):
            assert churn.alive() and time.monotonic() < t_end, read(churn.log)
            time.sleep(0.05)
        t_churn = time.monotonic()
        log_mark = len(gwlab.log_text(proc))
        step("churn started")
        ba = lab.process("bench-a", bench_argv(gw.domain, "p%d.bench", 4, A_STREAMS, A_RATE, RUN_SECS))
        bb = lab.process("bench-b", bench_argv(GW2, "px%d.bench", 1, B_STREAMS, B_RATE, RUN_SECS))
        t_end = time.monotonic() + 30
        while not all(re.search(r"^run: ", read(p.log), re.M) for p in (ba, bb)):
            assert time.monotonic() < t_end, "the benches never reached their run phase"
            assert ba.alive() and bb.alive(), read(ba.log)[-2000:] + read(bb.log)[-2000:]
            time.sleep(0.05)
        # Partners a round trip away: 50 ms between the steps of the negotiation.
        t_slow = time.monotonic()
        ctx = ssl.create_default_context(cafile=lab.pki.ca)
        ctx.load_cert_chain(lab.pki.cert("p0.bench").crt, lab.pki.cert("p0.bench").key)
        slow = [slow_stream(gw.s2s_port, ctx, "p0.bench", 0.05) for _ in range(SLOW_STREAMS)]
        time.sleep(max(0.0, 1.5 - (time.monotonic() - t_slow)))
        t_rm = time.time()
        store.cli("partner", "remove", REMOVED)
        t_rm_done = time.time()
        time.sleep(0.1)
        store.partner(REMOVED, **rules)
        step(f"{REMOVED} removed ({1000 * (t_rm_done - t_rm):.0f} ms) and re-added 100 ms later")
        rca, rcb = wait_exit(ba, 40), wait_exit(bb, 40)
        churn_rc = lab.stop_process(churn)
        churn_secs = time.monotonic() - t_churn
        outa, outb = read(ba.log), read(bb.log)
        ra, rb = bench_result(outa), bench_result(outb)
        delivered += sum(r[2] for r in ra.values()) + sum(r[2] for r in rb.values())
        print(read(churn.log).strip(), flush=True)
        step(f"churn run: {ra.get('run', (0,))[0]} stanzas/s over {A_STREAMS} streams "
             f"(reference {ref_rate}); {REMOVED}'s bench (rate, sent, received): {rb.get('run')}, "
             f"exit {rcb} (its streams were closed)")

        # 1. The bench partners kept every stream and every stanza.
        bad = [x for x in slow if x]
        check(not bad, f"{SLOW_STREAMS} streams negotiating with 50 ms pauses authenticated during churn"
              + (f" ({len(bad)} refused; first: {bad[0]})" if bad else ""))
        fails = re.findall(r"stream \d+ failed \(.*", outa)
        check("failed to open" not in outa,
              f"every one of the {A_STREAMS} streams opened during churn"
              + (f" ({len(fails)} failed; first: {fails[0][:200]})" if fails else ""))
        check(rca == 0, f"fedgate-bench during churn: exit {rca} (0 = every stanza arrived)"
              + ("" if rca == 0 else f"; {outa[-600:]}"))

        # 2. The removed partner's streams were closed by policy.
        log = gwlab.log_text(proc)[log_mark:]
        m_open = re.search(r"^streams opened: (\d+)", outb, re.M)
        open_b = 1 + int(m_open.group(1)) if m_open else 1  # + the baseline stream
        closed = set(re.findall(rf"conn (\S+) in {re.escape(REMOVED)}: partner removed, closing", log))
        check(len(closed) == open_b,
              f"{REMOVED} removed: {len(closed)} of its {open_b} open streams closed ('partner removed')"
              + ("" if open_b == B_STREAMS else f"; {B_STREAMS - open_b} had failed to open"))
        pv = set(re.findall(rf"conn (\S+) in {re.escape(REMOVED)}: closed \(policy-violation", log))
        check(closed and closed <= pv, f"those streams ended with <policy-violation/> ({len(closed & pv)})")
        ts = [m.group(1) for m in re.finditer(
            rf"^(\S+) \S+\s+conn \S+ in {re.escape(REMOVED)}: partner removed", log, re.M)]
        if ts:
            last = calendar.timegm(time.strptime(ts[-1][:19], "%Y-%m-%dT%H:%M:%S")) \
                + float("0" + ts[-1][19:-1])
            check(last - t_rm < 1.0, f"{REMOVED}'s streams closed {1000 * (last - t_rm):.0f} ms after "
                  f"the removal command started (it took {1000 * (t_rm_done - t_rm):.0f} ms)")
        other = re.findall(r"conn \S+ in (p\d\.bench): ([^,\n]*), closing", log)
        check(not other, f"no stream of the allowed partners closed by a policy recheck ({len(other)}"
              + (f"; first: {other[0]}" if other else "") + ")")

        # 3. Churn rate and the workers seeing it.
        cs = json.load(open(cjson)) if os.path.exists(cjson) else {}
        nominal = cs.get("secs", churn_secs) * 1000 / CHURN_MS
        committed = cs.get("committed", 0)
        check(churn_rc == 0 and cs.get("failed", 1) == 0,
              f"every change committed (exit {churn_rc}, {cs.get('failed')} failed: {cs.get('errors')})")
        check(committed >= 0.5 * nominal,
              f"{committed} changes committed in {cs.get('secs', 0):.1f} s (>= half of {nominal:.0f})")
        seen = {w: len(re.findall(rf"worker {w}: policy changed \(txn", log)) for w in (0, 1)}
        print(f"workers logged policy changes: {seen} (debug log; no /metrics series exists)", flush=True)
        check(all(n >= 0.25 * committed for n in seen.values()),
              f"each worker saw at least a quarter of the {committed} changes: {seen}")

        # 4. Accounting by the gateway's counters: read = delivered + bounced + refused.
        m = gwlab.metrics(gw)
        read_in = metric_sum(m, "fedgate_stanzas_total", 'dir="in"')
        bounced = metric_sum(m, "fedgate_stanzas_bounced_total")
        refused = metric_sum(m, "fedgate_stanzas_refused_total")
        print(f"gateway read {read_in} stanzas from partners; sinks received {delivered}; "
              f"bounced {bounced}, refused {refused}", flush=True)
        check(delivered <= read_in <= delivered + bounced + refused,
              f"every stanza the gateway read is accounted for ({read_in} = {delivered} delivered "
              f"+ at most {bounced} bounced + {refused} refused)")
        check(not re.search(rf'fedgate_streams_open{{[^}}]*partner="{re.escape(REMOVED)}"[^}}]*}} [1-9]', m),
              f"no stream of {REMOVED} counted open")

        # 5. Alive, fresh streams (the re-added partner too), clean store.
        check(proc.alive(), "fedgate still running")
        fa = lab.process("bench-fresh", bench_argv(gw.domain, "p%d.bench", 4, 8, 400, 1))
        fb = lab.process("bench-fresh-px", bench_argv(GW2, "px%d.bench", 1, 2, 100, 1))
        rfa, rfb = wait_exit(fa, 30), wait_exit(fb, 30)
        check(rfa == 0 and "failed" not in read(fa.log), f"fresh streams from p0..p3 after churn: exit {rfa}")
        check(rfb == 0 and "failed" not in read(fb.log),
              f"fresh streams from the re-added {REMOVED}: exit {rfb}")
        got = {p["domain"]: p for p in json.loads(store.cli("partner", "get", "--json").stdout)["partners"]}
        want_ok = True
        for p, st in cs.get("partners", {}).items():
            g = got.get(p, {})
            for k, v in st.items():
                if g.get(k) != v:
                    want_ok = False
                    print(f"  {p}.{k}: store {g.get(k)!r}, churn committed {v!r}")
            if any(g.get(k) != v for k, v in (("tls", "Required"), ("sasl", "Required"),
                                               ("dialback", False), ("type", "Federated"))):
                want_ok = False
                print(f"  {p}: rules changed: {g}")
        tls_p = got.get(cs.get("tls_partner"), {})
        want_ok = want_ok and tls_p.get("tls") == ("Required" if cs.get("tls_required") else "Optional")
        want_ok = want_ok and (cs.get("tmp_partner") in got) == bool(cs.get("tmp_exists"))
        want_ok = want_ok and REMOVED in got
        check(bool(cs) and want_ok, "partner get shows exactly the state the churn committed last")
        st = store.cli("status", "--no-streams", check=False)
        check(st.returncode == 0, f"fedgate-admin status: exit {st.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{gw.metrics_port}/metrics", timeout=5) as r:
                check(r.status == 200, "/metrics answers after the run")
        except OSError as e:
            check(False, f"/metrics answers after the run: {e}")
        rc = lab.stop_process(proc)
        check(rc == 0, f"fedgate stopped cleanly on SIGTERM (exit {rc})")
        asan = [x for x in gwlab.log_text(proc).splitlines()
                if "AddressSanitizer" in x or "runtime error:" in x or "LeakSanitizer" in x]
        check(not asan, "no sanitizer report in fedgate's output" + (f": {asan[:3]}" if asan else ""))
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed:\n  " + "\n  ".join(FAILURES), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
