#!/usr/bin/env python3
"""Time GET /api/v1/hosts/<name>/series/<metric> on a 7-day history at 1 s
(604,800 rows in load.csv, twice that in disk.csv with two mounts) in a
release build: 7-day, 24-hour and 15-minute windows, several runs each.
Prints the machine, the date and median and max milliseconds; asserts
nothing. Usage: bench/series_bench.py [--build DIR] [--runs N] [--points N]"""

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DAY = 86400 * 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(build_dir):
    """Set up (if new) and build a release build of this tree."""
    info = os.path.join(build_dir, "meson-info", "meson-info.json")
    if os.path.exists(info):
        with open(info) as f:
            src = json.load(f)["directories"]["source"]
        if os.path.realpath(src) != os.path.realpath(ROOT):
            sys.exit("series_bench: %s builds %s, not %s; pass another --build"
                     % (build_dir, src, ROOT))
    else:
        subprocess.run(["meson", "setup", build_dir, "--buildtype=release"], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", build_dir, "server/pimon-server"], check=True,
                   stdout=subprocess.DEVNULL)


def generate(host_dir, end, days):
    """load.csv and disk.csv, one row (disk: one per mount) a second."""
    os.makedirs(host_dir)
    rng = random.Random(1)
    start = end - days * DAY
    with open(os.path.join(host_dir, "load.csv"), "w") as load, \
            open(os.path.join(host_dir, "disk.csv"), "w") as disk:
        load.write("time,load1,load5,load15,running,total\n")
        disk.write("time,mount,total_bytes,used_bytes,avail_bytes,used_pct,inodes_total,"
                   "inodes_used,inodes_used_pct\n")
        rows = []
        drows = []
        for t in range(start, end, 1000):
            l1 = round(rng.random() * 4, 2)
            rows.append("%d,%s,%s,%s,%d,%d\n" % (t, l1, round(l1 * 0.9, 2), round(l1 * 0.8, 2),
                                                 rng.randrange(1, 5), 300 + rng.randrange(50)))
            used = 12000000000 + (t - start) // 1000
            drows.append("%d,/,31000000000,%d,%d,%.2f,1900000,250000,13.16\n"
                         % (t, used, 31000000000 - used, used / 310000000.0))
            drows.append("%d,/boot/firmware,535805952,52000000,483805952,9.70,0,0,0\n" % t)
            if len(rows) >= 50000:
                load.writelines(rows)
                disk.writelines(drows)
                rows, drows = [], []
        load.writelines(rows)
        disk.writelines(drows)
    return (end - start) // 1000


def start_server(build_dir, tmp):
    port, http = free_port(), free_port()
    cfg = os.path.join(tmp, "server.cfg")
    with open(cfg, "w") as f:
        f.write('server: { listen = "127.0.0.1:%d"; data_dir = "%s/data"; workers = 2;\n'
                '  http: { listen = "127.0.0.1:%d"; }; log_level = "warn"; };\n'
                % (port, tmp, http))
    log = open(os.path.join(tmp, "server.log"), "wb")
    p = subprocess.Popen([os.path.join(build_dir, "server", "pimon-server"), "-c", cfg],
                         stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/api/v1/stats" % http, timeout=1).read()
            return p, http
        except OSError:
            if p.poll() is not None:
                sys.exit("series_bench: the server exited; see %s/server.log" % tmp)
            time.sleep(0.05)
    p.kill()
    sys.exit("series_bench: the server did not answer")


def timed(url, runs):
    """One warm-up, then runs timed requests: ms each, and the last answer."""
    body = urllib.request.urlopen(url, timeout=60).read()
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        body = urllib.request.urlopen(url, timeout=60).read()
        ms.append((time.perf_counter() - t0) * 1000)
    return ms, json.loads(body), len(body)


def machine():
    cpu = "?"
    mem = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem = "%.0f GiB" % (int(f.readline().split()[1]) / 1048576)
    except OSError:
        pass
    osname = platform.system()
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return ("%s, %s, %d cores, %s RAM, %s, kernel %s; commit %s%s"
            % (platform.machine(), cpu, os.cpu_count() or 0, mem, osname, platform.release(),
               commit, " (modified)" if dirty else ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="/tmp/build-rel")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--points", type=int, default=500)
    ap.add_argument("--days", type=int, default=7)
    a = ap.parse_args()
    build(a.build)
    tmp = tempfile.mkdtemp(prefix="pimon-series-bench-")
    server = None
    try:
        end = (int(time.time()) - 60) * 1000
        t0 = time.monotonic()
        nrows = generate(os.path.join(tmp, "data", "hosts", "bench"), end, a.days)
        gen_s = time.monotonic() - t0
        hd = os.path.join(tmp, "data", "hosts", "bench")
        sizes = {m: os.path.getsize(os.path.join(hd, m + ".csv")) for m in ("load", "disk")}
        server, http = start_server(a.build, tmp)
        print("series_bench: %s" % datetime.datetime.now(datetime.timezone.utc)
              .strftime("%Y-%m-%d %H:%M UTC"))
        print("machine: %s" % machine())
        print("history: %d rows at 1 s over %d days; load.csv %.1f MB, disk.csv (2 mounts) "
              "%.1f MB; generated in %.1f s, in the page cache" %
              (nrows, a.days, sizes["load"] / 1e6, sizes["disk"] / 1e6, gen_s))
        print("each query: 1 warm-up, then %d timed runs over loopback HTTP; points=%d"
              % (a.runs, a.points))
        print("%-28s %9s %8s %8s %7s %9s" % ("QUERY", "ROWS", "MEDIAN", "MAX", "POINTS",
                                            "BYTES"))
        windows = [("7d", a.days * DAY), ("24h", DAY), ("15m", 15 * 60 * 1000)]
        for metric, extra in [("load", "field=load1"), ("disk", "field=used_pct&instance=/")]:
            for label, span in windows:
                url = ("http://127.0.0.1:%d/api/v1/hosts/bench/series/%s?%s&from=%d&to=%d"
                       "&points=%d" % (http, metric, extra, end - span, end, a.points))
                ms, doc, size = timed(url, a.runs)
                print("%-28s %9d %6.1fms %6.1fms %7d %9d"
                      % ("%s.%s %s" % (metric, extra.split("&")[0][6:], label), doc["rows"],
                         statistics.median(ms), max(ms), len(doc["points"]), size))
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
