"""slixmpp endpoints for interop tests, driven synchronously.

Xmpp owns one asyncio event loop; every helper runs that loop until its condition holds or its
timeout expires, so tests read as plain sequential code and never hang. Each Session (a user
connected over c2s, or an XEP-0114 component) keeps every message, presence and iq it receives in
an inbox; wait_*() calls consume the first matching stanza.

Ownership: Xmpp owns its sessions and the loop; Xmpp.close() disconnects them all (Lab.stop()
calls it). Stanzas returned by wait_*() are slixmpp objects owned by the caller.
"""

import asyncio
import logging
import time

import slixmpp
from slixmpp.jid import JID
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

logging.getLogger("slixmpp").setLevel(logging.CRITICAL)

DEFAULT_TIMEOUT = 10.0


class XmppTimeout(AssertionError):
    """A wait_*() helper did not see what it waited for."""


def _bare(j):
    return JID(str(j)).bare


class Session:
    """One connected endpoint (client or component) with an inbox of received stanzas."""

    def __init__(self, owner, xmpp, kind):
        self.owner = owner
        self.xmpp = xmpp
        self.kind = kind
        self.jid = xmpp.boundjid.bare if kind == "user" else str(xmpp.boundjid)
        self.inbox = []
        self._changed = asyncio.Event()
        self.ready = asyncio.Event()
        self.failed = None
        self.closed = asyncio.Event()
        for name, path in (("msg", "message"), ("pres", "presence"), ("iq", "iq")):
            xmpp.register_handler(Callback(f"lab-{name}", StanzaPath(path), self._got))
        xmpp.add_event_handler("session_start", self._on_start)
        xmpp.add_event_handler("failed_all_auth", lambda *_: self._fail("authentication failed"))
        xmpp.add_event_handler("connection_failed", lambda e: self._fail(f"connection failed: {e}"))
        xmpp.add_event_handler("disconnected", lambda *_: self.closed.set())

    def _fail(self, why):
        self.failed = why
        self.ready.set()

    async def _on_start(self, _):
        if self.kind == "user":
            # Servers push subscription presences only to resources that fetched the roster.
            try:
                await self.xmpp.get_roster(timeout=DEFAULT_TIMEOUT)
            except Exception as e:
                self._fail(f"roster: {e}")
                return
            self.xmpp.send_presence()
        self.ready.set()

    def _got(self, stanza):
        if stanza.name == "iq" and stanza["type"] == "result":
            return  # answers to our own requests (bind, roster) are not test input
        self.inbox.append(stanza)
        self._changed.set()

    # --- sending
    def send_message(self, to, body, mtype="chat", mfrom=None):
        """Send a message; a component must give mfrom (e.g. 'alice@gw.example')."""
        self.xmpp.send_message(mto=to, mbody=body, mtype=mtype, mfrom=mfrom)
        self.owner.pump()

    def send_presence(self, to=None, ptype=None, mfrom=None, status=None):
        self.xmpp.send_presence(pto=to, ptype=ptype, pfrom=mfrom, pstatus=status)
        self.owner.pump()

    def subscribe(self, to, mfrom=None):
        """Ask for to's presence (type='subscribe')."""
        self.send_presence(to=_bare(to), ptype="subscribe", mfrom=mfrom)

    def approve(self, to, mfrom=None):
        """Grant a subscription request (type='subscribed')."""
        self.send_presence(to=_bare(to), ptype="subscribed", mfrom=mfrom)

    def send_raw(self, xml):
        self.xmpp.send_raw(xml)
        self.owner.pump()

    # --- waiting
    def wait(self, pred, timeout=DEFAULT_TIMEOUT, what="stanza"):
        """Consume and return the first received stanza for which pred(stanza) is true."""
        async def run():
            deadline = time.monotonic() + timeout
            while True:
                for i, st in enumerate(self.inbox):
                    if pred(st):
                        del self.inbox[i]
                        return st
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = "; ".join(str(s)[:200] for s in self.inbox[-5:]) or "nothing"
                    raise XmppTimeout(f"{self.jid}: no {what} within {timeout} s (inbox: {seen})")
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except asyncio.TimeoutError:
                    pass
        return self.owner.run(run())

    def wait_message(self, frm=None, body=None, mtype=None, timeout=DEFAULT_TIMEOUT):
        """A non-error message, optionally from a bare or full JID and with an exact body."""
        def ok(st):
            return (st.name == "message" and st["type"] != "error"
                    and (frm is None or _match_from(st, frm)) and (body is None or st["body"] == body)
                    and (mtype is None or st["type"] == mtype))
        return self.wait(ok, timeout, f"message from {frm or 'anyone'} body={body!r}")

    def wait_error(self, frm=None, condition=None, kind="message", timeout=DEFAULT_TIMEOUT):
        """A bounced stanza (type='error'); returns it. Its condition is st['error']['condition']."""
        def ok(st):
            return (st.name == kind and st["type"] == "error" and (frm is None or _match_from(st, frm))
                    and (condition is None or st["error"]["condition"] == condition))
        return self.wait(ok, timeout, f"{kind} error {condition or ''} from {frm or 'anyone'}")

    def wait_presence(self, frm=None, ptype=None, timeout=DEFAULT_TIMEOUT):
        """A presence of the given type ('subscribe', 'subscribed', 'available', ...)."""
        def ok(st):
            t = st["type"]
            return (st.name == "presence" and (frm is None or _match_from(st, frm))
                    and (ptype is None or t == ptype))
        return self.wait(ok, timeout, f"presence {ptype or ''} from {frm or 'anyone'}")

    def subscribe_and_wait(self, to, timeout=DEFAULT_TIMEOUT, mfrom=None):
        """Send a subscription request and wait for the approval (type='subscribed')."""
        self.subscribe(to, mfrom=mfrom)
        return self.wait_presence(frm=_bare(to), ptype="subscribed", timeout=timeout)

    def message_round_trip(self, peer, timeout=DEFAULT_TIMEOUT):
        """Send self -> peer and peer -> self with unique bodies; returns the round-trip time (s)."""
        t = time.monotonic()
        tag = f"{time.time_ns():x}"
        self.send_message(peer.jid, f"ping {tag}")
        peer.wait_message(frm=self.jid, body=f"ping {tag}", timeout=timeout)
        peer.send_message(self.jid, f"pong {tag}")
        self.wait_message(frm=peer.jid, body=f"pong {tag}", timeout=timeout)
        return time.monotonic() - t

    def disconnect(self):
        if self.xmpp.transport is not None:
            self.xmpp.disconnect(wait=0.5)
            try:
                self.owner.run(asyncio.wait_for(self.closed.wait(), 2))
            except asyncio.TimeoutError:
                self.xmpp.abort()
        # slixmpp keeps its outgoing filter task waiting on a queue after the stream is gone.
        task = getattr(self.xmpp, "_run_out_filters", None)
        if task is not None and not task.done():
            task.cancel()
            self.owner.run(asyncio.gather(task, return_exceptions=True))
        self.owner.sessions = [s for s in self.owner.sessions if s is not self]


def _match_from(st, frm):
    frm = str(frm)
    return str(st["from"]) == frm or (("/" not in frm) and st["from"].bare == frm)


class Xmpp:
    """The event loop and the sessions of one test."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.sessions = []

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def pump(self, seconds=0.0):
        """Let the loop flush writes and handle input for a moment."""
        self.run(asyncio.sleep(seconds))

    def _connect(self, sess, connect, timeout):
        self.sessions.append(sess)
        connect()
        try:
            self.run(asyncio.wait_for(sess.ready.wait(), timeout))
        except asyncio.TimeoutError:
            sess.xmpp.abort()
            raise XmppTimeout(f"{sess.jid}: no session within {timeout} s")
        if sess.failed:
            sess.xmpp.abort()
            raise XmppTimeout(f"{sess.jid}: {sess.failed}")
        return sess

    def user(self, jid, password, host, port, on_subscribe="approve", timeout=DEFAULT_TIMEOUT):
        """Log jid in over plaintext c2s on host:port. on_subscribe: 'approve' (answer subscribed),
        'deny' (answer unsubscribed) or 'ignore' (leave it to the test)."""
        c = slixmpp.ClientXMPP(jid, password)
        c.auto_authorize = {"approve": True, "deny": False, "ignore": None}[on_subscribe]
        c.auto_subscribe = False
        c.reconnect_max_attempts = 0
        sess = Session(self, c, "user")
        return self._connect(sess, lambda: c.connect(address=(host, int(port)), disable_starttls=True), timeout)

    def component(self, jid, secret, host, port, timeout=DEFAULT_TIMEOUT):
        """Connect an XEP-0114 component jid to host:port with the shared secret."""
        c = slixmpp.ComponentXMPP(jid, secret, host, int(port))
        sess = Session(self, c, "component")
        return self._connect(sess, lambda: c.connect(host, int(port)), timeout)

    def disconnect_all(self):
        """Disconnect every session but keep the loop (e.g. before restarting servers)."""
        for s in list(self.sessions):
            try:
                s.disconnect()
            except Exception:
                s.xmpp.abort()
        self.sessions = []

    def close(self):
        self.disconnect_all()
        # slixmpp leaves filter tasks behind on disconnect; cancel them so closing the loop is quiet.
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for t in pending:
            t.cancel()
        try:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            self.loop.close()
