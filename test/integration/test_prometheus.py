"""GET /metrics: the Prometheus text exposition of hosts and workers, checked
by promtool, by an independent parser here, and by a real Prometheus."""

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import (FIXTURES, SLOW, T_ACK, T_METRICS, T_WELCOME, Proc, TestSkip, check,
                     frame, free_port, hello, pstr, read_frame, run_tests, wait_for)

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Host metrics are named pimon_<metric>_<field> after the agent's field
# names, spelled the Prometheus way: rates "_per_second", gauges never
# "_total". promtool must find nothing at all to say.


# --- an independent reader of the text format (0.0.4) ---

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def read_labels(line, i):
    """Labels from line[i] (just after '{') to the closing '}': (dict, index after '}')."""
    labels = {}
    while line[i] != "}":
        m = LABEL_NAME.match(line, i)
        check(m and line[m.end():m.end() + 2] == '="', "bad label at %d: %r" % (i, line))
        name, i = m.group(0), m.end() + 2
        value = []
        while line[i] != '"':
            if line[i] == "\\":
                esc = {"\\": "\\", '"': '"', "n": "\n"}.get(line[i + 1])
                check(esc is not None, "bad escape \\%s in %r" % (line[i + 1], line))
                value.append(esc)
                i += 2
            else:
                value.append(line[i])
                i += 1
        check(name not in labels, "label %s twice in %r" % (name, line))
        labels[name] = "".join(value)
        i += 1
        if line[i] == ",":
            i += 1
    return labels, i + 1


def parse_exposition(text):
    """{name: {"help", "type", "samples": [(labels, value)]}} from the text,
    checking what promtool does not: every family has one HELP and one TYPE
    line before its samples, its samples are not interleaved with another
    family's, and no two samples of a family share their labels."""
    check(text.endswith("\n"), "the page does not end with a newline")
    fams, current = {}, None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, name, rest = line[2:6].lower(), *line[7:].split(" ", 1)
            fam = fams.setdefault(name, {"help": None, "type": None, "samples": [], "seen": set()})
            check(fam[kind] is None, "second %s line for %s" % (kind, name))
            check(not fam["samples"], "%s line for %s after its samples" % (kind, name))
            check(current in (None, name) or fam["help"] is None,
                  "%s of %s interleaved with %s" % (kind, name, current))
            fam[kind] = rest
            current = name
            continue
        check(not line.startswith("#") and line.strip(), "unexpected line %r" % line)
        m = METRIC_NAME.match(line)
        check(m, "bad sample line %r" % line)
        name, i = m.group(0), m.end()
        labels = {}
        if line[i] == "{":
            labels, i = read_labels(line, i + 1)
        check(line[i] == " ", "no space before the value in %r" % line)
        value = float(line[i + 1:])
        check(name == current, "sample of %s inside family %s" % (name, current))
        fam = fams[name]
        check(fam["help"] is not None and fam["type"] in ("gauge", "counter"),
              "%s: HELP %r TYPE %r" % (name, fam["help"], fam["type"]))
        key = frozenset(labels.items())
        check(key not in fam["seen"], "duplicate sample %r" % line)
        fam["seen"].add(key)
        fam["samples"].append((labels, value))
    return fams


def sample(fams, name, **labels):
    """The value of the sample of name with exactly these labels, or None."""
    for l, v in fams.get(name, {"samples": []})["samples"]:
        if l == labels:
            return v
    return None


def samples_of(fams, name):
    return fams.get(name, {"samples": []})["samples"]


# --- talking to pimon and promtool ---

def get_metrics(env):
    with urllib.request.urlopen(env.url("/metrics"), timeout=10 * SLOW, context=env.https) as r:
        check(r.headers["Content-Type"] == CONTENT_TYPE,
              "Content-Type %r" % r.headers["Content-Type"])
        return r.read().decode("utf-8")


def scrape(env):
    """The page, parsed; also checked by promtool."""
    text = get_metrics(env)
    fams = parse_exposition(text)
    promtool_check(text)
    return fams


def promtool_check(text):
    if not PROMTOOL:
        raise TestSkip("promtool is not installed")
    out = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60 * SLOW)
    problems = [l for l in (out.stdout + out.stderr).splitlines() if l.strip()]
    check(out.returncode == 0 and not problems,
          "promtool check metrics: status %d:\n%s" % (out.returncode, "\n".join(problems)))


def metrics_frame(seq, groups):
    """A METRICS frame; groups are (metric, inst_key, fields, [(instance, values)])."""
    now = int(time.time() * 1000)
    p = struct.pack(">QH", seq, len(groups))
    for metric, inst_key, fields, rows in groups:
        p += pstr(metric) + pstr(inst_key) + struct.pack(">B", len(fields))
        p += b"".join(pstr(f) for f in fields) + struct.pack(">I", len(rows))
        for instance, values in rows:
            p += struct.pack(">Q", now) + pstr(instance)
            p += b"".join(struct.pack(">d", v) for v in values)
    return frame(T_METRICS, p)


def raw_host(env, name, groups):
    """A session that says HELLO as name and sends one batch; returns the
    socket once the batch is acked (the caller closes it)."""
    s = socket.create_connection(("127.0.0.1", env.port), timeout=10 * SLOW)
    s.sendall(hello(name))
    f = read_frame(s)
    check(f and f[0] == T_WELCOME, "%s: no WELCOME: %r" % (name, f))
    s.sendall(metrics_frame(1, groups))
    while True:
        f = read_frame(s)
        check(f is not None, "%s: closed before the ACK" % name)
        if f[0] == T_ACK:
            check(struct.unpack(">Q", f[1])[0] == 1, "%s: ACK %r" % (name, f[1]))
            return s


def check_workers(fams, before, after):
    """Each worker's sessions and every counter of /api/v1/workers, with a
    value between the readings taken before and after the scrape."""
    check(len(samples_of(fams, "pimon_worker_sessions")) == len(before), "session gauges")
    for w0, w1 in zip(before, after):
        wid = str(w0["id"])
        for key in w0:
            if key in ("id", "sessions"):
                continue
            name = "pimon_worker_%s_total" % key
            check(fams.get(name, {}).get("type") == "counter", "%s is not a counter" % name)
            v = sample(fams, name, worker=wid)
            check(v is not None and w0[key] <= v <= w1[key],
                  "%s{worker=%s} %r, API said %r then %r" % (name, wid, v, w0[key], w1[key]))


# --- tests ---

def test_metrics_two_agents_checked_by_promtool(env):
    # The Pi fixture is at 48.686 °C: over this rule, so its alarm is on the page.
    env.start_server(workers=2, extra={"alarms": [{"name": "warm", "metric": "temp.celsius",
                                                   "value": 40.0}]})
    a = env.start_agent("prom-a")
    pi4 = os.path.join(FIXTURES, "pi4")
    b = env.start_agent("prom-b", proc_root=os.path.join(pi4, "proc"),
                        sys_root=os.path.join(pi4, "sys"))
    env.wait_hosts_up(["prom-a", "prom-b"])
    # CPU usage needs two readings; temp comes only from the Pi fixture.
    wait_for(lambda: "pimon_cpu_usage{host=\"prom-a\"}" in get_metrics(env)
             and "pimon_temp_celsius{host=\"prom-b\"" in get_metrics(env), 15,
             "cpu and temp samples", [env.server, a, b])
    before = env.api("/api/v1/workers")
    fams = scrape(env)
    after = env.api("/api/v1/workers")
    for h in ("prom-a", "prom-b"):
        check(sample(fams, "pimon_host_up", host=h) == 1, "%s not up" % h)
        seen = sample(fams, "pimon_host_last_seen_seconds", host=h)
        check(seen and abs(seen - time.time()) < 30 * SLOW, "%s last seen %r" % (h, seen))
        used = sample(fams, "pimon_disk_used_pct", host=h, mount="/")
        check(used is not None and 0 <= used <= 100, "%s disk used_pct on / %r" % (h, used))
        check(sample(fams, "pimon_agent_dropped_batches", host=h) == 0, "%s dropped" % h)
    check(0 <= sample(fams, "pimon_cpu_usage", host="prom-a") <= 100, "cpu usage")
    check(sample(fams, "pimon_temp_celsius", host="prom-b", zone="cpu-thermal") == 48.686,
          "temp %r" % samples_of(fams, "pimon_temp_celsius"))
    check(sample(fams, "pimon_net_rx_bytes", host="prom-b", iface="eth0") == 987654321,
          "net %r" % samples_of(fams, "pimon_net_rx_bytes"))
    check(fams["pimon_mem_used_pct"]["type"] == "gauge", "mem used_pct type")
    sessions = samples_of(fams, "pimon_worker_sessions")
    check(sorted(l["worker"] for l, _ in sessions) == ["0", "1"], "workers %r" % sessions)
    check(sum(v for _, v in sessions) == 2, "sessions %r" % sessions)
    check_workers(fams, before, after)
    check(sample(fams, "pimon_hosts", state="up") == 2, "hosts up")
    check(sample(fams, "pimon_hosts", state="down") == 0, "hosts down")
    check(samples_of(fams, "pimon_alarm_firing")
          == [({"host": "prom-b", "alarm": "warm", "instance": "cpu-thermal",
                "level": "warning"}, 1)], "alarms %r" % samples_of(fams, "pimon_alarm_firing"))
    # A clean stop: the host goes down, its last values stay.
    check(b.stop() == 0, "prom-b exit status")
    wait_for(lambda: env.hosts()["prom-b"]["state"] == "down", 10, "prom-b down", [env.server])
    fams = scrape(env)
    check(sample(fams, "pimon_host_up", host="prom-b") == 0, "prom-b still up")
    check(sample(fams, "pimon_host_up", host="prom-a") == 1, "prom-a went down too")
    check(sample(fams, "pimon_hosts", state="up") == 1, "hosts up after the stop")
    check(sample(fams, "pimon_hosts", state="down") == 1, "hosts down after the stop")
    check(sample(fams, "pimon_alarm_firing", host="prom-b", alarm="host_down", instance="",
                 level="critical") == 1, "host_down %r" % samples_of(fams, "pimon_alarm_firing"))


def test_metrics_takes_only_get(env):
    env.start_server(workers=1)
    url = env.url("/metrics")
    for method in ("POST", "HEAD"):
        req = urllib.request.Request(url, data=b"x" if method == "POST" else None,
                                     method=method)
        try:
            urllib.request.urlopen(req, timeout=10 * SLOW, context=env.https)
            check(False, "%s /metrics succeeded" % method)
        except urllib.error.HTTPError as e:
            check(e.code == 405, "%s /metrics: %d" % (method, e.code))
            check(e.headers["Allow"] == "GET", "%s: Allow %r" % (method, e.headers["Allow"]))
            if method == "POST":
                body = json.loads(e.read().decode())
                check(body["status"] == 405 and body["error"], "%s body %r" % (method, body))
    # The server answers GET afterwards, with no hosts yet.
    fams = scrape(env)
    check(samples_of(fams, "pimon_host_up") == [], "hosts before any agent")
    check(sample(fams, "pimon_hosts", state="up") == 0, "pimon_hosts")


def test_metrics_escapes_labels_and_drops_clashes(env):
    # Acks right after each write (no sync timer), and no timeouts meanwhile.
    env.start_server(workers=2, timeout=60.0, extra={"sync": "none"})
    # Any text but control characters (the protocol's rule) reaches a label.
    odd = 'we"ird\\path line two, caf\u00e9 \U0001F353'
    groups = [
        ("disk", "mount", ["used_pct", "total_bytes"],
         [("/", [0.1 + 0.2, 1e300]), ("/mnt/" + odd, [-2.5, 123456789012345678.0])]),
        ("gadget", "slot", ["level"], [("a", [7.0]), ("", [8.0])]),
        ("mem", "", ["total_bytes", "free_bytes"], [("", [float("nan"), 5.0])]),
        # These fall on the server's own names, or on a name already taken
        # by another metric and field: left out, the page stays valid.
        ("host", "", ["up", "last_seen_seconds"], [("", [42.0, 43.0])]),
        ("worker", "", ["sessions", "frames_in_total"], [("", [44.0, 45.0])]),
        ("load", "", ["one_x"], [("", [1.5])]),
        ("load_one", "", ["x"], [("", [46.0])]),
    ]
    s = raw_host(env, "odd-host", groups)
    try:
        fams = scrape(env)
        worker = str(env.hosts()["odd-host"]["worker"])
    finally:
        s.close()
    check(sample(fams, "pimon_disk_used_pct", host="odd-host", mount="/") == 0.1 + 0.2,
          "doubles must read back exactly: %r" % samples_of(fams, "pimon_disk_used_pct"))
    check(sample(fams, "pimon_disk_total_bytes", host="odd-host", mount="/") == 1e300, "1e300")
    check(sample(fams, "pimon_disk_used_pct", host="odd-host", mount="/mnt/" + odd) == -2.5,
          "escaped mount: %r" % samples_of(fams, "pimon_disk_used_pct"))
    check(sample(fams, "pimon_disk_total_bytes", host="odd-host", mount="/mnt/" + odd)
          == 123456789012345678.0, "big value %r" % samples_of(fams, "pimon_disk_total_bytes"))
    check(sample(fams, "pimon_gadget_level", host="odd-host", instance_name="a") == 7.0,
          "instance_name %r" % samples_of(fams, "pimon_gadget_level"))
    check(sample(fams, "pimon_gadget_level", host="odd-host", instance_name="") == 8.0,
          "empty instance %r" % samples_of(fams, "pimon_gadget_level"))
    check("pimon_mem_total_bytes" not in fams, "a null value was exported")
    check(sample(fams, "pimon_mem_free_bytes", host="odd-host") == 5.0, "mem free")
    check(samples_of(fams, "pimon_host_up") == [({"host": "odd-host"}, 1.0)],
          "pimon_host_up %r" % samples_of(fams, "pimon_host_up"))
    check(fams["pimon_host_last_seen_seconds"]["samples"][0][1] > 1e9, "last seen")
    check((sample(fams, "pimon_worker_sessions", worker=worker) or 0) >= 1,
          "sessions %r, odd-host on worker %s" % (samples_of(fams, "pimon_worker_sessions"),
                                                  worker))
    check(sample(fams, "pimon_worker_sessions", host="odd-host") is None, "clash exported")
    check(sample(fams, "pimon_worker_frames_in_total", host="odd-host") is None,
          "counter clash exported")
    check(samples_of(fams, "pimon_load_one_x") == [({"host": "odd-host"}, 1.5)],
          "first of two alike names %r" % samples_of(fams, "pimon_load_one_x"))


def test_metrics_three_hundred_hosts(env):
    env.start_server(workers=4, timeout=120.0, extra={"sync": "none"})
    n = 300
    socks = []
    try:
        for i in range(n):
            socks.append(raw_host(env, "many-%03d" % i, [
                ("mem", "", ["total_bytes", "used_pct"], [("", [float(1 << 30) + i, i / 3.0])]),
                ("disk", "mount", ["used_pct"], [("/", [float(i)]), ("/boot", [i + 0.5])]),
            ]))
        text = get_metrics(env)
        fams = parse_exposition(text)
        promtool_check(text)
    finally:
        for s in socks:
            s.close()
    check(len(text) > 64 * 1024, "page of %d bytes" % len(text))
    check(sample(fams, "pimon_hosts", state="up") == n, "hosts up")
    check(len(samples_of(fams, "pimon_host_up")) == n, "host_up samples")
    check(len(samples_of(fams, "pimon_disk_used_pct")) == 2 * n, "disk samples")
    for i in range(n):
        h = "many-%03d" % i
        check(sample(fams, "pimon_mem_total_bytes", host=h) == float(1 << 30) + i, h)
        check(sample(fams, "pimon_mem_used_pct", host=h) == i / 3.0, h)
        check(sample(fams, "pimon_disk_used_pct", host=h, mount="/boot") == i + 0.5, h)
    check(sum(v for _, v in samples_of(fams, "pimon_worker_sessions")) == n, "sessions")


def prom_get(port, path, **params):
    url = "http://127.0.0.1:%d%s" % (port, path)
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10 * SLOW) as r:
        doc = json.loads(r.read().decode())
    check(doc.get("status") == "success", "%s: %r" % (path, doc))
    return doc["data"]


def prom_value(port, query):
    """The value of a one-series instant query, or None while there is none."""
    result = prom_get(port, "/api/v1/query", query=query)["result"]
    check(len(result) <= 1, "%s: %r" % (query, result))
    return (result[0]["metric"], result[0]["value"][1]) if result else None


def pimon_target(port):
    """The pimon target once Prometheus has scraped it: health and last error."""
    targets = prom_get(port, "/api/v1/targets")["activeTargets"]
    t = [t for t in targets if t["labels"].get("job") == "pimon"]
    return t and t[0]["health"] != "unknown" and t[0]


def test_prometheus_scrapes_pimon(env):
    if not PROMETHEUS:
        raise TestSkip("prometheus is not installed")
    env.start_server(workers=2)
    a = env.start_agent("prom-a")
    env.wait_hosts_up(["prom-a"])
    port = free_port()
    cfg = os.path.join(env.dir, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: pimon\n    scrape_interval: 1s\n"
                "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % env.http_port)
    prom = Proc("prometheus", [PROMETHEUS, "--config.file=" + cfg,
                               "--storage.tsdb.path=" + os.path.join(env.dir, "tsdb"),
                               "--web.listen-address=127.0.0.1:%d" % port], env.dir)
    env.procs.append(prom)
    procs = [env.server, a, prom]
    target = wait_for(lambda: pimon_target(port), 60, "Prometheus to scrape pimon", procs)
    check(target["health"] == "up" and target["lastError"] == "",
          "scrape failed: %s %r" % (target["health"], target["lastError"]))
    got = wait_for(lambda: prom_value(port, 'pimon_mem_total_bytes{host="prom-a"}'), 30,
                   "pimon_mem_total_bytes in Prometheus", procs)
    labels, value = got
    check(labels.get("job") == "pimon" and labels.get("instance") == "127.0.0.1:%d"
          % env.http_port, "labels %r" % labels)
    want = env.hosts()["prom-a"]["latest"]["mem"]["total_bytes"]
    check(float(value) == want, "Prometheus has %r, the API %r" % (value, want))
    up = wait_for(lambda: prom_value(port, 'pimon_host_up{host="prom-a"}'), 30,
                  "pimon_host_up in Prometheus", procs)
    check(up[1] == "1", "pimon_host_up %r" % (up,))
    # Every worker counter arrived as a series too.
    workers = env.api("/api/v1/workers")
    series = prom_value(port, 'count(pimon_worker_frames_in_total{job="pimon"})')
    check(series and int(series[1]) == len(workers), "frames_in series %r" % (series,))
    # The query docs/PROMETHEUS.md gives for live hosts only.
    live = prom_value(port, 'pimon_mem_total_bytes and on (host) pimon_host_up == 1')
    check(live and float(live[1]) == want, "live hosts query %r" % (live,))
    sessions = prom_value(port, "sum(pimon_worker_sessions)")
    check(sessions and float(sessions[1]) == 1, "sessions %r" % (sessions,))


if __name__ == "__main__":
    run_tests(globals())
