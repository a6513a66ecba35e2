#!/usr/bin/env python3
"""Measure what pimon costs: one agent's memory and CPU at a 1 s interval,
and the server's memory and CPU with N agents. Prints figures; asserts
nothing. Usage: bench/footprint.py [--build DIR] [--seconds S] [--agents N]"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mem_kb(pid):
    """RSS and USS (private clean + dirty) in kB."""
    rss = uss = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, v = line.split(":", 1)
            if k == "Rss":
                rss = int(v.split()[0])
            elif k in ("Private_Clean", "Private_Dirty"):
                uss += int(v.split()[0])
    return rss, uss


def cpu_s(pid):
    """CPU time of every thread, in seconds, at nanosecond resolution."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
            total += int(f.read().split()[0])
    return total / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--sync", default="interval", choices=["none", "batch", "interval"])
    a = ap.parse_args()
    server_bin = os.path.join(a.build, "server", "pimon-server")
    agent_bin = os.path.join(a.build, "agent", "pimon-agent")
    tmp = tempfile.mkdtemp(prefix="pimon-footprint-")
    port, http = free_port(), free_port()
    cfg = os.path.join(tmp, "s.cfg")
    with open(cfg, "w") as f:
        f.write('server: { listen = "127.0.0.1:%d"; data_dir = "%s/data"; workers = 2;\n'
                '  http: { listen = "127.0.0.1:%d"; };\n'
                '  collect: { interval = 1.0; }; heartbeat: { interval = 1.0; timeout = 5.0; };\n'
                '  sync = "%s"; log_level = "warn"; };\n' % (port, tmp, http, a.sync))
    procs = []
    try:
        server = subprocess.Popen([server_bin, "-c", cfg])
        procs.append(server)
        time.sleep(0.5)
        agents = []
        for i in range(a.agents):
            p = subprocess.Popen([agent_bin, "-s", "127.0.0.1:%d" % port, "-n", "fp-%d" % i,
                                  "--spool-dir", os.path.join(tmp, "spool")],
                                 stderr=subprocess.DEVNULL)
            procs.append(p)
            agents.append(p)
        time.sleep(3)
        first = agents[0].pid
        c0a, c0s, t0 = cpu_s(first), cpu_s(server.pid), time.monotonic()
        time.sleep(a.seconds)
        c1a, c1s, t1 = cpu_s(first), cpu_s(server.pid), time.monotonic()
        rss_a, uss_a = mem_kb(first)
        rss_s, uss_s = mem_kb(server.pid)
        el = t1 - t0
        print("machine: %s, %d cores; %s" % (os.uname().machine, os.cpu_count(),
                                              time.strftime("%Y-%m-%d")))
        print("agent  (1 s interval, %.0f s): RSS %.1f MB, USS %.1f MB, CPU %.3f %%"
              % (el, rss_a / 1024, uss_a / 1024, 100 * (c1a - c0a) / el))
        print("server (%d agents, 1 s interval and heartbeat, sync %s): RSS %.1f MB, USS %.1f MB, "
              "CPU %.2f %%" % (a.agents, a.sync, rss_s / 1024, uss_s / 1024,
                               100 * (c1s - c0s) / el))
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
