#!/usr/bin/python3
"""An XEP-0114 component over the gateway's component TLS listener (listen_component_tls): TLS from
the first byte, the certificate chosen by SNI, the component proving itself with the handshake
secret only. A gateway with 2 workers hosts gw.example and gw2.example (each with its own
certificate and a component route) with both component listeners; a real Prosody partner
a.example has a user alice.

Checks, in order, and how each one fails:
  1. the store setting opens the listener: the gateway is started without the command-line flag,
     so the TLS port must come from `gateway set --listen-component-tls` (never listening fails);
  2. a plain component on the plain listener authenticates with tls="none" in
     fedgate_streams_authenticated_total (the control for check 3), then leaves;
  3. a slixmpp component connects with use_ssl=True to the TLS port, SNI gw.example, verifying the
     gateway's certificate against the test CA with host name checking, and authenticates; the
     metric for dir="component",partner="gw.example" gains a sample with tls="TLSv1.3" (or 1.2),
     the log says 'conn <id> component: TLSv1.x up', and the client's own TLS object agrees on the
     version. A listener speaking plain XML, a wrong certificate or a stream not counted as TLS
     fails here. A component for a second hosted domain, gw2.example (its own certificate),
     connecting with SNI gw2.example must get gw2.example's certificate: a gateway that ignored
     the SNI would serve its default one and fail the client's host name check;
  4. alice -> bob@gw.example reaches the TLS component, its reply reaches alice, and a presence
     subscription round trip both ways works (gwlab.round_trip): a component stream that is not
     routed, or not written back through TLS, times out here;
  5. a raw socket sending a component stream header in clear to the TLS port: the gateway must
     close it within 5 s and never answer XML in clear (only nothing, or a TLS alert record, may
     come back); the TLS component still gets the next message. A gateway that falls back to plain
     XML answers a stream header (fails), one that waits forever for a ClientHello times out;
  6. a TLS client naming a domain the gateway does not host in its SNI: either the handshake fails
     cleanly (connection closed, nothing in clear) or the gateway serves its default certificate
     (a hosted domain's, chained to the test CA) and a component stream for gw.example then
     authenticates over it; anything else (a hang, a certificate for another name, a stream that
     neither works nor closes, an answer that is not TLS) fails. A strict client (host name
     checking) must refuse that certificate. Then the gateway is still up and a message round trip
     with the TLS component works again;
  7. fedgate exits 0 on SIGTERM.

Exit 0 on success, 1 on failure, 77 when a package or a binary is missing.
"""

import hashlib
import os
import re
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import Lab, port_listening, wait_until  # noqa: E402
import gwlab  # noqa: E402
from gwlab import step  # noqa: E402

WORKERS = 2
AUTH = "fedgate_streams_authenticated_total"
TLS_VERSIONS = ("TLSv1.3", "TLSv1.2")
UNHOSTED = "unhosted.example"
GW2 = "gw2.example"  # a second hosted domain with its own certificate, for the SNI choice


def component_header(to):
    return ("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{to}'>").encode()


def samples(gw, name):
    """[(labels dict, value)] of metric `name`."""
    out = []
    for line in gwlab.metrics(gw).splitlines():
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)", line)
        if line.startswith("#") or not m or m.group(1) != name:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out.append((labels, float(m.group(3))))
    return out


def component_auths(gw, domain=None):
    """{tls label: count} of authenticated component streams of domain (gw.domain)."""
    got = {}
    for labels, v in samples(gw, AUTH):
        if labels.get("dir") == "component" and labels.get("partner") == (domain or gw.domain):
            got[labels.get("tls")] = got.get(labels.get("tls"), 0) + int(v)
    return got


def wait_for(fn, what, timeout=8):
    end = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"{what}: never happened")
        time.sleep(0.05)


def tls_component(lab, gw, port, domain=None):
    """A slixmpp component for domain (gw.domain) over TLS from the first byte to
    127.0.0.1:port, with SNI domain and the gateway's certificate checked against the test CA,
    host name included."""
    import slixmpp
    from labxmpp import Session

    domain = domain or gw.domain
    c = slixmpp.ComponentXMPP(domain, gwlab.COMPONENT_SECRET, "127.0.0.1", port)
    c.ca_certs = gw.ca
    # slixmpp sends default_domain as SNI and checks the certificate against it; it also looks
    # that name up in DNS, which the lab does not serve to slixmpp: answer with the address.
    c.default_domain = domain

    async def records(name, port=None):
        return [(domain, "127.0.0.1", int(port or c.address[1]))]

    c.get_dns_records = records
    sess = Session(lab.xmpp, c, "component")
    return lab.xmpp._connect(sess, lambda: c.connect("127.0.0.1", port, use_ssl=True), 10)


def read_closed(sock, timeout):
    """Everything the peer sends until it closes; raises when it is still open after timeout."""
    sock.settimeout(0.5)
    data, end = b"", time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        except (ConnectionResetError, ssl.SSLError, OSError):
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"still open after {timeout} s; received {data[:200]!r}")


def assert_not_clear_xml(data, what):
    """Nothing, or TLS records (an alert, 0x15), but never XML in clear."""
    assert not data or data[0] == 0x15, f"{what}: the gateway answered in clear: {data[:200]!r}"
    assert b"<" not in data and b"stream" not in data, f"{what}: XML in clear: {data[:200]!r}"


def plaintext_to_tls_port(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(component_header("gw.example"))
        t = time.monotonic()
        data = read_closed(s, 5)
        assert_not_clear_xml(data, "plain stream header on the TLS port")
        return time.monotonic() - t, data
    finally:
        s.close()


def read_until(sock, needle, timeout=5):
    sock.settimeout(timeout)
    data = b""
    while needle not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"closed while waiting for {needle!r}: {data[-300:]!r}")
        data += chunk
        assert len(data) < 65536
    return data


def san_names(cert):
    return sorted(v for k, v in cert.get("subjectAltName", ()) if k == "DNS")


def unhosted_sni(gw, port, hosted):
    """A TLS connection whose SNI names a domain the gateway does not host. Returns a description
    of what happened; raises when it is neither a clean failure nor a working stream."""
    # A strict client: the handshake may fail on either side, but must never succeed, since no
    # certificate of the gateway names UNHOSTED.
    strict = ssl.create_default_context(cafile=gw.ca)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        strict.wrap_socket(s, server_hostname=UNHOSTED).close()
        raise AssertionError(f"a certificate valid for {UNHOSTED} was served")
    except ssl.SSLCertVerificationError:
        strict_outcome = "certificate refused by a strict client"
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
        strict_outcome = f"handshake failed ({e.__class__.__name__})"
    finally:
        s.close()

    # A lenient client (chain checked, name not): what does the gateway serve?
    ctx = ssl.create_default_context(cafile=gw.ca)
    ctx.check_hostname = False
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw = s.dup()  # the same connection, still readable after a failed handshake closes s
    try:
        try:
            t = ctx.wrap_socket(s, server_hostname=UNHOSTED)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
            assert getattr(e, "reason", "") != "WRONG_VERSION_NUMBER", \
                f"SNI {UNHOSTED}: the gateway answered something else than TLS: {e}"
            data = read_closed(raw, 5)
            assert_not_clear_xml(data, "after a failed handshake")
            return f"handshake failed cleanly ({e.__class__.__name__}: {e}); strict client: {strict_outcome}"
        names = san_names(t.getpeercert())
        version = t.version()
        assert len(names) == 1 and names[0] in hosted, \
            f"SNI {UNHOSTED}: certificate for {names}, not a hosted domain's (the default)"
        t.sendall(component_header(gw.domain))
        head = read_until(t, b">", 5)
        while b"<stream:stream" not in head or not head.rstrip().endswith(b">"):
            head += read_until(t, b">", 5)
        m = re.search(rb"\sid=['\"]([^'\"]+)['\"]", head)
        assert m, f"SNI {UNHOSTED}: no stream id in {head[:300]!r}"
        digest = hashlib.sha1(m.group(1) + gwlab.COMPONENT_SECRET.encode()).hexdigest()
        t.sendall(f"<handshake>{digest}</handshake>".encode())
        reply = read_until(t, b"handshake", 5)
        assert b"<handshake/>" in reply or b"<handshake></handshake>" in reply, \
            f"SNI {UNHOSTED}: handshake answered {reply[:300]!r}"
        t.sendall(b"</stream:stream>")
        try:
            read_closed(t, 5)
        except AssertionError:
            pass  # the close is the gateway's business; the stream worked
        t.close()
        return (f"default certificate ({', '.join(names)}) served over {version}, a component "
                f"stream for {gw.domain} authenticated over it; strict client: {strict_outcome}")
    finally:
        s.close()
        raw.close()


def main(fg, admin):
    with Lab() as lab:
        a = lab.prosody("a.example", auth="sasl")
        gw = lab.gateway("gw.example")
        a.add_user("alice")
        lab.start()
        tls_port = lab.ports.get("gw.example/component-tls")
        store = gwlab.GatewayStore(lab, gw, admin)
        store.partner("a.example")
        cert2 = lab.pki.cert(GW2)
        store.cli("domain", "new", GW2, "--cert", cert2.crt, "--key", cert2.key, "--route",
                  "component", "--secret-file", os.path.join(lab.root, "component.secret"))
        store.cli("gateway", "set", "--listen-component-tls", f"127.0.0.1:{tls_port}")
        proc = gwlab.start_gateway(lab, fg, store, workers=WORKERS)
        wait_until(lambda: port_listening(tls_port), 10, "component TLS listener", alive=proc.alive)
        step(f"lab up, fedgate with {WORKERS} workers, component TLS listener on {tls_port} "
             "from the store")

        plain = lab.component(gw.domain, gwlab.COMPONENT_SECRET, gw.component_port)
        got = wait_for(lambda: component_auths(gw).get("none"), "plain component counted")
        assert got == 1 and set(component_auths(gw)) == {"none"}, component_auths(gw)
        plain.disconnect()
        step("plain component listener: authenticated with tls=\"none\"")

        comp = tls_component(lab, gw, tls_port)
        auths = wait_for(lambda: {k: v for k, v in component_auths(gw).items() if k != "none"},
                         "TLS component counted")
        assert len(auths) == 1 and list(auths)[0] in TLS_VERSIONS and list(auths.values())[0] == 1, \
            f"component streams by tls label: {component_auths(gw)}"
        version = list(auths)[0]
        client_version = comp.xmpp.transport.get_extra_info("ssl_object").version()
        assert client_version == version, f"client negotiated {client_version}, metric {version}"
        gwlab.wait_log(proc, f"component: {version} up")
        assert re.search(rf"conn [0-9a-f]+ component: {re.escape(version)} up", gwlab.log_text(proc))
        step(f"TLS component authenticated: tls=\"{version}\" in {AUTH}, log and client agree")

        comp2 = tls_component(lab, gw, tls_port, GW2)
        auths2 = wait_for(lambda: component_auths(gw, GW2), f"{GW2} component counted")
        assert list(auths2) == [version], f"{GW2} component streams by tls label: {auths2}"
        comp2.disconnect()
        step(f"a component for {GW2} (SNI {GW2}) got {GW2}'s certificate and authenticated")

        alice = a.client("alice")
        gwlab.round_trip(alice, comp, "tls")
        step("message both ways and presence subscription both ways through the TLS component")

        took, data = plaintext_to_tls_port(tls_port)
        step(f"plain stream header on the TLS port: closed after {took:.2f} s, "
             f"{'nothing' if not data else f'{len(data)} bytes of TLS alert'} sent back")
        alice.send_message("bob@gw.example", "after plain")
        comp.wait_message(frm=alice.jid, body="after plain")
        step("the TLS component still gets the next message")

        outcome = unhosted_sni(gw, tls_port, (gw.domain, GW2))
        step(f"SNI {UNHOSTED}: {outcome}")
        assert proc.alive(), "fedgate died"
        gwlab.round_trip(alice, comp, "after-sni")
        step("gateway still serving: round trip with the TLS component")

        comp.disconnect()
        assert lab.stop_process(proc) == 0, "fedgate did not exit cleanly on SIGTERM"
        step("fedgate exited 0 on SIGTERM")
    return 0


if __name__ == "__main__":
    sys.exit(gwlab.run_main(main))
