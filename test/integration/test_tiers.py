"""Series and fleet queries over the store's tiers (docs/STORAGE.md), on
host folders laid out here before the server starts: open, closed and
compressed raw, minute and hour files; the tier each query picks, values
computed here, rollup rows of one bucket merged, a segment beside its
closed file ignored, out-of-order rows read back, the fleet ranked across
hosts with instances, and pimon-ctl top."""

import calendar
import json
import math
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import CTL_BIN, SLOW, check, run_tests

MIN = 60 * 1000
HOUR = 60 * MIN
DAY = 24 * HOUR
STEP = 10 * 1000
RAW_HEADER = "time,load1"
ROLL_HEADER = "time,count,load1.min,load1.avg,load1.max"
TEMP_RAW = "time,zone,celsius"
TEMP_ROLL = "time,zone,count,celsius.min,celsius.avg,celsius.max"


def request(env, path):
    url = "http://127.0.0.1:%d%s" % (env.http_port, path)
    try:
        with urllib.request.urlopen(url, timeout=30 * SLOW) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def get(env, path):
    status, body = request(env, path)
    check(status == 200, "GET %s: %d %r" % (path, status, body))
    return body


def series(env, host, metric, **params):
    return get(env, "/api/v1/hosts/%s/series/%s?%s" % (host, metric,
                                                       urllib.parse.urlencode(params)))


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def write_zst(path, text):
    """A segment as the housekeeper writes it, made with the zstd tool."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run(["zstd", "-q", "-f", "-o", path], input=text.encode(), check=True,
                   timeout=30)


def day_name(t):
    return time.strftime("%Y-%m-%d", time.gmtime(t // 1000))


def month_name(t):
    return time.strftime("%Y-%m", time.gmtime(t // 1000))


def csv_rows(header, rows):
    return header + "\n" + "".join(",".join(str(c) for c in r) + "\n" for r in rows)


def load_at(i):
    return ((i * 37) % 1000) / 10.0


def rollup(samples, width):
    """{bucket start: [count, min, sum, max]} of (t, v) samples."""
    out = {}
    for t, v in samples:
        b = out.setdefault(t - t % width, [0, math.inf, 0.0, -math.inf])
        b[0] += 1
        b[1] = min(b[1], v)
        b[2] += v
        b[3] = max(b[3], v)
    return out


def roll_row(t, b):
    return [t, b[0], repr(b[1]), repr(b[2] / b[0]), repr(b[3])]


def expected_rollup(rows, frm, to, points):
    """Points from rollup rows (t, count, min, avg, max) as the API defines
    them: a row in the bucket of its start, avg weighted by count."""
    width = -(-(to - frm + 1) // points)
    buckets = {}
    count = 0
    for t, n, lo, avg, hi in rows:
        if frm <= t <= to:
            count += n
            b = buckets.setdefault((t - frm) // width, [0, 0.0, math.inf, -math.inf])
            b[0] += n
            b[1] += avg * n
            b[2] = min(b[2], lo)
            b[3] = max(b[3], hi)
    pts = [[frm + k * width, b[1] / b[0], b[2], b[3]] for k, b in sorted(buckets.items())]
    return pts, count


def expected_raw(samples, frm, to, points):
    width = -(-(to - frm + 1) // points)
    buckets = {}
    count = 0
    for t, v in samples:
        if frm <= t <= to:
            count += 1
            buckets.setdefault((t - frm) // width, []).append(v)
    pts = [[frm + k * width, sum(vs) / len(vs), min(vs), max(vs)]
           for k, vs in sorted(buckets.items())]
    return pts, count


def same_points(got, want, what):
    check(len(got) == len(want), "%s: %d points, want %d" % (what, len(got), len(want)))
    for g, w in zip(got, want):
        check(g[0] == w[0] and all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
                                   for a, b in zip(g[1:], w[1:])),
              "%s: point %r, want %r" % (what, g, w))


def base_time():
    """The start of an hour about three days ago."""
    now = int(time.time() * 1000)
    return (now - 3 * DAY) // HOUR * HOUR


def lay_out_load(env, host):
    """Three days of load1 at 10 s as the store keeps them: the first two
    days' raw rows compressed (one day still beside its closed file, its
    segment half written), the last day open with a backlog appended out of
    order; minute rollups open, with buckets written twice; hour rollups as
    month segments, a closed file and the open file, plus a segment beside
    its closed file holding bogus rows. Returns (samples, minute rows, hour
    rows), the rollup rows as (t, count, min, avg, max) with repeats."""
    d = os.path.join(env.data_dir, "hosts", host)
    start = base_time()
    n = 3 * DAY // STEP
    samples = [(start + i * STEP, load_at(i)) for i in range(n)]
    day1, day2 = start + DAY, start + 2 * DAY
    ms = start + 3 * DAY  # closing times: only their order matters
    # Raw: the first day compressed, split by UTC day; the second a closed
    # file with a half-written segment beside it (bogus values: ignored);
    # the third open, with a backlog appended out of order.
    by_day = {}
    for t, v in samples:
        if t < day1:
            by_day.setdefault(day_name(t), []).append((t, repr(v)))
    for name, rows in by_day.items():
        write_zst(os.path.join(d, "raw", "load", "%s.%d.csv.zst" % (name, ms + 1)),
                  csv_rows(RAW_HEADER, rows))
    closed_raw = [(t, repr(v)) for t, v in samples if day1 <= t < day2]
    write(os.path.join(d, "load.%d.csv" % (ms + 2)), csv_rows(RAW_HEADER, closed_raw))
    write_zst(os.path.join(d, "raw", "load", "%s.%d.csv.zst" % (day_name(day1), ms + 2)),
              csv_rows(RAW_HEADER, [(t, "1e9") for t, _ in closed_raw]))
    open_rows = [(t, repr(v)) for t, v in samples if t >= day2]
    k = len(open_rows) // 4
    write(os.path.join(d, "load.csv"), csv_rows(RAW_HEADER, open_rows[k:] + open_rows[:k]))
    # Minute rollups, one open file; every fifth bucket written twice (its
    # samples split), as when rows arrive out of order.
    minute = []
    for b, (t, row) in enumerate(sorted(rollup(samples, MIN).items())):
        if b % 5 == 0:
            vs = [v for st, v in samples if t <= st < t + MIN]
            for part in (vs[:2], vs[2:]):
                r = rollup([(t, v) for v in part], MIN)[t]
                minute.append((t, r[0], r[1], r[2] / r[0], r[3]))
        else:
            minute.append((t, row[0], row[1], row[2] / row[0], row[3]))
    write(os.path.join(d, "1m", "load.csv"),
          csv_rows(ROLL_HEADER, [[t, n_, repr(lo), repr(avg), repr(hi)]
                                 for t, n_, lo, avg, hi in minute]))
    # Hour rollups: the first day by month segments, the second day a closed
    # file with a segment beside it (bogus values: must be ignored), the
    # third day open.
    hour = [(t, r[0], r[1], r[2] / r[0], r[3]) for t, r in sorted(rollup(samples, HOUR).items())]

    def fmt(rows):
        return [[t, n_, repr(lo), repr(avg), repr(hi)] for t, n_, lo, avg, hi in rows]

    by_month = {}
    for r in hour:
        if r[0] < day1:
            by_month.setdefault(month_name(r[0]), []).append(r)
    for name, rows in by_month.items():
        write_zst(os.path.join(d, "1h", "load", "%s.%d.csv.zst" % (name, ms + 1)),
                  csv_rows(ROLL_HEADER, fmt(rows)))
    mid = [r for r in hour if day1 <= r[0] < day2]
    write(os.path.join(d, "1h", "load.%d.csv" % (ms + 2)), csv_rows(ROLL_HEADER, fmt(mid)))
    write_zst(os.path.join(d, "1h", "load", "%s.%d.csv.zst" % (month_name(day1), ms + 2)),
              csv_rows(ROLL_HEADER, [[t, 1, "1e9", "1e9", "1e9"] for t, *_ in mid]))
    write(os.path.join(d, "1h", "load.csv"),
          csv_rows(ROLL_HEADER, fmt([r for r in hour if r[0] >= day2])))
    return samples, minute, hour


def test_series_picks_the_tier_and_reads_every_file(env):
    samples, minute, hour = lay_out_load(env, "t1")
    env.start_server()
    start = samples[0][0]
    end = samples[-1][0]
    # Raw, across a day boundary: segments, the closed file, none twice.
    for frm, to, points in [(start + DAY - HOUR, start + DAY + HOUR, 500),
                            (start, start + 2 * HOUR, 1000),
                            (start + 2 * DAY - 1, start + 2 * DAY + 3000 * 1000, 200)]:
        doc = series(env, "t1", "load", **{"from": frm, "to": to, "points": points})
        check(doc["tier"] == "raw", "raw range: tier %r" % doc["tier"])
        want, count = expected_raw(samples, frm, to, points)
        same_points(doc["points"], want, "raw %d..%d" % (frm, to))
        check(doc["rows"] == count, "raw rows %d, want %d" % (doc["rows"], count))
    # The backlog at the end of the open file: rows of the open day's first
    # hours, out of order, all read back.
    day2 = start + 2 * DAY
    doc = series(env, "t1", "load", **{"from": day2, "to": day2 + HOUR - 1, "points": 360})
    want, count = expected_raw(samples, day2, day2 + HOUR - 1, 360)
    check(doc["tier"] == "raw" and doc["rows"] == count == 360,
          "backlog: %s rows %d, want %d" % (doc["tier"], doc["rows"], count))
    same_points(doc["points"], want, "backlog")
    # Minute buckets: one day in 500 points is 172.8 s a bucket.
    for frm, to in [(start, start + DAY - 1), (start + 7 * MIN + 123, end)]:
        doc = series(env, "t1", "load", **{"from": frm, "to": to, "points": 500})
        check(doc["tier"] == "1m", "day range: tier %r" % doc["tier"])
        want, count = expected_rollup(minute, frm, to, 500)
        same_points(doc["points"], want, "1m %d..%d" % (frm, to))
        check(doc["rows"] == count, "1m rows %d, want %d" % (doc["rows"], count))
    # Hour buckets: three days in 50 points; the bogus segment beside its
    # closed file is not read (its 1e9 would be every max).
    doc = series(env, "t1", "load", **{"from": start, "to": end, "points": 50})
    check(doc["tier"] == "1h", "3-day range: tier %r" % doc["tier"])
    want, count = expected_rollup(hour, start, end, 50)
    same_points(doc["points"], want, "1h")
    check(doc["rows"] == count == len(samples), "1h rows %d, want %d" % (doc["rows"], count))
    check(all(p[3] < 1e9 for p in doc["points"]), "the incomplete segment was read")
    # 400 days at 10 points: still the hour tier.
    doc = series(env, "t1", "load", **{"from": end - 400 * DAY, "to": end, "points": 10})
    check(doc["tier"] == "1h" and doc["rows"] == len(samples), "400 days: %s %d"
          % (doc["tier"], doc["rows"]))


def test_merged_buckets_are_one_point(env):
    """At a bucket of one minute, each minute is one point, its repeated
    rows merged: the same values as the minute computed from raw rows."""
    samples, minute, hour = lay_out_load(env, "t1")
    env.start_server()
    frm = samples[0][0]
    to = frm + 500 * MIN - 1
    doc = series(env, "t1", "load", **{"from": frm, "to": to, "points": 500})
    check(doc["tier"] == "1m" and doc["bucket_ms"] == MIN, "tier %r bucket %r"
          % (doc["tier"], doc["bucket_ms"]))
    want = [[t, r[2] / r[0], r[1], r[3]] for t, r in sorted(rollup(samples, MIN).items())
            if frm <= t <= to]
    same_points(doc["points"], want, "merged minutes")


def test_coarse_tier_without_files_falls_back(env):
    """Raw rows only (written before rollups existed): every range reads
    raw; a host with minute files but no hour files reads minutes."""
    d = os.path.join(env.data_dir, "hosts", "old")
    start = base_time()
    samples = [(start + i * STEP, load_at(i)) for i in range(2 * DAY // STEP)]
    write(os.path.join(d, "load.csv"), csv_rows(RAW_HEADER, [(t, repr(v)) for t, v in samples]))
    os.makedirs(os.path.join(d, "1h"))  # a tier folder without files counts as none
    env.start_server()
    frm, to = start, samples[-1][0]
    doc = series(env, "old", "load", **{"from": frm, "to": to, "points": 20})
    check(doc["tier"] == "raw", "tier %r" % doc["tier"])
    want, count = expected_raw(samples, frm, to, 20)
    same_points(doc["points"], want, "fallback")
    check(doc["rows"] == count, "rows %d, want %d" % (doc["rows"], count))


def lay_out_fleet(env, now):
    """Five hosts with temp[zone]: a and b with hour rollups (a's hottest
    bucket written twice), c with minute rollups only, d with raw rows only,
    e without temp at all. Returns what each should rank by."""
    hosts = os.path.join(env.data_dir, "hosts")
    h0 = (now - 2 * DAY) // HOUR * HOUR
    write(os.path.join(hosts, "a", "temp.csv"), csv_rows(TEMP_RAW, [(now - 1000, "cpu", 99.5)]))
    write(os.path.join(hosts, "a", "1h", "temp.csv"), csv_rows(TEMP_ROLL, [
        (h0, "cpu", 360, 40, 50, 60),
        (h0, "gpu", 360, 45, 70, 88.5),
        (h0 + HOUR, "cpu", 300, 41, 55, 90.25),
        (h0 + HOUR, "cpu", 60, 20, 85, 91.5),  # the same bucket again
        (h0 + 2 * HOUR, "gpu", 360, 30, 35, 40),
    ]))
    write_zst(os.path.join(hosts, "b", "1h", "temp", "%s.%d.csv.zst" % (month_name(h0), now)),
              csv_rows(TEMP_ROLL, [(h0, "cpu", 360, 10, 60, 75), (h0 + HOUR, "cpu", 360, 12,
                                                                    70, 80)]))
    write(os.path.join(hosts, "b", "temp.csv"), csv_rows(TEMP_RAW, []))
    write(os.path.join(hosts, "c", "1m", "temp.csv"), csv_rows(TEMP_ROLL, [
        (h0 + MIN, "soc", 6, 30, 31, 33), (h0 + 2 * MIN, "soc", 6, 5, 20, 95)]))
    write(os.path.join(hosts, "c", "temp.csv"), csv_rows(TEMP_RAW, []))
    write(os.path.join(hosts, "d", "temp.csv"), csv_rows(TEMP_RAW, [
        (h0 + 5000, "cpu", 50), (h0 + 3000, "cpu", 77.75), (h0 + 4000, "cpu", 1)]))
    write(os.path.join(hosts, "e", "load.csv"), csv_rows(RAW_HEADER, [(h0, 1)]))
    return h0


def fleet(env, q=""):
    return get(env, "/api/v1/fleet/temp/celsius" + q)


def test_fleet_ranks_hosts_from_their_coarsest_tier(env):
    now = int(time.time() * 1000)
    h0 = lay_out_fleet(env, now)
    env.start_server()
    doc = fleet(env, "?since=7d")
    check(doc["agg"] == "max" and doc["hosts"] == 5 and doc["ranked"] == 4 and
          doc["unread"] == 0, "counts %r" % doc)
    check(doc["to"] - doc["from"] == 7 * DAY, "range %r" % doc)
    got = [(e["host"], e["value"], e["instance"], e["time"], e["tier"]) for e in doc["top"]]
    want = [("c", 95, "soc", h0 + 2 * MIN, "1m"),
            ("a", 91.5, "cpu", h0 + HOUR, "1h"),
            ("b", 80, "cpu", h0 + HOUR, "1h"),
            ("d", 77.75, "cpu", h0 + 3000, "raw")]
    check(got == want, "max ranking %r, want %r" % (got, want))
    check(doc["top"][1]["rows"] == 360 * 3 + 300 + 60, "a's rows %r" % doc["top"][1])
    # min: ascending.
    doc = fleet(env, "?agg=min&since=7d")
    got = [(e["host"], e["value"], e["instance"]) for e in doc["top"]]
    check(got == [("d", 1, "cpu"), ("c", 5, "soc"), ("b", 10, "cpu"), ("a", 20, "cpu")],
          "min ranking %r" % got)
    # avg: the instance with the highest count-weighted mean; no time.
    doc = fleet(env, "?agg=avg&since=7d")
    a_cpu = (360 * 50 + 300 * 55 + 60 * 85) / 720
    a_gpu = (360 * 70 + 360 * 35) / 720
    want = {"a": (max(a_cpu, a_gpu), "cpu" if a_cpu > a_gpu else "gpu"),
            "b": (65, "cpu"), "c": (25.5, "soc"), "d": ((50 + 77.75 + 1) / 3, "cpu")}
    order = sorted(want, key=lambda h: -want[h][0])
    check([e["host"] for e in doc["top"]] == order, "avg order %r" % doc["top"])
    for e in doc["top"]:
        check(math.isclose(e["value"], want[e["host"]][0], rel_tol=1e-12) and
              e["instance"] == want[e["host"]][1] and e["time"] is None, "avg %r" % e)
    # top, and a range that only some hosts have rows in.
    doc = fleet(env, "?top=2&since=7d")
    check([e["host"] for e in doc["top"]] == ["c", "a"] and doc["ranked"] == 4, "top=2 %r" % doc)
    doc = fleet(env, "?from=%d&to=%d" % (h0 + HOUR, h0 + HOUR))
    check([(e["host"], e["value"]) for e in doc["top"]] == [("a", 91.5), ("b", 80)],
          "one hour %r" % doc["top"])
    doc = get(env, "/api/v1/fleet/temp/nope")
    check(doc["ranked"] == 0 and doc["top"] == [], "unknown field %r" % doc)
    doc = get(env, "/api/v1/fleet/load/load1?since=7d")
    check([e["host"] for e in doc["top"]] == ["e"] and doc["top"][0]["instance"] is None,
          "load %r" % doc)


def test_a_large_fleet_is_ranked_whole(env):
    """600 hosts (ranked over two threads): every one counted, the top
    and the bottom right."""
    now = int(time.time() * 1000)
    h0 = now - now % HOUR - 5 * HOUR
    peak = {}
    for i in range(600):
        name = "f%03d" % i
        peak[name] = (i * 37) % 600 + 0.5
        rows = [(h0 + k * HOUR, 60, repr(peak[name] - k - 1), repr(peak[name] - k - 0.5),
                 repr(peak[name] - k)) for k in range(3)]
        write(os.path.join(env.data_dir, "hosts", name, "1h", "load.csv"),
              csv_rows(ROLL_HEADER, rows))
    env.start_server()
    doc = get(env, "/api/v1/fleet/load/load1?since=1d&top=1000")
    check(doc["hosts"] == 600 and doc["ranked"] == 600 and doc["unread"] == 0, "counts %r" %
          {k: doc[k] for k in ("hosts", "ranked", "unread")})
    want = sorted(peak, key=lambda h: (-peak[h], h))
    check([e["host"] for e in doc["top"]] == want, "order %r" % [e["host"] for e in doc["top"][:5]])
    check(all(e["value"] == peak[e["host"]] and e["time"] == h0 for e in doc["top"]),
          "values %r" % doc["top"][:3])


def test_fleet_parameters_are_checked(env):
    env.start_server()
    for q, says in [("since=0d", "since"), ("since=401d", "since"), ("since=7w", "since"),
                    ("since=", "since"), ("since=1.5h", "since"), ("agg=sum", "agg"),
                    ("agg=", "agg"), ("top=0", "top"), ("top=1001", "top"), ("top=x", "top"),
                    ("since=1h&from=5", "exclude"), ("from=6&to=5", "after"),
                    ("from=0&to=%d" % (401 * DAY), "400 days"), ("from=x", "from"),
                    ("to=-1", "to"), ("bogus=1", "parameter"), ("top=1&top=2", "parameter")]:
        status, body = request(env, "/api/v1/fleet/temp/celsius?" + q)
        check(status == 400 and body.get("status") == 400 and says in body.get("error", ""),
              "%s: %d %r" % (q, status, body))
    for path in ["/api/v1/fleet/Temp/celsius", "/api/v1/fleet/temp/c-x"]:
        status, body = request(env, path)
        check(status == 400 and "name" in body["error"], "%s: %d %r" % (path, status, body))
    status, body = request(env, "/api/v1/fleet/temp")
    check(status == 404, "fleet/temp: %d" % status)


def ctl(env, *args):
    argv = [CTL_BIN, "-a", "127.0.0.1:%d" % env.http_port] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30 * SLOW,
                          env=dict(os.environ, TZ="UTC"))


def test_ctl_top_prints_the_ranking(env):
    now = int(time.time() * 1000)
    h0 = lay_out_fleet(env, now)
    env.start_server()
    r = ctl(env, "top", "temp.celsius", "--since", "7d")
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr))
    lines = r.stdout.splitlines()
    check(lines[0].split() == ["RANK", "HOST", "VALUE", "INSTANCE", "TIME", "TIER"],
          "header %r" % lines[0])
    rows = [ln.split() for ln in lines[1:]]
    check([row[1] for row in rows] == ["c", "a", "b", "d"], "hosts %r" % rows)
    check(rows[0][:4] == ["1", "c", "95", "soc"] and rows[0][5] == "1m", "row %r" % rows[0])
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((h0 + 2 * MIN) // 1000))
    check(rows[0][4].startswith(when), "time %r, want %s" % (rows[0][4], when))
    r = ctl(env, "top", "temp.celsius", "--agg", "min", "--top", "2", "--since", "7d")
    rows = [ln.split() for ln in r.stdout.splitlines()[1:]]
    check(r.returncode == 0 and [row[1] for row in rows] == ["d", "c"], "min: %r" % r.stdout)
    r = ctl(env, "top", "temp.celsius", "--json")
    doc = json.loads(r.stdout)
    check(r.returncode == 0 and doc["agg"] == "max" and doc["to"] - doc["from"] == DAY,
          "json %r" % doc)
    for bad in [["top", "temp"], ["top", "temp.Celsius"], ["top", "x.y", "--agg", "sum"],
                ["top", "x.y", "--top", "0"], ["top", "x.y", "--points", "5"]]:
        r = ctl(env, *bad)
        check(r.returncode == 2, "%r: exit %d" % (bad, r.returncode))


if __name__ == "__main__":
    run_tests(globals())
