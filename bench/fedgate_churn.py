#!/usr/bin/env python3
"""Policy churn against a fedgate store: one committed admin change every --interval-ms, until
SIGTERM/SIGINT or --duration, for running beside fedgate-bench (docs/bench.md, "Policy churn").

Every change keeps the bench partners allowed (TLS and SASL Required, dialback off, Federated):
it toggles one bench partner's keepalive, switches its connection limit between two values,
swaps its additional domains, creates and removes an unrelated partner, toggles an unrelated
partner's TLS rule, and changes a gateway setting the workers read live (KeepAliveInterval and
ConnectionLimit, taken by every new stream). The partners are edited round robin.

--via serve (default) makes the changes through one long-lived `fedgate-admin serve` process and
its JSON API over one keep-alive HTTP connection (a throw-away admin account, removed at the end),
so the cadence is not bounded by process start-up; --via cli runs one `fedgate-admin` per change,
back to back, sleeping whatever is left of the interval.

On exit it prints `policy changes: N in S s, X/s (...)` and, with --json FILE, writes the counts
and the final state it committed (what `fedgate-admin partner get` must show) to FILE.
Exit status: 0, 1 when a change failed, 2 for a usage error or a failed set-up.
"""

import argparse
import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time

TLS_PARTNER = "churn-tls.example"  # unrelated partner whose TLS rule is toggled
TMP_PARTNER = "churn-tmp.example"  # unrelated partner created and removed
KINDS = ("keepalive", "limit", "domains", "add", "tls", "gateway", "remove")


class ChangeFailed(Exception):
    pass


class Cli:
    """One fedgate-admin process per change."""

    def __init__(self, admin, store):
        self.admin, self.store = admin, store

    def run(self, *args, check=True):
        r = subprocess.run([self.admin, "--store", self.store] + list(args), capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=30)
        if check and r.returncode != 0:
            raise ChangeFailed(f"fedgate-admin {' '.join(args)}: exit {r.returncode}: "
                               f"{r.stderr.strip()[:300]}")
        return r

    def partner_set(self, domain, fields):
        args = ["partner", "set", domain]
        for k, v in fields.items():
            if k == "additional_domains":
                args += ["--additional-domains", ",".join(v)] if v else ["--clear-domains"]
            elif k == "connection_limit":
                args += ["--connection-limit", "unset" if v is None else str(v)]
            else:
                args += ["--" + k.replace("_", "-"), str(v).lower()]
        self.run(*args)

    def partner_new(self, domain, fields):
        args = ["partner", "new", domain]
        for k, v in fields.items():
            args += ["--" + k.replace("_", "-"), str(v).lower()]
        self.run(*args)

    def partner_remove(self, domain):
        self.run("partner", "remove", domain)

    def gateway_set(self, fields):
        args = ["gateway", "set"]
        for k, v in fields.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        self.run(*args)

    def close(self):
        pass


class Api:
    """`fedgate-admin serve` and its JSON API (docs/control-panel.md) over one HTTP connection."""

    def __init__(self, admin, store, cli):
        self.cli = cli
        self.user = f"churn{os.getpid()}"
        password = secrets.token_urlsafe(24)
        r = subprocess.run([admin, "--store", store, "user", "add", self.user, "--role", "admin",
                            "--password-file", "-"], input=password + "\n", capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise ChangeFailed(f"user add: {r.stderr.strip()}")
        self.proc = subprocess.Popen([admin, "--store", store, "serve", "--listen", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            self.close()
            raise ChangeFailed(f"fedgate-admin serve did not start: {line.strip()!r}")
        self.port = int(m.group(1))
        self.conn = None
        self.headers = {}
        st, body, hdr = self._request("POST", "/api/login", {"name": self.user, "password": password})
        if st != 200:
            self.close()
            raise ChangeFailed(f"sign-in: {st} {body[:200]!r}")
        self.headers = {"Cookie": hdr.split(";")[0], "X-CSRF-Token": json.loads(body)["csrf"]}

    def _request(self, method, path, body=None):
        h = dict(self.headers)
        data = None
        if body is not None:
            h["Content-Type"] = "application/json"
            data = json.dumps(body)
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.conn.request(method, path, data, h)
                r = self.conn.getresponse()
                return r.status, r.read(), r.getheader("Set-Cookie") or ""
            except (ConnectionError, http.client.HTTPException):
                # The server closed an idle keep-alive connection: once more on a new one. A
                # request that was sent and then lost is not retried (it may have committed).
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _ok(self, method, path, body=None, want=(200,)):
        st, data, _ = self._request(method, path, body)
        if st not in want:
            raise ChangeFailed(f"{method} {path}: {st} {data[:300]!r}")

    def partner_set(self, domain, fields):
        self._ok("PATCH", f"/api/partners/{domain}", fields)

    def partner_new(self, domain, fields):
        self._ok("POST", "/api/partners", dict(fields, domain=domain), want=(201,))

    def partner_remove(self, domain):
        self._ok("DELETE", f"/api/partners/{domain}")

    def gateway_set(self, fields):
        self._ok("PATCH", "/api/gateway", fields)

    def close(self):
        if self.conn is not None:
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.cli.run("user", "remove", self.user, check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--admin", required=True, help="the fedgate-admin binary")
    ap.add_argument("--store", required=True)
    ap.add_argument("--partners", required=True,
                    help="bench partners, comma-separated; they must exist and stay allowed")
    ap.add_argument("--interval-ms", type=float, default=10)
    ap.add_argument("--duration", type=float, default=0, help="seconds (0: until SIGTERM)")
    ap.add_argument("--limits", default="19000,18000",
                    help="two per-partner connection limits, both >= what the bench needs")
    ap.add_argument("--gateway-limits", default="19000,18500",
                    help="two gateway ConnectionLimits, both >= what the bench needs")
    ap.add_argument("--via", choices=("serve", "cli"), default="serve")
    ap.add_argument("--json", help="write counts and the final committed state here")
    a = ap.parse_args()
    partners = [p for p in a.partners.split(",") if p]
    limits = [int(x) for x in a.limits.split(",")][:2]
    glimits = [int(x) for x in a.gateway_limits.split(",")][:2]
    if not partners or len(limits) != 2 or len(glimits) != 2 or a.interval_ms <= 0:
        ap.error("need partners, two --limits, two --gateway-limits and a positive interval")

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    cli = Cli(a.admin, a.store)
    # Fixtures: the unrelated partners start from a known state.
    cli.run("partner", "remove", TMP_PARTNER, check=False)
    cli.run("partner", "remove", TLS_PARTNER, check=False)
    cli.partner_new(TLS_PARTNER, {"tls": "required", "sasl": "not-supported", "dialback": "true",
                                  "type": "federated"})
    try:
        ops = Api(a.admin, a.store, cli) if a.via == "serve" else cli
    except (ChangeFailed, OSError, subprocess.SubprocessError) as e:
        print(f"fedgate_churn: set-up failed: {e}", file=sys.stderr)
        return 2

    # What the store must hold at the end: the last value committed for every field touched,
    # starting from what it holds now.
    state = {}
    for p in partners:
        rec = json.loads(cli.run("partner", "get", p, "--json").stdout)["partners"][0]
        state[p] = {k: rec[k] for k in ("keepalive", "connection_limit", "additional_domains")}
    cur = json.loads(cli.run("gateway", "get", "--json").stdout)["settings"]
    gw = {"keepalive_interval": cur["keepalive_interval"], "connection_limit": cur["connection_limit"]}
    ka = (gw["keepalive_interval"], gw["keepalive_interval"] + 1)
    tls_required, tmp_exists = True, False
    committed, failed, by_kind = 0, 0, {k: 0 for k in KINDS}
    lat = []
    errors = []
    interval = a.interval_ms / 1000.0
    t0 = time.monotonic()
    due = t0
    step = 0
    skipped = 0
    print(f"fedgate_churn: changing the policy every {a.interval_ms:g} ms via {a.via}", flush=True)
    try:
        while not stop and (a.duration <= 0 or time.monotonic() - t0 < a.duration):
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
                continue
            if now - due > interval:
                # Late (a loaded machine): carry on from now instead of firing a burst.
                skipped += int((now - due) / interval)
                due = now
            due += interval
            kind = KINDS[step % len(KINDS)]
            p = partners[(step // len(KINDS)) % len(partners)]
            flip = (step // (len(KINDS) * len(partners))) % 2 == 0
            c0 = time.monotonic()
            try:
                if kind == "keepalive":
                    v = not state[p]["keepalive"]
                    ops.partner_set(p, {"keepalive": v})
                    state[p]["keepalive"] = v
                elif kind == "limit":
                    v = limits[0] if state[p]["connection_limit"] != limits[0] else limits[1]
                    ops.partner_set(p, {"connection_limit": v})
                    state[p]["connection_limit"] = v
                elif kind == "domains":
                    v = [] if state[p]["additional_domains"] else [f"churn{int(flip)}.{p}"]
                    ops.partner_set(p, {"additional_domains": v})
                    state[p]["additional_domains"] = v
                elif kind == "add":
                    ops.partner_new(TMP_PARTNER, {"type": "federated", "dialback": False})
                    tmp_exists = True
                elif kind == "tls":
                    v = not tls_required
                    ops.partner_set(TLS_PARTNER, {"tls": "Required" if v else "Optional"})
                    tls_required = v
                elif kind == "gateway":
                    if flip:
                        v = ka[1] if gw["keepalive_interval"] == ka[0] else ka[0]
                        ops.gateway_set({"keepalive_interval": v})
                        gw["keepalive_interval"] = v
                    else:
                        v = glimits[1] if gw["connection_limit"] == glimits[0] else glimits[0]
                        ops.gateway_set({"connection_limit": v})
                        gw["connection_limit"] = v
                elif kind == "remove":
                    ops.partner_remove(TMP_PARTNER)
                    tmp_exists = False
                committed += 1
                by_kind[kind] += 1
                lat.append(time.monotonic() - c0)
            except (ChangeFailed, OSError, http.client.HTTPException,
                    subprocess.SubprocessError) as e:
                failed += 1
                if len(errors) < 5:
                    errors.append(str(e))
                    print(f"fedgate_churn: {e}", file=sys.stderr)
                if kind in ("add", "remove"):
                    tmp_exists = None  # unknown now
            step += 1
    finally:
        secs = time.monotonic() - t0
        ops.close()
    lat.sort()
    rate = committed / secs if secs > 0 else 0.0

    def pct(q):
        return 1000 * lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0.0

    print(f"policy changes: {committed} in {secs:.1f} s, {rate:.0f}/s (one every {a.interval_ms:g} ms "
          f"asked = {1000 / a.interval_ms:.0f}/s; via {a.via}; {failed} failed; {skipped} slots "
          f"skipped while late; commit latency p50 {pct(0.5):.1f} ms p99 {pct(0.99):.1f} ms "
          f"max {pct(1.0):.1f} ms)", flush=True)
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump({"committed": committed, "failed": failed, "secs": secs, "rate": rate,
                       "skipped": skipped, "by_kind": by_kind, "errors": errors,
                       "partners": state, "tls_partner": TLS_PARTNER,
                       "tls_required": tls_required, "tmp_partner": TMP_PARTNER,
                       "tmp_exists": tmp_exists, "gateway": gw}, f)
        os.replace(a.json + ".tmp", a.json)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
