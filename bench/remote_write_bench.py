#!/usr/bin/env python3
"""The remote_write figures, through the real server (release build) into
Debian's Prometheus 2.42 as the receiver, with pimon-bench as the fleet:

  steady   N agents x F values every I s: samples/s sent, the sender
           thread's CPU, bytes per sample on the wire, lag p50/p99;
  catchup  the receiver down for --outage s, then how fast the backlog goes;
  peer     beside Prometheus in agent mode scraping pimon's /metrics and
           remote-writing to the same receiver: a receiver outage of
           --peer-outage s with both senders restarted in its middle, then
           the samples each delivered out of those it had.

Prints the figures (--json saves them) for docs/BENCHMARKS.md. Asserts
nothing.

Usage: bench/remote_write_bench.py [--build DIR] [--hosts N] [--fields F]
       [--interval S] [--seconds S] [--outage S] [--only steady,catchup,peer]"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TICK = os.sysconf("SC_CLK_TCK")


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


def get(url, timeout=60):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def wait_until(what, pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if pred():
                return True
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("timed out waiting for " + what)


def raise_nofile():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_cpu_s(pid, thread=None):
    """CPU seconds of a process, or of its threads whose name starts with thread."""
    if thread is None:
        paths = ["/proc/%d/stat" % pid]
    else:
        paths = []
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip().startswith(thread):
                    paths.append("/proc/%d/task/%s/stat" % (pid, tid))
    total = 0
    for p in paths:
        with open(p) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Prometheus:
    """Debian's prometheus on a loopback port, a TSDB of its own; agent mode
    scrapes and remote-writes instead of receiving."""

    def __init__(self, tmp, name, scrape=None, write_to=None):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.agent = scrape is not None
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 10s\n")
            if self.agent:
                f.write("scrape_configs:\n  - job_name: pimon-scrape\n    static_configs:\n"
                        "      - targets: ['%s']\n    scrape_timeout: 10s\n" % scrape)
                f.write("remote_write:\n  - url: %s\n" % write_to)
            else:
                f.write("storage:\n  tsdb:\n    out_of_order_time_window: 2h\n")
        self.argv = ["prometheus", "--config.file=" + cfg,
                     "--web.listen-address=127.0.0.1:%d" % self.port]
        if self.agent:
            self.argv += ["--enable-feature=agent", "--storage.agent.path=" + self.dir + "/wal"]
        else:
            self.argv += ["--storage.tsdb.path=" + self.dir + "/tsdb",
                          "--web.enable-remote-write-receiver"]
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.dir, "log"), "a")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until("prometheus", lambda: get(self.url("/-/ready")) is not None, 120)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def write_url(self):
        return self.url("/api/v1/write")

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(120)
        self.log.close()

    def query(self, q):
        body = get(self.url("/api/v1/query?" + urllib.parse.urlencode({"query": q})), 300)
        return json.loads(body)["data"]["result"]

    def scalar(self, q):
        r = self.query(q)
        return float(r[0]["value"][1]) if r else 0.0


class Server:
    def __init__(self, build_dir, tmp, name, receiver_url, hosts):
        self.bin = os.path.join(build_dir, "server", "pimon-server")
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.port, self.http = free_port(), free_port()
        self.cfg = os.path.join(self.dir, "server.cfg")
        with open(self.cfg, "w") as f:
            f.write('server: {\n listen = "127.0.0.1:%d";\n workers = 2;\n data_dir = "%s/data";\n'
                    ' sync = "none";\n alarms = ();\n log_level = "notice";\n'
                    ' http: { listen = "127.0.0.1:%d"; };\n'
                    ' remote_write = ( { name = "prom"; url = "%s"; } );\n};\n'
                    % (self.port, self.dir, self.http, receiver_url))
        self.proc = None
        self.hosts = hosts

    def start(self):
        self.log = open(os.path.join(self.dir, "server.log"), "a")
        self.proc = subprocess.Popen([self.bin, "-c", self.cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_until("pimon-server", lambda: get(self.url("/api/v1/workers")) is not None, 60)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http, path)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        self.log.close()

    def counters(self):
        """The sender's counters from /api/v1/stats: {name: value} of receiver "prom"."""
        stats = json.loads(get(self.url("/api/v1/stats")))
        r = stats.get("remote_write", {}).get("prom")
        if r is None:
            raise RuntimeError("no remote_write receiver in /api/v1/stats")
        return r


class Fleet:
    """pimon-bench processes holding the simulated agents."""

    def __init__(self, build_dir, srv, a, duration):
        bench = os.path.join(build_dir, "tools", "pimon-bench")
        procs = max(1, (a.hosts + 4999) // 5000)
        groups = (a.fields + 29) // 30  # pimon-bench sends at most 32 values a row
        argv = [bench, "-s", "127.0.0.1:%d" % srv.port, "-n", str(a.hosts), "-P", str(procs),
                "--heartbeat", "5", "--interval", str(a.interval),
                "--groups", str(groups), "--fields", str(a.fields // groups),
                "--ramp", str(min(60, max(5, a.hosts // 500))), "--duration", str(duration),
                "--prefix", "pi-"]
        self.log = open(os.path.join(srv.dir, "bench.log"), "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self):
        self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def sample_lag(srv, seconds):
    """The sender's lag, read once a second for seconds: sorted list."""
    lags = []
    end = time.time() + seconds
    while time.time() < end:
        lags.append(float(srv.counters().get("lag_s", 0)))
        time.sleep(1)
    return sorted(lags)


def pct(sorted_values, p):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p / 100.0 * len(sorted_values)))]


def bench_steady(a, tmp, res):
    log("steady: %d agents x %d values every %g s" % (a.hosts, a.fields, a.interval))
    prom = Prometheus(tmp, "steady-prom")
    prom.start()
    srv = Server(a.build, tmp, "steady", prom.write_url(), a.hosts)
    srv.start()
    ramp = min(60, max(5, a.hosts // 500))
    fleet = Fleet(a.build, srv, a, a.seconds + ramp + 30)
    try:
        time.sleep(ramp + 20)  # sessions open and the first batches flow
        c0, cpu0, all0, t0 = srv.counters(), proc_cpu_s(srv.proc.pid, "rw-"), \
            proc_cpu_s(srv.proc.pid), time.time()
        lags = sample_lag(srv, a.seconds)
        c1, cpu1, all1, t1 = srv.counters(), proc_cpu_s(srv.proc.pid, "rw-"), \
            proc_cpu_s(srv.proc.pid), time.time()
        sent = c1["samples_sent"] - c0["samples_sent"]
        wire = c1.get("bytes_sent", 0) - c0.get("bytes_sent", 0)
        res["steady"] = {
            "hosts": a.hosts, "fields": a.fields, "interval_s": a.interval,
            "offered_per_s": round(a.hosts * a.fields / a.interval),
            "samples_per_s": round(sent / (t1 - t0)),
            "sender_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
            "server_cpu_pct": round(100 * (all1 - all0) / (t1 - t0), 1),
            "bytes_per_sample": round(wire / sent, 2) if sent else None,
            "lag_p50_s": pct(lags, 50), "lag_p99_s": pct(lags, 99),
            "server_rss_kib": rss_kib(srv.proc.pid),
        }
        log("steady: %s" % res["steady"])
    finally:
        fleet.stop()
        srv.stop()
        prom.stop()


def bench_catchup(a, tmp, res):
    log("catchup: %d agents, receiver down for %d s" % (a.hosts, a.outage))
    prom = Prometheus(tmp, "catchup-prom")
    prom.start()
    srv = Server(a.build, tmp, "catchup", prom.write_url(), a.hosts)
    srv.start()
    ramp = min(60, max(5, a.hosts // 500))
    fleet = Fleet(a.build, srv, a, ramp + 30 + a.outage + 3600)
    try:
        time.sleep(ramp + 20)
        prom.kill()
        time.sleep(a.outage)
        fleet.stop()  # the backlog is what the outage left; nothing new comes in
        backlog0 = srv.counters()["samples_sent"]
        prom.start()
        t0, cpu0 = time.time(), proc_cpu_s(srv.proc.pid, "rw-")
        wait_until("the backlog to drain",
                   lambda: float(srv.counters().get("lag_s", 1e9)) < 2 * a.interval + 5,
                   max(1800, a.outage * 3))
        t1, cpu1 = time.time(), proc_cpu_s(srv.proc.pid, "rw-")
        sent = srv.counters()["samples_sent"] - backlog0
        res["catchup"] = {
            "hosts": a.hosts, "outage_s": a.outage, "backlog_samples": sent,
            "drain_s": round(t1 - t0, 1), "samples_per_s": round(sent / (t1 - t0)),
            "sender_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        }
        log("catchup: %s" % res["catchup"])
    finally:
        fleet.stop()
        srv.stop()
        prom.stop()


def bench_peer(a, tmp, res):
    """pimon's sender and Prometheus in agent mode, same fleet, same receiver,
    through an outage with a restart of each sender in its middle."""
    hosts = a.peer_hosts
    log("peer: %d agents, receiver down %d s, both senders restarted" % (hosts, a.peer_outage))
    recv = Prometheus(tmp, "peer-recv")
    recv.start()
    srv = Server(a.build, tmp, "peer", recv.write_url(), hosts)
    srv.start()
    agent = Prometheus(tmp, "peer-agent", scrape="127.0.0.1:%d" % srv.http,
                       write_to=recv.write_url())
    sub = argparse.Namespace(**vars(a))
    sub.hosts = hosts
    span = 120 + a.peer_outage + 180
    fleet = Fleet(a.build, srv, sub, span + 60)
    agent.start()
    try:
        start = time.time()
        time.sleep(120)
        recv.kill()
        time.sleep(a.peer_outage / 2)
        cpu_agent = proc_cpu_s(agent.proc.pid)
        rss_agent = rss_kib(agent.proc.pid)
        agent.stop()
        agent.start()
        cpu_srv = proc_cpu_s(srv.proc.pid, "rw-")
        rss_srv = rss_kib(srv.proc.pid)
        srv.stop()
        srv.start()
        time.sleep(a.peer_outage / 2)
        recv.start()
        time.sleep(180)
        end = time.time()
        fleet.stop()
        wait_until("pimon's backlog to drain",
                   lambda: float(srv.counters().get("lag_s", 1e9)) < 60, 900)
        cpu_agent += proc_cpu_s(agent.proc.pid)
        cpu_srv += proc_cpu_s(srv.proc.pid, "rw-")
        window = int(end - start)
        at = "@%d" % int(end)
        # What each sender had: pimon the rows stored (the CSV files); the
        # agent one scrape every 10 s of each series it scraped.
        stored = 0
        for root, _, files in os.walk(os.path.join(srv.dir, "data", "hosts")):
            for f in files:
                if f[0] == "g" and f.endswith(".csv"):
                    with open(os.path.join(root, f)) as fh:
                        stored += sum(1 for _ in fh) - 1
        stored *= a.fields // ((a.fields + 29) // 30)
        got_pimon = recv.scalar('sum(count_over_time({job="pimon",__name__=~"pimon_g[0-9]+_.*"}[%ds] %s))'
                                % (window + 60, at))
        got_agent = recv.scalar('sum(count_over_time({job="pimon-scrape",__name__=~"pimon_g[0-9]+_.*"}[%ds] %s))'
                                % (window + 60, at))
        series_agent = recv.scalar('count(count_over_time({job="pimon-scrape",__name__=~"pimon_g[0-9]+_.*"}[%ds] %s))'
                                   % (window + 60, at))
        ideal_agent = series_agent * window / 10
        res["peer"] = {
            "hosts": hosts, "outage_s": a.peer_outage, "window_s": window,
            "pimon": {"samples_had": stored, "samples_received": int(got_pimon),
                      "lost": int(stored - got_pimon), "sender_cpu_s": round(cpu_srv, 1),
                      "server_rss_kib": rss_srv},
            "prometheus_agent": {"samples_ideal": int(ideal_agent), "samples_received": int(got_agent),
                                 "lost": int(ideal_agent - got_agent), "cpu_s": round(cpu_agent, 1),
                                 "rss_kib": rss_agent},
        }
        log("peer: %s" % res["peer"])
    finally:
        fleet.stop()
        for p in (agent, srv, recv):
            try:
                p.stop()
            except Exception:
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-release"))
    ap.add_argument("--hosts", type=int, default=10000)
    ap.add_argument("--fields", type=int, default=60)
    ap.add_argument("--interval", type=float, default=10)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--outage", type=int, default=600)
    ap.add_argument("--peer-hosts", type=int, default=1000)
    ap.add_argument("--peer-outage", type=int, default=120)
    ap.add_argument("--only", default="steady,catchup,peer")
    ap.add_argument("--json", help="save the figures to this file")
    a = ap.parse_args()
    raise_nofile()
    build(a.build)
    tmp = tempfile.mkdtemp(prefix="pimon-rw-bench-")
    res = {"date": datetime.date.today().isoformat(), "machine": platform.machine(),
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip()}
    try:
        for name in a.only.split(","):
            {"steady": bench_steady, "catchup": bench_catchup, "peer": bench_peer}[name](a, tmp, res)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
