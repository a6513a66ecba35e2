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

from harness import (BUILD, FIXTURES, SLOW, T_ACK, T_METRICS, T_WELCOME, Proc, TestSkip, check,
                     frame, free_port, hello, pstr, read_frame, run_tests, wait_for)

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Host metrics are named by server/promname.c after node_exporter, as
# docs/PROMETHEUS.md lists them: base units as suffixes, shares as ratios,
# counters "_total", CPU modes as a label. promtool must find nothing at
# all to say.

# Families a down host keeps: values it sent last are not shown as fresh.
DOWN_FAMILIES = {"pimon_host_up", "pimon_host_last_seen_seconds", "pimon_host_info",
                 "pimon_alarm_firing"}
CPU_MODES = {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}


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


def check_naming(fams):
    """What the naming guide asks of every family on the page, and the
    names of old pages that must be gone."""
    for name, fam in fams.items():
        check(name.endswith("_total") == (fam["type"] == "counter"),
              "%s is a %s" % (name, fam["type"]))
        check("_pct" not in name and not name.endswith("_all"), "old-style name %s" % name)
        check(not name.endswith("_duration_per_second"), "a duration read as a rate: %s" % name)
        for labels, _ in fam["samples"]:
            check("instance" not in labels, "%s has an instance label: %r" % (name, labels))
            check(not any(re.search(r":[0-9]+$", v) for v in labels.values()),
                  "%s has a pid in a label: %r" % (name, labels))
    for old in ("pimon_load_load1", "pimon_load_all", "pimon_cpu_user", "pimon_mem_used_pct",
                "pimon_net_rx_bytes", "pimon_procs_cpu_pct", "pimon_procs_totals_total"):
        check(old not in fams, "old family %s is still there" % old)


def check_documented(fams):
    """Every family on the page has its row in docs/PROMETHEUS.md (the
    worker, storage, check and remote_write counter families by their
    patterns)."""
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "PROMETHEUS.md")) as f:
        doc = f.read()
    for name in fams:
        if re.match(r"pimon_(worker|storage|check)_|pimon_remote_write_\w+_total$", name):
            continue
        check("| `%s` |" % name in doc, "%s is not in docs/PROMETHEUS.md" % name)


def host_families(fams, host):
    """Names of the families with a sample of host."""
    return {n for n, f in fams.items() if any(l.get("host") == host for l, _ in f["samples"])}


# --- tests ---

def test_metrics_two_agents_checked_by_promtool(env):
    # The Pi fixture is at 48.686 °C: over this rule, so its alarm is on the page.
    # Every collector, procs too: its per-process rows must stay off the page.
    env.start_server(workers=2, extra={
        "alarms": [{"name": "warm", "metric": "temp.celsius", "value": 40.0}],
        "collect": {"metrics": ["cpu", "mem", "disk", "load", "temp", "net", "users", "procs",
                                "pi"]}})
    # A check with perfdata in seconds, bytes and percent.
    a = env.start_agent("prom-a", extra={"checks": [
        {"name": "web", "interval": 1.0,
         "command": ["/bin/sh", "-c", "echo 'OK - fine | time=0.25s size=2KB pl=5%'"]}]})
    pi4 = os.path.join(FIXTURES, "pi4")
    b = env.start_agent("prom-b", proc_root=os.path.join(pi4, "proc"),
                        sys_root=os.path.join(pi4, "sys"))
    env.wait_hosts_up(["prom-a", "prom-b"])
    # CPU usage needs two readings; temp comes only from the Pi fixture.
    wait_for(lambda: all(s in get_metrics(env) for s in (
             "pimon_cpu_usage_ratio{host=\"prom-a\"}", "pimon_temperature_celsius{host=\"prom-b\"",
             "pimon_check_web_time_seconds{host=\"prom-a\"}", "pimon_processes{host=\"prom-a\"}",
             "pimon_network_receive_bytes_total{host=\"prom-b\"")), 20 * SLOW,
             "cpu, temp, check and net samples", [env.server, a, b])
    before = env.api("/api/v1/workers")
    fams = scrape(env)
    after = env.api("/api/v1/workers")
    for h in ("prom-a", "prom-b"):
        check(sample(fams, "pimon_host_up", host=h) == 1, "%s not up" % h)
        seen = sample(fams, "pimon_host_last_seen_seconds", host=h)
        check(seen and abs(seen - time.time()) < 30 * SLOW, "%s last seen %r" % (h, seen))
        used = sample(fams, "pimon_filesystem_used_ratio", host=h, mountpoint="/")
        check(used is not None and 0 <= used <= 1, "%s filesystem used on / %r" % (h, used))
        check(sample(fams, "pimon_agent_dropped_batches_total", host=h) == 0, "%s dropped" % h)
        # HELLO's facts as an info metric, as the API shows them.
        facts = env.hosts()[h]
        info = {"host": h, "os": facts["os"], "kernel": facts["kernel"],
                "model": facts["model"], "agent_version": facts["version"]}
        check(sample(fams, "pimon_host_info", **info) == 1,
              "%s info %r" % (h, samples_of(fams, "pimon_host_info")))
        # Boot time and uptime agree with each other and the scrape's time.
        boot = sample(fams, "pimon_host_boot_time_seconds", host=h)
        up_s = sample(fams, "pimon_host_uptime_seconds", host=h)
        check(boot and up_s is not None and abs(boot + up_s - time.time()) < 30 * SLOW,
              "%s boot %r uptime %r" % (h, boot, up_s))
        modes = {l["mode"] for l, _ in samples_of(fams, "pimon_cpu_mode_ratio")
                 if l["host"] == h}
        check(h == "prom-b" or modes == CPU_MODES, "%s cpu modes %r" % (h, modes))
        check(0 <= (sample(fams, "pimon_load1", host=h) or 0) < 1000, "%s load1" % h)
    with open("/proc/uptime") as f:
        booted = time.time() - float(f.read().split()[0])
    check(abs(sample(fams, "pimon_host_boot_time_seconds", host="prom-a") - booted) < 30 * SLOW,
          "prom-a boot time against /proc/uptime")
    check_naming(fams)
    check_documented(fams)
    check(0 <= sample(fams, "pimon_cpu_usage_ratio", host="prom-a") <= 1, "cpu usage")
    check(sample(fams, "pimon_temperature_celsius", host="prom-b", zone="cpu-thermal") == 48.686,
          "temp %r" % samples_of(fams, "pimon_temperature_celsius"))
    check(sample(fams, "pimon_network_receive_bytes_total", host="prom-b", device="eth0")
          == 987654321, "net %r" % samples_of(fams, "pimon_network_receive_bytes_total"))
    check(fams["pimon_network_receive_bytes_total"]["type"] == "counter", "rx bytes type")
    check(fams["pimon_memory_used_ratio"]["type"] == "gauge", "memory used type")
    check(sample(fams, "pimon_processes", host="prom-a") >= 1, "processes")
    check(not any("proc" in n and n != "pimon_processes" and not n.startswith("pimon_processes_")
                  for n in fams), "per-process families %r" % [n for n in fams if "proc" in n])
    # The check: status a code, its duration in seconds (not a rate), perfdata by unit.
    check(sample(fams, "pimon_check_web_status", host="prom-a") == 0, "check status")
    dur = sample(fams, "pimon_check_web_duration_seconds", host="prom-a")
    check(dur is not None and 0 <= dur < 30 * SLOW, "check duration %r" % dur)
    check(sample(fams, "pimon_check_web_time_seconds", host="prom-a") == 0.25, "perf time")
    check(sample(fams, "pimon_check_web_size_bytes", host="prom-a") == 2048, "perf size")
    check(sample(fams, "pimon_check_web_pl_ratio", host="prom-a") == 5 * 0.01, "perf pl")
    # Uptime advances between scrapes; boot time does not move.
    up_a = sample(fams, "pimon_host_uptime_seconds", host="prom-a")
    boot_a = sample(fams, "pimon_host_boot_time_seconds", host="prom-a")
    later = wait_for(lambda: (lambda f: f if sample(f, "pimon_host_uptime_seconds",
                                                    host="prom-a") > up_a + 1 else None)(
        parse_exposition(get_metrics(env))), 10 * SLOW, "uptime to advance", [env.server])
    check(sample(later, "pimon_host_boot_time_seconds", host="prom-a") == boot_a,
          "boot time moved")
    sessions = samples_of(fams, "pimon_worker_sessions")
    check(sorted(l["worker"] for l, _ in sessions) == ["0", "1"], "workers %r" % sessions)
    check(sum(v for _, v in sessions) == 2, "sessions %r" % sessions)
    check_workers(fams, before, after)
    check(sample(fams, "pimon_hosts", state="up") == 2, "hosts up")
    check(sample(fams, "pimon_hosts", state="down") == 0, "hosts down")
    check(samples_of(fams, "pimon_alarm_firing")
          == [({"host": "prom-b", "alarm": "warm", "alarm_instance": "cpu-thermal",
                "level": "warning"}, 1)], "alarms %r" % samples_of(fams, "pimon_alarm_firing"))
    # A clean stop: the host goes down; only its state, facts and alarms stay.
    check(b.stop() == 0, "prom-b exit status")
    wait_for(lambda: env.hosts()["prom-b"]["state"] == "down", 10, "prom-b down", [env.server])
    fams = scrape(env)
    check(sample(fams, "pimon_host_up", host="prom-b") == 0, "prom-b still up")
    check(sample(fams, "pimon_host_up", host="prom-a") == 1, "prom-a went down too")
    check(sample(fams, "pimon_hosts", state="up") == 1, "hosts up after the stop")
    check(sample(fams, "pimon_hosts", state="down") == 1, "hosts down after the stop")
    check(sample(fams, "pimon_alarm_firing", host="prom-b", alarm="host_down",
                 alarm_instance="", level="critical") == 1,
          "host_down %r" % samples_of(fams, "pimon_alarm_firing"))
    check(host_families(fams, "prom-b") == DOWN_FAMILIES,
          "a down host's families %r" % sorted(host_families(fams, "prom-b")))
    check("pimon_temperature_celsius" not in fams, "a down host's value exported")
    check(sample(fams, "pimon_host_info", **{"host": "prom-b", "os": env.hosts()["prom-b"]["os"],
                 "kernel": env.hosts()["prom-b"]["kernel"],
                 "model": env.hosts()["prom-b"]["model"],
                 "agent_version": env.hosts()["prom-b"]["version"]}) == 1, "down host info")


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
        # A metric the schema does not know, and a field it does not know of
        # a known metric: exported as sent, gauges named after them.
        ("gadget", "slot", ["level"], [("a", [7.0]), ("", [8.0])]),
        ("load", "", ["one_x"], [("", [1.5])]),
        ("mem", "", ["total_bytes", "free_bytes"], [("", [float("nan"), 5.0])]),
        # Two checks whose names fall on one family: the first is kept, the
        # page stays valid.
        ("check_web", "", ["page_status"], [("", [1.0])]),
        ("check_web_page", "", ["status"], [("", [2.0])]),
        # Two perfdata fields of one check on one name ("x" in s and
        # "x_seconds" without a unit): the first is kept.
        ("check_dual", "", ["x_s", "x_seconds"], [("", [3.0, 4.0])]),
    ]
    s = raw_host(env, "odd-host", groups)
    try:
        fams = scrape(env)
        worker = str(env.hosts()["odd-host"]["worker"])
    finally:
        s.close()
    used = "pimon_filesystem_used_ratio"
    size = "pimon_filesystem_size_bytes"
    check(sample(fams, used, host="odd-host", mountpoint="/") == (0.1 + 0.2) * 0.01,
          "doubles must read back exactly: %r" % samples_of(fams, used))
    check(sample(fams, size, host="odd-host", mountpoint="/") == 1e300, "1e300")
    check(sample(fams, used, host="odd-host", mountpoint="/mnt/" + odd) == -2.5 * 0.01,
          "escaped mount: %r" % samples_of(fams, used))
    check(sample(fams, size, host="odd-host", mountpoint="/mnt/" + odd)
          == 123456789012345678.0, "big value %r" % samples_of(fams, size))
    check(fams.get("pimon_gadget_level", {}).get("type") == "gauge", "unknown metric's type")
    check(sorted(samples_of(fams, "pimon_gadget_level"), key=lambda x: x[1])
          == [({"host": "odd-host", "instance_name": "a"}, 7.0),
             ({"host": "odd-host", "instance_name": ""}, 8.0)],
          "unknown metric %r" % samples_of(fams, "pimon_gadget_level"))
    check(sample(fams, "pimon_load_one_x", host="odd-host") == 1.5,
          "unknown field %r" % samples_of(fams, "pimon_load_one_x"))
    check("pimon_memory_total_bytes" not in fams, "a null value was exported")
    check(sample(fams, "pimon_memory_free_bytes", host="odd-host") == 5.0, "memory free")
    check(samples_of(fams, "pimon_check_web_page_status") == [({"host": "odd-host"}, 1.0)],
          "first of two alike names %r" % samples_of(fams, "pimon_check_web_page_status"))
    check(samples_of(fams, "pimon_check_dual_x_seconds") == [({"host": "odd-host"}, 3.0)],
          "two fields on one name %r" % samples_of(fams, "pimon_check_dual_x_seconds"))
    check(samples_of(fams, "pimon_host_up") == [({"host": "odd-host"}, 1.0)],
          "pimon_host_up %r" % samples_of(fams, "pimon_host_up"))
    check(fams["pimon_host_last_seen_seconds"]["samples"][0][1] > 1e9, "last seen")
    check((sample(fams, "pimon_worker_sessions", worker=worker) or 0) >= 1,
          "sessions %r, odd-host on worker %s" % (samples_of(fams, "pimon_worker_sessions"),
                                                  worker))
    check_naming(fams)


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
    check(len(samples_of(fams, "pimon_filesystem_used_ratio")) == 2 * n, "disk samples")
    for i in range(n):
        h = "many-%03d" % i
        check(sample(fams, "pimon_memory_total_bytes", host=h) == float(1 << 30) + i, h)
        check(sample(fams, "pimon_memory_used_ratio", host=h) == i / 3.0 * 0.01, h)
        check(sample(fams, "pimon_filesystem_used_ratio", host=h, mountpoint="/boot")
              == (i + 0.5) * 0.01, h)
    check(sum(v for _, v in samples_of(fams, "pimon_worker_sessions")) == n, "sessions")


def test_scrape_does_not_wait_for_a_host_sync(env):
    # A worker syncing a host's files (server.sync "batch") holds the
    # host's store lock; /metrics and the API read the host under its view
    # lock only, so they answer while the sync is held at the shim's gate.
    if os.environ.get("PIMON_SANITIZED") or os.environ.get("PIMON_WRAPPER"):
        raise TestSkip("the LD_PRELOAD shim does not load beside a sanitizer or valgrind")
    gate = os.path.join(env.dir, "sync-gate")
    saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "PIMON_TEST_SYNC_GATE")}
    os.environ["LD_PRELOAD"] = os.path.join(BUILD, "test", "integration", "sync_gate.so")
    os.environ["PIMON_TEST_SYNC_GATE"] = gate
    try:
        env.start_server(workers=2, timeout=60.0, extra={"sync": "batch"})
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    mem = lambda v: [("mem", "", ["total_bytes"], [("", [v])])]
    s = raw_host(env, "synced", mem(1.0))
    try:
        open(gate, "w").close()
        s.sendall(metrics_frame(2, mem(2.0)))
        wait_for(lambda: os.path.exists(gate + ".held"), 10 * SLOW,
                 "the server to wait in fdatasync", [env.server])
        fams = scrape(env)
        hosts = env.api("/api/v1/hosts")
        check(os.path.exists(gate + ".held"), "the sync went on before the scrape answered")
        check(sample(fams, "pimon_host_up", host="synced") == 1, "host up during the sync")
        check(sample(fams, "pimon_memory_total_bytes", host="synced") == 1.0,
              "the value before the held batch %r" % samples_of(fams, "pimon_memory_total_bytes"))
        check([h["name"] for h in hosts] == ["synced"], "API hosts %r" % hosts)
    finally:
        if os.path.exists(gate):
            os.unlink(gate)
    while True:
        f = read_frame(s)
        check(f is not None, "closed before the held batch's ACK")
        if f[0] == T_ACK and struct.unpack(">Q", f[1])[0] == 2:
            break
    check(sample(scrape(env), "pimon_memory_total_bytes", host="synced") == 2.0,
          "the held batch's value")
    s.close()


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
    # An alarm with an instance, firing at once: its label must not clash
    # with the target's instance.
    env.start_server(workers=2, extra={"alarms": [{"name": "has_root", "metric":
                                                   "disk.total_bytes", "value": 0.0}]})
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
    got = wait_for(lambda: prom_value(port, 'pimon_memory_total_bytes{host="prom-a"}'), 30,
                   "pimon_memory_total_bytes in Prometheus", procs)
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
    live = prom_value(port, 'pimon_memory_total_bytes and on (host) pimon_host_up == 1')
    check(live and float(live[1]) == want, "live hosts query %r" % (live,))
    sessions = prom_value(port, "sum(pimon_worker_sessions)")
    check(sessions and float(sessions[1]) == 1, "sessions %r" % (sessions,))
    # No pimon label collides with a target label (instance, job): nothing
    # was stored as exported_*.
    firing = wait_for(lambda: prom_value(port, 'pimon_alarm_firing{alarm="has_root",'
                                         'alarm_instance="/"}'), 30, "the alarm in Prometheus",
                      procs)
    check(firing[0]["instance"] == "127.0.0.1:%d" % env.http_port, "alarm %r" % (firing,))
    renamed = prom_get(port, "/api/v1/series", **{"match[]": '{exported_instance=~".+"}'})
    renamed += prom_get(port, "/api/v1/series", **{"match[]": '{exported_job=~".+"}'})
    check(renamed == [], "series with renamed labels %r" % renamed[:3])


if __name__ == "__main__":
    run_tests(globals())
