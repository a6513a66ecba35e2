"""The storage housekeeper in the real server: closed files become
compressed day segments that zstdcat reads back as the rows of their day,
retention keeps raw_days and minute_days, a small max_bytes deletes the
oldest days first and raises storage_retention_cut, and kill -9 while
compressing loses and duplicates nothing.

The closed files (<metric>.<ms>.csv, what the store's day close leaves)
are placed in the host folders before the server starts."""

import calendar
import os
import random
import re
import signal
import subprocess
import time
import urllib.request

import socket
import struct

from harness import (SLOW, T_ACK, T_WELCOME, check, hello, metrics_frame, read_frame, run_tests,
                     wait_for)

DAY = 86400000
SEG = re.compile(r"^(\d{4}-\d{2}(?:-\d{2})?)\.(\d+)\.csv\.zst$")


def day_label(t_ms, monthly=False):
    return time.strftime("%Y-%m" if monthly else "%Y-%m-%d", time.gmtime(t_ms // 1000))


def put_closed(folder, metric, ms, header, rows):
    """Write rows (lists of strings, the time first) as the closed file
    <metric>.<ms>.csv, in the order given."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "%s.%d.csv" % (metric, ms)), "w") as f:
        f.write(header + "\n")
        for r in rows:
            f.write(",".join(r) + "\n")


def expected_segments(header, rows, ms, monthly=False):
    """What the housekeeper makes of one closed file: {segment name: text}."""
    parts = {}
    for r in sorted(rows, key=lambda r: int(r[0])):  # stable, as the server's
        parts.setdefault(day_label(int(r[0]), monthly), []).append(",".join(r))
    return {"%s.%d.csv.zst" % (d, ms): header + "\n" + "".join(x + "\n" for x in rs)
            for d, rs in parts.items()}


def zstdcat(path):
    return subprocess.run(["zstdcat", path], check=True, capture_output=True,
                          timeout=30).stdout.decode()


def segments(folder):
    """{name: path} of the segments in folder (none when it is missing)."""
    if not os.path.isdir(folder):
        return {}
    return {n: os.path.join(folder, n) for n in os.listdir(folder) if SEG.match(n)}


def closed_left(data_dir):
    n = 0
    for root, _, files in os.walk(os.path.join(data_dir, "hosts")):
        n += sum(1 for f in files if re.match(r"^[a-z0-9_]+\.\d+\.csv$", f))
    return n


def tree_bytes(data_dir):
    total = 0
    for root, _, files in os.walk(os.path.join(data_dir, "hosts")):
        total += sum(os.lstat(os.path.join(root, f)).st_size for f in files)
    return total


def storage_cfg(**kw):
    d = {"sweep_seconds": 1, "close_delay": 0}
    d.update(kw)
    return {"storage": d}


def backdated_days(env, host, metric, now, days=16, per_day=4, tier_dir=""):
    """One closed file per UTC day from now - days to today, as the day
    close leaves them: rows of that day, a few of them out of order, the
    file closed just after the day ended. {ms: rows}."""
    folder = os.path.join(env.host_dir(host), tier_dir)
    today = now // DAY
    files = {}
    for d in range(today - days, today + 1):
        rows = []
        for i in range(per_day):
            t = d * DAY + 1000 + i * (DAY // per_day - 5000)
            if t > now:
                break
            rows.append([str(t), "%d.5" % (d - today), "h%d" % i])
        if not rows:
            continue
        rows.reverse()  # out of time order, as a backlog or a stepped clock leaves them
        ms = min((d + 1) * DAY + 17, now)
        put_closed(folder, metric, ms, "time,value,tag", rows)
        files[ms] = rows
    return files


def test_closed_days_compressed_and_kept_for_raw_days(env):
    """16 days of closed raw and minute files: once compressed, raw
    segments exist for the last raw_days days only, minute segments for
    minute_days, each zstdcat equal to its day's rows, header first; the
    open file is untouched; the counters show in /api/v1/stats and
    /metrics."""
    now = int(time.time() * 1000)
    today = now // DAY
    raw = backdated_days(env, "pi-1", "cpu", now)
    minute = backdated_days(env, "pi-1", "cpu", now, tier_dir="1m")
    # One file with several days out of order and equal times.
    t1 = (today - 1) * DAY + 500
    mixed = [[str(t1 + 10), "b", "x"], [str(t1 - DAY), "a", "x"], [str(t1), "c1", "x"],
             [str(t1), "c2", "x"], [str(t1 - 5 * DAY), "old", "x"]]
    mixed_ms = now - 1000
    put_closed(env.host_dir("pi-1"), "mem", mixed_ms, "time,v,w", mixed)
    with open(os.path.join(env.host_dir("pi-1"), "cpu.csv"), "w") as f:
        f.write("time,value,tag\n%d,1,open\n" % now)
    env.start_server(workers=1, extra=storage_cfg(raw_days=3, minute_days=5))
    wait_for(lambda: closed_left(env.data_dir) == 0, 20, "every closed file compressed",
             [env.server])
    wait_for(lambda: env.api("/api/v1/stats")["storage"]["segments_aged"] > 0, 10,
             "age retention", [env.server])

    wants = {}
    for tier, files, keep in (("raw", raw, 3), ("1m", minute, 5)):
        want = {}
        for ms, rows in files.items():
            for name, text in expected_segments("time,value,tag", rows, ms).items():
                d = calendar.timegm(time.strptime(name[:10], "%Y-%m-%d")) // 86400
                if d >= today - keep:
                    want[name] = text
        wants[os.path.join(env.host_dir("pi-1"), tier, "cpu")] = want
    # A sweep may still be deleting: wait for the end state.
    wait_for(lambda: all(sorted(segments(f)) == sorted(w) for f, w in wants.items()), 10,
             "the raw and minute segments retention keeps", [env.server])
    for folder, want in wants.items():
        for name, path in segments(folder).items():
            text = zstdcat(path)
            check(text == want[name], "%s/%s holds %r, want %r" % (folder, name, text,
                                                                    want[name]))
    days = sorted(n[:10] for n in segments(os.path.join(env.host_dir("pi-1"), "raw", "cpu")))
    check(days[0] == day_label((today - 3) * DAY), "oldest raw day kept %s" % days[0])

    # The mixed file: its days within raw_days, each sorted, equal times in order.
    want = expected_segments("time,v,w", mixed, mixed_ms)
    folder = os.path.join(env.host_dir("pi-1"), "raw", "mem")
    got = segments(folder)
    kept = {n: t for n, t in want.items() if n[:10] >= day_label((today - 3) * DAY)}
    check(sorted(got) == sorted(kept), "mem segments %s, want %s" % (sorted(got), sorted(kept)))
    for name, path in got.items():
        check(zstdcat(path) == kept[name], "mem %s: %r" % (name, zstdcat(path)))

    with open(os.path.join(env.host_dir("pi-1"), "cpu.csv")) as f:
        check(f.read() == "time,value,tag\n%d,1,open\n" % now, "the open file changed")
    st = env.api("/api/v1/stats")["storage"]
    check(st["files_compressed"] == len(raw) + len(minute) + 1, "stats %r" % st)
    check(st["bytes_compressed_in"] > 0 and st["bytes_compressed_out"] > 0, "stats %r" % st)
    check(st["segments_capped"] == 0 and st["errors"] == 0, "stats %r" % st)
    check(st["bytes"] > 0 and st["max_bytes"] > 0, "stats %r" % st)
    with urllib.request.urlopen(env.url("/metrics"), timeout=5) as r:
        page = r.read().decode()
    m = re.search(r"^pimon_storage_files_compressed_total (\d+)$", page, re.M)
    check(m and int(m.group(1)) == st["files_compressed"], "/metrics has no files_compressed")
    check(re.search(r"^pimon_storage_segments_aged_total [1-9]", page, re.M), "/metrics aged")
    check(re.search(r"^pimon_storage_bytes [1-9]", page, re.M), "/metrics bytes")


def test_cap_deletes_oldest_days_first_and_raises_alarm(env):
    """Two hosts of 16 compressed days each; a max_bytes that fits about
    half of the raw segments: the oldest days go first across both hosts,
    minute segments and open files stay, the total ends under the cap and
    storage_retention_cut fires for the hosts cut."""
    now = int(time.time() * 1000)
    rnd = random.Random(7)
    for host in ("pi-a", "pi-b"):
        backdated_days(env, host, "cpu", now, per_day=300)
        backdated_days(env, host, "cpu", now, per_day=20, tier_dir="1m")
        with open(os.path.join(env.host_dir(host), "cpu.csv"), "w") as f:
            f.write("time,value,tag\n%d,%f,open\n" % (now, rnd.random()))
    env.start_server(workers=1, extra=storage_cfg(raw_days=100, minute_days=100))
    wait_for(lambda: closed_left(env.data_dir) == 0, 30, "every closed file compressed",
             [env.server])
    env.server.stop()
    raw = {}
    for host in ("pi-a", "pi-b"):
        for name, path in segments(os.path.join(env.host_dir(host), "raw", "cpu")).items():
            raw[(host, name)] = os.lstat(path).st_size
    total = tree_bytes(env.data_dir)
    cap = total - sum(raw.values()) // 2
    minute_before = {h: sorted(segments(os.path.join(env.host_dir(h), "1m", "cpu")))
                     for h in ("pi-a", "pi-b")}

    env.start_server(workers=1, name="server2",
                     extra=storage_cfg(raw_days=100, minute_days=100, max_bytes=cap))
    wait_for(lambda: env.api("/api/v1/stats")["storage"]["segments_capped"] > 0, 20,
             "the cap to delete", [env.server])

    def settled():
        """The files and the counters of a finished sweep, the total under
        the cap (the alarm rows the cut writes may take another sweep)."""
        before = env.api("/api/v1/stats")["storage"]
        left = {(h, n) for h in ("pi-a", "pi-b")
                for n in segments(os.path.join(env.host_dir(h), "raw", "cpu"))}
        size = tree_bytes(env.data_dir)
        after = env.api("/api/v1/stats")["storage"]
        ok = (before == after and size <= cap and after["bytes"] <= cap and
              after["segments_capped"] == len(set(raw) - left))
        return ok and (left, after)
    left, st = wait_for(settled, 20, "hosts/ under the cap of %d" % cap, [env.server])
    gone = set(raw) - left
    check(gone and left, "gone %d, left %d" % (len(gone), len(left)))
    check(max(n[:10] for _, n in gone) <= min(n[:10] for _, n in left),
          "a newer day went before an older one: gone %s, left %s" %
          (sorted(n for _, n in gone), sorted(n for _, n in left)))
    for h in ("pi-a", "pi-b"):
        check(sorted(segments(os.path.join(env.host_dir(h), "1m", "cpu"))) == minute_before[h],
              "minute segments of %s deleted while raw ones were left" % h)
        check(os.path.exists(os.path.join(env.host_dir(h), "cpu.csv")), "open file deleted")
    cut_hosts = {h for h, _ in gone}

    def alarmed():
        active = env.api("/api/v1/alarms")["active"]
        got = {a["host"] for a in active if a["name"] == "storage_retention_cut"}
        return got == cut_hosts and active
    active = wait_for(alarmed, 10, "storage_retention_cut on %s" % sorted(cut_hosts),
                      [env.server])
    a = [a for a in active if a["name"] == "storage_retention_cut"][0]
    check(a["level"] == "warning" and "cap" in a["message"], "alarm %r" % a)
    check("storage cap" in env.server.log_text(), "the cut is not logged")


def test_kill_during_compression_loses_and_duplicates_nothing(env):
    """Many closed files, the server killed with SIGKILL while it
    compresses them, three times, then left to finish: every row is in
    exactly one segment, and no temporary file is left."""
    now = int(time.time() * 1000)
    today = now // DAY
    rnd = random.Random(11)
    sent = {}
    for h in range(2):
        host = "pi-k%d" % h
        for m in range(8):
            metric = "m%d" % m
            for d in range(today - 16, today):
                rows = []
                for i in range(200):
                    t = d * DAY + rnd.randrange(-DAY // 2, DAY + DAY // 4)
                    rows.append([str(t), "%.17g" % rnd.random(), str(i)])
                ms = (d + 1) * DAY + 5
                put_closed(env.host_dir(host), metric, ms, "time,v,i", rows)
                sent.setdefault((host, metric), []).extend(",".join(r) for r in rows)
    total_files = closed_left(env.data_dir)
    # And what a kill in the middle of a file leaves: a partial segment of
    # a closed file that is still there, and a temporary file.
    ms = (today - 15) * DAY + 5
    folder = os.path.join(env.host_dir("pi-k0"), "raw", "m0")
    os.makedirs(folder)
    part = os.path.join(folder, "%s.%d.csv.zst" % (day_label((today - 16) * DAY), ms))
    subprocess.run(["zstd", "-q", "-o", part], input=b"time,v,i\n1,partial\n", check=True,
                   timeout=30)
    with open(part + ".tmp", "wb") as f:
        f.write(b"\x28\xb5\x2f")
    extra = storage_cfg(raw_days=100)
    for round_ in range(3):
        start = closed_left(env.data_dir)
        if start == 0:
            break
        env.start_server(workers=1, extra=extra, name="server%d" % round_)
        wait_for(lambda: closed_left(env.data_dir) < start, 20, "compression to start",
                 [env.server])
        time.sleep(rnd.random() * 0.3 * SLOW)
        env.server.kill()
    env.start_server(workers=1, extra=extra, name="server-last")
    wait_for(lambda: closed_left(env.data_dir) == 0, 60, "every closed file compressed",
             [env.server])
    check(total_files == 2 * 8 * 16, "files %d" % total_files)
    for (host, metric), rows in sent.items():
        folder = os.path.join(env.host_dir(host), "raw", metric)
        got = []
        for name, path in segments(folder).items():
            text = zstdcat(path).splitlines()
            check(text[0] == "time,v,i", "%s/%s header %r" % (folder, name, text[0]))
            times = [int(r.split(",")[0]) for r in text[1:]]
            check(times == sorted(times), "%s/%s not sorted" % (folder, name))
            check(all(day_label(t) == name[:10] for t in times), "%s/%s: a row of another day"
                  % (folder, name))
            got.extend(text[1:])
        check(sorted(got) == sorted(rows), "%s %s: %d rows stored, %d sent" %
              (host, metric, len(got), len(rows)))
        leftovers = [n for n in os.listdir(folder) if n.endswith(".tmp")]
        check(not leftovers, "temporary files left: %s" % leftovers)


def test_backdated_rows_rotate_compress_and_expire(env):
    """16 days of backdated rows through the real server, day by day: the
    store closes each day, the housekeeper compresses it, and raw segments
    are left for the last raw_days days only, each zstdcat equal to the
    header and the rows sent that day."""
    now = int(time.time() * 1000)
    today = now // DAY
    env.start_server(workers=1, extra=storage_cfg(raw_days=3))
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(hello("pi-r", run_id=3))
    f = read_frame(s)
    check(f is not None and f[0] == T_WELCOME, "no WELCOME: %r" % (f,))
    sent = {}
    for seq, d in enumerate(range(today - 16, today + 1), 1):
        rows = [(t, "", (float(i) + 0.25,)) for i, t in
                enumerate(range(d * DAY + 3000, min((d + 1) * DAY, now), DAY // 3))]
        s.sendall(metrics_frame(seq, [("load", "", ("load1",), rows)]))
        while True:
            f = read_frame(s, timeout=20)
            check(f is not None, "closed while waiting for ACK %d" % seq)
            if f[0] == T_ACK and struct.unpack(">Q", f[1][:8])[0] == seq:
                break
        sent[day_label(d * DAY)] = rows
    s.close()
    folder = os.path.join(env.host_dir("pi-r"), "raw", "load")
    keep = {day_label((today - k) * DAY) for k in (1, 2, 3)}
    wait_for(lambda: {n[:10] for n in segments(folder)} == keep, 20,
             "raw segments of %s only" % sorted(keep), [env.server])
    with open(os.path.join(env.host_dir("pi-r"), "load.csv")) as fh:
        header = fh.readline().rstrip("\n")
    for name, path in segments(folder).items():
        lines = zstdcat(path).splitlines()
        check(lines[0] == header, "%s header %r, want %r" % (name, lines[0], header))
        want = ["%d,%r" % (t, v[0]) for t, _, v in sent[name[:10]]]
        check(lines[1:] == want, "%s rows %r, want %r" % (name, lines[1:], want))


run_tests(globals())
