#!/usr/bin/env python3
"""Count what one pimon-agent costs per collection cycle: a server at a 1 s
interval (heartbeats once a minute, so they hardly count), one agent under
`strace -c -f` for a number of cycles (system calls), or with --callgrind
under callgrind counting only inside the collect timer's callback (user-space
instructions). Prints the table and the figure per cycle; asserts nothing.
Usage: bench/syscalls.py [--build DIR] [--cycles N] [--metrics a,b,...] [--callgrind]"""

import argparse
import os
import re
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
    ap.add_argument("--callgrind", action="store_true",
                    help="instructions per cycle instead of system calls")
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
        if a.callgrind:
            return callgrind(a, server_bin, agent_bin, cfg, port, tmp, procs)
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


def callgrind(a, server_bin, agent_bin, cfg, port, tmp, procs):
    """Run the agent under callgrind for the cycles; print instructions per cycle."""
    server = subprocess.Popen([server_bin, "-c", cfg])
    procs.append(server)
    time.sleep(0.5)
    out = os.environ.get("CALLGRIND_OUT") or os.path.join(tmp, "callgrind.out")
    agent = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                              "--toggle-collect=link_collect_cb", agent_bin,
                              "-s", "127.0.0.1:%d" % port, "-n", "cg",
                              "--spool-dir", os.path.join(tmp, "spool")],
                             stderr=subprocess.DEVNULL)
    procs.append(agent)
    time.sleep(a.cycles + 3)
    agent.send_signal(signal.SIGTERM)
    agent.wait()
    procs.remove(agent)
    with open(os.path.join(tmp, "data", "hosts", "cg", "load.csv")) as f:
        cycles = sum(1 for _ in f) - 1
    total = 0
    with open(out) as f:
        for line in f:
            m = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if m:
                total = int(m.group(1))
    print("%d instructions in %d cycles: %.0f per cycle" % (total, cycles, total / cycles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
