"""Agents report to the real server: liveness, balance, storage, restarts."""

import json
import csv
import os
import shutil
import signal
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request

from harness import (AGENT_BIN, CTL_BIN, FIXTURES, SLOW, T_BYE, T_WELCOME, TestSkip, check,
                     free_port, hello, read_csv, read_frame, run_tests, wait_closed, wait_for)

METRIC_FILES = ["cpu", "mem", "disk", "load", "net"]


def rows_of(env, host, metric):
    path = os.path.join(env.host_dir(host), metric + ".csv")
    if not os.path.exists(path):
        return []
    return read_csv(path)[1]


def test_three_agents_up_stored_at_interval(env):
    env.start_server(workers=4, interval=0.5)
    names = ["pi-1", "pi-2", "pi-3"]
    for n in names:
        env.start_agent(n)
    hosts = env.wait_hosts_up(names)
    # One session each, on the three emptiest workers: 0, 1, 2.
    check(sorted(h["worker"] for h in hosts.values()) == [0, 1, 2],
          "workers %s" % [h["worker"] for h in hosts.values()])
    check(env.workers() == [1, 1, 1, 0], "sessions per worker %s" % env.workers())
    for n in names:
        wait_for(lambda: all(len(rows_of(env, n, m)) >= 6 for m in METRIC_FILES), 20,
                 "6 rows in every CSV file of %s" % n, [env.server])
        for m in METRIC_FILES:
            header, rows = read_csv(os.path.join(env.host_dir(n), m + ".csv"))
            check(header[0] == "time", "%s.csv header %s" % (m, header))
        header, rows = read_csv(os.path.join(env.host_dir(n), "cpu.csv"))
        check(header[:3] == ["time", "usage", "user"], "cpu header %s" % header)
        times = [int(r[0]) for r in rows]
        gaps = [b - a for a, b in zip(times, times[1:])]
        check(all(g > 0 for g in gaps), "cpu rows out of order: %s" % times)
        # Rows come at the server's interval (0.5 s), not the agent's own.
        med = statistics.median(gaps)
        check(300 <= med <= 900, "median gap between cpu rows %d ms, want about 500" % med)
        header, rows = read_csv(os.path.join(env.host_dir(n), "disk.csv"))
        check(header[:2] == ["time", "mount"], "disk header %s" % header)
        check(any(r[1] == "/" for r in rows), "no row for / in disk.csv")
        header, rows = read_csv(os.path.join(env.host_dir(n), "net.csv"))
        check(header[:2] == ["time", "iface"], "net header %s" % header)
    latest = env.hosts()["pi-1"]["latest"]
    check(0 <= latest["cpu"]["usage"] <= 100, "cpu usage %r" % latest["cpu"])
    check(latest["mem"]["total_bytes"] > 0, "mem %r" % latest["mem"])
    events = open(os.path.join(env.data_dir, "events.csv")).read()
    for n in names:
        check(",%s,up,connected," % n in events, "no up event for %s:\n%s" % (n, events))


def test_ctl_hosts_table_and_json(env):
    env.start_server(workers=2)
    for n in ["ctl-a", "ctl-b"]:
        env.start_agent(n)
    env.wait_hosts_up(["ctl-a", "ctl-b"])
    cfg = env.write_cfg("ctl.cfg", {"server": {"http": {"listen": "127.0.0.1:%d" % env.http_port}}})
    out = subprocess.run([CTL_BIN, "-c", cfg, "hosts"], capture_output=True, text=True,
                         timeout=30 * SLOW)
    check(out.returncode == 0, "pimon-ctl hosts: %d %s" % (out.returncode, out.stderr))
    lines = out.stdout.splitlines()
    check(lines[0].split()[:4] == ["NAME", "STATE", "SINCE", "ADDR"], "header %r" % lines[0])
    rows = {l.split()[0]: l.split() for l in lines[1:]}
    check(set(rows) == {"ctl-a", "ctl-b"}, "rows %r" % rows)
    check(all(r[1] == "up" for r in rows.values()), "states %r" % rows)
    out = subprocess.run([CTL_BIN, "-c", cfg, "--json", "hosts"], capture_output=True,
                         text=True, timeout=30 * SLOW)
    check(out.returncode == 0 and len(json.loads(out.stdout)) == 2, "--json: %r" % out.stdout)
    out = subprocess.run([CTL_BIN, "-a", "127.0.0.1:%d" % env.http_port, "workers"],
                         capture_output=True, text=True, timeout=30 * SLOW)
    check(out.returncode == 0 and len(out.stdout.splitlines()) == 3, "workers: %r" % out.stdout)


def test_balance_twelve_agents_four_workers(env):
    env.start_server(workers=4)
    # start_server's probe of the agent port is a session too until the
    # server sees it closed; it would take worker 0 from the first agent.
    wait_for(lambda: sum(env.workers()) == 0, 10, "the port probe's session gone", [env.server])
    agents = {}
    # One at a time first: ties go to the lowest index, so 0, 1, 2, 3.
    for i in range(4):
        name = "bal-%02d" % i
        agents[name] = env.start_agent(name)
        check(env.wait_hosts_up([name])[name]["worker"] == i, "%s not on worker %d" % (name, i))
    for i in range(4, 12):
        agents["bal-%02d" % i] = env.start_agent("bal-%02d" % i)
    hosts = env.wait_hosts_up(list(agents))
    wait_for(lambda: env.workers() == [3, 3, 3, 3], 10, "3 sessions per worker", [env.server])
    # Stop the agents on workers 0 and 1, six in all.
    gone = [n for n, h in hosts.items() if h["worker"] in (0, 1)]
    check(len(gone) == 6, "agents on workers 0,1: %r" % gone)
    for n in gone:
        agents[n].stop()
    wait_for(lambda: env.workers() == [0, 0, 3, 3], 10, "counts after 6 quit", [env.server])
    for i in range(12, 18):
        env.start_agent("bal-%02d" % i)
    new = ["bal-%02d" % i for i in range(12, 18)]
    hosts = env.wait_hosts_up(new)
    wait_for(lambda: env.workers() == [3, 3, 3, 3], 10, "refilled workers", [env.server])
    check(sorted(hosts[n]["worker"] for n in new) == [0, 0, 0, 1, 1, 1],
          "new agents went to %r" % sorted(hosts[n]["worker"] for n in new))
    for n in gone:
        check(hosts[n]["state"] == "down" and hosts[n]["reason"] == "goodbye",
              "%s: %s %s" % (n, hosts[n]["state"], hosts[n]["reason"]))


def test_sigstop_down_within_timeout_then_back(env):
    timeout = 2.0
    env.start_server(timeout=timeout, hb_interval=0.5)
    a = env.start_agent("frozen")
    b = env.start_agent("steady")
    env.wait_hosts_up(["frozen", "steady"])
    time.sleep(0.2)  # let a heartbeat pass so the stop lands mid-interval
    a.signal(signal.SIGSTOP)
    stopped_ms = time.time() * 1000
    wait_for(lambda: env.hosts()["frozen"]["state"] == "down", timeout + 5, "frozen down",
             [env.server])
    down_ms = env.hosts()["frozen"]["since"]
    # The server's own clock says when: no later than timeout + 1 s after the stop
    # (the margin covers a loaded machine's scheduling, not the design).
    late = (down_ms - stopped_ms) / 1000.0
    check(late <= (timeout + 1.0) * SLOW + 0.5, "down %.2f s after SIGSTOP" % late)
    check(env.hosts()["frozen"]["reason"] == "timeout", "reason %r" % env.hosts()["frozen"])
    check(env.hosts()["steady"]["state"] == "up", "the other agent went down too")
    a.signal(signal.SIGCONT)
    env.wait_hosts_up(["frozen"])
    _, rows = read_csv(os.path.join(env.host_dir("frozen"), "events.csv"))
    states = [(r[1], r[2]) for r in rows]
    check(("down", "timeout") in states, "events.csv: %r" % states)
    i = states.index(("down", "timeout"))
    check(any(s == "up" for s, _ in states[i + 1:]), "no up after the timeout: %r" % states)
    _, rows = read_csv(os.path.join(env.data_dir, "events.csv"))
    check(any(r[1] == "frozen" and r[2] == "down" and r[3] == "timeout" for r in rows),
          "global events.csv lacks the timeout")


def test_server_restart_agents_reconnect(env):
    env.start_server(workers=2)
    agents = [env.start_agent(n) for n in ["r-1", "r-2"]]
    env.wait_hosts_up(["r-1", "r-2"])
    wait_for(lambda: len(rows_of(env, "r-1", "load")) >= 2, 10, "rows before", [env.server])
    env.server.kill()
    time.sleep(1.0)  # the agents must notice and back off while the server is gone
    before = len(rows_of(env, "r-1", "load"))
    env.start_server(workers=2, name="server2")
    env.wait_hosts_up(["r-1", "r-2"], timeout=20)
    wait_for(lambda: len(rows_of(env, "r-1", "load")) >= before + 3, 15, "rows after restart",
             [env.server])
    for a in agents:
        a.check_alive()
    # What the agents collected while the server was away was resent.
    _, rows = read_csv(os.path.join(env.host_dir("r-1"), "load.csv"))
    times = [int(r[0]) for r in rows]
    check(times == sorted(times), "rows out of order after the restart")
    check("reconnecting in" in agents[0].log_text(), "the agent did not back off")


def test_same_name_twice_newer_wins(env):
    env.start_server(workers=2)
    old = socket.create_connection(("127.0.0.1", env.port))
    old.sendall(hello("twin"))
    check(read_frame(old)[0] == T_WELCOME, "no WELCOME")
    env.wait_hosts_up(["twin"])
    new = socket.create_connection(("127.0.0.1", env.port))
    new.sendall(hello("twin"))
    check(read_frame(new)[0] == T_WELCOME, "no WELCOME for the newer")
    f = read_frame(old)
    check(f is not None and f[0] == T_BYE and b"replaced" in f[1], "old got %r" % (f,))
    check(wait_closed(old), "old session not closed")
    wait_for(lambda: sum(env.workers()) == 1, 10, "one session left", [env.server])
    h = env.hosts()["twin"]
    check(h["state"] == "up" and h["addr"].endswith(":%d" % new.getsockname()[1]),
          "host %r" % h)
    _, rows = read_csv(os.path.join(env.host_dir("twin"), "events.csv"))
    check(any(r[2] == "replaced" for r in rows), "no replaced event: %r" % rows)
    new.close()
    old.close()


def test_reboot_and_goodbye_recorded(env):
    env.start_server()
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(hello("booter", boot_id="aaaa"))
    check(read_frame(s)[0] == T_WELCOME, "no WELCOME")
    s.close()
    wait_for(lambda: env.hosts()["booter"]["state"] == "down", 10, "down after close",
             [env.server])
    check(env.hosts()["booter"]["reason"] in ("closed", "reset"), "%r" % env.hosts()["booter"])
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(hello("booter", boot_id="bbbb"))
    check(read_frame(s)[0] == T_WELCOME, "no WELCOME")
    wait_for(lambda: env.hosts()["booter"]["reason"] == "rebooted", 10, "rebooted",
             [env.server])
    s.close()
    a = env.start_agent("leaver")
    env.wait_hosts_up(["leaver"])
    check(a.stop() == 0, "agent exit status")
    wait_for(lambda: env.hosts()["leaver"]["reason"] == "goodbye", 10, "goodbye",
             [env.server])


def test_agent_once_prints_snapshot(env):
    root = os.path.join(FIXTURES, "pi4")
    out = subprocess.run([AGENT_BIN, "--once", "--name", "pi4", "--proc-root",
                          os.path.join(root, "proc"), "--sys-root", os.path.join(root, "sys")],
                         capture_output=True, text=True, timeout=30 * SLOW)
    check(out.returncode == 0, "exit %d: %s" % (out.returncode, out.stderr))
    doc = json.loads(out.stdout)
    check(doc["name"] == "pi4", "name %r" % doc["name"])
    check(doc["system"]["model"] == "Raspberry Pi 4 Model B Rev 1.4", "model %r" % doc["system"])
    check(abs(doc["metrics"]["temp"]["cpu-thermal"]["celsius"] - 48.686) < 1e-6,
          "temp %r" % doc["metrics"].get("temp"))
    for m in ["mem", "load"]:
        check(m in doc["metrics"], "no %s in %r" % (m, list(doc["metrics"])))
    out = subprocess.run([AGENT_BIN, "--once", "--name", "real"], capture_output=True,
                         text=True, timeout=30 * SLOW)
    doc = json.loads(out.stdout)
    check(out.returncode == 0 and 0 <= doc["metrics"]["cpu"]["usage"] <= 100,
          "real machine: %r" % doc["metrics"].get("cpu"))


def test_poll_collects_now(env):
    # An interval far longer than the test: every row comes from a POLL.
    env.start_server(interval=600.0)
    env.start_agent("polled")
    env.wait_hosts_up(["polled"])
    check(rows_of(env, "polled", "load") == [], "rows before any poll")
    out = subprocess.run([CTL_BIN, "-a", "127.0.0.1:%d" % env.http_port, "poll", "polled"],
                         capture_output=True, text=True, timeout=30 * SLOW)
    check(out.returncode == 0, "pimon-ctl poll: %d %s" % (out.returncode, out.stderr))
    wait_for(lambda: len(rows_of(env, "polled", "load")) == 1, 10, "one row after the poll",
             [env.server])
    # CPU usage needs two readings a clock tick apart: a poll right after the
    # connection may come too soon for it. Each poll gives exactly one batch.
    polls = 1
    deadline = time.monotonic() + 10 * SLOW
    while not rows_of(env, "polled", "cpu") and time.monotonic() < deadline:
        env.api_post("/api/v1/hosts/polled/poll")
        polls += 1
        wait_for(lambda: len(rows_of(env, "polled", "load")) == polls, 10,
                 "row %d after poll %d" % (polls, polls), [env.server])
    check(rows_of(env, "polled", "cpu"), "no cpu row after %d polls" % polls)
    check(len(rows_of(env, "polled", "load")) == polls, "rows != polls")
    for name, code in [("nobody", 1), ("../x", 2)]:
        out = subprocess.run([CTL_BIN, "-a", "127.0.0.1:%d" % env.http_port, "poll", name],
                             capture_output=True, text=True, timeout=30 * SLOW)
        check(out.returncode == code, "poll %s: %d, want %d" % (name, out.returncode, code))
    req = urllib.request.Request("http://127.0.0.1:%d/api/v1/hosts/nobody/poll" % env.http_port,
                                 method="POST")
    try:
        urllib.request.urlopen(req, timeout=5)
        check(False, "poll of an unknown host succeeded")
    except urllib.error.HTTPError as e:
        check(e.code == 404 and json.loads(e.read())["error"], "status %d" % e.code)
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/api/v1/hosts/polled/poll" % env.http_port,
                               timeout=5)
        check(False, "GET on poll succeeded")
    except urllib.error.HTTPError as e:
        check(e.code == 405, "GET poll status %d" % e.code)
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/api/v1/nothing" % env.http_port, timeout=5)
        check(False, "unknown path succeeded")
    except urllib.error.HTTPError as e:
        check(e.code == 404, "unknown path status %d" % e.code)


def test_ipv6_listen_and_agent(env):
    if not socket.has_ipv6:
        raise TestSkip("no IPv6 here")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        raise TestSkip("no IPv6 loopback here")
    port = free_port()
    env.start_server(extra={"listen": "[::1]:%d" % port}, port=port)
    env.start_agent("six", extra={"server": "[::1]:%d" % port})
    hosts = env.wait_hosts_up(["six"])
    check(hosts["six"]["addr"].startswith("[::1]:"), "addr %r" % hosts["six"]["addr"])
    wait_for(lambda: len(rows_of(env, "six", "load")) >= 1, 10, "a row over IPv6", [env.server])


def csv_of(env, host, metric):
    """Header and rows of a host's metric file as dicts; [] before it exists."""
    path = os.path.join(env.host_dir(host), metric + ".csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# What the Pi health collectors store from the Pi 4 fixture: metric, instance
# column ("" for none) and the instances expected.
PI_HEALTH = [
    ("diskio", "device", {"mmcblk0"}),
    ("vmstat", "", {None}),
    ("pressure", "resource", {"cpu", "memory", "io"}),
    ("clock", "", {None}),
    ("wifi", "iface", {"wlan0"}),
    ("cpufreq", "policy", {"policy0"}),
    ("host", "", {None}),
]


def test_pi_health_collectors_stored(env):
    # A copy of the Pi 4 tree, so the test can rewrite /proc/vmstat.
    root = os.path.join(env.dir, "pi4")
    shutil.copytree(os.path.join(FIXTURES, "pi4"), root)
    oom = {"name": "oom_kill", "metric": "vmstat.oom_kills_new", "value": 0.0,
           "level": "critical"}
    # The new collectors only, cores (off by default) included.
    metrics = [m for m, _, _ in PI_HEALTH] + ["cores"]
    env.start_server(interval=0.5, extra={"alarms": (oom,), "collect": {"metrics": metrics}})
    env.start_agent("pi4h", proc_root=os.path.join(root, "proc"),
                    sys_root=os.path.join(root, "sys"))
    env.wait_hosts_up(["pi4h"])
    for metric, key, want in PI_HEALTH:
        wait_for(lambda: len(csv_of(env, "pi4h", metric)) >= 2, 20 * SLOW,
                 "2 rows in %s.csv" % metric, [env.server])
        rows = csv_of(env, "pi4h", metric)
        got = {r.get(key) for r in rows} if key else {None}
        check(got == want, "%s instances %r, want %r" % (metric, got, want))
    disk = [r for r in csv_of(env, "pi4h", "diskio") if r["device"] == "mmcblk0"]
    # The fixture does not change: no I/O, and the SD card's bytes written so far.
    check(float(disk[-1]["write_bytes_s"]) == 0.0, "write rate %r" % disk[-1])
    check(float(disk[-1]["written_bytes"]) == 4613992 * 512, "written %r" % disk[-1])
    io = [r for r in csv_of(env, "pi4h", "pressure") if r["resource"] == "io"][-1]
    check(abs(float(io["some_avg10"]) - 12.40) < 1e-6, "io pressure %r" % io)
    wifi = csv_of(env, "pi4h", "wifi")[-1]
    check(float(wifi["signal_dbm"]) == -64.0, "wifi %r" % wifi)
    freq = csv_of(env, "pi4h", "cpufreq")[-1]
    check(float(freq["cur_mhz"]) == 600.0 and float(freq["max_mhz"]) == 1800.0,
          "cpufreq %r" % freq)
    check(float(csv_of(env, "pi4h", "host")[-1]["uptime_seconds"]) == 123456.0, "host uptime")
    check(csv_of(env, "pi4h", "clock")[-1]["synced"] in ("0", "1"), "clock synced")
    check(named_alarms(env, "oom_kill") == [], "an OOM kill before any happened")
    check(csv_of(env, "pi4h", "cores") == [], "cores rows while no CPU time passed")
    check(not os.path.exists(os.path.join(env.host_dir("pi4h"), "cpu.csv")), "cpu not asked for")
    # The kernel kills a process: the next sample counts it and the rule fires.
    # CPU time passes too: a row per core.
    for rel in ("vmstat", "stat"):
        with open(os.path.join(root, "proc", rel), "w") as f:
            f.write(open(os.path.join(FIXTURES, "pi4-next", "proc", rel)).read())
    wait_for(lambda: len(csv_of(env, "pi4h", "cores")) == 4, 20 * SLOW, "a row per core",
             [env.server])
    cores = {r["core"]: float(r["usage"]) for r in csv_of(env, "pi4h", "cores")}
    check(set(cores) == {"cpu0", "cpu1", "cpu2", "cpu3"} and abs(cores["cpu0"] - 25.2) < 1e-6,
          "cores %r" % cores)
    wait_for(lambda: named_alarms(env, "oom_kill"), 20 * SLOW, "the oom_kill alarm",
             [env.server])
    check(named_alarms(env, "oom_kill")[0] == ("firing", "critical"),
          "oom_kill %r" % named_alarms(env, "oom_kill"))
    # No kill since: the next sample resolves it.
    wait_for(lambda: len(named_alarms(env, "oom_kill")) == 2, 20 * SLOW, "the resolve",
             [env.server])


def named_alarms(env, name):
    """(state, level) of each row of the server's alarms.csv called name."""
    path = os.path.join(env.data_dir, "alarms.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [(r["state"], r["level"]) for r in csv.DictReader(f) if r["name"] == name]


if __name__ == "__main__":
    run_tests(globals())
