#!/usr/bin/python3
"""Interop lab: real Prosody and ejabberd instances as s2s federation peers on loopback.

Everything lives in one throw-away directory: a test CA and per-domain certificates, a private
dnsmasq that serves `_xmpp-server._tcp` SRV records (targets `localhost`, one port per server, plus
the ports reserved for the gateway under test), and one directory per server instance. Nothing under
/etc is touched and every process is started in its own session and stopped by PID (plus anything
that shares its session or descends from it). A watchdog process stops the lab if the test process
dies without running its cleanup.

Run with Debian's /usr/bin/python3 (it has slixmpp). Typical use:

    with Lab() as lab:
        a = lab.prosody("a.example", auth="sasl")       # test-CA cert, s2s_secure_auth = true
        ej = lab.ejabberd("ej.example", auth="dialback") # self-signed cert, dialback only
        gw = lab.gateway("gw.example")                   # SRV -> 127.0.0.1:gw.s2s_port
        alice = a.add_user("alice")
        lab.start()
        ...                                              # start fedgate with gw.* and lab.dns.port

Ownership: a Lab owns every process, file and port it creates; Lab.stop() (also run by the context
manager, atexit and the watchdog) releases all of them. Server and Gateway objects are borrowed from
their Lab and are useless after stop().
"""

import atexit
import json
import os
import random
import re
import shutil
import signal
import socket
import string
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "templates")
SKIP_RC = 77

# Ports come from below the kernel's ephemeral range (32768+ on Linux) so an outgoing connection
# cannot take a port between our check and the server's bind.
PORT_LO, PORT_HI = 20000, 32000

# auth presets: which certificate a server presents, whether it insists on authenticated peers
# (SASL EXTERNAL only), and its STARTTLS policy.
AUTH_MODES = {
    "sasl": {"cert": "ca", "secure_auth": True, "tls": "required"},
    "dialback": {"cert": "self", "secure_auth": False, "tls": "required"},
    "plain": {"cert": None, "secure_auth": False, "tls": "none"},
}


class LabError(Exception):
    """The lab could not be brought up or a check on it failed."""


class LabSkip(Exception):
    """A package the lab needs is missing; tests should exit with SKIP_RC."""


def log(msg):
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _which(name):
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )


def requirements(need_ejabberd=True):
    """Raise LabSkip naming every missing package (scripts/setup.sh --interop installs them)."""
    missing = []
    for tool, pkg in (("prosody", "prosody"), ("prosodyctl", "prosody"), ("dnsmasq", "dnsmasq-base"),
                      ("openssl", "openssl")):
        if not _which(tool):
            missing.append(pkg)
    if need_ejabberd and not _which("ejabberdctl"):
        missing.append("ejabberd")
    if not any(os.path.exists(f"/usr/lib/{d}/lua/5.4/lunbound.so") for d in
               ("x86_64-linux-gnu", "aarch64-linux-gnu")) and not os.path.exists("/usr/lib/lua/5.4/lunbound.so"):
        missing.append("lua-unbound")
    import importlib.util
    if importlib.util.find_spec("slixmpp") is None:
        missing.append("python3-slixmpp (and run with /usr/bin/python3)")
    if missing:
        raise LabSkip("missing: " + ", ".join(sorted(set(missing))) + " (install with scripts/setup.sh --interop)")
    if os.geteuid() != 0:
        raise LabSkip("the interop lab runs as root (ejabberdctl switches to user ejabberd)")


# ---------------------------------------------------------------------------------------- ports


def _can_bind(port, kind):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Ports:
    """Hands out distinct free loopback ports (free for TCP and UDP) for one lab run."""

    def __init__(self):
        self.taken = {}

    def get(self, name):
        for _ in range(500):
            p = random.randrange(PORT_LO, PORT_HI)
            if p in self.taken.values():
                continue
            if _can_bind(p, socket.SOCK_STREAM) and _can_bind(p, socket.SOCK_DGRAM) and not port_listening(p):
                self.taken[name] = p
                return p
        raise LabError("no free port found")


def port_listening(port, proto="tcp"):
    """True when some socket listens (TCP) or is bound (UDP) on the port, any address."""
    want = f":{port:04X}"
    for f in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    cols = line.split()
                    if cols[1].endswith(want) and (proto == "udp" or cols[3] == "0A"):
                        return True
        except FileNotFoundError:
            pass
    return False


# ------------------------------------------------------------------------------------ processes


def _stat(pid):
    """(state, ppid, sid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[3])


def pid_alive(pid):
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def process_family(roots):
    """Every live PID that is one of roots, descends from one, or shares a session led by one."""
    roots = set(roots)
    table = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st and st[0] != "Z":
                table[int(d)] = st
    fam = {p for p, (_, _, sid) in table.items() if p in roots or sid in roots}
    grew = True
    while grew:
        grew = False
        for p, (_, ppid, _) in table.items():
            if p not in fam and ppid in fam:
                fam.add(p)
                grew = True
    return fam


def kill_family(roots, grace=0.5):
    """SIGTERM the family, SIGKILL what is left after grace seconds, wait until all are gone.
    Returns the PIDs that were signalled."""
    fam = process_family(roots)
    for p in fam:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in fam):
        time.sleep(0.02)
    left = process_family(roots) | {p for p in fam if pid_alive(p)}
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(pid_alive(p) for p in fam | left):
        time.sleep(0.02)
    return fam | left


class Proc:
    """One started process, leader of its own session."""

    def __init__(self, name, argv, logfile, env=None, cwd=None):
        self.name = name
        self.log = logfile
        with open(logfile, "ab") as out:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env, cwd=cwd, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None


def find_binary(name):
    """An executable built by the project: searched under $FEDGATE_BINARY_DIR (set by CTest for
    interop tests), else under build/ next to the sources. None when it is not built."""
    roots = [os.environ.get("FEDGATE_BINARY_DIR"), os.path.join(HERE, "..", "..", "build")]
    for root in filter(None, roots):
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if x not in ("CMakeFiles", "deps", "Testing")]
            if name in files and os.access(os.path.join(d, name), os.X_OK):
                return os.path.join(d, name)
    return None


def run(argv, timeout=30, check=True, env=None):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({r.returncode}): {r.stdout.strip()} {r.stderr.strip()}")
    return r


def wait_until(pred, timeout, what, interval=0.02, alive=None):
    """Poll pred() until true; fail early when alive() says the process died."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        if alive is not None and not alive():
            raise LabError(f"{what}: process exited")
        if time.monotonic() > deadline:
            raise LabError(f"{what}: not ready after {timeout} s")
        time.sleep(interval)


def _tail(path, n=15):
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-n:])
    except FileNotFoundError:
        return "(no log)"


def _render(template, dest, **fields):
    with open(os.path.join(TEMPLATES, template)) as fh:
        text = string.Template(fh.read()).substitute(**fields)
    with open(dest, "w") as fh:
        fh.write(text)


# ------------------------------------------------------------------------------------------ PKI


class Cert:
    def __init__(self, crt, key, pem):
        self.crt, self.key, self.pem = crt, key, pem

    def as_dict(self):
        return {"crt": self.crt, "key": self.key, "pem": self.pem}


class Pki:
    """A test CA and, per domain, a CA-signed leaf and an untrusted self-signed twin.
    EC P-256, SAN dNSName only (ejabberd 23.01 crashes on an id-on-xmppAddr otherName),
    EKU serverAuth+clientAuth (the initiating server presents its certificate as a client)."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca = os.path.join(directory, "ca.crt")
        self.ca_key = os.path.join(directory, "ca.key")
        self._certs = {}
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", self.ca_key, "-out", self.ca, "-days", "30", "-subj", "/CN=fedgate interop test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def cert(self, domain, trusted=True):
        """Certificate for domain: signed by the test CA (trusted) or self-signed (untrusted)."""
        k = (domain, trusted)
        if k in self._certs:
            return self._certs[k]
        base = os.path.join(self.dir, domain + ("" if trusted else ".self"))
        crt, key, pem = base + ".crt", base + ".key", base + ".pem"
        if trusted:
            ext = base + ".ext"
            with open(ext, "w") as fh:
                fh.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                         f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:{domain}\n")
            run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                 "-out", base + ".csr", "-subj", f"/CN={domain}"])
            run(["openssl", "x509", "-req", "-in", base + ".csr", "-CA", self.ca, "-CAkey", self.ca_key,
                 "-CAcreateserial", "-out", crt, "-days", "30", "-extfile", ext])
            os.unlink(ext)
            os.unlink(base + ".csr")
        else:
            run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", key, "-out", crt, "-days", "30", "-subj", f"/CN={domain}",
                 "-addext", f"subjectAltName=DNS:{domain}",
                 "-addext", "extendedKeyUsage=serverAuth,clientAuth"])
        with open(pem, "w") as out:
            for f in (crt, key):
                with open(f) as fh:
                    out.write(fh.read())
        for f in (crt, key, pem):
            os.chmod(f, 0o644)  # ejabberd reads them as user ejabberd; this is throw-away test material
        c = Cert(crt, key, pem)
        self._certs[k] = c
        return c


# ------------------------------------------------------------------------------------------ DNS


class Dns:
    """Private dnsmasq on 127.0.0.1:port, authoritative for the lab's domains, nothing forwarded.

    A lab has one public view (lab.dns) that every partner uses, and one internal view per gateway
    that has servers behind it (split DNS, see Lab.prosody(behind=)). SRV records are derived from
    the lab's servers and gateways when dnsmasq starts; add_srv()/remove_srv()/add_host() override
    them, reload() applies changes to a running lab."""

    def __init__(self, lab, port, name="public", gateway=None):
        self.lab = lab
        self.port = port
        self.name = name
        self.gateway = gateway  # None for the public view, else the gateway this internal view serves
        self.dir = os.path.join(lab.root, "dns" if name == "public" else f"dns-{name}")
        os.makedirs(self.dir, exist_ok=True)
        self.srv = {}  # explicit (service, domain) -> list of (target, port, priority, weight); [] = none
        self.hosts = {}  # name -> ip
        self.zones = set()
        self.proc = None

    def add_srv(self, domain, port, target="localhost", service="_xmpp-server._tcp", priority=0, weight=5,
                replace=True):
        """Publish an SRV record; replace=False adds to the records already given for the name."""
        key = (service, domain)
        if replace or key not in self.srv:
            self.srv[key] = []
        self.srv[key].append((target, port, priority, weight))
        self.zones.add(domain)

    def remove_srv(self, domain, service="_xmpp-server._tcp"):
        """No SRV record for the name (the lab stays authoritative, so the answer is empty)."""
        self.srv[(service, domain)] = []
        self.zones.add(domain)

    def add_host(self, name, ip="127.0.0.1"):
        self.hosts[name] = ip
        self.zones.add(name)

    def records(self):
        """The SRV records this view serves: {(service, domain): [(target, port, prio, weight)]}."""
        auto = {}
        gw = self.gateway
        for s in self.lab.servers:
            if gw is None:
                port = s.behind.s2s_port if s.behind else s.s2s_port
            else:
                port = s.s2s_port if s.behind is gw else gw.s2s_port
            auto[("_xmpp-server._tcp", s.domain)] = [("localhost", port, 0, 5)]
        for g in self.lab.gateways:
            auto[("_xmpp-server._tcp", g.domain)] = [("localhost", (gw or g).s2s_port, 0, 5)]
            if gw is None and g.direct_tls_port:
                auto[("_xmpps-server._tcp", g.domain)] = [("localhost", g.direct_tls_port, 0, 5)]
        auto.update(self.srv)
        return auto

    def _config(self):
        recs = self.records()
        zones = self.zones | {d for _, d in recs}
        lines = [f"local=/{z}/" for z in sorted(zones)]
        for (service, domain), rrs in sorted(recs.items()):
            for target, port, prio, weight in rrs:
                lines.append(f"srv-host={service}.{domain},{target},{port},{prio},{weight}")
        for name, ip in sorted(self.hosts.items()):
            lines.append(f"host-record={name},{ip}")
        _render("dnsmasq.conf.in", os.path.join(self.dir, "dnsmasq.conf"), port=self.port, dir=self.dir,
                records="\n".join(lines))

    def start(self):
        self._config()
        self.proc = self.lab._spawn(f"dnsmasq-{self.name}",
                                    [_which("dnsmasq"), "--conf-file=" + os.path.join(self.dir, "dnsmasq.conf"),
                                     "--keep-in-foreground"], os.path.join(self.dir, "stdout.log"))
        wait_until(lambda: self._answers(), 5, "dnsmasq", alive=self.proc.alive)

    def reload(self):
        """Apply record changes: dnsmasq does not re-read srv-host on SIGHUP, so restart it (~50 ms)."""
        if self.proc:
            kill_family([self.proc.pid], grace=1)
            self.proc.popen.wait()
            self.lab._forget(self.proc)
        self.start()

    def query(self, name, qtype="SRV", timeout=2.0):
        return query(self.port, name, qtype, timeout)

    def queries(self):
        """Every query this view received so far, as (type, name) in arrival order, from dnsmasq's
        log-queries output: shows what a resolver asked (e.g. no SRV lookup when ProxyFqdn is set)."""
        try:
            with open(os.path.join(self.dir, "dnsmasq.log"), errors="replace") as fh:
                return re.findall(r"query\[(\w+)\] (\S+) from", fh.read())
        except FileNotFoundError:
            return []

    def _answers(self):
        try:
            query(self.port, "localhost", "A", timeout=0.2)
            return True
        except (OSError, LabError):
            return False


def _qname(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"


def _skip_name(msg, off):
    while True:
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += n + 1


def _read_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        if n == 0:
            return ".".join(labels)
        if n & 0xC0 == 0xC0:
            off = ((n & 0x3F) << 8) | msg[off + 1]
            continue
        labels.append(msg[off + 1:off + 1 + n].decode())
        off += n + 1


def query(port, name, qtype="SRV", timeout=2.0):
    """Ask 127.0.0.1:port; returns (rcode, answers): SRV answers as (prio, weight, port, target),
    A answers as dotted strings. Lets a test check the lab's DNS before blaming the gateway."""
    t = {"A": 1, "SRV": 33}[qtype]
    qid = random.randrange(65536)
    pkt = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _qname(name) + struct.pack("!HH", t, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(pkt, ("127.0.0.1", port))
        msg, _ = s.recvfrom(4096)
    finally:
        s.close()
    rid, flags, qd, an = struct.unpack("!HHHH", msg[:8])
    if rid != qid:
        raise LabError("dns: id mismatch")
    off = 12
    for _ in range(qd):
        off = _skip_name(msg, off) + 4
    answers = []
    for _ in range(an):
        off = _skip_name(msg, off)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rd = msg[off:off + rdlen]
        if rtype == 33:
            prio, weight, p = struct.unpack("!HHH", rd[:6])
            answers.append((prio, weight, p, _read_name(msg, off + 6)))
        elif rtype == 1:
            answers.append(socket.inet_ntoa(rd))
        off += rdlen
    return flags & 0xF, answers


# -------------------------------------------------------------------------------------- servers


class Server:
    """Common part of a Prosody or ejabberd instance: domain, ports, auth mode, users, logs."""

    kind = "server"

    def __init__(self, lab, domain, auth, cert=..., secure_auth=None, tls=None, extra="", behind=None):
        if auth not in AUTH_MODES:
            raise LabError(f"auth must be one of {sorted(AUTH_MODES)}")
        self.lab = lab
        self.domain = domain
        self.dir = os.path.join(lab.root, domain)
        self.users = {}
        self.extra = extra
        self.proc = None
        self.log_start = 0
        self.s2s_port = lab.ports.get(f"{domain}/s2s")
        self.c2s_port = lab.ports.get(f"{domain}/c2s")
        self.configure(auth, cert=cert, secure_auth=secure_auth, tls=tls)
        # A server behind a gateway resolves through the gateway's internal view (split DNS).
        self.behind = behind
        self.dns = behind.internal_dns() if behind else lab.dns

    def configure(self, auth, cert=..., secure_auth=None, tls=None):
        """Set the auth preset; cert ("ca", "self", None), secure_auth and tls ("required",
        "optional", "none") override single parts of it. Takes effect at the next (re)start."""
        m = dict(AUTH_MODES[auth])
        if cert is not ...:
            m["cert"] = cert
        if secure_auth is not None:
            m["secure_auth"] = secure_auth
        if tls is not None:
            m["tls"] = tls
        self.auth, self.cert_kind, self.secure_auth, self.tls = auth, m["cert"], m["secure_auth"], m["tls"]

    @property
    def cert(self):
        if self.cert_kind is None:
            return None
        return self.lab.pki.cert(self.domain, trusted=self.cert_kind == "ca")

    def add_user(self, user, password=None):
        """Create user@domain (now if running, else at start). Returns the bare JID."""
        password = password or f"{user}-pw"
        self.users[user] = password
        if self.running():
            self._register(user, password)
        return f"{user}@{self.domain}"

    def password(self, jid_or_user):
        return self.users[jid_or_user.split("@")[0]]

    def running(self):
        return self.proc is not None and self.proc.alive()

    def restart(self, auth=None, **overrides):
        """Stop, optionally switch the auth mode, regenerate the config, start, wait until ready.
        Users survive (their data stays in the instance directory)."""
        self.lab.restart(self, auth=auth, **overrides)

    def stop(self):
        if self.proc:
            kill_family([self.proc.pid], grace=0.3)
            self.proc.popen.wait()
            self.lab._forget(self.proc)
            self.proc = None

    def wait_auth(self, remote, direction, expect=None, timeout=8):
        """Poll auth_method() until it reports a method (or exactly expect); returns it. ejabberd
        writes its log with a delay of up to about 2 s, hence polling rather than one look."""
        got = []

        def ok():
            got[:] = [self.auth_method(remote, direction)]
            return got[0] is not None and (expect is None or got[0] == expect)

        try:
            wait_until(ok, timeout, f"{self.domain}: {direction} s2s auth with {remote}", interval=0.1)
        except LabError:
            if expect is None or not got:
                raise
            raise LabError(f"{self.domain}: {direction} s2s with {remote} authenticated by {got[0]}, "
                           f"expected {expect}")
        return got[0]

    def log_text(self, whole=False):
        """The server's log since its latest (re)start, or all of it."""
        try:
            with open(self.log_path, errors="replace") as fh:
                if not whole:
                    fh.seek(self.log_start)
                return fh.read()
        except FileNotFoundError:
            return ""

    def _mark_log_start(self):
        try:
            self.log_start = os.path.getsize(self.log_path)
        except FileNotFoundError:
            self.log_start = 0

    def wait_log(self, pattern, timeout=10, since=0):
        """Wait until the log (from byte offset since) matches the regex; returns the match."""
        rx = re.compile(pattern)
        found = []

        def hit():
            m = rx.search(self.log_text()[since:])
            if m:
                found.append(m)
            return bool(m)

        wait_until(hit, timeout, f"{self.domain}: log /{pattern}/", interval=0.05)
        return found[0]

    def log_mark(self):
        """Byte offset to pass as since= so later checks only see new log lines."""
        return len(self.log_text())

    def info(self):
        return {"kind": self.kind, "domain": self.domain, "s2s_port": self.s2s_port, "c2s_port": self.c2s_port,
                "auth": self.auth, "cert": self.cert_kind, "secure_auth": self.secure_auth, "tls": self.tls,
                "dir": self.dir, "log": self.log_path, "pid": self.proc.pid if self.proc else None,
                "behind": self.behind.domain if self.behind else None, "dns_port": self.dns.port,
                "users": self.users}

    def client(self, user, **kw):
        """A connected slixmpp session for user (created with add_user) on this server's c2s port."""
        jid = user if "@" in user else f"{user}@{self.domain}"
        return self.lab.xmpp.user(jid, self.password(jid), "127.0.0.1", self.c2s_port, **kw)


class Prosody(Server):
    kind = "prosody"

    def __init__(self, lab, domain, auth="sasl", **kw):
        super().__init__(lab, domain, auth, **kw)
        self.cfg = os.path.join(self.dir, "prosody.cfg.lua")
        self.log_path = os.path.join(self.dir, "prosody.log")
        self.components = {}
        self.component_port = None

    def add_component(self, name, secret):
        """An XEP-0114 component subdomain served on self.component_port (for helper tests)."""
        if self.component_port is None:
            self.component_port = self.lab.ports.get(f"{self.domain}/component")
        self.components[name] = secret
        return name

    def _write_config(self):
        for d in ("data", "certs"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        cert = self.cert
        ssl = ""
        if cert:
            ssl = f'ssl = {{ certificate = "{cert.crt}"; key = "{cert.key}"; cafile = "{self.lab.pki.ca}" }}'
        comps = "\n".join(f'Component "{n}"\n    component_secret = "{s}"' for n, s in self.components.items())
        _render("prosody.cfg.lua.in", self.cfg, dir=self.dir, domain=self.domain,
                loglevel=self.lab.loglevel, c2s_port=self.c2s_port, s2s_port=self.s2s_port,
                component_ports=self.component_port or "", dns_port=self.dns.port,
                s2s_require_encryption=str(self.tls == "required").lower(),
                s2s_secure_auth=str(self.secure_auth).lower(), s2s_timeout=self.lab.s2s_timeout, ssl=ssl,
                modules_disabled='"tls"' if self.tls == "none" else "",
                extra_global=self.extra, extra_vhost="", components=comps)

    def spawn(self):
        self._write_config()
        self._mark_log_start()
        self.proc = self.lab._spawn(self.domain, [_which("prosody"), "--config", self.cfg, "-F"],
                                    os.path.join(self.dir, "stdout.log"))

    def wait_ready(self, timeout=15):
        ports = [self.c2s_port, self.s2s_port] + ([self.component_port] if self.component_port else [])
        wait_until(lambda: all(port_listening(p) for p in ports), timeout, f"prosody {self.domain}",
                   alive=self.proc.alive)
        for u, p in self.users.items():
            self._register(u, p)

    def _register(self, user, password):
        run([_which("prosodyctl"), "--config", self.cfg, "register", user, self.domain, password])

    def shell(self, command, timeout=10):
        """Run a prosodyctl shell command (e.g. 's2s:show()') against the running instance."""
        return run([_which("prosodyctl"), "--config", self.cfg, "shell", command], timeout=timeout).stdout

    def s2s_sessions(self):
        """Live s2s sessions from `s2s:show()`: list of dicts with dir ('out'|'in'), local, remote,
        auth ('sasl'|'dialback'|None), tls (bool) and the raw row. An outgoing session that did SASL
        EXTERNAL shows 'Succeeded' in the SASL column; one that fell back shows 'Failed | Completed'."""
        return parse_prosody_s2s(self.shell("s2s:show()"))

    def auth_method(self, remote, direction):
        """How the s2s session with remote in direction ('out': we connected, 'in': they did) was
        authenticated: 'sasl_external', 'dialback_tls', 'dialback_plain', or None when there is no
        authenticated session. Source: `s2s:show()`; its Dialback column is only filled for outgoing
        sessions, so an incoming dialback session is recognised by its debug log lines (asking the
        remote about the key, then "is now authenticated")."""
        log_text = None
        for s in self.s2s_sessions():
            if s["remote"] != remote or s["dir"] != direction:
                continue
            if s["auth"]:
                return s["auth"]
            if direction == "in":
                if log_text is None:
                    log_text = self.log_text()
                sid = re.escape(s["session id"])
                if re.search(rf"{sid}\s+debug\s+asking {re.escape(remote)} if key", log_text) and re.search(
                        rf"{sid}\s+debug\s+connection {re.escape(remote)}->\S+ is now authenticated", log_text):
                    return auth_name("dialback", s["tls"])
        return None


class Ejabberd(Server):
    kind = "ejabberd"

    def __init__(self, lab, domain, auth="dialback", **kw):
        super().__init__(lab, domain, auth, **kw)
        self.dist_port = lab.ports.get(f"{domain}/erlang-dist")
        self.conf = os.path.join(self.dir, "conf")
        self.log_path = os.path.join(self.dir, "logs", "ejabberd.log")
        self.node = f"ejlab{self.dist_port}@localhost"

    def _ctl(self):
        return [_which("ejabberdctl"), "--config-dir", self.conf, "--spool", os.path.join(self.dir, "spool"),
                "--logs", os.path.join(self.dir, "logs")]

    def _write_config(self):
        for d in ("conf", "spool", "logs"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        cert = self.cert
        _render("ejabberdctl.cfg.in", os.path.join(self.conf, "ejabberdctl.cfg"), node=self.node,
                dist_port=self.dist_port, cookie=f"lab{random.getrandbits(64):x}", dir=self.dir)
        _render("inetrc.in", os.path.join(self.conf, "inetrc"), dns_port=self.dns.port)
        _render("ejabberd.yml.in", os.path.join(self.conf, "ejabberd.yml"), domain=self.domain,
                loglevel="debug" if self.lab.loglevel == "debug" else "info",
                certfiles=f"certfiles: [{cert.pem}]" if cert else "", ca_file=self.lab.pki.ca,
                c2s_port=self.c2s_port, s2s_port=self.s2s_port,
                s2s_use_starttls={"required": "required", "optional": "optional", "none": "false"}[self.tls],
                # Without the dialback module only SASL EXTERNAL can authenticate a stream: the
                # ejabberd way of saying s2s_secure_auth.
                dialback_module="" if self.secure_auth else "  mod_s2s_dialback: {}",
                extra=self.extra)
        run(["chown", "-R", "ejabberd:ejabberd", self.dir])

    def spawn(self):
        self._write_config()
        self._mark_log_start()
        self.proc = self.lab._spawn(self.domain, self._ctl() + ["foreground"], os.path.join(self.dir, "stdout.log"))

    def wait_ready(self, timeout=30):
        wait_until(lambda: port_listening(self.c2s_port) and port_listening(self.s2s_port), timeout,
                   f"ejabberd {self.domain}", alive=self.proc.alive, interval=0.05)
        for u, p in self.users.items():
            self._register(u, p)

    def ctl(self, *args, timeout=20, check=True):
        return run(self._ctl() + list(args), timeout=timeout, check=check)

    def _register(self, user, password):
        # The control node may need a moment after the listeners open; retry instead of sleeping.
        deadline = time.monotonic() + 15
        while True:
            r = self.ctl("register", user, self.domain, password, check=False)
            if r.returncode == 0 or "already registered" in (r.stdout + r.stderr):
                return
            if time.monotonic() > deadline or not self.running():
                raise LabError(f"ejabberd register {user}: {r.stdout} {r.stderr}")
            time.sleep(0.2)

    def s2s_counts(self):
        """(incoming, outgoing) s2s connections ejabberd has open, from ejabberdctl (~0.5 s)."""
        return (int(self.ctl("incoming_s2s_number").stdout.strip()),
                int(self.ctl("outgoing_s2s_number").stdout.strip()))

    def auth_method(self, remote, direction):
        """How ejabberd authenticated the s2s stream with remote, from its log: 'in' looks for
        "Accepted inbound s2s <METHOD> authentication remote -> us", 'out' for the outbound
        counterpart. Returns 'sasl_external', 'dialback_tls', 'dialback_plain' or None (latest line
        wins)."""
        return parse_ejabberd_auth(self.log_text(), self.domain, remote, direction)


def parse_prosody_s2s(text):
    """Parse the table Prosody 0.12's `s2s:show()` prints (columns Session ID | Host | Dir | Remote |
    IPv | Security | SASL | Dialback). Returns one dict per row: dir ('out'|'in'), local, remote,
    tls (bool), sasl and dialback (the raw column text), auth (see auth_name()) and the row."""
    sessions, cols = [], None
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if cells and cells[0] == "Session ID":
            cols = [c.lower() for c in cells]
            continue
        if cols is None or len(cells) != len(cols):
            continue
        row = dict(zip(cols, cells))
        tls = row.get("security", "").upper().startswith("TLS")
        sasl, dialback = row.get("sasl", ""), row.get("dialback", "")
        method = "sasl" if sasl.lower() == "succeeded" else "dialback" if dialback.lower() == "completed" else None
        sessions.append({"session id": row.get("session id"),
                         "dir": "out" if "->" in row.get("dir", "") else "in", "local": row.get("host"),
                         "remote": row.get("remote"), "tls": tls, "sasl": sasl, "dialback": dialback,
                         "auth": auth_name(method, tls), "row": line.strip()})
    return sessions


def auth_name(method, tls):
    """The names tests compare against: 'sasl_external', 'dialback_tls', 'dialback_plain' (or None)."""
    if method == "sasl":
        return "sasl_external"
    if method == "dialback":
        return "dialback_tls" if tls else "dialback_plain"
    return None


def parse_ejabberd_auth(text, local, remote, direction):
    """The latest "Accepted {inbound|outbound} s2s <METHOD> authentication" line of ejabberd's log
    for the pair; the "(tls|" or "(tcp|" prefix of the line tells whether the stream was encrypted."""
    if direction == "in":
        pair = f"{re.escape(remote)} -> {re.escape(local)}"
        word = "inbound"
    else:
        pair = f"{re.escape(local)} -> {re.escape(remote)}"
        word = "outbound"
    rx = re.compile(rf"\((\w+)\|[^)]*\) Accepted {word} s2s (\S+) authentication {pair}\b")
    result = None
    for m in rx.finditer(text):
        method = "sasl" if m.group(2).upper() == "EXTERNAL" else "dialback" if "dialback" in m.group(2).lower() \
            else m.group(2)
        result = auth_name(method, m.group(1) == "tls") if method in ("sasl", "dialback") else method
    return result


class Gateway:
    """Ports, DNS records and certificates reserved for the gateway under test (the lab only runs it
    through Lab.process()). Partners reach s2s_port through `_xmpp-server._tcp.<domain>` SRV in the
    public view, and direct_tls_port through `_xmpps-server._tcp.<domain>` when asked for.
    component_port is where the gateway's XEP-0114 listener should be (for lab.component()),
    metrics_port is free for its /metrics listener. Servers declared with behind=gateway are its
    internal servers: partners resolve their domains to the gateway, and they resolve every other
    lab domain to the gateway through the gateway's internal DNS view (split DNS)."""

    def __init__(self, lab, domain, cert="ca", direct_tls=False):
        self.lab = lab
        self.domain = domain
        self.s2s_port = lab.ports.get(f"{domain}/s2s")
        self.component_port = lab.ports.get(f"{domain}/component")
        self.metrics_port = lab.ports.get(f"{domain}/metrics")
        self.direct_tls_port = lab.ports.get(f"{domain}/s2s-direct-tls") if direct_tls else None
        self.cert_kind = cert
        self._internal_dns = None
        self.dir = os.path.join(lab.root, domain)
        os.makedirs(self.dir, exist_ok=True)

    @property
    def cert(self):
        """The gateway's certificate for its own domain (test CA unless cert='self')."""
        return self.cert_for(self.domain)

    def cert_for(self, domain):
        """A certificate for any domain the gateway presents (its own, an internal server's)."""
        return self.lab.pki.cert(domain, trusted=self.cert_kind == "ca") if self.cert_kind else None

    @property
    def ca(self):
        return self.lab.pki.ca

    @property
    def dns(self):
        """(host, port) of the public DNS view: what the gateway's resolver should use."""
        return ("127.0.0.1", self.lab.dns.port)

    def internal_dns(self):
        """The DNS view of servers behind this gateway (created on first use)."""
        if self._internal_dns is None:
            self._internal_dns = Dns(self.lab, self.lab.ports.get(f"{self.domain}/internal-dns"),
                                     name=self.domain, gateway=self)
            self.lab.dns_views.append(self._internal_dns)
        return self._internal_dns

    def internal_servers(self):
        """{domain: (host, s2s port)} of the servers behind this gateway: its s2s routes."""
        return {s.domain: ("127.0.0.1", s.s2s_port) for s in self.lab.servers if s.behind is self}

    def partners(self):
        """{domain: (host, s2s port)} of the partner servers, for a static route instead of DNS."""
        return {s.domain: ("127.0.0.1", s.s2s_port) for s in self.lab.servers if s.behind is None}

    def hosted_domains(self):
        return [self.domain] + sorted(self.internal_servers())

    def info(self):
        c = self.cert
        return {"kind": "gateway", "domain": self.domain, "s2s_port": self.s2s_port,
                "component_port": self.component_port, "metrics_port": self.metrics_port,
                "direct_tls_port": self.direct_tls_port, "cert": c.as_dict() if c else None, "ca": self.ca,
                "dns": f"127.0.0.1:{self.lab.dns.port}",
                "internal_dns": f"127.0.0.1:{self._internal_dns.port}" if self._internal_dns else None,
                "internal_servers": self.internal_servers(), "partners": self.partners(), "dir": self.dir}


# ------------------------------------------------------------------------------------------ lab


class Lab:
    """One throw-away lab. Declare servers and the gateway, then start(); stop() undoes everything."""

    def __init__(self, root=None, loglevel="debug", keep=None, s2s_timeout=10):
        requirements()
        self.t0 = time.monotonic()
        base = os.environ.get("FEDGATE_LAB_TMP") or tempfile.gettempdir()
        self.root = root or tempfile.mkdtemp(prefix="fedgate-lab-", dir=base)
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o755)  # ejabberd runs as its own user and must reach its files
        self.keep = keep if keep is not None else os.environ.get("FEDGATE_LAB_KEEP") == "1"
        self.loglevel = loglevel
        self.s2s_timeout = s2s_timeout
        self.ports = Ports()
        self.servers = []
        self.gateways = []
        self.procs = []
        self.all_pids = set()
        self.timings = {}
        self.started = False
        self.stopped = False
        self._xmpp = None
        self._sockets = []
        self.pki = Pki(os.path.join(self.root, "pki"))
        self.dns = Dns(self, self.ports.get("dns"))
        self.dns_views = [self.dns]
        self._watchdog = subprocess.Popen([sys.executable, os.path.abspath(__file__), "_watchdog", self.root],
                                          stdin=subprocess.PIPE, start_new_session=True)
        self.all_pids.add(self._watchdog.pid)
        atexit.register(self.stop)
        self._old_term = signal.signal(signal.SIGTERM, self._on_signal)

    # --- declaration
    def prosody(self, domain, auth="sasl", **kw):
        """Declare a Prosody server. auth: 'sasl' (test-CA cert, s2s_secure_auth = true),
        'dialback' (self-signed cert, secure auth off), 'plain' (no TLS). kw: cert ('ca', 'self',
        None), secure_auth, tls ('required', 'optional', 'none') override parts of the preset;
        extra (Lua lines for the global section); behind=gateway makes it an internal server
        reached through the gateway instead of a partner."""
        s = Prosody(self, domain, auth, **kw)
        self.servers.append(s)
        return s

    def ejabberd(self, domain, auth="dialback", **kw):
        """Declare an ejabberd partner (same auth presets; 'sasl' drops mod_s2s_dialback)."""
        s = Ejabberd(self, domain, auth, **kw)
        self.servers.append(s)
        return s

    def gateway(self, domain, cert="ca", direct_tls=False):
        g = Gateway(self, domain, cert=cert, direct_tls=direct_tls)
        self.gateways.append(g)
        return g

    def restart(self, *servers, auth=None, **overrides):
        """Restart several servers at once (in parallel; ejabberd's boot dominates), optionally
        switching their auth mode (see Server.configure)."""
        servers = servers or tuple(self.servers)
        t = time.monotonic()
        for s in servers:
            s.stop()
            if auth is not None or overrides:
                s.configure(auth or s.auth, **overrides)
        for s in sorted(servers, key=lambda s: s.kind != "ejabberd"):
            s.spawn()
        for s in servers:
            s.wait_ready()
        self.snapshot_pids()
        self.write_state()
        self.timings["restart"] = time.monotonic() - t

    def process(self, name, argv, env=None, cwd=None, ready_ports=(), timeout=15):
        """Start a process under the lab's care (e.g. fedgate): own session, output in
        <root>/<name>.log, stopped with the lab (or by the watchdog). Waits until every port in
        ready_ports listens. Returns the Proc (pid, popen, log)."""
        p = self._spawn(name, list(argv), os.path.join(self.root, f"{name}.log"), env=env, cwd=cwd)
        try:
            wait_until(lambda: all(port_listening(x) for x in ready_ports), timeout, name, alive=p.alive)
        except LabError:
            log(f"--- {name} output:\n{_tail(p.log)}")
            raise
        self.snapshot_pids()
        return p

    def stop_process(self, proc, sig=signal.SIGTERM, timeout=10):
        """Send sig to a process from process(); SIGKILL it if it is still there after timeout.
        Returns its exit status (negative: killed by that signal), as Popen.returncode."""
        try:
            proc.popen.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            rc = proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{proc.name} ignored signal {sig} for {timeout} s: SIGKILL")
            kill_family([proc.pid], grace=0)
            rc = proc.popen.wait()
        kill_family([proc.pid], grace=0.2)  # anything it left in its session
        self._forget(proc)
        return rc

    def silent_dns(self):
        """A UDP port on 127.0.0.1 that receives DNS queries and never answers (the "DNS server
        that does not answer" fault). Returns the port; the socket lives until stop()."""
        port = self.ports.get("silent-dns")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", port))
        self._sockets.append(sock)
        return port

    def server(self, domain):
        return next(s for s in self.servers if s.domain == domain)

    # --- life cycle
    def start(self, timeout=40):
        t = time.monotonic()
        for s in self.servers:  # certificates first: servers read them at start
            _ = s.cert
        for g in self.gateways:
            for d in g.hosted_domains():
                _ = g.cert_for(d)
        self.timings["pki"] = time.monotonic() - self.t0
        for v in self.dns_views:
            v.start()
        self.timings["dns"] = time.monotonic() - t
        # ejabberd boots slowest: spawn everything, then wait for all.
        for s in sorted(self.servers, key=lambda s: s.kind != "ejabberd"):
            s.spawn()
        for s in self.servers:
            s.wait_ready(timeout=timeout)
            self.timings[f"ready {s.domain}"] = time.monotonic() - t
        self.started = True
        self.timings["start"] = time.monotonic() - self.t0
        self.write_state()
        log(f"lab up in {self.timings['start']:.2f} s at {self.root}")
        return self

    def stop(self):
        """Stop every process the lab started (idempotent). Removes the directory unless keep."""
        if self.stopped:
            return
        self.stopped = True
        t = time.monotonic()
        try:
            if self._xmpp:
                self._xmpp.close()
        except Exception as e:  # a broken client must not keep servers alive
            log(f"closing clients: {e}")
        for sock in self._sockets:
            sock.close()
        roots = [p.pid for p in self.procs]
        self.all_pids |= process_family(roots)
        kill_family(roots, grace=0.3)
        for p in self.procs:
            try:
                p.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []
        self._write_pids()
        try:
            self._watchdog.stdin.close()
            self._watchdog.wait(timeout=5)
        except Exception:
            kill_family([self._watchdog.pid])
        self.timings["stop"] = time.monotonic() - t
        log(f"lab down in {self.timings['stop']:.2f} s")
        if self.keep:
            log(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        try:
            signal.signal(signal.SIGTERM, self._old_term)
        except (ValueError, TypeError):
            pass

    def survivors(self):
        """PIDs this lab ever started (servers, their children, watchdog) that are still alive."""
        return sorted(p for p in self.all_pids if pid_alive(p))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.keep = self.keep or os.environ.get("FEDGATE_LAB_KEEP_ON_FAILURE", "1") == "1"
            for s in self.servers:
                log(f"--- {s.domain} log tail:\n{_tail(s.log_path)}")
        self.stop()
        return False

    def _on_signal(self, signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    # --- processes
    def _spawn(self, name, argv, logfile, env=None, cwd=None):
        p = Proc(name, argv, logfile, env=env, cwd=cwd)
        self.procs.append(p)
        self.all_pids.add(p.pid)
        self._write_pids()
        return p

    def _forget(self, proc):
        self.all_pids |= {proc.pid}
        self.procs = [p for p in self.procs if p is not proc]
        self._write_pids()

    def _write_pids(self):
        tmp = os.path.join(self.root, "pids.tmp")
        with open(tmp, "w") as fh:
            for p in self.procs:
                fh.write(f"{p.name} {p.pid}\n")
        os.replace(tmp, os.path.join(self.root, "pids"))

    def snapshot_pids(self):
        """Record the current process family (e.g. beam under ejabberdctl) for survivors()."""
        self.all_pids |= process_family([p.pid for p in self.procs])

    # --- state
    def state(self):
        return {"root": self.root, "dns_port": self.dns.port, "ca": self.pki.ca, "ports": self.ports.taken,
                "servers": [s.info() for s in self.servers], "gateways": [g.info() for g in self.gateways],
                "pids": {p.name: p.pid for p in self.procs}}

    def write_state(self):
        self.snapshot_pids()
        with open(os.path.join(self.root, "state.json"), "w") as fh:
            json.dump(self.state(), fh, indent=2)

    # --- clients
    @property
    def xmpp(self):
        if self._xmpp is None:
            from labxmpp import Xmpp
            self._xmpp = Xmpp()
        return self._xmpp

    def component(self, jid, secret, port, host="127.0.0.1", **kw):
        """A connected slixmpp XEP-0114 component (e.g. to the gateway's component_port)."""
        return self.xmpp.component(jid, secret, host, port, **kw)


def _watchdog(root):
    """Stops the lab's processes once its parent is gone (stdin reaches EOF)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        sys.stdin.buffer.read()
    except OSError:
        pass
    pids = []
    try:
        with open(os.path.join(root, "pids")) as fh:
            pids = [int(line.split()[1]) for line in fh if line.strip()]
    except (FileNotFoundError, ValueError):
        pass
    if pids:
        kill_family(pids, grace=0.2)


def _cli(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Run an interop lab in the foreground until interrupted.")
    ap.add_argument("--prosody", action="append", default=[], metavar="DOMAIN[:AUTH]")
    ap.add_argument("--ejabberd", action="append", default=[], metavar="DOMAIN[:AUTH]")
    ap.add_argument("--gateway", action="append", default=[], metavar="DOMAIN")
    ap.add_argument("--user", action="append", default=[], metavar="USER@DOMAIN")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)
    with Lab(keep=a.keep) as lab:
        for spec in a.prosody:
            d, _, m = spec.partition(":")
            lab.prosody(d, auth=m or "sasl")
        for spec in a.ejabberd:
            d, _, m = spec.partition(":")
            lab.ejabberd(d, auth=m or "dialback")
        for g in a.gateway:
            lab.gateway(g)
        for u in a.user:
            user, _, d = u.partition("@")
            lab.server(d).add_user(user)
        lab.start()
        print(json.dumps(lab.state(), indent=2), flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_watchdog":
        _watchdog(sys.argv[2])
        sys.exit(0)
    try:
        sys.exit(_cli(sys.argv[1:]))
    except LabSkip as e:
        print(f"SKIP: {e}", file=sys.stderr)
        sys.exit(SKIP_RC)
