"""The JSON API over real HTTP: every endpoint, every error status, and
series checked against values computed here from a history written into
the data folder before the server starts."""

import csv
import json
import math
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import (FIXTURES, SERVER_BIN, SLOW, check, run_tests, wait_for)

DAY = 86400 * 1000
STEP = 10 * 1000  # the generated history's interval: 10 s
LOAD_HEADER = "time,load1,load5,load15,running,total"
DISK_HEADER = ("time,mount,total_bytes,used_bytes,avail_bytes,used_pct,inodes_total,"
               "inodes_used,inodes_used_pct")
MOUNTS = ["/", "/mnt/a,b"]  # the second needs CSV quotes


def request(env, path, method="GET"):
    """(status, JSON body, headers) of a request; error statuses too."""
    url = "http://127.0.0.1:%d%s" % (env.http_port, path)
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30 * SLOW) as r:
            body = r.read().decode()
            return r.status, json.loads(body) if body else None, r.headers
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        return e.code, json.loads(body), e.headers


def get(env, path):
    status, body, _ = request(env, path)
    check(status == 200, "GET %s: %d %r" % (path, status, body))
    return body


def expect_error(env, path, status, method="GET", says=None):
    """The request fails with status and a JSON error body."""
    got, body, headers = request(env, path, method)
    check(got == status, "%s %s: status %d, want %d (%r)" % (method, path, got, status, body))
    check(headers.get("Content-Type") == "application/json", "%s: type %r"
          % (path, headers.get("Content-Type")))
    check(isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
          and body.get("status") == status, "%s %s: body %r" % (method, path, body))
    if says:
        check(says in body["error"], "%s: %r does not say %r" % (path, body["error"], says))
    return body


def csv_field(s):
    return '"%s"' % s.replace('"', '""') if any(c in s for c in ',"\n') else s


def load1_at(i):
    return ((i * 37) % 1000) / 10.0


def load5_at(i):
    return None if i % 7 == 0 else i % 13 + 0.25


def used_pct_at(i, mount):
    return (i % 50) + (0.5 if mount == "/" else 0.0)


def fmt(v):
    return "" if v is None else repr(v)


def write_history(env, host, end, days=7):
    """load.csv and disk.csv of host, one row (disk: one per mount) every
    10 s for days up to end, and a partial row with no newline at the end of
    load.csv. Returns {(metric, field, instance): [(time, value)]}."""
    d = os.path.join(env.data_dir, "hosts", host)
    os.makedirs(d)
    start = end - days * DAY
    n = (end - start) // STEP + 1
    series = {("load", "load1", None): [], ("load", "load5", None): []}
    for m in MOUNTS:
        series[("disk", "used_pct", m)] = []
    with open(os.path.join(d, "load.csv"), "w") as f:
        f.write(LOAD_HEADER + "\n")
        for i in range(n):
            t = start + i * STEP
            a, b = load1_at(i), load5_at(i)
            f.write("%d,%s,%s,2,%d,300\n" % (t, fmt(a), fmt(b), i % 5))
            series[("load", "load1", None)].append((t, a))
            series[("load", "load5", None)].append((t, b))
        f.write("%d,99999,1" % (end + STEP))  # a row being written
    with open(os.path.join(d, "disk.csv"), "w") as f:
        f.write(DISK_HEADER + "\n")
        for i in range(n):
            t = start + i * STEP
            for m in MOUNTS:
                v = used_pct_at(i, m)
                f.write("%d,%s,1000,500,500,%s,10,5,50\n" % (t, csv_field(m), fmt(v)))
                series[("disk", "used_pct", m)].append((t, v))
    return series


def expected(rows, frm, to, points):
    """What the server must answer: buckets of width ceil(span / points) from
    frm, [start, avg, min, max] for each with a value, and the row count."""
    span = to - frm + 1
    width = -(-span // points)
    buckets = {}
    count = 0
    for t, v in rows:
        if frm <= t <= to:
            count += 1
            if v is not None:
                buckets.setdefault((t - frm) // width, []).append(v)
    pts = []
    for k in sorted(buckets):
        vs = buckets[k]
        total = 0.0
        for v in vs:
            total += v
        pts.append([frm + k * width, total / len(vs), min(vs), max(vs)])
    return pts, count


def same_points(got, want):
    if len(got) != len(want):
        return "%d points, want %d" % (len(got), len(want))
    for g, w in zip(got, want):
        if g[0] != w[0] or any(not math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
                               for a, b in zip(g[1:], w[1:])):
            return "point %r, want %r" % (g, w)
    return None


def series_url(host, metric, **params):
    q = urllib.parse.urlencode(params)
    return "/api/v1/hosts/%s/series/%s%s" % (host, metric, "?" + q if q else "")


def check_series(env, series, metric, field, instance, frm, to, points):
    params = {"field": field, "from": frm, "to": to, "points": points}
    if instance is not None:
        params["instance"] = instance
    doc = get(env, series_url("hist", metric, **params))
    want, count = expected(series[(metric, field, instance)], frm, to, points)
    problem = same_points(doc["points"], want)
    check(problem is None, "%s.%s[%s] %d..%d/%d: %s" % (metric, field, instance, frm, to, points,
                                                       problem))
    check(doc["rows"] == count, "rows %d, want %d" % (doc["rows"], count))
    check(len(doc["points"]) <= points, "%d points over %d" % (len(doc["points"]), points))
    check((doc["host"], doc["metric"], doc["field"], doc["instance"], doc["from"], doc["to"])
          == ("hist", metric, field, instance, frm, to), "echo %r" % doc)
    return doc


def history_end():
    """A round time a minute ago, so the default last hour holds rows."""
    return (int(time.time() * 1000) // STEP) * STEP - 60 * 1000


def test_series_downsampling_matches_python(env):
    end = history_end()
    series = write_history(env, "hist", end)
    start = end - 7 * DAY
    env.start_server()
    # The whole week: every bucket's avg, min and max, and the row count.
    doc = check_series(env, series, "load", "load1", None, start, end, 500)
    check(doc["rows"] == 7 * 8640 + 1, "rows over 7 days: %d" % doc["rows"])
    check(len(doc["points"]) == 500, "%d points for 7 days" % len(doc["points"]))
    check_series(env, series, "load", "load1", None, start - DAY, end + DAY, 10000)
    check_series(env, series, "disk", "used_pct", "/", start, end, 500)
    check_series(env, series, "disk", "used_pct", "/mnt/a,b", start, end, 333)
    # Empty fields (non-finite values) count as rows but not as values.
    doc = check_series(env, series, "load", "load5", None, start, start + DAY, 24)
    check(doc["rows"] == 8641, "load5 rows %d" % doc["rows"])
    # One bucket: the range's own average, minimum and maximum.
    doc = check_series(env, series, "load", "load1", None, start + DAY, start + 2 * DAY, 1)
    check(len(doc["points"]) == 1, "points=1: %r" % doc["points"])
    # More points than rows: one row per bucket, each avg == min == max.
    doc = check_series(env, series, "load", "load1", None, end - 3600 * 1000, end, 10000)
    check(all(p[1] == p[2] == p[3] for p in doc["points"]) and len(doc["points"]) == 361,
          "fine buckets: %d" % len(doc["points"]))
    # Odd spans and point counts: never more buckets than points.
    for span, points in [(12345678, 7), (DAY + 1, 499), (3 * DAY - 1, 1000), (STEP, 3)]:
        check_series(env, series, "load", "load1", None, start + 777, start + 777 + span,
                     points)
    # Outside the history: nothing, and the partial last row is never read.
    doc = check_series(env, series, "load", "load1", None, end + 1, end + DAY, 50)
    check(doc["points"] == [] and doc["rows"] == 0, "after the end: %r" % doc)
    doc = check_series(env, series, "load", "load1", None, start - DAY, start - 1, 50)
    check(doc["points"] == [] and doc["rows"] == 0, "before the start: %r" % doc)


def test_series_edges_exact(env):
    end = history_end()
    series = write_history(env, "hist", end, days=2)
    start = end - 2 * DAY
    env.start_server()
    a, b = start + 1000 * STEP, start + 1500 * STEP  # both on row times
    cases = [(a, b, 501), (a + 1, b, 500), (a, b - 1, 500), (a + 1, b - 1, 499),
             (a, a, 1), (a + 1, a + STEP - 1, 0), (start, start, 1), (end, end, 1),
             (start - 5, start, 1), (end, end + 5, 1)]
    for frm, to, rows in cases:
        doc = check_series(env, series, "load", "load1", None, frm, to, 10000)
        check(doc["rows"] == rows, "%d..%d: %d rows, want %d" % (frm, to, doc["rows"], rows))
    # Defaults: the last hour up to now, 500 points at most, the first field.
    before = int(time.time() * 1000)
    doc = get(env, series_url("hist", "load"))
    after = int(time.time() * 1000)
    check(before <= doc["to"] <= after and doc["from"] == doc["to"] - 3600 * 1000,
          "default range %r..%r" % (doc["from"], doc["to"]))
    check(doc["field"] == "load1" and doc["instance"] is None, "defaults %r" % doc)
    check(340 <= doc["rows"] <= 361, "rows in the last hour: %d" % doc["rows"])
    doc = get(env, series_url("hist", "load", to=end))
    check(doc["from"] == end - 3600 * 1000 and doc["rows"] == 361, "to only: %r" % doc["rows"])
    doc = get(env, series_url("hist", "load", **{"from": end - 60 * 1000}))
    check(doc["rows"] == 7, "from only: %d rows" % doc["rows"])


def test_series_errors(env):
    end = history_end()
    write_history(env, "hist", end, days=1)
    env.start_server()
    base = "/api/v1/hosts/hist/series/"
    expect_error(env, "/api/v1/hosts/bad@name/series/load", 400, says="host name")
    expect_error(env, "/api/v1/hosts/-x/series/load", 400)
    expect_error(env, "/api/v1/hosts/%s/series/load" % ("a" * 65), 400)
    expect_error(env, "/api/v1/hosts/nobody/series/load", 404, says="host")
    expect_error(env, base + "Load", 400, says="metric")
    expect_error(env, base + "cpu", 404, says="metric")
    expect_error(env, base + "load?field=nope", 404, says="field")
    expect_error(env, base + "load?field=time", 404, says="field")
    expect_error(env, base + "load?instance=eth0", 404, says="instance")
    body = expect_error(env, base + "disk", 400, says="instance")
    check("/mnt/a,b" in body["error"] and "/" in body["error"], "lists instances: %r" % body)
    expect_error(env, base + "disk?instance=/nope", 404, says="instance")
    expect_error(env, base + "disk?instance=/&field=mount", 404, says="field")
    for q in ["from=2&to=1", "from=abc", "to=abc", "from=-5", "to=-1", "from=1.5",
              "from=&to=5", "from=0&to=%d" % (401 * DAY), "to=%d" % (10 ** 16),
              "points=0", "points=10001", "points=abc", "points=-1", "points=",
              "bogus=1", "from=1&from=2", "field=load1&field=load5", "from", "&&",
              "FROM=1", "instance"]:
        expect_error(env, base + "load?" + q, 400)
    # A span of exactly 400 days is allowed.
    doc = get(env, base + "load?from=%d&to=%d" % (end - 400 * DAY, end))
    check(doc["rows"] == 8641, "400 days: %d rows" % doc["rows"])
    expect_error(env, base + "load/extra", 404)
    expect_error(env, base + "load", 405, method="POST")


def test_hosts_host_and_metrics_of_a_live_agent(env):
    env.start_server(workers=2)
    env.start_agent("live-1", proc_root=os.path.join(FIXTURES, "pi4", "proc"),
                    sys_root=os.path.join(FIXTURES, "pi4", "sys"))
    env.start_agent("live-2")
    env.wait_hosts_up(["live-1", "live-2"])
    hosts = get(env, "/api/v1/hosts")
    check([h["name"] for h in hosts] == ["live-1", "live-2"], "hosts %r" % hosts)
    one = get(env, "/api/v1/hosts/live-1")
    listed = hosts[0]
    for k in ["name", "addr", "state", "reason", "since", "worker", "version", "os", "kernel",
              "model", "boot_id"]:
        check(one[k] == listed[k], "%s: %r vs %r" % (k, one[k], listed[k]))
    check(set(one) == set(listed) and "latest" in one, "keys %r" % sorted(one))
    expect_error(env, "/api/v1/hosts/nobody", 404, says="host")
    for bad in ["bad@name", "-dash", ".dot", "a" * 65, "%2e%2e", "a%2Fb", ""]:
        expect_error(env, "/api/v1/hosts/" + bad, 400, says="host name")
    # Wait for rows of every file (the fixture's static /proc/stat gives no
    # cpu row: its usage needs the counters to move).
    d = os.path.join(env.data_dir, "hosts", "live-1")
    wait_for(lambda: all(os.path.getsize(os.path.join(d, m + ".csv")) > 200
                         for m in ["mem", "load", "net", "temp"]), 15,
             "rows of live-1", [env.server])
    doc = get(env, "/api/v1/hosts/live-1/metrics")
    check(doc["host"] == "live-1", "host %r" % doc["host"])
    metrics = {m["metric"]: m for m in doc["metrics"]}
    check([m["metric"] for m in doc["metrics"]] == sorted(metrics), "not sorted")
    check({"mem", "load", "net", "temp"} <= set(metrics), "metrics %r" % sorted(metrics))
    check("events" not in metrics, "events.csv listed as a metric")
    check(metrics["load"]["instance_key"] is None and metrics["load"]["instances"] == [],
          "load %r" % metrics["load"])
    check(metrics["load"]["fields"] == LOAD_HEADER.split(",")[1:], "load fields %r"
          % metrics["load"]["fields"])
    check(metrics["net"]["instance_key"] == "iface", "net %r" % metrics["net"])
    check(metrics["net"]["instances"] == ["eth0", "wlan0"], "net instances %r"
          % metrics["net"]["instances"])
    check(metrics["temp"]["instance_key"] == "zone" and metrics["temp"]["instances"],
          "temp %r" % metrics["temp"])
    check(metrics["mem"]["fields"][0] == "total_bytes", "mem fields %r"
          % metrics["mem"]["fields"])
    for m in metrics.values():
        check(m["first"] and m["last"] and m["first"] <= m["last"], "times %r" % m)
    expect_error(env, "/api/v1/hosts/nobody/metrics", 404)
    expect_error(env, "/api/v1/hosts/b@d/metrics", 400)
    expect_error(env, "/api/v1/hosts/live-1/metrics?x=1", 400)
    # A live series: the fixture's load1 is always 0.52.
    doc = get(env, series_url("live-1", "load", field="load1"))
    check(doc["rows"] >= 1 and all(p[1:] == [0.52, 0.52, 0.52] for p in doc["points"]),
          "live load: %r" % doc)
    body = expect_error(env, series_url("live-1", "net"), 400, says="instance")
    check("eth0" in body["error"] and "wlan0" in body["error"], "net: %r" % body)
    doc = get(env, series_url("live-1", "net", instance="eth0", field="rx_bytes"))
    check(doc["instance"] == "eth0" and doc["rows"] >= 1, "eth0: %r" % doc)


def test_bad_paths_methods_and_parameters(env):
    env.start_server()
    for path in ["/api/v1/nope", "/api/v1/", "/api/v1", "/api/", "/api", "/api/v2/hosts",
                 "/api/v1/hosts/x/y", "/api/v1/hosts/x/series", "/api/v1/hosts/x/poll/now",
                 "/api/v1/stats/x", "/api/v1/alarms/", "/api/v1/a/b/c/d/e/f"]:
        expect_error(env, path, 404)
    for path in ["/api/v1/hosts", "/api/v1/hosts/x", "/api/v1/hosts/x/metrics",
                 "/api/v1/hosts/x/series/load", "/api/v1/alarms", "/api/v1/stats",
                 "/api/v1/workers"]:
        expect_error(env, path, 405, method="POST")
    _, _, headers = request(env, "/api/v1/stats", "POST")
    check(headers.get("Allow") == "GET, HEAD", "Allow %r" % headers.get("Allow"))
    expect_error(env, "/api/v1/hosts/x/poll", 405)
    for path in ["/api/v1/hosts?x=1", "/api/v1/stats?verbose", "/api/v1/alarms?n=5",
                 "/api/v1/workers?a=b", "/api/v1/hosts/x?points=5"]:
        expect_error(env, path, 400, says="parameter" if "=" in path else None)
    status, _, _ = request(env, "/api/v1/stats", "HEAD")
    check(status == 200, "HEAD stats: %d" % status)


def write_alarms(env, n):
    """n old fires and resolves in <data_dir>/alarms.csv, one with a quoted message."""
    os.makedirs(env.data_dir, exist_ok=True)
    t0 = int(time.time() * 1000) - DAY
    with open(os.path.join(env.data_dir, "alarms.csv"), "w") as f:
        f.write("time,host,name,instance,level,state,value,message,duration_s,origin\n")
        for i in range(n):
            state, duration = ("resolved", "12.500") if i % 2 else ("firing", "")
            msg = '"disk, ""full"""' if i == n - 1 else "disk.used_pct [/] is 91 (> 90)"
            f.write("%d,old-%d,disk_critical,/,critical,%s,91.5,%s,%s,rule:disk.used_pct\n"
                    % (t0 + i * 1000, i, state, msg, duration))
    return t0


def test_alarms_active_and_recent_rows(env):
    t0 = write_alarms(env, 150)
    env.start_server(extra={"alarms": [{"name": "load_any", "metric": "load.load1",
                                        "op": ">=", "value": 0.0, "level": "critical"}]})
    doc = get(env, "/api/v1/alarms")
    check(doc["active"] == [], "active with no host: %r" % doc["active"])
    recent = doc["recent"]
    check(len(recent) == 100, "%d recent" % len(recent))
    check(recent[0]["host"] == "old-149" and recent[-1]["host"] == "old-50",
          "order %r .. %r" % (recent[0], recent[-1]))
    check(recent[0]["message"] == 'disk, "full"', "message %r" % recent[0]["message"])
    check(recent[1] == {"time": t0 + 148 * 1000, "host": "old-148", "name": "disk_critical",
                        "instance": "/", "level": "critical", "state": "firing", "value": 91.5,
                        "message": "disk.used_pct [/] is 91 (> 90)", "duration_s": None,
                        "origin": "rule:disk.used_pct"}, "row %r" % recent[1])
    check(recent[0]["duration_s"] == 12.5, "duration %r" % recent[0])
    a = env.start_agent("alarm-a")
    env.start_agent("alarm-b")
    env.wait_hosts_up(["alarm-a", "alarm-b"])
    wait_for(lambda: len(get(env, "/api/v1/alarms")["active"]) == 2, 15, "two load alarms",
             [env.server])
    a.stop()
    wait_for(lambda: len(get(env, "/api/v1/alarms")["active"]) == 3, 10, "host_down",
             [env.server])
    doc = get(env, "/api/v1/alarms")
    host = env.hosts()["alarm-a"]
    down = doc["active"][0]
    check(down == {"host": "alarm-a", "name": "host_down", "instance": "", "level": "critical",
                   "state": "firing", "since": host["since"], "value": None,
                   "message": "session ended: goodbye", "origin": "server"},
          "active %r" % down)
    check([(x["host"], x["name"]) for x in doc["active"][1:]]
          == [("alarm-a", "load_any"), ("alarm-b", "load_any")], "active %r" % doc["active"])
    check(all(x["value"] >= 0 and x["level"] == "critical" for x in doc["active"][1:]),
          "load alarms %r" % doc["active"][1:])
    recent = doc["recent"]
    check(len(recent) == 100, "%d recent" % len(recent))
    check((recent[0]["host"], recent[0]["name"], recent[0]["state"])
          == ("alarm-a", "host_down", "firing"), "newest %r" % recent[0])
    # Newest first is the file's order reversed.
    with open(os.path.join(env.data_dir, "alarms.csv"), newline="") as f:
        lines = list(csv.reader(f))[1:]
    want = [(int(r[0]), r[1], r[2], r[5]) for r in reversed(lines[-100:])]
    check([(x["time"], x["host"], x["name"], x["state"]) for x in recent] == want,
          "recent is not alarms.csv's last 100 rows, newest first")
    # Each host's own file holds its rows.
    with open(os.path.join(env.host_dir("alarm-a"), "alarms.csv"), newline="") as f:
        own = list(csv.reader(f))
    check(own[0] == ["time", "host", "name", "instance", "level", "state", "value", "message",
                     "duration_s", "origin"], "header %r" % own[0])
    check([r[2] for r in own[1:]] == ["load_any", "host_down"], "alarm-a rows %r" % own)


def test_stats_sums_worker_counters(env):
    env.start_server(workers=3)
    for n in ["st-1", "st-2"]:
        env.start_agent(n)
    env.wait_hosts_up(["st-1", "st-2"])
    version = subprocess.run([SERVER_BIN, "--version"], capture_output=True, text=True,
                             timeout=10 * SLOW).stdout.split()[1]
    before = get(env, "/api/v1/workers")
    stats = get(env, "/api/v1/stats")
    after = get(env, "/api/v1/workers")
    check(stats["version"] == version, "version %r" % stats["version"])
    check(stats["workers"] == 3 and stats["sessions"] == 2, "stats %r" % stats)
    check(stats["hosts"] == {"total": 2, "up": 2, "down": 0}, "hosts %r" % stats["hosts"])
    check(0 <= stats["uptime_s"] < 120 * SLOW, "uptime %r" % stats["uptime_s"])
    check(abs(stats["started"] - time.time() * 1000) < 120000 * SLOW, "started %r"
          % stats["started"])
    names = [k for k in before[0] if k not in ("id", "sessions")]
    check(list(stats["counters"]) == names, "counters %r vs %r" % (list(stats["counters"]),
                                                                  names))
    for k in names:
        lo, hi = sum(w[k] for w in before), sum(w[k] for w in after)
        check(lo <= stats["counters"][k] <= hi, "%s: %d not in %d..%d"
              % (k, stats["counters"][k], lo, hi))
    check(stats["counters"]["sessions_opened"] >= 2, "opened %r" % stats["counters"])
    env.procs[-1].stop()
    # The host is down as its session closes; the session is freed just after.
    wait_for(lambda: get(env, "/api/v1/stats")["hosts"]["down"] == 1 and
             get(env, "/api/v1/stats")["sessions"] == 1, 10, "one host down, its session gone",
             [env.server])
    stats = get(env, "/api/v1/stats")
    check(stats["hosts"] == {"total": 2, "up": 1, "down": 1} and stats["sessions"] == 1,
          "after a stop %r" % stats)


def test_workers_and_poll_kept(env):
    env.start_server(workers=2)
    a = env.start_agent("poll-a")
    env.wait_hosts_up(["poll-a"])
    workers = get(env, "/api/v1/workers")
    check([w["id"] for w in workers] == [0, 1] and sum(w["sessions"] for w in workers) == 1,
          "workers %r" % workers)
    status, body, _ = request(env, "/api/v1/hosts/poll-a/poll", "POST")
    check(status == 202 and body == {"host": "poll-a", "polled": True}, "poll %d %r"
          % (status, body))
    expect_error(env, "/api/v1/hosts/nobody/poll", 404, method="POST")
    expect_error(env, "/api/v1/hosts/b@d/poll", 400, method="POST")
    load = os.path.join(env.data_dir, "hosts", "poll-a", "load.csv")
    wait_for(lambda: os.path.getsize(load) > len(LOAD_HEADER) + 1, 10, "a load row",
             [env.server])
    a.stop()
    wait_for(lambda: env.hosts()["poll-a"]["state"] == "down", 10, "poll-a down", [env.server])
    expect_error(env, "/api/v1/hosts/poll-a/poll", 409, method="POST")
    # The host stays known, down, with its files.
    check(get(env, "/api/v1/hosts/poll-a")["state"] == "down", "down host")
    check(get(env, "/api/v1/hosts/poll-a/metrics")["metrics"], "no metrics after a stop")


def test_history_only_host_is_listed_down_with_its_series(env):
    end = history_end()
    write_history(env, "hist", end, days=1)
    env.start_server()
    # Known from its folder (stored before this run): listed down before its
    # agent connects, with its series and metrics.
    host = get(env, "/api/v1/hosts/hist")
    check(host["state"] == "down" and host["reason"] == "no events", "host %r" % host)
    check([h["name"] for h in get(env, "/api/v1/hosts")] == ["hist"], "hosts listed")
    doc = get(env, "/api/v1/hosts/hist/metrics")
    metrics = {m["metric"]: m for m in doc["metrics"]}
    check(sorted(metrics) == ["disk", "load"], "metrics %r" % sorted(metrics))
    check(metrics["disk"]["instances"] == MOUNTS, "instances %r" % metrics["disk"]["instances"])
    check(metrics["disk"]["last"] == end and metrics["disk"]["first"] == end - DAY,
          "times %r" % metrics["disk"])
    check(metrics["load"]["last"] == end, "the partial row counted: %r" % metrics["load"])
    # Files the server does not own are left as they were.
    d = os.path.join(env.data_dir, "hosts", "hist")
    check(sorted(os.listdir(d)) == ["disk.csv", "load.csv"], "files %r" % os.listdir(d))


def test_head_and_other_methods_keep_the_connection_usable(env):
    """HEAD answers with a length and no body, so the next request on the
    same connection is read right; PUT and DELETE get a JSON 405."""
    import http.client
    env.start_server()
    c = http.client.HTTPConnection("127.0.0.1", env.http_port, timeout=5)
    c.request("HEAD", "/api/v1/stats")
    r = c.getresponse()
    body = r.read()
    check(r.status == 200 and body == b"" and int(r.getheader("Content-Length")) > 10,
          "HEAD: %d %r %r" % (r.status, r.getheader("Content-Length"), body[:40]))
    c.request("GET", "/api/v1/stats")
    r = c.getresponse()
    check(r.status == 200 and json.loads(r.read())["workers"] == 4, "GET after HEAD broke")
    for method in ("PUT", "DELETE"):
        c.request(method, "/api/v1/hosts")
        r = c.getresponse()
        check(r.status == 405 and "error" in json.loads(r.read()), "%s: %d" % (method, r.status))
    c.close()


if __name__ == "__main__":
    run_tests(globals())
