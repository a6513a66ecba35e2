"""A real Prometheus for the tests, and what it must hold: the committed
raw rows of the host folders, counted per series."""

import glob
import json
import os
import shutil
import struct
import urllib.parse
import urllib.request

from harness import SLOW, Proc, check, wait_for

PROMETHEUS = shutil.which("prometheus")


def prom_get(port, path, **params):
    url = "http://127.0.0.1:%d%s?%s" % (port, path, urllib.parse.urlencode(params))
    with urllib.request.urlopen(url, timeout=10 * SLOW) as r:
        doc = json.loads(r.read().decode())
    check(doc.get("status") == "success", "%s: %r" % (path, doc))
    return doc["data"]


def start_prometheus(env, port, tsdb):
    """Prometheus with the remote-write receiver on loopback port, keeping
    its TSDB in tsdb, accepting samples up to 2 h out of order."""
    cfg = os.path.join(env.dir, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1h\nstorage:\n  tsdb:\n"
                "    out_of_order_time_window: 2h\n")
    p = Proc("prometheus", [PROMETHEUS, "--config.file=" + cfg, "--storage.tsdb.path=" + tsdb,
                            "--web.listen-address=127.0.0.1:%d" % port,
                            "--web.enable-remote-write-receiver"], env.dir)
    env.procs.append(p)
    wait_for(lambda: prom_get(port, "/api/v1/status/buildinfo"), 60, "Prometheus", [p])
    return p


def committed(hostdir):
    """{metric: committed length of its open raw file}, from the newer
    version 3 slot of commit.state (server/state.c's layout)."""
    try:
        with open(os.path.join(hostdir, "commit.state"), "rb") as f:
            b = f.read()
    except FileNotFoundError:
        return {}
    best = None
    for off in (0, 8192):
        slot = b[off:off + 8192]
        if len(slot) < 40 or slot[:4] != b"PMST":
            continue
        version, gen, _, _, n = struct.unpack(">IQQQI", slot[4:36])
        if version != 3 or (best and best[0] > gen):
            continue
        sizes = {}
        for i in range(n):
            rec = slot[36 + i * 80:36 + (i + 1) * 80]
            sizes[rec[:32].rstrip(b"\0").decode()] = struct.unpack(">Q", rec[32:40])[0]
        best = (gen, sizes)
    return best[1] if best else {}


def csv_series(hostdir, keys):
    """{(metric, field, instance): set of times} of the numeric values in a
    host folder's committed raw rows (closed files whole, open files up to
    their commit record); keys maps a metric to its instance key."""
    sizes = committed(hostdir)
    series = {}
    for path in glob.glob(os.path.join(hostdir, "*.csv")):
        parts = os.path.basename(path).split(".")
        metric = parts[0]
        if len(parts) == 2 and metric not in sizes:
            continue  # events.csv, alarms.csv: not metrics
        if metric == "procs":
            continue  # per-process rows are not exported (docs/PROMETHEUS.md)
        with open(path, "rb") as f:
            data = f.read()
        if len(parts) == 2:
            data = data[:sizes[metric]]
        lines = data.decode().split("\n")
        header = lines[0].split(",")
        inst = len(header) > 2 and header[1] == keys.get(metric)
        first = 2 if inst else 1
        for line in lines[1:-1]:
            cols = line.split(",")
            for i in range(first, min(len(cols), len(header))):
                try:
                    float(cols[i])
                except ValueError:
                    continue
                key = (metric, header[i], cols[1] if inst else None)
                series.setdefault(key, set()).add(int(cols[0]))
    return series


def prom_series(port, at):
    """{host: [times of each series]} Prometheus holds for job pimon (a raw
    range selector, which leaves stale markers out)."""
    res = prom_get(port, "/api/v1/query", query='{job="pimon",__name__=~"pimon_.+"}[3h]',
                   time="%.3f" % at)["result"]
    out = {}
    for r in res:
        times = {int(round(float(t) * 1000)) for t, _ in r["values"]}
        check(len(times) == len(r["values"]), "%r: a time twice" % r["metric"])
        out.setdefault(r["metric"]["host"], []).append(times)
    return out


def counts(series_of_host):
    """{host: sorted per-series sample counts}: what two stores of the
    same rows agree on without mapping CSV fields to Prometheus names."""
    return {h: sorted(len(t) for t in s) for h, s in series_of_host.items()}
