"""What a peer sends is checked at the protocol boundary, so that what the
server keeps can always be shown as JSON and read back: text that is not
UTF-8 (or holds control characters), names outside their rule, names the
server keeps for its own files, and values JSON has no number for. Each bad
frame gets BYE with its reason and closes only its session."""

import json
import math
import os
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import (SLOW, T_ACK, T_BYE, T_METRICS, T_WELCOME, check, frame, read_frame,
                     run_tests, wait_closed, wait_for)

T_ALARM, T_ALARM_ACK = 9, 10


def bstr(b):
    """A wire string of raw bytes."""
    return struct.pack(">B", len(b)) + b


def hello_bytes(name=b"h1", version=b"test", os_=b"TestOS", kernel=b"6.0", model=b"",
                boot=b"boot-1", run_id=1):
    """A HELLO whose every text field may hold any bytes."""
    p = bstr(name) + bstr(version) + struct.pack(">I", 0)
    p += bstr(os_) + bstr(kernel) + bstr(model) + bstr(boot)
    p += struct.pack(">QQH", 100, run_id, 0)
    return frame(1, p)


def group(metric, fields, rows, inst_key=b""):
    """One METRICS group: rows are (time_ms, instance bytes, [values])."""
    p = bstr(metric) + bstr(inst_key) + struct.pack(">B", len(fields))
    p += b"".join(bstr(f) for f in fields) + struct.pack(">I", len(rows))
    for t, inst, values in rows:
        p += struct.pack(">Q", t) + bstr(inst) + b"".join(struct.pack(">d", v) for v in values)
    return p


def metrics(seq, *groups):
    return frame(T_METRICS, struct.pack(">QH", seq, len(groups)) + b"".join(groups))


def alarm(seq, name, message):
    p = struct.pack(">QQBB", seq, int(time.time() * 1000), 2, 1)
    return frame(T_ALARM, p + bstr(name) + bstr(message))


def session(env, name=b"h1", **kw):
    """A socket that has said HELLO and got WELCOME."""
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(hello_bytes(name, **kw))
    f = read_frame(s)
    check(f is not None and f[0] == T_WELCOME, "no WELCOME for %r: %r" % (name, f))
    return s


def wait_frame(s, ftype, timeout=10):
    """The next frame of ftype, other frames skipped; None at the end."""
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        f = read_frame(s, timeout=timeout)
        if f is None or f[0] == ftype:
            return f
    return None


def refused(s, why):
    """The session gets BYE naming why, then is closed."""
    f = wait_frame(s, T_BYE)
    check(f is not None and why.encode() in f[1], "wanted BYE %r, got %r" % (why, f))
    check(wait_closed(s), "the session was not closed after BYE")
    s.close()


def get(env, path):
    """(status, body) of GET path; the body parsed as JSON when it is."""
    try:
        with urllib.request.urlopen(env.url(path), timeout=10 * SLOW) as r:
            body = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        body, status = e.read(), e.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode("utf-8", "replace")


def everything_renders(env):
    """Every listing answers 200 with valid JSON, and /metrics is valid text."""
    env.server.check_alive()
    for path in ["/api/v1/hosts", "/api/v1/alarms", "/api/v1/stats", "/api/v1/workers"]:
        status, body = get(env, path)
        check(status == 200 and not isinstance(body, str), "%s: %d %r" % (path, status, body))
    status, hosts = get(env, "/api/v1/hosts")
    for h in hosts:
        status, body = get(env, "/api/v1/hosts/%s" % h["name"])
        check(status == 200, "host %s: %d %r" % (h["name"], status, body))
        status, body = get(env, "/api/v1/hosts/%s/metrics" % h["name"])
        check(status == 200, "metrics of %s: %d %r" % (h["name"], status, body))
    with urllib.request.urlopen(env.url("/metrics"), timeout=10 * SLOW) as r:
        text = r.read()
    text.decode("utf-8")  # raises on anything but UTF-8
    promtool = "/usr/bin/promtool"
    if os.path.exists(promtool):
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           timeout=30 * SLOW)
        check(p.returncode == 0, "promtool: %s" % p.stdout.decode() + p.stderr.decode())


def test_hello_text_that_is_not_utf8_is_a_bad_frame(env):
    """Each HELLO text field with bytes JSON cannot carry: BYE, a log line, and
    the server keeps answering (today: the next /api/v1/hosts crashed it)."""
    env.start_server(workers=2)
    witness = env.start_agent("witness")
    env.wait_hosts_up(["witness"])
    cases = [("version", {"version": b"0.1\xff"}), ("os", {"os_": b"Linux\xc0\xaf"}),
             ("kernel", {"kernel": b"6.1\n"}), ("model", {"model": b"Pi \xed\xa0\x80"}),
             ("boot id", {"boot": b"\x1b[31mred"})]
    for what, kw in cases:
        s = socket.create_connection(("127.0.0.1", env.port))
        s.sendall(hello_bytes(b"liar", **kw))
        refused(s, "%s is not UTF-8 text" % what)
        wait_for(lambda: "bad frame: %s is not UTF-8 text" % what in env.server.log_text(), 5,
                 "the log line for %s" % what, [env.server])
        everything_renders(env)
    status, hosts = get(env, "/api/v1/hosts")
    check([h["name"] for h in hosts] == ["witness"], "hosts %r" % hosts)
    check(not os.path.exists(os.path.join(env.data_dir, "hosts", "liar")), "liar was stored")
    # A name with a byte outside the host-name rule, and one that is not text.
    for name in (b"pi\xc3\xa9", b"pi\xff"):
        s = socket.create_connection(("127.0.0.1", env.port))
        s.sendall(hello_bytes(name))
        refused(s, "invalid host name")
    # Good UTF-8 in every text field is taken and shown as it was sent.
    s = session(env, b"polyglot", version="0.1 \u2013 b\u00eata".encode(),
                model="Raspberry Pi \U0001F353".encode())
    wait_for(lambda: "polyglot" in [h["name"] for h in get(env, "/api/v1/hosts")[1]], 10,
             "polyglot listed", [env.server])
    host = get(env, "/api/v1/hosts/polyglot")[1]
    check(host["version"] == "0.1 \u2013 b\u00eata" and host["model"] == "Raspberry Pi \U0001F353",
          "host %r" % host)
    s.close()
    everything_renders(env)
    witness.check_alive()


def test_instance_names_and_alarm_messages_are_text(env):
    """An instance or an alarm message that is not text closes that session
    with BYE; the stored rows before it, and other hosts, are unaffected."""
    env.start_server(workers=2)
    witness = env.start_agent("witness")
    env.wait_hosts_up(["witness"])
    now = int(time.time() * 1000)
    for inst, why in [(b"/mnt/\xff", "instance is not UTF-8 text"),
                      (b"eth0\nx", "instance is not UTF-8 text"),
                      (b"/mnt/\xe2\x82", "instance is not UTF-8 text")]:
        s = session(env, b"h1")
        s.sendall(metrics(1, group(b"disk", [b"used"], [(now, inst, [1.0])], b"mount")))
        refused(s, why)
        everything_renders(env)
    for message in (b"fan \xe9tait", b"line one\nline two", b"\x07bell"):
        s = session(env, b"h2")
        s.sendall(alarm(1, b"fan", message))
        refused(s, "alarm message is not UTF-8 text")
        everything_renders(env)
    status, alarms = get(env, "/api/v1/alarms")
    check(status == 200 and not [a for a in alarms["active"] if a["name"] == "fan"],
          "a refused alarm is active: %r" % alarms["active"])
    check(not os.path.exists(os.path.join(env.data_dir, "hosts", "h1", "disk.csv")),
          "a refused batch was stored")
    witness.check_alive()


def test_stored_instances_and_values_read_back(env):
    """Instances with CSV's own characters and UTF-8, and values JSON cannot
    hold, are stored and read back exactly: a bucket of three 1e308 samples
    is a point of 1e308 (today: the sum overflowed and the point vanished),
    an infinity reads back as null, and 1/3 keeps all its digits."""
    env.start_server(workers=1)
    s = session(env, b"h1")
    t0 = int(time.time() * 1000) - 60000
    insts = ['/mnt/a,b', '/mnt/"quoted"', '/srv/caf\u00e9 \U0001F353', ' lead and trail ']
    rows = []
    for k, inst in enumerate(insts):
        for i in range(3):
            rows.append((t0 + k * 10 + i, inst.encode(), [1e308, 1.0 / 3, -0.0]))
    rows.append((t0 + 100, insts[0].encode(), [math.inf, 5e-324, -1.7e308]))
    rows.append((t0 + 101, insts[0].encode(), [math.nan, 2.0, 1.7e308]))
    s.sendall(metrics(1, group(b"disk", [b"big", b"third", b"zero"], rows, b"mount")))
    f = wait_frame(s, T_ACK)
    check(f is not None and struct.unpack(">Q", f[1])[0] == 1, "not acked: %r" % (f,))
    status, ms = get(env, "/api/v1/hosts/h1/metrics")
    check(status == 200, "metrics %d %r" % (status, ms))
    disk = [m for m in ms["metrics"] if m["metric"] == "disk"]
    check(disk and sorted(disk[0]["instances"]) == sorted(insts),
          "instances %r" % (disk and disk[0]["instances"]))

    def series(inst, field, points):
        q = urllib.parse.urlencode({"instance": inst, "field": field, "from": t0,
                                    "to": t0 + 200, "points": points})
        status, body = get(env, "/api/v1/hosts/h1/series/disk?" + q)
        check(status == 200, "series %s %s: %d %r" % (inst, field, status, body))
        return body["points"]
    for inst in insts:
        # One bucket over the instance's three rows: the mean of 1e308 thrice.
        pts = series(inst, "big", 1)
        check(len(pts) == 1, "%r: %r" % (inst, pts))
        want = 1e308 if inst != insts[0] else None  # an infinity makes the first one null
        if inst == insts[0]:
            check(pts[0][1] is None and pts[0][3] is None, "%r: %r" % (inst, pts))
        else:
            check(pts[0][1:] == [want, want, want], "%r: %r" % (inst, pts))
        pts = series(inst, "third", 201)
        check(pts[0][1] == 1.0 / 3, "%r: 1/3 read back as %r" % (inst, pts[0][1]))
        pts = series(inst, "zero", 201)
        check(all(p[1] == 0.0 and math.copysign(1, p[1]) < 0 for p in pts[:3]),
              "%r: -0.0 read back as %r" % (inst, pts[:3]))
    pts = series(insts[0], "third", 201)
    check([p[1] for p in pts][-2:] == [5e-324, 2.0], "subnormal: %r" % pts[-2:])
    pts = series(insts[0], "zero", 201)
    check([p[1] for p in pts][-2:] == [-1.7e308, 1.7e308], "extremes: %r" % pts[-2:])
    pts = series(insts[0], "big", 201)
    check(pts[-1][0] == t0 + 100 and pts[-1][1] is None, "inf: %r" % pts[-1:])
    # The row of NaN counts as a row with no value.
    check(all(p[0] != t0 + 101 for p in pts), "a NaN made a point: %r" % pts[-2:])
    s.close()


def test_reserved_and_clashing_names_are_refused(env):
    """A metric named after the server's own files (alarms, events) or a
    group whose columns clash is refused with a BYE naming the rule; the
    host's alarms.csv and events.csv stay the server's."""
    env.start_server(workers=1)
    now = int(time.time() * 1000)
    s = session(env, b"h1")
    s.close()
    hdir = os.path.join(env.data_dir, "hosts", "h1")
    wait_for(lambda: os.path.exists(os.path.join(hdir, "events.csv")), 10, "events.csv",
             [env.server])
    events_before = open(os.path.join(hdir, "events.csv")).readline()
    cases = [
        (group(b"alarms", [b"a"], [(now, b"", [1.0])]), "metric name alarms is reserved"),
        (group(b"events", [b"a"], [(now, b"", [1.0])]), "metric name events is reserved"),
        (group(b"cpu", [b"time"], [(now, b"", [1.0])]), 'field name may not be "time"'),
        (group(b"cpu", [b"a", b"a"], [(now, b"", [1.0, 2.0])]), "field a appears twice"),
        (group(b"disk", [b"mount"], [(now, b"/", [1.0])], b"mount"),
         "field mount repeats the instance key"),
        (group(b"disk", [b"a"], [(now, b"/", [1.0])], b"time"), 'instance key may not be "time"'),
        (group(b"Cpu", [b"a"], [(now, b"", [1.0])]), "metric is outside [a-z0-9_]{1,32}"),
    ]
    for g, why in cases:
        s = session(env, b"h1")
        s.sendall(metrics(1, g))
        refused(s, why)
        wait_for(lambda: "bad frame: " + why in env.server.log_text(), 5, "log: " + why,
                 [env.server])
    check(open(os.path.join(hdir, "events.csv")).readline() == events_before,
          "events.csv was taken over")
    check(not [n for n in os.listdir(hdir) if n.endswith(".old")],
          "a file was moved aside: %r" % os.listdir(hdir))
    everything_renders(env)


if __name__ == "__main__":
    run_tests(globals())
