#!/usr/bin/python3
"""Keepalives (EnableKeepAlive, KeepAliveInterval 10 s) on a real TLS + SASL EXTERNAL stream from
partner a.example (a hand-made client, so every byte is visible):

  * the gateway sends a whitespace keepalive (a single space) on the idle authenticated stream
    within the interval;
  * with EnableKeepAlive false for the partner, an idle stream carries nothing.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import os
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab  # noqa: E402
import gwlab  # noqa: E402
from gwlab import step  # noqa: E402


def idle_bytes(t, seconds):
    """Everything the gateway sends on t during `seconds`."""
    end = time.monotonic() + seconds
    got = b""
    while time.monotonic() < end:
        t.settimeout(max(0.05, end - time.monotonic()))
        try:
            chunk = t.recv(4096)
        except (TimeoutError, ssl.SSLError, OSError):
            continue
        if not chunk:
            break
        got += chunk
    return got


def main(fg, admin):
    with Lab(loglevel="info") as lab:
        gw = lab.gateway("gw.example")
        lab.start()
        store = gwlab.GatewayStore(lab, gw, admin)
        store.cli("gateway", "set", "--keepalive-interval", "10", "--stream-inactivity-timeout", "60")
        store.partner("a.example", keepalive="true")
        proc = gwlab.start_gateway(lab, fg, store)
        cert = lab.pki.cert("a.example")
        ctx = ssl.create_default_context(cafile=lab.pki.ca)
        ctx.load_cert_chain(cert.crt, cert.key)

        t = gwlab.sasl_stream(gw.s2s_port, ctx)
        got = idle_bytes(t, 12.5)
        assert got == b" ", f"expected one whitespace keepalive, got {got!r}"
        step("whitespace keepalive within KeepAliveInterval")
        t.close()

        store.cli("partner", "set", "a.example", "--keepalive", "false")
        time.sleep(0.3)  # every worker has seen the change
        t = gwlab.sasl_stream(gw.s2s_port, ctx)
        got = idle_bytes(t, 11.5)
        assert got == b"", f"expected silence, got {got!r}"
        step("EnableKeepAlive false: no keepalive")
        t.close()
        assert lab.stop_process(proc) == 0
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
