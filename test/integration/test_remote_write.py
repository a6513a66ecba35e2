"""Prometheus remote_write from the stored rows: a scripted receiver here
(500, 429 with Retry-After, 400; headers, label order, time order, stale
markers, every row once across an outage and a server restart; bearer
token, basic auth and https with ca_file, a wrong secret refused once with
401), and a real Prometheus whose TSDB must hold exactly what the CSV files
hold."""

import base64
import glob
import http.server
import math
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import json

from harness import (SLOW, T_ACK, WRAPPER, Proc, TestFailure, TestSkip, check, free_port,
                     hello, metrics_frame, read_frame, run_tests, session, wait_for)
from test_prometheus import check_documented, parse_exposition
from prom import PROMETHEUS, counts, csv_series, prom_series, start_prometheus

STALE_BITS = 0x7FF0000000000002
CA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "pimon-ca")


def pb_modules():
    """snappy and the WriteRequest class, built from a descriptor made here
    (Debian's python3-protobuf and python3-snappy; no protoc needed)."""
    try:
        import snappy
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            import snappy
            from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
        except ImportError as e:
            raise TestSkip("python3-protobuf and python3-snappy are needed: %s" % e)
    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="rw_test.proto", package="prometheus",
                                            syntax="proto3")

    def msg(name, fields):
        m = fd.message_type.add(name=name)
        for num, (fname, ftype, label, tname) in enumerate(fields, 1):
            f = m.field.add(name=fname, number=num, type=ftype, label=label)
            if tname:
                f.type_name = ".prometheus." + tname

    rep, opt = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    msg("WriteRequest", [("timeseries", F.TYPE_MESSAGE, rep, "TimeSeries")])
    msg("TimeSeries", [("labels", F.TYPE_MESSAGE, rep, "Label"),
                       ("samples", F.TYPE_MESSAGE, rep, "Sample")])
    msg("Label", [("name", F.TYPE_STRING, opt, None), ("value", F.TYPE_STRING, opt, None)])
    msg("Sample", [("value", F.TYPE_DOUBLE, opt, None), ("timestamp", F.TYPE_INT64, opt, None)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    desc = pool.FindMessageTypeByName("prometheus.WriteRequest")
    if hasattr(message_factory, "GetMessageClass"):
        cls = message_factory.GetMessageClass(desc)
    else:
        cls = message_factory.MessageFactory(pool).GetPrototype(desc)
    return snappy, cls


class Receiver:
    """A remote_write endpoint: answers from a script (then 200), records
    every request: (time, status given, headers, [(labels tuple, [(t, v)])]).
    With auth, a request whose Authorization header is not exactly that
    gets 401; with tls (an ssl.SSLContext) it serves https, and records
    the handshakes that failed (ssl.SSLError) in errors."""

    def __init__(self, port=None, auth=None, tls=None):
        self.snappy, self.cls = pb_modules()
        self.script = []  # (status, headers) to answer, in turn
        self.down = False  # answer 503 to everything while set
        self.requests = []
        self.errors = []
        self.lock = threading.Lock()
        self.port = port or free_port()
        rcv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                req = rcv.cls()
                req.ParseFromString(rcv.snappy.uncompress(body))
                series = [(tuple((l.name, l.value) for l in ts.labels),
                           [(s.timestamp, s.value) for s in ts.samples])
                          for ts in req.timeseries]
                with rcv.lock:
                    if auth is not None and self.headers.get("Authorization") != auth:
                        status, hdrs = 401, {"WWW-Authenticate": auth.split(" ")[0]}
                    else:
                        status, hdrs = (503, {}) if rcv.down else (
                            rcv.script.pop(0) if rcv.script else (200, {}))
                    rcv.requests.append((time.monotonic(), status, dict(self.headers), series))
                self.send_response(status)
                for k, v in hdrs.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                e = sys.exc_info()[1]
                if not isinstance(e, ssl.SSLError):
                    return super().handle_error(request, client_address)
                with rcv.lock:
                    rcv.errors.append(e)

        self.httpd = Server(("127.0.0.1", self.port), Handler)
        if tls:
            # The handshake on the first read, in the connection's thread.
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True,
                                                do_handshake_on_connect=False)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def accepted(self):
        """Every sample of the requests answered 2xx: [(labels, t, v)]."""
        with self.lock:
            return [(lab, t, v) for _, st, _, ser in self.requests if 200 <= st < 300
                    for lab, samples in ser for t, v in samples]

    def snapshot(self):
        with self.lock:
            return list(self.requests)


def is_stale(v):
    return math.isnan(v) and struct.unpack(">Q", struct.pack(">d", v))[0] == STALE_BITS


def send_batches(env, s, batches, first_seq=1):
    """Send METRICS batches on session s and wait for every ACK."""
    for i, groups in enumerate(batches):
        s.sendall(metrics_frame(first_seq + i, groups))
    want = first_seq + len(batches) - 1
    while True:
        f = read_frame(s, timeout=15)
        check(f is not None, "closed before the ACKs")
        if f[0] == T_ACK and struct.unpack(">Q", f[1])[0] >= want:
            return


def make_rows(host_seed, n, start_ms, step_ms=1000):
    """Batches of cpu (plain) and disk (two mounts) rows, some backdated:
    {(metric, field, instance): [(t, v)]} and the batches."""
    rows = {}
    batches = []
    for b in range(n):
        t = start_ms + b * step_ms
        # Every third batch also brings a row from before the others (a backlog).
        ts = [t] + ([start_ms - 3600_000 // 4 + b] if b % 3 == 2 else [])
        cpu, disk = [], []
        for tt in ts:
            vals = [float(host_seed * 1000 + b), 0.5 + b]
            cpu.append((tt, "", vals))
            for k, f in enumerate(("usage", "iowait")):
                rows.setdefault(("cpu", f, None), []).append((tt, vals[k]))
            for m, mount in enumerate(("/", "/boot")):
                dv = [float(b * 10 + m), 1e9 + b]
                disk.append((tt, mount, dv))
                for k, f in enumerate(("used_pct", "free_bytes")):
                    rows.setdefault(("disk", f, mount), []).append((tt, dv[k]))
        batches.append([("cpu", "", ["usage", "iowait"], cpu),
                        ("disk", "mount", ["used_pct", "free_bytes"], disk)])
    return rows, batches


def family_names(env, host):
    """(metric, field) -> the family /metrics shows it under, found by the
    values last sent (every field's last value is unique per host here)."""
    with urllib.request.urlopen(env.url("/metrics"), timeout=10) as r:
        text = r.read().decode()
    return text


def name_map(env, host, rows):
    """The series name of each (metric, field), asked of /metrics: the family
    whose sample for host (and instance) has the field's latest value."""
    text = family_names(env, host)
    out = {}
    for (metric, field, inst), samples in rows.items():
        last = max(samples)[1]
        for line in text.splitlines():
            if line.startswith("#") or ('host="%s"' % host) not in line:
                continue
            if inst and ('"%s"' % inst) not in line:
                continue
            name, _, value = line.rpartition(" ")
            # A percentage is shown as a ratio (scale 0.01).
            for scale in (1, 0.01):
                if float(value) == last * scale and (metric, field) not in out:
                    out[(metric, field)] = name.split("{")[0]
                    SCALES[(metric, field)] = scale
    return out


# (metric, field) -> the scale /metrics and remote_write apply to its values.
SCALES = {}


def rw_cfg(url, **kw):
    d = {"name": "r1", "url": url, "headers": ["X-Scope-OrgID: tenant-1"],
         "max_samples_per_send": 40}
    d.update(kw)
    return d


def expected_samples(host, rows, names):
    """The samples the receiver must get, by (name, host, instance)."""
    want = {}
    for (metric, field, inst), samples in rows.items():
        key = (names[(metric, field)], host, inst)
        scale = SCALES.get((metric, field), 1)
        want.setdefault(key, []).extend((t, v * scale) for t, v in samples)
    return want


def got_by_series(samples):
    out = {}
    for lab, t, v in samples:
        d = dict(lab)
        if is_stale(v):
            continue
        inst = d.get("mountpoint")
        out.setdefault((d["__name__"], d["host"], inst), []).append((t, v))
    return out


def rw_counter(env, name):
    stats = env.api("/api/v1/stats")
    return stats["remote_write"]["r1"][name]


def test_remote_write_retries_refusals_headers_order(env):
    rcv_port = free_port()
    url = "http://127.0.0.1:%d/api/v1/write" % rcv_port
    env.start_server(workers=2, extra={"remote_write": [rw_cfg(url)]})
    s = session(env, "rw-a")
    now = int(time.time() * 1000) - 60_000
    rows, batches = make_rows(1, 12, now)
    send_batches(env, s, batches)
    names = name_map(env, "rw-a", rows)
    check(len(names) == 4, "names from /metrics: %r" % names)
    # The receiver comes up only now: the sender has been retrying on
    # refused connections, and then gets 500, 500, 429, 400 in turn.
    rcv = Receiver(rcv_port)
    try:
        rcv.script = [(500, {}), (500, {}), (429, {"Retry-After": "1"}), (400, {})]
        total = sum(len(v) for v in rows.values())
        def delivered():
            reqs = rcv.snapshot()
            refused = [r for r in reqs if r[1] == 400]
            n = len(rcv.accepted()) + sum(len(sm) for r in refused for _, sm in r[3])
            return n >= total and reqs
        reqs = wait_for(delivered, 60, "every sample accepted or refused", [env.server])
        # Retries: the 500s and the 429 got the same request again; after the
        # 429 the next came at least the Retry-After later.
        for i in range(3):
            check(reqs[i + 1][3] == reqs[i][3], "request %d was not sent again" % i)
            check(reqs[i + 1][0] - reqs[i][0] >= (0.9 if reqs[i][1] == 429 else 0.012),
                  "request %d came again after %.3fs" % (i, reqs[i + 1][0] - reqs[i][0]))
        # The 400 is not retried: the next request carries other samples.
        check(reqs[4][3] != reqs[3][3], "the refused request was sent again")
        refused = [(lab, t, v) for _, st, _, ser in reqs if st == 400
                   for lab, sm in ser for t, v in sm]
        check(refused, "no request was refused")
        for _, _, hdrs, series in reqs:
            h = {k.lower(): v for k, v in hdrs.items()}
            check(h.get("content-encoding") == "snappy", "headers %r" % h)
            check(h.get("content-type") == "application/x-protobuf", "headers %r" % h)
            check(h.get("x-prometheus-remote-write-version") == "0.1.0", "headers %r" % h)
            check(h.get("user-agent", "").startswith("pimon-server/"), "headers %r" % h)
            check(h.get("x-scope-orgid") == "tenant-1", "headers %r" % h)
            for lab, samples in series:
                check([n for n, _ in lab] == sorted(n for n, _ in lab), "labels %r" % (lab,))
                check(dict(lab).get("job") == "pimon", "labels %r" % (lab,))
                check([t for t, _ in samples] == sorted(t for t, _ in samples),
                      "samples out of time order: %r" % samples)
        # Accepted and refused together are every stored sample, once.
        want = expected_samples("rw-a", rows, names)
        got = got_by_series(rcv.accepted() + refused)
        check(sorted(got) == sorted(want), "series %r, want %r" % (sorted(got), sorted(want)))
        for k in want:
            check(sorted(got[k]) == sorted(want[k]), "%r: got %r want %r" % (k, got[k], want[k]))
        wait_for(lambda: rw_counter(env, "samples_failed") == len(refused), 10,
                 "samples_failed", [env.server])
        sent = len([x for x in rcv.accepted() if not is_stale(x[2])])
        check(rw_counter(env, "samples_sent") == sent, "samples_sent")
        check(rw_counter(env, "retries") >= 3, "retries %r" % rw_counter(env, "retries"))
        with urllib.request.urlopen(env.url("/metrics"), timeout=10) as r:
            text = r.read().decode()
        check('pimon_remote_write_samples_sent_total{receiver="r1"} %d' % sent in text,
              "samples_sent on /metrics")
        check('pimon_remote_write_lag_seconds{receiver="r1"}' in text, "lag on /metrics")
    finally:
        s.close()
        rcv.close()


def rw_stats(env, receiver):
    return env.api("/api/v1/stats")["remote_write"][receiver]


def write_secret(env, name, text):
    path = os.path.join(env.dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def check_accepted(env, rcv, receiver, want):
    """rcv accepted every stored sample once, and receiver's counters say
    what rcv saw: nothing failed or retried, bytes_sent the bodies it took."""
    fresh = lambda: [x for x in rcv.accepted() if not is_stale(x[2])]
    wait_for(lambda: len(fresh()) >= sum(map(len, want.values())), 20,
             "the rows at %s" % receiver, [env.server])
    got = got_by_series(fresh())
    check(sorted(got) == sorted(want), "%s: series %r, want %r" % (receiver, sorted(got),
                                                                  sorted(want)))
    for k in want:
        check(sorted(got[k]) == sorted(want[k]), "%s %r: got %r want %r"
              % (receiver, k, got[k], want[k]))

    def agree():
        st = rw_stats(env, receiver)
        reqs = rcv.snapshot()
        ok = [r for r in reqs if 200 <= r[1] < 300]
        seen = {"requests": len(reqs), "retries": 0, "samples_failed": 0,
                "samples_sent": len(fresh()),
                "stale_sent": sum(1 for x in rcv.accepted() if is_stale(x[2])),
                "bytes_sent": sum(int(r[2]["Content-Length"]) for r in ok)}
        return all(st[k] == v for k, v in seen.items()) and (st, seen)
    try:
        st, _ = wait_for(agree, 10, "%s's counters" % receiver, [env.server])
    except TestFailure:
        print("  %s: %r" % (receiver, rw_stats(env, receiver)))
        raise
    check(st["bytes_sent"] > 0 and len(rcv.snapshot()) == len(
        [r for r in rcv.snapshot() if r[1] == 200]), "%s: %r" % (receiver, st))
    return st


def check_refused(env, rcv, receiver, want):
    """rcv answered 401 to every request and got each stored sample once:
    counted as failed, not sent again, nothing counted as sent."""
    refused = lambda: [(lab, t, v) for _, st, _, ser in rcv.snapshot() if st == 401
                       for lab, sm in ser for t, v in sm]
    fresh = lambda: [x for x in refused() if not is_stale(x[2])]
    wait_for(lambda: len(fresh()) >= sum(map(len, want.values())), 20,
             "the rows at %s" % receiver, [env.server])
    reqs = rcv.snapshot()
    check(reqs and all(r[1] == 401 for r in reqs), "%s: statuses %r"
          % (receiver, [r[1] for r in reqs]))
    got = got_by_series(fresh())
    check(sorted(got) == sorted(want), "%s: series %r" % (receiver, sorted(got)))
    for k in want:
        check(sorted(got[k]) == sorted(want[k]), "%s %r: got %r want %r (sent again?)"
              % (receiver, k, got[k], want[k]))

    def agree():
        st = rw_stats(env, receiver)
        seen = {"requests": len(rcv.snapshot()), "retries": 0, "samples_sent": 0,
                "stale_sent": 0, "bytes_sent": 0, "samples_failed": len(refused())}
        return all(st[k] == v for k, v in seen.items()) and st
    try:
        return wait_for(agree, 10, "%s's counters" % receiver, [env.server])
    except TestFailure:
        print("  %s: %r" % (receiver, rw_stats(env, receiver)))
        raise


def thread_names(pid):
    names = set()
    for path in glob.glob("/proc/%d/task/*/comm" % pid):
        try:
            with open(path) as f:
                names.add(f.read().rstrip("\n"))
        except FileNotFoundError:
            pass
    return names


def test_remote_write_bearer_token_and_basic_auth(env):
    token, password = "tok-5f2a9c", "pa:ss w0rd"
    basic = "Basic " + base64.b64encode(("pimon:" + password).encode()).decode()
    rcvs = {"bearer": Receiver(auth="Bearer " + token),
            "bearer_wrong": Receiver(auth="Bearer " + token),
            "basic_auth_receiver": Receiver(auth=basic),
            "basic_wrong": Receiver(auth=basic)}
    s = None
    try:
        # Only the first line counts, its newline (\n or \r\n) trimmed.
        good_tok = write_secret(env, "token", token + "\n")
        bad_tok = write_secret(env, "token.old", "tok-0ld\n")
        good_pw = write_secret(env, "password", password + "\r\nnot this\n")
        bad_pw = write_secret(env, "password.old", "old\n")
        url = lambda r: "http://127.0.0.1:%d/api/v1/write" % r.port
        cfgs = [rw_cfg(url(rcvs["bearer"]), name="bearer", bearer_token_file=good_tok),
                rw_cfg(url(rcvs["bearer_wrong"]), name="bearer_wrong",
                       bearer_token_file=bad_tok),
                rw_cfg(url(rcvs["basic_auth_receiver"]), name="basic_auth_receiver",
                       basic_auth_username="pimon", basic_auth_password_file=good_pw),
                rw_cfg(url(rcvs["basic_wrong"]), name="basic_wrong",
                       basic_auth_username="pimon", basic_auth_password_file=bad_pw)]
        env.start_server(workers=2, extra={"remote_write": cfgs})
        s = session(env, "rw-auth")
        rows, batches = make_rows(10, 4, int(time.time() * 1000) - 30_000)
        send_batches(env, s, batches)
        names = name_map(env, "rw-auth", rows)
        want = expected_samples("rw-auth", rows, names)
        for name in ("bearer", "basic_auth_receiver"):
            check_accepted(env, rcvs[name], name, want)
        for name in ("bearer_wrong", "basic_wrong"):
            check_refused(env, rcvs[name], name, want)
        # /metrics has the new counter, and each remote_write family has its
        # row in the docs (the made-up fields of make_rows have none).
        with urllib.request.urlopen(env.url("/metrics"), timeout=10) as r:
            fams = parse_exposition(r.read().decode())
        got = {l["receiver"]: v for l, v in fams["pimon_remote_write_bytes_sent_total"]["samples"]}
        check(set(got) == set(rcvs) and got["bearer_wrong"] == 0 and got["bearer"] > 0,
              "bytes_sent on /metrics %r" % got)
        check(fams["pimon_remote_write_bytes_sent_total"]["type"] == "counter", "type")
        check_documented({n: f for n, f in fams.items()
                          if n.startswith("pimon_remote_write_")})
        # Each receiver's thread by its name, cut to the kernel's 15 bytes.
        if not WRAPPER:
            comms = thread_names(env.server.pid)
            for comm in ("rw-bearer", "rw-bearer_wrong", "rw-basic_auth_r", "rw-basic_wrong"):
                check(comm in comms, "thread %s not in %r" % (comm, sorted(comms)))
    finally:
        if s:
            s.close()
        for r in rcvs.values():
            r.close()


def make_ca(env, name, server=None):
    """A throwaway CA in env.dir/name (tools/pimon-ca: openssl, EC P-256),
    with a server certificate for 127.0.0.1 when server is given."""
    d = os.path.join(env.dir, name)
    cmds = [["init"]] + ([["server", server, "127.0.0.1"]] if server else [])
    for args in cmds:
        subprocess.run([CA, d] + args, check=True, capture_output=True, timeout=30)
    return d


def test_remote_write_https_with_ca_file(env):
    if not shutil.which("openssl"):
        raise TestSkip("openssl is not installed")
    pki = make_ca(env, "pki", server="localhost")
    other = make_ca(env, "other")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(os.path.join(pki, "localhost.pem"), os.path.join(pki, "localhost.key"))
    token = "tok-tls-77"
    rcvs = {"tls": Receiver(auth="Bearer " + token, tls=tls),
            "tls_wrong_token": Receiver(auth="Bearer " + token, tls=tls),
            "tls_other_ca": Receiver(auth="Bearer " + token, tls=tls)}
    s = None
    try:
        good_tok = write_secret(env, "token", token + "\n")
        bad_tok = write_secret(env, "token.old", "tok-0ld\n")
        url = lambda r: "https://127.0.0.1:%d/api/v1/write" % r.port
        ca, other_ca = os.path.join(pki, "ca.pem"), os.path.join(other, "ca.pem")
        cfgs = [rw_cfg(url(rcvs["tls"]), name="tls", ca_file=ca, bearer_token_file=good_tok),
                rw_cfg(url(rcvs["tls_wrong_token"]), name="tls_wrong_token", ca_file=ca,
                       bearer_token_file=bad_tok),
                rw_cfg(url(rcvs["tls_other_ca"]), name="tls_other_ca", ca_file=other_ca,
                       bearer_token_file=good_tok)]
        env.start_server(workers=2, extra={"remote_write": cfgs})
        s = session(env, "rw-tls")
        rows, batches = make_rows(11, 4, int(time.time() * 1000) - 30_000)
        send_batches(env, s, batches)
        names = name_map(env, "rw-tls", rows)
        want = expected_samples("rw-tls", rows, names)
        check_accepted(env, rcvs["tls"], "tls", want)
        check_refused(env, rcvs["tls_wrong_token"], "tls_wrong_token", want)
        # A certificate the receiver's ca_file did not sign: no request gets
        # through, nothing is counted as sent or failed, it is tried again.
        wait_for(lambda: len(rcvs["tls_other_ca"].errors) >= 2 and
                 rw_stats(env, "tls_other_ca")["retries"] >= 1, 10,
                 "handshakes refused and retried", [env.server])
        st = rw_stats(env, "tls_other_ca")
        check(not rcvs["tls_other_ca"].snapshot(), "a request got through a wrong CA")
        check(st["samples_sent"] == 0 and st["samples_failed"] == 0 and st["bytes_sent"] == 0
              and st["requests"] >= 2, "tls_other_ca %r" % st)
        check(any(isinstance(e, ssl.SSLError) for e in rcvs["tls_other_ca"].errors),
              "handshake errors %r" % rcvs["tls_other_ca"].errors[:3])
        check("certificate" in env.server.log_text(), "the TLS failure was not logged")
    finally:
        if s:
            s.close()
        for r in rcvs.values():
            r.close()


def test_remote_write_exactly_once_across_outage_and_restart(env):
    rcv = Receiver()
    try:
        url = "http://127.0.0.1:%d/api/v1/write" % rcv.port
        extra = {"remote_write": [rw_cfg(url, max_samples_per_send=25)]}
        env.start_server(workers=2, extra=extra)
        now = int(time.time() * 1000) - 120_000
        rows1, b1 = make_rows(2, 10, now)
        s = session(env, "rw-b", run_id=11)
        send_batches(env, s, b1)
        n1 = sum(len(v) for v in rows1.values())
        wait_for(lambda: len(rcv.accepted()) >= n1, 30, "the first rows", [env.server])
        names = name_map(env, "rw-b", rows1)
        # The receiver goes away; more rows are stored; the server is killed
        # and started again during the outage; more rows; then it comes back.
        rcv.down = True
        rows2, b2 = make_rows(3, 10, now + 20_000)
        send_batches(env, s, b2, first_seq=11)
        s.close()
        wait_for(lambda: any(r[1] == 503 for r in rcv.snapshot()), 30, "a refused request",
                 [env.server])
        env.server.kill()
        env.procs.remove(env.server)
        env.start_server(workers=2, extra=extra)
        rows3, b3 = make_rows(4, 6, now + 40_000)
        s = session(env, "rw-b", run_id=12)
        send_batches(env, s, b3)
        rcv.down = False
        rows = {}
        for part in (rows1, rows2, rows3):
            for k, v in part.items():
                rows.setdefault(k, []).extend(v)
        total = sum(len(v) for v in rows.values())
        def fresh():
            return [x for x in rcv.accepted() if not is_stale(x[2])]
        wait_for(lambda: len(fresh()) >= total, 60, "every row after the outage",
                 [env.server])
        want = expected_samples("rw-b", rows, names)
        got = got_by_series(fresh())
        for k in want:
            check(sorted(got.get(k, [])) == sorted(want[k]),
                  "%r: %d samples, want %d (duplicates or gaps)"
                  % (k, len(got.get(k, [])), len(want[k])))
        check(len(fresh()) == total, "%d samples accepted, %d stored" % (len(fresh()), total))
        # The host goes down: a stale marker for each of its series.
        s.close()
        def stale():
            return {(dict(l)["__name__"], dict(l).get("mountpoint")) for l, _, v in rcv.accepted()
                    if is_stale(v)}
        got_stale = wait_for(lambda: len(stale()) >= len(rows) and stale(), 30,
                             "stale markers", [env.server])
        check(got_stale == {(names[(m, f)], i) for m, f, i in rows},
              "stale markers for %r" % got_stale)
    finally:
        rcv.close()


def test_remote_write_follows_a_day_close_while_receiver_is_down(env):
    rcv = Receiver()
    try:
        url = "http://127.0.0.1:%d/api/v1/write" % rcv.port
        extra = {"remote_write": [rw_cfg(url, max_samples_per_send=30)],
                 "storage": {"sweep_seconds": 1, "close_delay": 0}}
        env.start_server(workers=2, extra=extra)
        today = int(time.time() * 1000) // 86400_000 * 86400_000
        rows1, b1 = make_rows(7, 4, today - 120_000)
        s = session(env, "rw-d")
        send_batches(env, s, b1)
        n1 = sum(len(v) for v in rows1.values())
        wait_for(lambda: len(rcv.accepted()) >= n1, 30, "yesterday's first rows", [env.server])
        names = name_map(env, "rw-d", rows1)
        # Away: more of yesterday, then today's rows close yesterday's files.
        rcv.down = True
        rows2, b2 = make_rows(8, 4, today - 60_000)
        rows3, b3 = make_rows(9, 4, min(today + 1000, int(time.time() * 1000)))
        send_batches(env, s, b2 + b3, first_seq=5)
        closed = lambda: glob.glob(os.path.join(env.host_dir("rw-d"), "cpu.*.csv"))
        check(closed(), "yesterday's cpu file was not closed")
        # The housekeeper sweeps every second but keeps the closed files.
        wait_for(lambda: env.api("/api/v1/stats")["storage"]["files_held"] >= 2, 30,
                 "closed files held", [env.server])
        check(closed(), "a closed file a receiver needs was compressed")
        rcv.down = False
        rows = {}
        for part in (rows1, rows2, rows3):
            for k, v in part.items():
                rows.setdefault(k, []).extend(v)
        total = sum(len(v) for v in rows.values())
        fresh = lambda: [x for x in rcv.accepted() if not is_stale(x[2])]
        wait_for(lambda: len(fresh()) >= total, 60, "every row", [env.server])
        want = expected_samples("rw-d", rows, names)
        got = got_by_series(fresh())
        for k in want:
            check(sorted(got.get(k, [])) == sorted(want[k]), "%r: %d samples, want %d"
                  % (k, len(got.get(k, [])), len(want[k])))
        check(len(fresh()) == total, "%d accepted, %d stored" % (len(fresh()), total))
        # Now the receiver is past them, the closed files go.
        wait_for(lambda: not closed(), 30, "the closed files compressed", [env.server])
    finally:
        s.close()
        rcv.close()


def test_remote_write_drops_samples_past_max_age(env):
    rcv = Receiver()
    try:
        url = "http://127.0.0.1:%d/api/v1/write" % rcv.port
        env.start_server(workers=2, extra={"remote_write": [rw_cfg(url, max_age=600.0)]})
        s = session(env, "rw-c")
        now = int(time.time() * 1000) - 60_000
        rows, batches = make_rows(6, 9, now)
        send_batches(env, s, batches)
        old = sum(1 for v in rows.values() for t, _ in v if t < now - 600_000)
        young = sum(1 for v in rows.values() for t, _ in v if t >= now)
        check(old and young, "rows of both ages")
        wait_for(lambda: rw_counter(env, "samples_dropped") == old, 30,
                 "the old samples dropped", [env.server])
        wait_for(lambda: rw_counter(env, "samples_sent") == young, 30, "the young sent",
                 [env.server])
        got = [x for x in rcv.accepted() if not is_stale(x[2])]
        check(len(got) == young and all(t >= now for _, t, _ in got),
              "sent %d samples, want %d young ones" % (len(got), young))
    finally:
        s.close()
        rcv.close()


# --- the real Prometheus ---

def csv_counts(env):
    """Per host, the sorted per-series counts of its committed raw rows."""
    out = {}
    for hostdir in glob.glob(os.path.join(env.data_dir, "hosts", "*")):
        host = os.path.basename(hostdir)
        keys = {m["metric"]: m["instance_key"]
                for m in env.api("/api/v1/hosts/%s/metrics" % host)["metrics"]}
        out[host] = csv_series(hostdir, keys).values()
    return counts(out)


def prom_counts(port, at):
    return counts(prom_series(port, at))


def caught_up(env, sent_before=None):
    st = env.api("/api/v1/stats")["remote_write"]["r1"]
    return st["lag_s"] == 0 and st


def test_remote_write_into_prometheus_exactly(env):
    if not PROMETHEUS:
        raise TestSkip("prometheus is not installed")
    pb_modules()
    sanitized = bool(os.environ.get("PIMON_SANITIZED"))
    outage = 15 if sanitized else 60  # the issue: Prometheus away for 60 s
    port = free_port()
    tsdb = os.path.join(env.dir, "tsdb")
    prom = start_prometheus(env, port, tsdb)
    url = "http://127.0.0.1:%d/api/v1/write" % port
    extra = {"remote_write": [rw_cfg(url, max_samples_per_send=2000)]}
    env.start_server(workers=2, extra=extra)
    agents = [env.start_agent("prom-%d" % i) for i in range(2)]
    env.wait_hosts_up(["prom-0", "prom-1"])
    # Backdated rows of a host without an agent (inside the receiver's
    # out-of-order window).
    now = int(time.time() * 1000)
    rows, batches = make_rows(5, 20, now - 1800_000, step_ms=5000)
    s = session(env, "prom-old")
    send_batches(env, s, batches)
    s.close()
    time.sleep(3 * SLOW)  # rows from the agents in the meantime

    def equal(what):
        def ok():
            st = caught_up(env)
            if not st:
                return False
            want = csv_counts(env)
            got = prom_counts(port, time.time())
            return (got == want) and (want, st)
        try:
            return wait_for(ok, 90, what, [env.server, prom])
        except TestFailure:
            want, got = csv_counts(env), prom_counts(port, time.time())
            for h in sorted(set(want) | set(got)):
                if want.get(h) != got.get(h):
                    print("  %s: csv %r prometheus %r" % (h, want.get(h), got.get(h)))
            raise

    # Stop the agents so the files hold still, then compare.
    for a in agents:
        a.stop()
    want, st = equal("Prometheus to hold what the CSV files hold")
    check(sum(len(v) for v in want.values()) >= 4, "too few series: %r" % want)
    # Prometheus dies; agents send while it is away; pimon-server restarts
    # in the middle; Prometheus comes back on the same TSDB.
    prom.kill()
    env.procs.remove(prom)
    agents = [env.start_agent("prom-%d" % i) for i in range(2)]
    t_end = time.monotonic() + outage / 2
    wait_for(lambda: time.monotonic() > t_end, outage, "half the outage", [env.server])
    env.server.stop()
    env.procs.remove(env.server)
    env.start_server(workers=2, extra=extra)
    t_end = time.monotonic() + outage / 2
    wait_for(lambda: time.monotonic() > t_end, outage, "the rest of the outage",
             [env.server] + agents)
    for a in agents:
        a.stop()
    prom = start_prometheus(env, port, tsdb)
    want2, st2 = equal("Prometheus to catch up exactly after the outage and the restart")
    check(sum(sum(v) for v in want2.values()) > sum(sum(v) for v in want.values()),
          "no rows were stored during the outage")
    check(st2["samples_failed"] == 0 and st2["samples_dropped"] == 0, "stats %r" % st2)


if __name__ == "__main__":
    run_tests(globals())
