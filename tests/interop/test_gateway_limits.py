#!/usr/bin/python3
"""Limits and timers from the gateway settings, with a real Prosody partner and fedgate:

  * StreamEstablishmentTimeout: a TCP peer that never finishes a stream is disconnected after it (5 s here).
  * A peer that disconnects mid-stanza and one that stops mid-TLS-handshake (closed by the
    establishment timer) leave the gateway
    serving.
  * SIGKILL and a restart: the store is intact and the gateway serves again.
  * A resolver that never answers: the component's stanza is bounced to it.
  * The partner's ConnectionLimit: with a limit of 1 the inbound stream from a.example works and
    the gateway's own outbound stream to it is refused, so the component's reply is bounced with
    <resource-constraint/>; raising the limit with fedgate-admin lets the next reply through.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab  # noqa: E402
import gwlab  # noqa: E402
from gwlab import step  # noqa: E402


def closed_within(sock, seconds):
    """Seconds until the gateway closed the connection, or None if it stayed open."""
    t = time.monotonic()
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return time.monotonic() - t
    except (socket.timeout, TimeoutError):
        return None
    except ConnectionResetError:
        return time.monotonic() - t


def main(fg, admin):
    with Lab() as lab:
        a = lab.prosody("a.example", auth="sasl")
        gw = lab.gateway("gw.example")
        a.add_user("alice")
        lab.start()
        step("lab up")
        store = gwlab.GatewayStore(lab, gw, admin)
        store.cli("gateway", "set", "--stream-establishment-timeout", "5")
        store.partner("a.example", connection_limit=1)
        proc = gwlab.start_gateway(lab, fg, store)
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)

        # A peer that opens TCP and says nothing.
        idle = socket.create_connection(("127.0.0.1", gw.s2s_port))
        took = closed_within(idle, 9)
        assert took is not None and 4.0 <= took <= 7.5, f"idle peer closed after {took}"
        step(f"silent peer disconnected after {took:.1f} s (StreamEstablishmentTimeout 5 s)")

        # A peer that disconnects mid-stanza, and one that stops in the middle of TLS.
        s = socket.create_connection(("127.0.0.1", gw.s2s_port))
        s.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  b"xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
                  b"to='gw.example' from='a.example' version='1.0'><message to='x@gw.exa")
        s.close()
        s = socket.create_connection(("127.0.0.1", gw.s2s_port))
        s.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  b"xmlns:stream='http://etherx.jabber.org/streams' to='gw.example' "
                  b"from='a.example' version='1.0'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        time.sleep(0.2)
        s.sendall(b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03")  # a ClientHello cut short
        # This one stays connected in the middle of the TLS handshake: the establishment timer
        # still runs and closes it.
        took = closed_within(s, 9)
        assert took is not None and took <= 7.5, f"peer stuck in TLS closed after {took}"
        s.close()
        step(f"peer stuck in the TLS handshake disconnected after {took:.1f} s; half-open peers gone")

        alice = a.client("alice")
        alice.send_message("bob@gw.example", "in under the limit")
        comp.wait_message(frm=alice.jid, body="in under the limit")
        comp.send_message(alice.jid, "over the limit", mfrom="bob@gw.example")
        e = comp.wait_error(frm=alice.jid, timeout=10)
        assert "<resource-constraint" in str(e), e
        gwlab.wait_log(proc, "connection limit reached")
        step("outbound stream over the partner's ConnectionLimit refused, reply bounced")

        store.cli("partner", "set", "a.example", "--connection-limit", "5")
        time.sleep(0.1)
        comp.send_message(alice.jid, "after raising", mfrom="bob@gw.example")
        alice.wait_message(frm="bob@gw.example", body="after raising")
        step("limit raised with fedgate-admin: reply delivered")

        # SIGKILL, then a restart on the same store: it serves again at once.
        assert lab.stop_process(proc, sig=signal.SIGKILL) == -signal.SIGKILL
        proc = gwlab.start_gateway(lab, fg, store)
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        alice.send_message("bob@gw.example", "after restart")
        comp.wait_message(frm=alice.jid, body="after restart", timeout=15)
        step("SIGKILL and restart: the store is intact and the gateway serves")
        assert lab.stop_process(proc) == 0, "fedgate did not exit cleanly on SIGTERM"

        # A resolver that never answers: the queued stanza is bounced, the gateway keeps serving.
        silent = lab.silent_dns()
        proc = gwlab.start_gateway(lab, fg, store, extra=["--resolver", f"127.0.0.1:{silent}"])
        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        t = time.monotonic()
        comp.send_message(alice.jid, "into the void", mfrom="bob@gw.example")
        e = comp.wait_error(frm=alice.jid, timeout=20)
        took = time.monotonic() - t
        cond = [c for c in ("remote-server-not-found", "remote-server-timeout") if c in str(e)]
        assert cond, e
        step(f"silent resolver: stanza bounced after {took:.1f} s ({cond[0]})")
        assert lab.stop_process(proc) == 0, "fedgate did not exit cleanly on SIGTERM"
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
