"""Drive the real pimon binaries on loopback: start, wait, inspect, clean up.

Every wait has a deadline and checks that the process it waits on is alive.
Each test file calls run_tests(globals()) and prints "N passed, N failed".
"""

import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

BUILD = os.environ.get("PIMON_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
SERVER_BIN = os.path.join(BUILD, "server", "pimon-server")
AGENT_BIN = os.path.join(BUILD, "agent", "pimon-agent")
CTL_BIN = os.path.join(BUILD, "tools", "pimon-ctl")
FIXTURES = os.environ.get("FIXTURES", os.path.join(os.path.dirname(__file__), "../fixtures"))

# Under sanitizers everything is slower: scale every deadline.
SLOW = float(os.environ.get("PIMON_TEST_SLOW", "1"))
# libevent checks every lock and unlock in the daemons under test.
os.environ.setdefault("PIMON_LOCK_DEBUG", "1")
# A command the daemons run under, e.g. valgrind; its failures fail the test.
WRAPPER = shlex.split(os.environ.get("PIMON_WRAPPER", ""))


class TestFailure(Exception):
    pass


class TestSkip(Exception):
    """The machine lacks what the test needs; reported, not counted as passed."""


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def free_port():
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout, what, procs=()):
    """Poll cond until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + timeout * SLOW
    last_err = None
    while time.monotonic() < deadline:
        for p in procs:
            p.check_alive()
        try:
            v = cond()
            if v:
                return v
        except (OSError, ValueError, KeyError, TestFailure) as e:
            last_err = e
        time.sleep(0.05)
    raise TestFailure("timed out after %.1fs waiting for %s%s"
                      % (timeout * SLOW, what, " (last error: %s)" % last_err if last_err else ""))


def cfg_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, tuple) or (isinstance(v, list) and v and isinstance(v[0], dict)):
        # A list () of groups, or of anything else given as a tuple.
        return "(" + ", ".join(cfg_value(x) for x in v) + ")"
    if isinstance(v, list):
        return "[" + ", ".join(cfg_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + cfg_group(v).replace("\n", " ") + "}"
    return json.dumps(v)


def cfg_group(d, indent=""):
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append("%s%s: {\n%s%s};" % (indent, k, cfg_group(v, indent + "  "), indent))
        else:
            out.append("%s%s = %s;" % (indent, k, cfg_value(v)))
    return "\n".join(out) + "\n"


class Proc:
    """A child process with its log in a file."""

    def __init__(self, name, argv, workdir, nofile=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "ab")
        self.killed = False
        self.expect_zero = True
        limit = None
        if nofile:
            import resource

            def limit():
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, preexec_fn=limit)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def check_alive(self):
        if self.p.poll() is not None:
            raise TestFailure("%s exited with status %s; log:\n%s"
                              % (self.name, self.p.returncode, self.log_text()[-3000:]))

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL past the deadline; returns the exit status."""
        if self.alive():
            self.p.send_signal(signal.SIGCONT)
            self.p.terminate()
            try:
                self.p.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode

    def kill(self):
        """SIGKILL on purpose: its exit status is not checked."""
        self.killed = True
        if self.alive():
            self.p.kill()
        self.p.wait()
        self.log.close()


class Env:
    """One test's world: a temp folder, a server, agents; all torn down."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="pimon-%s-" % name)
        self.procs = []
        self.server = None
        self.port = None
        self.http_port = None
        self.data_dir = os.path.join(self.dir, "data")
        self.server_cfg = {}
        self.https = None  # an ssl.SSLContext when the API is served over TLS
        self.token = None  # a bearer token for the API, when it wants one

    def write_cfg(self, name, groups):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            for g, d in groups.items():
                f.write("%s: {\n%s};\n" % (g, cfg_group(d, "  ")))
        return path

    def start_server(self, workers=4, timeout=2.0, hb_interval=0.5, interval=0.5,
                     extra=None, port=None, http_port=None, name="server", nofile=None):
        self.port = port or self.port or free_port()
        self.http_port = http_port or self.http_port or free_port()
        server = {
            "listen": "127.0.0.1:%d" % self.port,
            "workers": workers,
            "data_dir": self.data_dir,
            "heartbeat": {"timeout": float(timeout), "interval": float(hb_interval)},
            "collect": {"interval": float(interval)},
            "http": {"listen": "127.0.0.1:%d" % self.http_port},
            # No rules unless a test brings its own: a busy machine would
            # fire the default ones at random.
            "alarms": (),
            "log_level": "debug",
        }
        for k, v in (extra or {}).items():
            if isinstance(v, dict) and isinstance(server.get(k), dict):
                server[k] = dict(server[k], **v)
            else:
                server[k] = v
        self.server_cfg = server
        path = self.write_cfg(name + ".cfg", {"server": server})
        self.server = Proc(name, WRAPPER + [SERVER_BIN, "-c", path], self.dir, nofile=nofile)
        self.procs.append(self.server)
        wait_for(lambda: self.api("/api/v1/workers") is not None, 15, "the server's HTTP API",
                 [self.server])
        host = "::1" if server["listen"].startswith("[::1]") else "127.0.0.1"
        wait_for(lambda: can_connect(self.port, host), 15, "the server's agent port",
                 [self.server])
        return self.server

    def start_agent(self, name, extra=None, proc_root=None, sys_root=None):
        agent = {
            "server": "127.0.0.1:%d" % self.port,
            "name": name,
            "reconnect": {"min": 0.2, "max": 1.0},
            "spool_dir": os.path.join(self.dir, "spool"),
            "spool_flush": 0.5,
            "alarm_socket": self.alarm_socket(name),
            "log_level": "debug",
        }
        if proc_root:
            agent["proc_root"] = proc_root
        if sys_root:
            agent["sys_root"] = sys_root
        agent.update(extra or {})
        path = self.write_cfg("agent-%s.cfg" % name, {"agent": agent})
        p = Proc("agent-" + name, WRAPPER + [AGENT_BIN, "-c", path], self.dir)
        self.procs.append(p)
        return p

    def alarm_socket(self, name):
        return os.path.join(self.dir, "alarm-%s.sock" % name)

    def url(self, path):
        return "%s://127.0.0.1:%d%s" % ("https" if self.https else "http", self.http_port, path)

    def request(self, path, method="GET"):
        req = urllib.request.Request(self.url(path), method=method)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        return req

    def api(self, path):
        with urllib.request.urlopen(self.request(path), timeout=5, context=self.https) as r:
            return json.loads(r.read().decode())

    def api_post(self, path):
        with urllib.request.urlopen(self.request(path, "POST"), timeout=5,
                                    context=self.https) as r:
            return json.loads(r.read().decode())

    def hosts(self):
        return {h["name"]: h for h in self.api("/api/v1/hosts")}

    def workers(self):
        return [w["sessions"] for w in self.api("/api/v1/workers")]

    def wait_hosts_up(self, names, timeout=15):
        def ok():
            hs = self.hosts()
            return all(n in hs and hs[n]["state"] == "up" for n in names) and hs
        return wait_for(ok, timeout, "hosts %s up" % ", ".join(names), [self.server])

    def host_dir(self, name):
        return os.path.join(self.data_dir, "hosts", name)

    def finish(self):
        """Stop every process; each must exit 0 (sanitizers report through this)."""
        bad = []
        for p in reversed(self.procs):
            if p.killed:
                continue
            was_running = p.alive()
            code = p.stop()
            if code != 0 and (was_running or p.expect_zero):
                bad.append("%s exited with %s" % (p.name, code))
        return bad

    def close(self, ok):
        for p in self.procs:
            if p.alive():
                p.kill()
        if ok and not os.environ.get("PIMON_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("  (kept %s)" % self.dir)


_M64 = (1 << 64) - 1


def _fnv1a(h, data):
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & _M64
    return h


def rendezvous_weight(name, addr):
    """common/rendezvous.c, written again: FNV-1a 64 over name, a 0 byte and
    addr, then MurmurHash3's fmix64."""
    h = _fnv1a(0xcbf29ce484222325, name.encode() + b"\0" + addr.encode())
    for mul in (0xff51afd7ed558ccd, 0xc4ceb9fe1a85ec53):
        h ^= h >> 33
        h = (h * mul) & _M64
    return h ^ (h >> 33)


def rendezvous_rank(name, addrs):
    """addrs best first for host name, as agents and pimon-bench rank them."""
    return sorted(addrs, key=lambda a: (-rendezvous_weight(name, a), a))


def can_connect(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def read_csv(path):
    """Header and rows of a CSV file (no quoted commas in tests' data)."""
    with open(path) as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    if not lines:
        return [], []
    return lines[0].split(","), [l.split(",") for l in lines[1:]]


# --- a small, independent implementation of the wire format (PROTOCOL.md) ---

MAGIC, VERSION = 0x504D, 1
T_HELLO, T_WELCOME, T_HEARTBEAT, T_METRICS, T_ACK, T_POLL, T_BYE, T_CHALLENGE = range(1, 9)


def frame(ftype, payload, version=VERSION, magic=MAGIC):
    return struct.pack(">HBBI", magic, version, ftype, len(payload)) + payload


def pstr(s):
    b = s.encode()
    return struct.pack(">B", len(b)) + b


def hello(name, boot_id="boot-1", run_id=1, auth=b""):
    p = pstr(name) + pstr("test") + struct.pack(">I", 0)
    p += pstr("TestOS") + pstr("6.0") + pstr("") + pstr(boot_id)
    p += struct.pack(">QQ", 100, run_id) + struct.pack(">H", len(auth)) + auth
    return frame(T_HELLO, p)


def auth_proof(key, nonce, name, run_id):
    """HMAC-SHA256(key, nonce, name length, name, run_id), as PROTOCOL.md says."""
    import hashlib
    import hmac
    msg = nonce + bytes([len(name.encode())]) + name.encode() + struct.pack(">Q", run_id)
    return hmac.new(key, msg, hashlib.sha256).digest()


def session(env, name="h1", run_id=7):
    """A socket that has said HELLO as name (run run_id) and got WELCOME."""
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(hello(name, run_id=run_id))
    f = read_frame(s)
    check(f is not None and f[0] == T_WELCOME, "no WELCOME: %r" % (f,))
    return s


def metrics_frame(seq, groups):
    """A METRICS batch; groups are (metric, inst_key, fields, rows) and
    rows (time ms, instance, values)."""
    p = struct.pack(">QH", seq, len(groups))
    for metric, inst_key, fields, rows in groups:
        p += pstr(metric) + pstr(inst_key) + struct.pack(">B", len(fields))
        p += b"".join(pstr(f) for f in fields) + struct.pack(">I", len(rows))
        for t, inst, values in rows:
            p += struct.pack(">Q", t) + pstr(inst)
            p += b"".join(struct.pack(">d", v) for v in values)
    return frame(T_METRICS, p)


def heartbeat():
    return frame(T_HEARTBEAT, struct.pack(">Q", int(time.time() * 1000)))


def read_frame(sock, timeout=5, challenge=False):
    """One frame (type, payload) or None at end of stream. The server's
    CHALLENGE, which opens every session, is skipped unless asked for."""
    while True:
        sock.settimeout(timeout * SLOW)
        hdr = recv_exact(sock, 8)
        if hdr is None:
            return None
        magic, ver, ftype, length = struct.unpack(">HBBI", hdr)
        payload = recv_exact(sock, length)
        if ftype != T_CHALLENGE or challenge:
            return ftype, payload


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def wait_closed(sock, timeout=10):
    """True once the peer closed (EOF or reset); frames before that are skipped."""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        if not data:
            return True
    return False


def run_tests(ns):
    """Run every test_* function of a module; print the tally; exit 0/1."""
    tests = [(k, v) for k, v in ns.items() if k.startswith("test_") and callable(v)]
    only = os.environ.get("PIMON_ONLY")
    passed = failed = skipped = 0
    for name, fn in tests:
        if only and only not in name:
            continue
        env = Env(name)
        ok = False
        t0 = time.monotonic()
        try:
            fn(env)
            bad = env.finish()
            check(not bad, "; ".join(bad))
            ok = True
            passed += 1
            print("ok   %s (%.1fs)" % (name, time.monotonic() - t0))
        except TestSkip as e:
            skipped += 1
            ok = True
            print("skip %s: %s" % (name, e))
        except Exception as e:
            failed += 1
            print("FAIL %s (%.1fs): %s" % (name, time.monotonic() - t0, e))
            traceback.print_exc(file=sys.stdout)
            for p in env.procs:
                print("---- %s log (tail) ----" % p.name)
                print(p.log_text()[-4000:])
        finally:
            env.close(ok)
        sys.stdout.flush()
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed else 0)
