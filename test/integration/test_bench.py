"""pimon-bench against the real server: sessions are established, batches
acked, and frozen sessions seen down. Checks behaviour, never speed."""

import json
import os
import subprocess

from harness import BUILD, SLOW, check, run_tests

BENCH_BIN = os.path.join(BUILD, "tools", "pimon-bench")


def bench(env, *args):
    argv = [BENCH_BIN, "-s", "127.0.0.1:%d" % env.port, "--json"] + [str(a) for a in args]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120 * SLOW)
    check(r.returncode == 0, "pimon-bench exited %d: %s" % (r.returncode, r.stderr.decode()))
    return json.loads(r.stdout.decode())


def test_bench_sessions_and_acks(env):
    env.start_server(timeout=5.0, hb_interval=1.0, interval=1.0, extra={"sync": "none"})
    r = bench(env, "-n", 50, "-P", 2, "--heartbeat", 0.5, "--interval", 0.5, "--rows", 2,
              "--fields", 3, "--ramp", 1, "--duration", 3 * SLOW, "--prefix", "bt-")
    check(r["established"] == 50, "established %s of 50" % r["established"])
    check(r["live_at_end"] == 50, "live at the end: %s" % r["live_at_end"])
    check(r["acks"] > 0, "no ACK received")
    check(r["connect_failed"] == 0 and r["closed"] == 0 and r["bad_frames"] == 0,
          "errors: %s" % r)
    hosts = env.hosts()
    check(all("bt-%d" % i in hosts for i in range(50)), "not every host registered")
    header = open(os.path.join(env.host_dir("bt-7"), "g0.csv")).readline().strip()
    check(header == "time,f0,f1,f2", "header %r" % header)


def test_bench_freeze_seen_down(env):
    env.start_server(timeout=1.0, hb_interval=0.5, interval=1.0, extra={"sync": "none"})
    r = bench(env, "-n", 20, "--heartbeat", 0.3, "--interval", 0.5, "--ramp", 0.5,
              "--duration", 4 * SLOW, "--freeze-after", 0.5, "--freeze-count", 5, "--api",
              "127.0.0.1:%d" % env.http_port, "--prefix", "fz-")
    f = r["freeze"]
    check(f["down"] == 5, "frozen hosts down: %s of 5" % f["down"])
    check(f["all_down_s"] > 0, "no time for the last one going down")
    check(f["live_acks"] > 0, "live sessions got no ACK after the freeze")
    hosts = env.hosts()
    check(hosts["fz-10"]["state"] == "up" or hosts["fz-10"]["reason"] == "closed",
          "a live host went down: %s" % hosts["fz-10"])


if __name__ == "__main__":
    run_tests(globals())
