"""Minute and hour rollups and the day close, through the real server with
backdated rows: every raw row is stored once, a day's rows close into
their own file, and the rollup rows equal a recomputation from the rows
sent, also across kill -9 and from a data folder of the layout before
rollups."""

import glob
import math
import os
import random
import re
import struct
import subprocess
import time
import zlib

from harness import SLOW, T_ACK, check, metrics_frame, read_frame, run_tests, session

DAY = 86400000
MINUTE, HOUR = 60000, 3600000
STEP = 30000  # ms between samples


def ack(s):
    """The next ACK's seq (other frames skipped)."""
    deadline = time.monotonic() + 20 * SLOW
    while time.monotonic() < deadline:
        f = read_frame(s, timeout=20)
        check(f is not None, "closed while waiting for an ACK")
        if f[0] == T_ACK:
            return struct.unpack(">Q", f[1][:8])[0]
    check(False, "no ACK in time")


def send_all(env, host, batches):
    """One session of host: every batch sent, then the ACKs read up to the
    last (several batches may share one)."""
    s = session(env, name=host)
    for seq, groups in enumerate(batches, 1):
        s.sendall(metrics_frame(seq, groups))
    acked = 0
    while acked < len(batches):
        acked = ack(s)
    s.close()


def day_start(t):
    return t - t % DAY


def make_batches(rng, t0, hours):
    """One batch per hour of samples: net (two instances, tx sometimes
    missing) and load; returns the batches and the rows sent per metric as
    (time, instance, values)."""
    batches, sent = [], {"net": [], "load": []}
    t = t0
    for _ in range(hours):
        net, load = [], []
        for _ in range(HOUR // STEP):
            for inst in ("eth0", "wl,an"):
                rx = round(rng.uniform(-1000, 1000), rng.choice((0, 3, 9)))
                tx = math.nan if rng.random() < 0.2 else rng.uniform(0, 1e6) / 3
                net.append((t, inst, (rx, tx)))
            load.append((t, "", (rng.uniform(0, 4),)))
            t += STEP
        batches.append([("net", "iface", ("rx", "tx"), net), ("load", "", ("load1",), load)])
        sent["net"] += net
        sent["load"] += load
    return batches, sent


def csv_lines(text):
    return [l for l in text.split("\n") if l]


def split_row(line):
    """CSV fields of a row (instances may be quoted)."""
    out, cur, q, i = [], "", False, 0
    while i < len(line):
        c = line[i]
        if q:
            if c == '"' and i + 1 < len(line) and line[i + 1] == '"':
                cur += '"'
                i += 1
            elif c == '"':
                q = False
            else:
                cur += c
        elif c == '"':
            q = True
        elif c == ",":
            out.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    out.append(cur)
    return out


def tier_files(host_dir, tier, metric):
    """(name, text) of every file of a metric's tier: open, closed, and
    compressed segments whose closed file is gone; read until the set of
    closed files is the same before and after (a housekeeper may be
    compressing them meanwhile)."""
    base = host_dir if tier == "raw" else os.path.join(host_dir, tier)
    seg_dir = os.path.join(host_dir, tier, metric)
    pat = re.compile(r"^%s\.(\d+)\.csv$" % metric)
    for _ in range(20):
        closed = sorted(f for f in os.listdir(base) if pat.match(f)) if os.path.isdir(base) else []
        out = []
        for name in [metric + ".csv"] + closed:
            try:
                with open(os.path.join(base, name)) as f:
                    out.append((name, f.read()))
            except FileNotFoundError:
                pass
        ms_closed = {pat.match(f).group(1) for f in closed}
        for seg in sorted(glob.glob(os.path.join(seg_dir, "*.csv.zst"))):
            ms = os.path.basename(seg).split(".")[1]
            if ms in ms_closed:
                continue
            text = subprocess.run(["zstd", "-dcq", seg], check=True, capture_output=True,
                                  text=True).stdout
            out.append((os.path.basename(seg), text))
        again = sorted(f for f in os.listdir(base) if pat.match(f)) if os.path.isdir(base) else []
        if again == closed:
            return out
    check(False, "closed files kept changing")


def tier_rows(host_dir, tier, metric):
    """Header and rows (lists of fields) of every file of the tier."""
    header, rows = None, []
    for name, text in tier_files(host_dir, tier, metric):
        lines = csv_lines(text)
        if not lines:
            continue
        check(header in (None, lines[0]), "%s: header %r, others %r" % (name, lines[0], header))
        header = lines[0]
        rows += [split_row(l) for l in lines[1:]]
    return header, rows


def num(s):
    return float(s) if s != "" else math.nan


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def expected_minutes(rows, nfields):
    """Minute buckets recomputed from the rows sent: {(t, inst): (count,
    [(min, avg, max) or None per field])}, sums in the order sent."""
    acc = {}
    for t, inst, values in rows:
        k = (t - t % MINUTE, inst)
        a = acc.setdefault(k, [0, [[] for _ in range(nfields)]])
        a[0] += 1
        for i, v in enumerate(values):
            if not math.isnan(v):
                a[1][i].append(v)
    out = {}
    for k, (n, vals) in acc.items():
        fs = []
        for vs in vals:
            s = 0.0
            for v in vs:
                s += v
            fs.append((min(vs), s / len(vs), max(vs)) if vs else None)
        out[k] = (n, fs)
    return out


def parse_rollups(header, rows, instanced):
    """{(t, inst): (count, [(min, avg, max) or None])}, each bucket once."""
    cols = header.split(",")
    first = 2 if instanced else 1
    check(cols[first] == "count", "rollup header %r" % header)
    nf = (len(cols) - first - 1) // 3
    out = {}
    for r in rows:
        k = (int(r[0]), r[1] if instanced else "")
        check(k not in out, "bucket %r written twice" % (k,))
        fs = []
        for i in range(nf):
            lo, avg, hi = r[first + 1 + 3 * i:first + 4 + 3 * i]
            fs.append(None if lo == "" else (float(lo), float(avg), float(hi)))
        out[k] = (int(r[first]), fs)
    return out


def hours_from(minutes):
    """Hour buckets recomputed from minute buckets, weighted by count."""
    acc = {}
    for (t, inst), (n, fs) in sorted(minutes.items()):
        k = (t - t % HOUR, inst)
        a = acc.setdefault(k, [0, [None] * len(fs)])
        a[0] += n
        for i, f in enumerate(fs):
            if f is None:
                continue
            if a[1][i] is None:
                a[1][i] = [f[0], f[1] * n, f[2], n]
            else:
                g = a[1][i]
                g[0], g[1], g[2], g[3] = min(g[0], f[0]), g[1] + f[1] * n, max(g[2], f[2]), g[3] + n
    return {k: (n, [None if g is None else (g[0], g[1] / g[3], g[2]) for g in fs])
            for k, (n, fs) in acc.items()}


def check_tier(got, want, what, exact=True):
    check(set(got) == set(want), "%s buckets: %d written, %d expected; missing %r, extra %r" %
          (what, len(got), len(want), sorted(set(want) - set(got))[:3],
           sorted(set(got) - set(want))[:3]))
    for k in want:
        n, fs = got[k]
        wn, wfs = want[k]
        check(n == wn, "%s %r: count %d, want %d" % (what, k, n, wn))
        for f, w in zip(fs, wfs):
            check((f is None) == (w is None), "%s %r: %r, want %r" % (what, k, f, w))
            if f is None:
                continue
            ok = f[0] == w[0] and f[2] == w[2] and (
                f[1] == w[1] if exact else math.isclose(f[1], w[1], rel_tol=1e-9, abs_tol=1e-9))
            check(ok, "%s %r: %r, want %r" % (what, k, f, w))


def check_store(env, sent, t_end):
    """Raw rows once each; 1m and 1h rows equal the recomputation, but for
    the buckets still open (the last minute and the last hour)."""
    hd = env.host_dir("h1")
    for metric, inst_key, nf in (("net", "iface", 2), ("load", "", 1)):
        header, rows = tier_rows(hd, "raw", metric)
        got = sorted((int(r[0]), r[1] if inst_key else "",
                      tuple(num(v) for v in r[2 if inst_key else 1:])) for r in rows)
        want = sorted(sent[metric])
        check(len(got) == len(want), "%s: %d raw rows stored, %d sent" % (metric, len(got),
                                                                          len(want)))
        for g, w in zip(got, want):
            check(g[0] == w[0] and g[1] == w[1] and all(same(a, b) for a, b in zip(g[2], w[2])),
                  "%s: stored %r, sent %r" % (metric, g, w))
        last_min, last_hour = t_end - t_end % MINUTE, t_end - t_end % HOUR
        minutes = expected_minutes(sent[metric], nf)
        want_1m = {k: v for k, v in minutes.items() if k[0] < last_min}
        h1, r1 = tier_rows(hd, "1m", metric)
        check_tier(parse_rollups(h1, r1, bool(inst_key)), want_1m, metric + " 1m")
        want_1h = {k: v for k, v in hours_from(want_1m).items() if k[0] < last_hour}
        h2, r2 = tier_rows(hd, "1h", metric)
        check_tier(parse_rollups(h2, r2, bool(inst_key)), want_1h, metric + " 1h", exact=False)


def test_rollups_equal_a_recomputation_and_days_close(env):
    """2.5 days of rows, an hour a batch: each past day's raw and minute
    rows sit in a closed file of their own, the open files hold today's
    only, and every rollup row equals the recomputation."""
    rng = random.Random(int(time.time()))
    t0 = day_start(int(time.time() * 1000)) - 3 * DAY
    batches, sent = make_batches(rng, t0, 60)
    env.start_server(workers=1)
    send_all(env, "h1", batches)
    t_end = sent["load"][-1][0]
    check_store(env, sent, t_end)
    hd = env.host_dir("h1")
    for sub in ("", "1m"):
        folder = os.path.join(hd, sub)
        closed = [f for f in os.listdir(folder) if re.match(r"^net\.\d+\.csv$", f)]
        days = set()
        for f in closed:
            with open(os.path.join(folder, f)) as fh:
                lines = csv_lines(fh.read())[1:]
            ds = {day_start(int(l.split(",")[0])) for l in lines}
            check(len(ds) == 1, "%s/%s holds rows of %d days" % (sub, f, len(ds)))
            days |= ds
        check(days == {t0, t0 + DAY}, "%s: closed days %r" % (sub or "raw", sorted(days)))
        with open(os.path.join(folder, "net.csv")) as fh:
            lines = csv_lines(fh.read())[1:]
        check({day_start(int(l.split(",")[0])) for l in lines} == {t0 + 2 * DAY},
              "%s: the open file holds other days" % (sub or "raw"))


def send_with_kills(env, rng, batches, kills, most, extra=None):
    """Store the batches as an agent would across kills -9 of the server:
    each time, a server is started, the batches from the last ACK on are
    sent (up to most of them), some ACKs read (several batches may share
    one), and the server killed while it stores the rest; then a last
    server takes them all."""
    acked = 0
    for n in range(1, kills + 2):
        env.start_server(workers=1, name="server%d" % n, extra=extra)
        s = session(env)
        last = n > kills
        upto = len(batches) if last else min(len(batches), acked + rng.randint(2, most))
        for seq in range(acked + 1, upto + 1):
            s.sendall(metrics_frame(seq, batches[seq - 1]))
        target = len(batches) if last else rng.randint(acked, upto)
        while acked < target:
            acked = max(acked, ack(s))
        if last:
            s.close()
            return
        env.server.kill()
        s.close()


def test_kill_during_rollups_loses_and_duplicates_nothing(env):
    """kill -9 at random points while batches (and day closes) are stored,
    then the agent's resends: raw rows once, rollups equal the
    recomputation, no bucket written twice."""
    rng = random.Random(int(time.time()) + 1)
    t0 = day_start(int(time.time() * 1000)) - 3 * DAY
    batches, sent = make_batches(rng, t0, 60)
    send_with_kills(env, rng, batches, kills=5, most=15)
    check_store(env, sent, sent["load"][-1][0])


def test_kill_while_days_close_and_compress_loses_and_duplicates_nothing(env):
    """Every batch is of a new day, so each one closes the last day's files
    while the housekeeper compresses the closed ones: kill -9 at random
    points, then the resends; every row once, every rollup right."""
    rng = random.Random(int(time.time()) + 4)
    t0 = day_start(int(time.time() * 1000)) - 40 * DAY
    batches, sent = [], {"net": [], "load": []}
    for d in range(40):
        b, s = make_batches(rng, t0 + d * DAY + rng.randint(0, 20) * HOUR, 1)
        batches += b
        sent["net"] += s["net"]
        sent["load"] += s["load"]
    keep = {"storage": {"raw_days": 36500, "minute_days": 36500, "hour_days": 36500,
                        "close_delay": 0, "sweep_seconds": 1}}
    send_with_kills(env, rng, batches, kills=6, most=8, extra=keep)
    check_store(env, sent, sent["load"][-1][0])


def test_metrics_that_stop_are_closed(env):
    """A metric the agent stops sending is closed (its last buckets
    written) once another metric's rows are of a later day."""
    rng = random.Random(int(time.time()) + 5)
    t0 = day_start(int(time.time() * 1000)) - 3 * DAY
    batches, sent = make_batches(rng, t0 + 20 * HOUR, 8)  # into the next day
    env.start_server(workers=1)
    send_all(env, "h1", [b if seq < 3 else [g for g in b if g[0] == "load"]
                         for seq, b in enumerate(batches)])
    hd = env.host_dir("h1")
    check(not os.path.exists(os.path.join(hd, "net.csv")), "net.csv is still open")
    net = [r for r in sent["net"] if r[0] < t0 + 23 * HOUR]
    _, rows = tier_rows(hd, "raw", "net")
    check(len(rows) == len(net), "net: %d rows, %d sent" % (len(rows), len(net)))
    h1, r1 = tier_rows(hd, "1m", "net")
    check_tier(parse_rollups(h1, r1, True), expected_minutes(net, 2), "net 1m")
    check("no rows since" in env.server.log_text(), "not logged")
    # Still listed, from its first row, and its series still read.
    listed = {m["metric"]: m for m in env.api("/api/v1/hosts/h1/metrics")["metrics"]}
    check("net" in listed and listed["net"]["first"] == net[0][0] and
          listed["net"]["last"] == net[-1][0], "net listed as %r" % listed.get("net"))
    got = env.api("/api/v1/hosts/h1/series/net?field=rx&instance=eth0&from=%d&to=%d&points=200"
                  % (t0, t0 + DAY))
    check(got["rows"] == len(net) // 2, "net series: %d rows, want %d" % (got["rows"], len(net) // 2))


def v2_record(run_id, seq, files):
    """A version 2 commit record (the layout before rollups) in its slot."""
    body = struct.pack(">4sIQQQI", b"PMST", 2, 1, run_id, seq, len(files))
    for metric, size in files:
        body += metric.encode().ljust(32, b"\0") + struct.pack(">Q", size)
    body += struct.pack(">IQQ", 1, run_id, seq)
    body += struct.pack(">I", zlib.crc32(body))
    return body.ljust(4096, b"\0")


def test_a_folder_from_before_rollups_migrates(env):
    """A host folder as the server before rollups left it (a version 2
    commit record, months of rows in one file, a batch never committed at
    its end): the rows are kept, rolled up and closed at the first batch,
    the uncommitted row is cut, and the old run's batches are still known."""
    rng = random.Random(int(time.time()) + 2)
    t0 = day_start(int(time.time() * 1000)) - 3 * DAY
    batches, sent = make_batches(rng, t0, 60)
    hd = os.path.join(env.data_dir, "hosts", "h1")
    os.makedirs(hd)
    old = {"load": sent["load"][:-240]}  # the last two hours arrive live
    text = "time,load1\n" + "".join("%d,%r\n" % (t, v[0]) for t, _, v in old["load"])
    with open(os.path.join(hd, "load.csv"), "w") as f:
        f.write(text + "%d,1.5\n" % (t0 + 99 * DAY))  # never committed
    with open(os.path.join(hd, "commit.state"), "wb") as f:
        f.write(b"\0" * 4096 + v2_record(7, 58, [("load", len(text))]))
    env.start_server(workers=1)
    s = session(env)
    s.sendall(metrics_frame(58, batches[57]))  # stored before: not again
    check(ack(s) == 58, "the old run's batch 58 is not known")
    for seq in (59, 60):
        s.sendall(metrics_frame(seq, [batches[seq - 1][1]]))
        check(ack(s) == seq, "ACK %d" % seq)
    s.close()
    want = {"load": sent["load"], "net": []}
    header, rows = tier_rows(hd, "raw", "load")
    check(sorted(int(r[0]) for r in rows) == [t for t, _, _ in want["load"]],
          "raw rows: %d, want %d" % (len(rows), len(want["load"])))
    t_end = want["load"][-1][0]
    minutes = expected_minutes(want["load"], 1)
    h1, r1 = tier_rows(hd, "1m", "load")
    check_tier(parse_rollups(h1, r1, False),
               {k: v for k, v in minutes.items() if k[0] < t_end - t_end % MINUTE}, "load 1m")
    check("rolled up with the next batch" in env.server.log_text(), "no log line of the migration")


def test_series_and_fleet_read_what_the_server_rolled_up(env):
    """Rows sent to three hosts come back from /series out of the tier the
    span picks (raw, 1m, 1h), each point equal to the rows sent in its
    bucket, and /fleet ranks the hosts by their own maximum."""
    rng = random.Random(int(time.time()) + 3)
    t0 = day_start(int(time.time() * 1000)) - 3 * DAY
    env.start_server(workers=2)
    sent_by = {}
    for h in ("h1", "h2", "h3"):
        batches, sent = make_batches(rng, t0, 50)
        sent_by[h] = sent
        send_all(env, h, batches)
    rows = [(t, v[0]) for t, inst, v in sent_by["h1"]["net"] if inst == "eth0"]
    for span, points, tier in ((20 * MINUTE, 40, "raw"), (DAY, 1440, "1m"), (2 * DAY, 48, "1h")):
        frm = t0 + DAY
        to = frm + span - 1
        got = env.api("/api/v1/hosts/h1/series/net?field=rx&instance=eth0&from=%d&to=%d&points=%d"
                      % (frm, to, points))
        check(got["tier"] == tier, "%d points over %d ms: tier %r, want %s" % (points, span,
                                                                              got["tier"], tier))
        width = got["bucket_ms"]
        want = {}
        for t, v in rows:
            if frm <= t <= to:
                want.setdefault(frm + (t - frm) // width * width, []).append(v)
        check(len(got["points"]) == len(want), "%s: %d points, want %d" % (tier, len(got["points"]),
                                                                          len(want)))
        for t, avg, lo, hi in got["points"]:
            vs = want[t]
            check(lo == min(vs) and hi == max(vs) and
                  math.isclose(avg, sum(vs) / len(vs), rel_tol=1e-9, abs_tol=1e-9),
                  "%s point %d: %r, want %r" % (tier, t, (avg, lo, hi),
                                               (sum(vs) / len(vs), min(vs), max(vs))))
    top = env.api("/api/v1/fleet/net/rx?from=%d&to=%d&agg=max" % (t0, t0 + 2 * DAY - 1))
    # Highest first, ties by name.
    want = sorted(((max(v[0] for t, _, v in sent_by[h]["net"] if t < t0 + 2 * DAY), h)
                   for h in sent_by), key=lambda e: (-e[0], e[1]))
    check([(e["value"], e["host"]) for e in top["top"]] == want,
          "fleet ranking %r, want %r" % (top["top"], want))
    check(all(e["tier"] == "1h" for e in top["top"]), "fleet tiers %r" % top["top"])


def test_rows_out_of_order_read_back(env):
    """A clock stepped back within the day (or a backlog sent late): rows
    older than the ones before them are stored as stamped, and every one
    is read back, from raw rows and from the minute rollups alike."""
    rng = random.Random(int(time.time()) + 6)
    base = day_start(int(time.time() * 1000)) - DAY + 6 * HOUR
    chunks = [(30, 80), (0, 30), (85, 90), (80, 85)]  # minutes after base
    env.start_server(workers=1)
    s = session(env)
    rows = []
    for seq, (a, b) in enumerate(chunks, 1):
        part = [(base + a * MINUTE + i * STEP, "", (round(rng.uniform(0, 9), 2),))
                for i in range((b - a) * MINUTE // STEP)]
        rows += part
        s.sendall(metrics_frame(seq, [("load", "", ("load1",), part)]))
        check(ack(s) == seq, "ACK %d" % seq)
    s.close()
    frm, to = base, base + 90 * MINUTE - 1
    for points, tier in ((1000, "raw"), (90, "1m")):
        got = env.api("/api/v1/hosts/h1/series/load?field=load1&from=%d&to=%d&points=%d"
                      % (frm, to, points))
        check(got["tier"] == tier, "tier %r, want %s" % (got["tier"], tier))
        width = got["bucket_ms"]
        want = {}
        for t, _, v in rows:
            want.setdefault(frm + (t - frm) // width * width, []).append(v[0])
        check(got["rows"] == len(rows), "%s: %d rows read, %d sent" % (tier, got["rows"],
                                                                      len(rows)))
        pts = {p[0]: p[1:] for p in got["points"]}
        check(set(pts) == set(want), "%s: points at %d times, want %d" % (tier, len(pts),
                                                                         len(want)))
        for t, vs in want.items():
            avg, lo, hi = pts[t]
            check(lo == min(vs) and hi == max(vs) and math.isclose(avg, sum(vs) / len(vs)),
                  "%s point %d: %r, want %r" % (tier, t, pts[t], vs))


def test_implausible_times_are_stored_at_the_servers(env):
    """A row stamped 1970 (a Pi before NTP) or a day ahead is stored at the
    server's receive time and counted; a day-old backlog row as stamped."""
    env.start_server(workers=1)
    s = session(env)
    now = int(time.time() * 1000)
    rows = [(5000, "", (1.0,)), (now + DAY, "", (2.0,)), (now - DAY, "", (3.0,))]
    before = int(time.time() * 1000)
    s.sendall(metrics_frame(1, [("load", "", ("load1",), rows)]))
    check(ack(s) == 1, "ACK 1")
    after = int(time.time() * 1000)
    s.close()
    _, got = tier_rows(env.host_dir("h1"), "raw", "load")
    by_value = {r[1]: int(r[0]) for r in got}
    check(before <= by_value["1"] <= after, "1970 row stored at %d" % by_value["1"])
    check(before <= by_value["2"] <= after, "future row stored at %d" % by_value["2"])
    check(by_value["3"] == now - DAY, "backlog row stored at %d" % by_value["3"])
    stats = env.api("/api/v1/stats")
    check(stats["counters"]["rows_retimed"] == 2, "rows_retimed %r" % stats["counters"])
    check("which no working clock gives" in env.server.log_text(), "not logged")


run_tests(globals())
