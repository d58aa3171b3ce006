#!/usr/bin/python3
"""Hostile bytes on every listener (s2s, direct TLS, component, metrics): random data, broken XML,
a stream header then junk, a component handshake with a wrong secret, oversized stanzas. The
gateway must stay up (checked under ASan/UBSan in the sanitizer build) and still relay a message
between a Prosody user and the component afterwards.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab  # noqa: E402
import gwlab  # noqa: E402
from gwlab import step  # noqa: E402

S2S = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
       b"xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
       b"to='gw.example' from='a.example' version='1.0'>")
COMP = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
        b"xmlns:stream='http://etherx.jabber.org/streams' to='gw.example'>")


def poke(port, data, wait=0.05):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(data)
        time.sleep(wait)
        s.settimeout(0.2)
        try:
            s.recv(65536)
        except OSError:
            pass
        s.close()
    except OSError:
        pass


def main(fg, admin):
    rnd = random.Random(4)
    with Lab() as lab:
        a = lab.prosody("a.example", auth="sasl")
        gw = lab.gateway("gw.example", direct_tls=True)
        a.add_user("alice")
        lab.start()
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("a.example")
        proc = gwlab.start_gateway(lab, fg, store)
        cases = [
            S2S + b"<message to='x@gw.example' from='y@a.example'><body>&undefined;</body></message>",
            S2S + b"<db:result from='a.example' to='gw.example'>" + b"f" * 5000 + b"</db:result>",
            S2S + b"<db:verify from='a.example' to='gw.example' id='x' type='valid'/>",
            S2S + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>!!</auth>",
            S2S + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" + os.urandom(300),
            S2S + b"<message>" + b"<a>" * 500,
            S2S + b"<message to='x@gw.example'>" + b"x" * 200000 + b"</message>",
            S2S.replace(b"gw.example", b"other.example"),
            S2S + S2S,
            b"<?xml version='1.0' encoding='UTF-16'?><stream:stream>",
            b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]><stream:stream>",
            b"GET / HTTP/1.0\r\n\r\n",
        ]
        for i in range(40):
            cases.append(os.urandom(rnd.randint(1, 3000)))
        # No hosted domain routes to an internal server: a stream to a partner domain is refused.
        s = socket.create_connection(("127.0.0.1", gw.s2s_port), timeout=5)
        s.sendall(S2S.replace(b"to='gw.example'", b"to='a.example'"))
        got = b""
        while b"</stream:stream>" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        s.close()
        assert b"host-unknown" in got, got
        step("a stream addressed to a partner domain is refused with host-unknown")

        for c in cases:
            poke(gw.s2s_port, c)
            poke(gw.direct_tls_port, c)
        step(f"{len(cases)} hostile inputs on the s2s and direct-TLS listeners")
        for c in (COMP + b"<handshake>00</handshake>", COMP + b"<handshake/>" * 10,
                  COMP.replace(b"gw.example", b"a.example") + b"<handshake>x</handshake>",
                  COMP + os.urandom(500), os.urandom(2000)):
            poke(gw.component_port, c)
        for c in (b"GET /metrics" + b"x" * 10000, b"POST / HTTP/1.1\r\n\r\n", os.urandom(100)):
            poke(gw.metrics_port, c)
        step("hostile inputs on the component and metrics listeners")
        assert proc.popen.poll() is None, "fedgate died"

        comp = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        alice = a.client("alice")
        alice.send_message("bob@gw.example", "still here")
        comp.wait_message(frm=alice.jid, body="still here")
        comp.send_message(alice.jid, "and serving", mfrom="bob@gw.example")
        alice.wait_message(frm="bob@gw.example", body="and serving")
        assert "fedgate_io_accepted" in gwlab.metrics(gw)
        step("still relaying both ways")
        assert lab.stop_process(proc) == 0, "fedgate did not exit cleanly"
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
