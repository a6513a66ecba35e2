#!/usr/bin/env python3
"""The storage figures, through the real server (release build) with
backdated rows: bytes on disk per value (closed raw days, the open day,
the rollups) beside Prometheus' TSDB holding the same samples (promtool
tsdb create-blocks-from openmetrics); a 500-point series of one host with
a year at 10 s over 1 h .. 1 y, warm; a fleet ranking of 10,000 hosts over
7 days, warm and cold; the server's CPU to close and compress a host-day.
Prints the figures (--json saves them) for docs/BENCHMARKS.md. Asserts
nothing.

Usage: bench/storage_bench.py [--build DIR] [--hosts N] [--only size,year,fleet] [--json F]"""

import argparse
import datetime
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DAY = 86400 * 1000
STEP = 10000  # the agent's default interval, ms
BEGIN = "<!-- storage_bench: generated section, replaced by each run -->"
END = "<!-- storage_bench: end of generated section -->"


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(build_dir):
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        subprocess.run(["meson", "setup", build_dir, "--buildtype=release"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", build_dir], check=True, stdout=subprocess.DEVNULL)


# --- the wire format (PROTOCOL.md) ---

def pstr(s):
    b = s.encode()
    return struct.pack(">B", len(b)) + b


def frame(ftype, payload):
    return struct.pack(">HBBI", 0x504D, 1, ftype, len(payload)) + payload


def hello(name, run_id=1):
    p = pstr(name) + pstr("bench") + struct.pack(">I", 0)
    p += pstr("Linux") + pstr("6.1") + pstr("") + pstr("boot-" + name)
    p += struct.pack(">QQ", 100, run_id) + struct.pack(">H", 0)
    return frame(1, p)


def metrics(seq, groups):
    """groups: (metric, inst_key, fields, rows), rows (t, inst, values)."""
    p = struct.pack(">QH", seq, len(groups))
    for metric, inst_key, fields, rows in groups:
        p += pstr(metric) + pstr(inst_key) + struct.pack(">B", len(fields))
        p += b"".join(pstr(f) for f in fields) + struct.pack(">I", len(rows))
        fmt = ">%dd" % len(fields)
        parts = []
        for t, inst, values in rows:
            parts.append(struct.pack(">Q", t) + pstr(inst) + struct.pack(fmt, *values))
        p += b"".join(parts)
    return frame(4, p)


def read_frame(sock):
    hdr = b""
    while len(hdr) < 8:
        c = sock.recv(8 - len(hdr))
        if not c:
            return None
        hdr += c
    _, _, ftype, n = struct.unpack(">HBBI", hdr)
    body = b""
    while len(body) < n:
        c = sock.recv(n - len(body))
        if not c:
            return None
        body += c
    return ftype, body


def send_batches(port, name, batches, run_id=1):
    """One session: HELLO, every batch, until the last is acked."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(600)
    s.sendall(hello(name, run_id))
    while True:
        f = read_frame(s)
        if f is None:
            raise RuntimeError("%s: closed before WELCOME" % name)
        if f[0] == 2:
            break
    for seq, groups in enumerate(batches, 1):
        s.sendall(metrics(seq, groups) if not isinstance(groups, bytes) else groups)
    acked = 0
    while acked < len(batches):
        f = read_frame(s)
        if f is None:
            raise RuntimeError("%s: closed at ACK %d" % (name, acked))
        if f[0] == 5:
            acked = max(acked, struct.unpack(">Q", f[1][:8])[0])
    s.close()


# --- pimon-shaped samples: what the agent's collectors send ---

class Pi:
    """A Pi's metrics at the agent's precision: CPU shares from jiffies,
    memory in bytes, load to 2 decimals, network rates and counters, disk
    bytes, temperature in millidegrees."""

    def __init__(self, rng):
        self.rng = rng
        self.jiffies = [0] * 8
        self.load = [0.3, 0.3, 0.3]
        self.mem_used = 400e6
        self.rx = [0, 0]
        self.tx = [0, 0]
        self.disk_used = 9.1e9
        self.temp = 48000

    def sample(self, t):
        r = self.rng
        d = [r.randint(0, 60), 0, r.randint(0, 20), 0, 0, 0, r.randint(0, 3), 0]
        d[4] = 400 - sum(d)
        tot = sum(d)
        cpu = [100.0 * (tot - d[4]) / tot] + [100.0 * x / tot for x in d]
        self.load = [round(max(0.0, v + r.uniform(-0.05, 0.05)), 2) for v in self.load]
        self.mem_used = max(1e8, self.mem_used + r.randint(-4096, 4096) * 1024)
        total = 3974000640
        avail = total - self.mem_used
        mem = [total, avail, self.mem_used, 100.0 * self.mem_used / total, 100.0 * avail / total,
               avail - 3e8, 5.2e7, 2.5e8, 1073737728, 1073737728, 0]
        net = []
        for i in range(2):
            drx, dtx = r.randint(0, 40000) if i == 0 else 0, r.randint(0, 9000) if i == 0 else 0
            self.rx[i] += drx
            self.tx[i] += dtx
            net.append(("eth0" if i == 0 else "wlan0",
                        [drx / 10.0, dtx / 10.0, drx // 700 / 10.0, dtx // 500 / 10.0, 0, 0, 0, 0,
                         self.rx[i], self.tx[i]]))
        self.disk_used += r.randint(0, 64) * 4096
        disk = [31254343680, self.disk_used, 31254343680 - self.disk_used - 1.6e9,
                100.0 * self.disk_used / 31254343680, 1917600, 150000, 100.0 * 150000 / 1917600]
        self.temp += r.choice((-537, 0, 0, 537))
        return [
            ("cpu", "", ("usage", "user", "nice", "system", "idle", "iowait", "irq", "softirq",
                         "steal"), [(t, "", cpu)]),
            ("mem", "", ("total_bytes", "available_bytes", "used_bytes", "used_pct",
                         "available_pct", "free_bytes", "buffers_bytes", "cached_bytes",
                         "swap_total_bytes", "swap_free_bytes", "swap_used_pct"),
             [(t, "", mem)]),
            ("load", "", ("load1", "load5", "load15", "running", "total"),
             [(t, "", self.load + [r.randint(1, 4), 180])]),
            ("net", "iface", ("rx_bytes_s", "tx_bytes_s", "rx_packets_s", "tx_packets_s",
                              "rx_errors_s", "tx_errors_s", "rx_drop_s", "tx_drop_s", "rx_bytes",
                              "tx_bytes"), [(t, i, v) for i, v in net]),
            ("disk", "mount", ("total_bytes", "used_bytes", "avail_bytes", "used_pct",
                               "inodes_total", "inodes_used", "inodes_used_pct"),
             [(t, "/", disk)]),
            ("temp", "zone", ("celsius",), [(t, "cpu", [self.temp / 1000.0])]),
        ]


def merge(samples):
    """Samples of several times into one batch's groups."""
    by = {}
    order = []
    for groups in samples:
        for metric, key, fields, rows in groups:
            if metric not in by:
                by[metric] = (metric, key, fields, [])
                order.append(metric)
            by[metric][3].extend(rows)
    return [by[m] for m in order]


class Server:
    def __init__(self, build_dir, tmp, name, storage=None, sync="none", data=None):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.data = data or os.path.join(self.dir, "data")
        self.port, self.http = free_port(), free_port()
        st = {"close_delay": 0, "sweep_seconds": 1}
        st.update(storage or {})
        cfg = os.path.join(self.dir, "server.cfg")
        with open(cfg, "w") as f:
            f.write('server: {\n listen = "127.0.0.1:%d";\n workers = 2;\n data_dir = "%s";\n'
                    ' sync = "%s";\n alarms = ();\n log_level = "notice";\n'
                    ' http: { listen = "127.0.0.1:%d"; };\n storage: {\n%s };\n};\n'
                    % (self.port, self.data, sync, self.http,
                       "".join("  %s = %s;\n" % (k, json.dumps(v)) for k, v in st.items())))
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen([os.path.join(build_dir, "server", "pimon-server"), "-c", cfg],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                self.get("/api/v1/workers")
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start: see %s" % self.log.name)

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.http, path), timeout=600) as r:
            return json.loads(r.read())

    def cpu_s(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()


def wait_compressed(srv, timeout=1800):
    """Until no closed file waits for compression under hosts/."""
    pat = re.compile(r"^[a-z0-9_]+\.\d+\.csv$")
    deadline = time.time() + timeout
    while time.time() < deadline:
        waiting = 0
        for root, _, files in os.walk(os.path.join(srv.data, "hosts")):
            waiting += sum(1 for f in files if pat.match(f))
        if waiting == 0:
            return True
        time.sleep(0.5)
    return False


def du(path, pred=lambda p: True):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if pred(p):
                total += os.path.getsize(p)
    return total


def bench_size(a, tmp, res):
    """One host, two whole days at 10 s, then a row of today: the first
    day's files are closed and compressed; bytes per value by tier."""
    log("size: one host, 2 days at 10 s")
    rng = random.Random(1)
    pi = Pi(rng)
    now = int(time.time() * 1000)
    d0 = now - now % DAY - 3 * DAY
    samples = [pi.sample(d0 + i * STEP) for i in range(2 * DAY // STEP)]
    values = sum(len(r[2]) for g in samples[0] for r in g[3])
    batches = [merge(samples[i:i + 360]) for i in range(0, len(samples), 360)]
    batches.append(merge([pi.sample(now - 60000)]))
    srv = Server(a.build, tmp, "size", storage={"close_delay": 86400})
    send_batches(srv.port, "pi", batches)
    srv.stop()
    # The two days close; their compression alone, on a fresh server.
    srv = Server(a.build, tmp, "size2", data=srv.data)
    cpu0 = srv.cpu_s()
    wait_compressed(srv)
    close_cpu = srv.cpu_s() - cpu0
    hd = os.path.join(srv.data, "hosts", "pi")
    day = datetime.datetime.utcfromtimestamp(d0 / 1000).strftime("%Y-%m-%d")
    per_day = 86400 * 1000 // STEP * values
    raw = du(os.path.join(hd, "raw"), lambda p: os.path.basename(p).startswith(day))
    m1 = du(os.path.join(hd, "1m"), lambda p: os.path.basename(p).startswith(day))
    raw_csv = 0
    for root, _, files in os.walk(os.path.join(hd, "raw")):
        for f in files:
            if f.startswith(day):
                raw_csv += len(subprocess.run(["zstd", "-dcq", os.path.join(root, f)],
                                              capture_output=True, check=True).stdout)
    # The hour rows of the 3 days, as their month's segment will hold them.
    h1_csv = b""
    for root, _, files in os.walk(os.path.join(hd, "1h")):
        for f in files:
            p = os.path.join(root, f)
            if f.endswith(".zst"):
                h1_csv += subprocess.run(["zstd", "-dcq", p], capture_output=True,
                                         check=True).stdout
            elif f.endswith(".csv"):
                with open(p, "rb") as fh:
                    h1_csv += fh.read()
    h1 = len(subprocess.run(["zstd", "-3", "-cq"], input=h1_csv, capture_output=True,
                            check=True).stdout)
    m1_csv = 0  # a whole open day of minute rows, as CSV
    for root, _, files in os.walk(os.path.join(hd, "1m")):
        for f in files:
            if f.startswith(day) and f.endswith(".zst"):
                m1_csv += len(subprocess.run(["zstd", "-dcq", os.path.join(root, f)],
                                             capture_output=True, check=True).stdout)
    srv.stop()
    # The same day's samples in Prometheus' TSDB.
    om = os.path.join(tmp, "day.om")
    with open(om, "w") as f:
        fams = {}
        for groups in samples[:DAY // STEP]:
            for metric, key, fields, rows in groups:
                for t, inst, vals in rows:
                    for fld, v in zip(fields, vals):
                        name = "pimon_%s_%s" % (metric, fld)
                        lab = 'host="pi"' + (',%s="%s"' % (key, inst) if key else "")
                        fams.setdefault(name, []).append("%s{%s} %r %.3f\n" % (name, lab, v,
                                                                               t / 1000))
        for name, lines in fams.items():
            f.write("# TYPE %s gauge\n" % name)
            f.writelines(lines)
        f.write("# EOF\n")
    tsdb = os.path.join(tmp, "tsdb")
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics",
                    "--max-block-duration=24h", om, tsdb], check=True, capture_output=True)
    prom = du(tsdb)
    res["size"] = {
        "values_per_sample": values, "values_per_day": per_day,
        "raw_zst_bytes": raw, "raw_csv_bytes": raw_csv, "m1_zst_bytes": m1,
        "h1_zst_bytes_3_days": h1, "m1_open_csv_bytes": m1_csv, "prom_bytes": prom,
        "host_bytes_at_defaults": 14 * raw + 30 * m1 + 400 * h1 / 3 + raw_csv + m1_csv,
        "raw_b_per_value": raw / per_day, "open_b_per_value": raw_csv / per_day,
        "close_cpu_ms_per_host_day": 1000 * close_cpu / 2,
        "prom_b_per_value": prom / per_day,
    }
    log("  closed raw day: %.2f B/value (csv %.2f); minute day %d B; hour day %d B; "
        "Prometheus %.2f B/value; a host at the default retention %.1f MB; closing a "
        "host-day %.0f ms CPU"
        % (raw / per_day, raw_csv / per_day, m1, h1 / 3, prom / per_day,
           res["size"]["host_bytes_at_defaults"] / 1e6, 1000 * close_cpu / 2))


def timed_get(srv, path, runs):
    times = []
    body = None
    for _ in range(runs):
        t = time.perf_counter()
        body = srv.get(path)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times), body


def bench_year(a, tmp, res):
    """One host, load at 10 s for 366 days, default retention: series
    queries over 1 h .. 1 y, warm."""
    log("year: one host, load (5 fields) at 10 s for 366 days through the server")
    rng = random.Random(2)
    now = int(time.time() * 1000)
    t0 = now - now % DAY - 365 * DAY
    # Nothing closes while the year arrives: compression is measured alone.
    srv = Server(a.build, tmp, "year", storage={"close_delay": 86400})
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.settimeout(600)
    s.sendall(hello("pi"))
    while read_frame(s)[0] != 2:
        pass
    load = [0.5, 0.5, 0.5]
    seq, t = 0, t0
    cpu0 = srv.cpu_s()
    t_send = time.time()
    fields = ("load1", "load5", "load15", "running", "total")
    while t < now - 60000:
        rows = []
        for _ in range(8640):
            if t >= now - 60000:
                break
            load = [round(max(0.0, v + rng.uniform(-0.05, 0.05)), 2) for v in load]
            rows.append((t, "", load + [rng.randint(1, 4), 180]))
            t += STEP
        seq += 1
        s.sendall(metrics(seq, [("load", "", fields, rows)]))
    acked = 0
    while acked < seq:
        f = read_frame(s)
        if f[0] == 5:
            acked = struct.unpack(">Q", f[1][:8])[0]
    s.close()
    ingest_s = time.time() - t_send
    ingest_cpu = srv.cpu_s() - cpu0
    srv.stop()
    srv = Server(a.build, tmp, "year2", data=srv.data)
    cpu0 = srv.cpu_s()
    t = time.time()
    wait_compressed(srv)
    close_cpu = srv.cpu_s() - cpu0
    log("  %d days sent in %.1f s (server CPU %.1f s); closing them took %.1f s CPU (%.1f ms a "
        "day of raw and minute rows)" % (seq, ingest_s, ingest_cpu, close_cpu,
                                        1000 * close_cpu / seq))
    out = {"days": seq, "ingest_s": ingest_s, "ingest_cpu_s": ingest_cpu,
           "close_cpu_s": close_cpu, "close_wall_s": time.time() - t,
           "bytes": du(os.path.join(srv.data, "hosts", "pi")), "queries": {}}
    for label, span in (("1 h", 3600000), ("24 h", DAY), ("7 d", 7 * DAY), ("30 d", 30 * DAY),
                        ("1 y", 365 * DAY)):
        path = "/api/v1/hosts/pi/series/load?field=load1&points=500&from=%d&to=%d" % (
            now - span, now)
        med, mx, body = timed_get(srv, path, 15)
        out["queries"][label] = {"median_ms": med, "max_ms": mx, "tier": body.get("tier"),
                                 "points": len(body["points"])}
        log("  %s: median %.1f ms, max %.1f ms, tier %s, %d points"
            % (label, med, mx, body.get("tier"), len(body["points"])))
    srv.stop()
    res["year"] = out


def bench_fleet(a, tmp, res):
    """a.hosts hosts, cpu every 5 minutes for 7 days: the fleet ranking of
    cpu.usage over 7 d from the hour tier, warm and with the page cache
    dropped."""
    n = a.hosts
    log("fleet: %d hosts, cpu every 5 min for 7 days through the server" % n)
    rng = random.Random(3)
    now = int(time.time() * 1000)
    t0 = now - 7 * DAY
    fields = ("usage", "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    payloads = []
    for k in range(40):
        rows = []
        for i in range(7 * 288):
            u = rng.uniform(0, 100)
            rows.append((t0 + i * 300000, "", [u, u * 0.7, 0, u * 0.3, 100 - u, 0, 0, 0, 0]))
        payloads.append(metrics(1, [("cpu", "", fields, rows)]))
    srv = Server(a.build, tmp, "fleet")
    t = time.time()
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: send_batches(srv.port, "pi%05d" % i, [payloads[i % 40]]),
                    range(n)))
    ingest_s = time.time() - t
    wait_compressed(srv)
    log("  %d hosts stored in %.1f s, compressed after %.1f s" % (n, ingest_s, time.time() - t))
    path = "/api/v1/fleet/cpu/usage?since=7d&agg=max&top=20"
    warm_med, warm_max, body = timed_get(srv, path, 5)
    cold = []
    for _ in range(3):
        subprocess.run(["sync"], check=True)
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        except OSError:
            cold = None
            break
        t = time.perf_counter()
        srv.get(path)
        cold.append((time.perf_counter() - t) * 1000)
    srv.stop()
    res["fleet"] = {"hosts": n, "ingest_s": ingest_s, "warm_median_ms": warm_med,
                    "warm_max_ms": warm_max, "cold_ms": cold,
                    "hosts_ranked": body["ranked"], "top": len(body["top"])}
    log("  fleet query: warm median %.0f ms (max %.0f), cold %s ms" % (
        warm_med, warm_max, "n/a" if cold is None else ", ".join("%.0f" % c for c in cold)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--hosts", type=int, default=10000)
    ap.add_argument("--only", default="size,year,fleet")
    ap.add_argument("--json", help="save the figures to this file")
    a = ap.parse_args()
    build(a.build)
    tmp = tempfile.mkdtemp(prefix="pimon-storage-bench-")
    res = {"date": datetime.date.today().isoformat(), "machine": platform.machine(),
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip()}
    try:
        for name in a.only.split(","):
            {"size": bench_size, "year": bench_year, "fleet": bench_fleet}[name](a, tmp, res)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
