#!/usr/bin/env python3
"""Count the system calls one pimon-agent makes per collection cycle: a
server at a 1 s interval (heartbeats once a minute, so they hardly count),
one agent under `strace -c -f` for a number of cycles. Prints strace's table
and the calls per cycle; asserts nothing.
Usage: bench/syscalls.py [--build DIR] [--cycles N] [--metrics a,b,...]"""

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--cycles", type=int, default=30)
    ap.add_argument("--metrics", default="", help="collectors, comma separated; default: the server's")
    a = ap.parse_args()
    server_bin = os.path.join(a.build, "server", "pimon-server")
    agent_bin = os.path.join(a.build, "agent", "pimon-agent")
    tmp = tempfile.mkdtemp(prefix="pimon-syscalls-")
    port = free_port()
    metrics = ""
    if a.metrics:
        metrics = " metrics = [%s];" % ", ".join('"%s"' % m for m in a.metrics.split(","))
    cfg = os.path.join(tmp, "s.cfg")
    with open(cfg, "w") as f:
        f.write('server: { listen = "127.0.0.1:%d"; data_dir = "%s/data"; http: { listen = ""; };\n'
                '  collect: { interval = 1.0;%s }; heartbeat: { interval = 60.0; timeout = 120.0; };\n'
                '  log_level = "warn"; };\n' % (port, tmp, metrics))
    out = os.path.join(tmp, "strace.txt")
    procs = []
    try:
        server = subprocess.Popen([server_bin, "-c", cfg])
        procs.append(server)
        time.sleep(0.5)
        agent = subprocess.Popen([agent_bin, "-s", "127.0.0.1:%d" % port, "-n", "sc",
                                  "--spool-dir", os.path.join(tmp, "spool")],
                                 stderr=subprocess.DEVNULL)
        procs.append(agent)
        time.sleep(3.5)  # connected and past the first cycles, which open files
        st = subprocess.Popen(["strace"] + os.environ.get("STRACE_ARGS", "-c").split() + ["-f", "-o", out, "-p", str(agent.pid)],
                              stderr=subprocess.DEVNULL)
        time.sleep(a.cycles)
        st.send_signal(signal.SIGINT)
        st.wait()
        with open(out) as f:
            table = f.read()
        print(table, end="")
        total = [ln for ln in table.splitlines() if ln.strip().endswith("total")]
        if total:
            calls = int(total[0].split()[3])
            print("%d cycles: %.1f system calls per cycle" % (a.cycles, calls / a.cycles))
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
