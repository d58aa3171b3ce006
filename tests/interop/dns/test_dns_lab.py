#!/usr/bin/python3
"""io/dns against the interop lab's dnsmasq: the same resolver code the gateway runs, the same DNS
server the interop peers use. Checks SRV merging of _xmpps-server and _xmpp-server by priority, every
address of each target, the A/AAAA fallback on 5269 only without SRV, '.' targets, and that a
ProxyFqdn override sends no SRV query at all (from dnsmasq's query log).

Exit 77 (skip) when the lab's packages are missing or resolve_probe was not built."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import lab as labmod  # noqa: E402


def probe_path():
    b = os.environ.get("FEDGATE_BINARY_DIR", "build")
    return os.path.join(b, "tests", "interop", "dns", "resolve_probe")


def resolve(port, *domains, proxy=None, seed=1):
    argv = [probe_path(), "--resolver", f"127.0.0.1:{port}", "--seed", str(seed)]
    if proxy:
        argv += ["--proxy", proxy]
    out = subprocess.run(argv + list(domains), capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise AssertionError(f"resolve_probe failed: {out.stderr}")
    rows = {}
    for line in out.stdout.splitlines():
        dom, plan, status, name, addr, mode = line.split()
        rows.setdefault(dom, []).append((plan, int(status), name, addr, mode))
    return rows


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def main():
    if not os.access(probe_path(), os.X_OK):
        print("SKIP: resolve_probe not built")
        return 77
    try:
        lab = labmod.Lab()
    except labmod.LabSkip as e:
        print("SKIP:", e)
        return 77
    with lab:
        dns = lab.dns
        # merged.test: xmpps at priority 5, xmpp at 10 and 20; target b has an A and an AAAA record.
        dns.add_srv("merged.test", 5223, target="a.merged.test", service="_xmpps-server._tcp", priority=5)
        dns.add_srv("merged.test", 5269, target="b.merged.test", priority=10)
        dns.add_srv("merged.test", 5270, target="c.merged.test", priority=20, replace=False)
        dns.add_host("a.merged.test", "127.0.0.51")
        dns.add_host("b.merged.test", "127.0.0.52")
        dns.add_host("c.merged.test", "127.0.0.53")
        # plain.test: no SRV at all, an A record.
        dns.add_host("plain.test", "127.0.0.54")
        # dot.test: '.' for xmpp-server, and an A record that must not be used.
        dns.add_srv("dot.test", 0, target=".")
        dns.add_host("dot.test", "127.0.0.55")
        # nothing.test: the lab is authoritative for it but has no record (NXDOMAIN); other.test is
        # outside the lab's zones, so dnsmasq refuses it (a resolver failure, not an empty answer).
        dns.zones.add("nothing.test")
        # proxy target
        dns.add_host("proxy.merged.test", "127.0.0.56")
        dns.start()

        rows = resolve(dns.port, "merged.test", "plain.test", "dot.test", "nothing.test", "other.test")
        got = [(r[2], r[3], r[4]) for r in rows["merged.test"]]
        check(got == [("a.merged.test", "127.0.0.51:5223", "tls"),
                      ("b.merged.test", "127.0.0.52:5269", "starttls"),
                      ("c.merged.test", "127.0.0.53:5270", "starttls")],
              f"merged by priority across both services: {got}")
        check(rows["plain.test"] == [("fallback", 0, "plain.test", "127.0.0.54:5269", "starttls")],
              f"A fallback on 5269 without SRV: {rows['plain.test']}")
        check(rows["dot.test"][0][0] == "no-service" and rows["dot.test"][0][3] == "-",
              f"'.' target: no service, no fallback: {rows['dot.test']}")
        check(rows["nothing.test"][0][0] == "fallback" and rows["nothing.test"][0][3] == "-",
              f"NXDOMAIN everywhere: fallback finds no address: {rows['nothing.test']}")
        check(rows["other.test"][0][0] == "error" and rows["other.test"][0][3] == "-",
              f"refused lookups: an error, never a fallback: {rows['other.test']}")

        before = len(dns.queries())
        rows = resolve(dns.port, "merged.test", proxy="proxy.merged.test:5299")
        check(rows["merged.test"] == [("targets", 0, "proxy.merged.test", "127.0.0.56:5299", "starttls")],
              f"ProxyFqdn replaces SRV: {rows['merged.test']}")
        asked = dns.queries()[before:]
        check(asked and not any(t == "SRV" for t, _ in asked), f"no SRV query with ProxyFqdn: {asked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
