#!/usr/bin/python3
"""Gateway memory per open idle stream: N s2s streams from partner a.example (STARTTLS with the
test CA's certificate for a.example, then SASL EXTERNAL), held open while the gateway's resident
memory is read from /proc. Prints KiB per stream against a baseline of the same number of plain
TCP connections that only sent a stream header; asserts every stream authenticated and stays under
a generous bound.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab  # noqa: E402
import gwlab  # noqa: E402

N = int(os.environ.get("FEDGATE_MEM_STREAMS", "300"))
HEADER = gwlab.S2S_HEADER
read_until = gwlab.read_until


def sasl_stream(port, ctx):
    return gwlab.sasl_stream(port, ctx)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def main(fg, admin):
    with Lab(loglevel="info") as lab:
        gw = lab.gateway("gw.example")
        lab.start()
        store = gwlab.GatewayStore(lab, gw, admin)
        store.cli("gateway", "set", "--connection-limit", str(4 * N))
        store.partner("a.example", connection_limit=4 * N)
        cert = lab.pki.cert("a.example")
        ctx = ssl.create_default_context(cafile=lab.pki.ca)
        ctx.load_cert_chain(cert.crt, cert.key)

        def start():
            p = lab.process("fedgate", [fg, "--store", store.dir, "--workers", "2",
                                        "--log-level", "warn", "--listen-s2s-tls", ""],
                            ready_ports=[gw.s2s_port, gw.component_port])
            time.sleep(0.3)
            return p

        def plain_stream():
            s = socket.create_connection(("127.0.0.1", gw.s2s_port))
            s.sendall(HEADER)
            read_until(s, b"</stream:features>")
            return s

        # Each kind on a fresh gateway, so neither reuses memory the other freed.
        results = {}
        for kind, opener in (("plain", plain_stream),
                             ("tls", lambda: sasl_stream(gw.s2s_port, ctx))):
            proc = start()
            r0 = rss_kib(proc.pid)
            t0 = time.monotonic()
            conns = [opener() for _ in range(N)]
            took = time.monotonic() - t0
            time.sleep(1.5)  # one trim pass
            r1 = rss_kib(proc.pid)
            if kind == "tls":
                m = gwlab.metrics(gw)
                line = ('fedgate_streams_open{dir="in",partner="a.example",auth="sasl",'
                        f'tls="TLSv1.3"}} {N}')
                assert line in m, [x for x in m.splitlines() if "streams_open" in x]
            results[kind] = ((r1 - r0) / N, took)
            for c in conns:
                c.close()
            assert lab.stop_process(proc) == 0
        per_plain, _ = results["plain"]
        per_tls, took = results["tls"]
        print(f"{N} idle TLS 1.3 + SASL EXTERNAL streams: {per_tls:.1f} KiB each, established in "
              f"{took:.2f} s ({N / took:.0f}/s, one Python client); baseline in the same run: "
              f"header-only plain streams {per_plain:.1f} KiB each; ratio {per_tls / per_plain:.1f}x",
              flush=True)
        assert per_tls < 256, per_tls
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
