#!/usr/bin/python3
"""Gateway memory per open idle stream: N s2s streams from partner a.example (STARTTLS with the
test CA's certificate for a.example, then SASL EXTERNAL), held open while the gateway's resident
memory is read from /proc. Prints KiB per stream against a baseline of the same number of plain
TCP connections that only sent a stream header; asserts every stream authenticated and stays under
a generous bound.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import base64
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab, LabSkip, SKIP_RC, requirements  # noqa: E402
import gwlab  # noqa: E402

N = int(os.environ.get("FEDGATE_MEM_STREAMS", "300"))
HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
          "xmlns:stream='http://etherx.jabber.org/streams' from='a.example' to='gw.example' "
          "version='1.0'>").encode()


def read_until(sock, needle, limit=65536):
    """Read until needle (or, for the features, their empty form) arrives."""
    needles = (needle, b"<stream:features/>") if needle == b"</stream:features>" else (needle,)
    data = b""
    while not any(n in data for n in needles):
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"closed while waiting for {needle!r}: {data[-300:]!r}")
        data += chunk
        assert len(data) < limit
    return data


def sasl_stream(port, ctx):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(HEADER)
    read_until(s, b"</stream:features>")
    s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    read_until(s, b"<proceed")
    t = ctx.wrap_socket(s, server_hostname="gw.example")
    t.sendall(HEADER)
    read_until(t, b"</stream:features>")
    authzid = base64.b64encode(b"a.example").decode()
    t.sendall(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>{authzid}</auth>".encode())
    read_until(t, b"<success")
    t.sendall(HEADER)
    read_until(t, b"</stream:features>")
    return t


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def main():
    try:
        requirements()
        fg, admin = gwlab.binaries()
    except LabSkip as e:
        print(f"SKIP: {e}")
        return SKIP_RC
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
    sys.exit(main())
