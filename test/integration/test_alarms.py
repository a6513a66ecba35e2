"""Alarms end to end with the real binaries: threshold rules on a fixture
the test rewrites, host_down with the notify command, Debian's
Monitoring-Plugins as agent checks, alarms raised while the server is away,
`pimon-agent alarm`, reloads, and hostile input that must never reach a
shell."""

import csv
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import threading
import time

from harness import (AGENT_BIN, FIXTURES, SLOW, T_BYE, T_CHALLENGE, T_HELLO, T_WELCOME, TestSkip,
                     check, frame, hello, pstr, read_frame, run_tests, wait_closed, wait_for)

PLUGINS = "/usr/lib/nagios/plugins"
T_ALARM, T_ALARM_ACK = 9, 10


def alarm_rows(env, host=None):
    """Rows of the server's (or a host's) alarms.csv as dicts."""
    path = os.path.join(env.host_dir(host) if host else env.data_dir, "alarms.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def named(rows, name):
    return [(r["state"], r["level"]) for r in rows if r["name"] == name]


def fake_pi(env):
    """A copy of the Pi fixture's /sys whose CPU temperature the test sets."""
    root = os.path.join(env.dir, "sys")
    shutil.copytree(os.path.join(FIXTURES, "pi4", "sys"), root, symlinks=True)
    path = os.path.join(root, "class", "thermal", "thermal_zone0", "temp")

    def set_temp(celsius):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % int(celsius * 1000))
        os.replace(tmp, path)
    return root, set_temp


def latest_temp(env, name):
    h = env.hosts().get(name, {})
    return h.get("latest", {}).get("temp", {}).get("cpu-thermal", {}).get("celsius")


def hold(env, name, set_temp, celsius, seconds):
    """Set the temperature, wait until the server has seen it, then keep it
    there for about seconds of samples."""
    set_temp(celsius)
    wait_for(lambda: latest_temp(env, name) == celsius, 10, "temp %g seen" % celsius,
             [env.server])
    time.sleep(seconds)


def notify_script(env):
    """A notify command that writes its PIMON_* environment to a file per
    run, and the folder it writes to."""
    out = os.path.join(env.dir, "notified")
    os.makedirs(out)
    path = os.path.join(env.dir, "notify.sh")
    with open(path, "w") as f:
        f.write('#!/bin/sh\nenv | grep "^PIMON_" | sort > "$1/run-$$.tmp"\n'
                'mv "$1/run-$$.tmp" "$1/run-$$"\n')
    os.chmod(path, 0o755)
    return path, out


def notified(out):
    runs = []
    for name in sorted(os.listdir(out)):
        if name.endswith(".tmp"):
            continue
        with open(os.path.join(out, name)) as f:
            runs.append(dict(l.rstrip("\n").split("=", 1) for l in f if "=" in l))
    return sorted(runs, key=lambda r: int(r["PIMON_TIME"]))


def test_rule_fires_once_resolves_once_no_flapping(env):
    root, set_temp = fake_pi(env)
    set_temp(45)
    # `for` grows on slow builds, so a wobble never outlasts it by accident.
    hold_for = 2.0 * SLOW
    env.start_server(extra={"alarms": [{"name": "hot", "metric": "temp.celsius", "value": 60.0,
                                        "clear": 55.0, "for": hold_for, "level": "critical"}]})
    env.start_agent("pi", sys_root=root)
    env.wait_hosts_up(["pi"])
    hold(env, "pi", set_temp, 45, 1.0)
    # Wobbling around the threshold, never above it for `for`: no alarm.
    for _ in range(3):
        hold(env, "pi", set_temp, 61, 0.6)
        hold(env, "pi", set_temp, 59, 0.6)
    check(named(alarm_rows(env), "hot") == [], "fired on a wobble: %r" % alarm_rows(env))
    # Above for longer than `for`: one fire, not before `for` of samples.
    set_temp(65)
    wait_for(lambda: named(alarm_rows(env), "hot"), 15 + hold_for, "the fire", [env.server])
    # Back under the threshold but above clear, and wobbling there: no resolve.
    for _ in range(3):
        hold(env, "pi", set_temp, 58, 0.6)
        hold(env, "pi", set_temp, 62, 0.6)
    check(named(alarm_rows(env), "hot") == [("firing", "critical")],
          "rows %r" % alarm_rows(env))
    hold(env, "pi", set_temp, 50, 0.0)
    wait_for(lambda: len(named(alarm_rows(env), "hot")) == 2, 10, "the resolve", [env.server])
    hold(env, "pi", set_temp, 50, 1.0)
    rows = [r for r in alarm_rows(env) if r["name"] == "hot"]
    check([(r["state"], r["level"]) for r in rows] == [("firing", "critical"),
                                                       ("resolved", "critical")],
          "rows %r" % rows)
    fire, resolve = rows
    check(fire["host"] == "pi" and fire["instance"] == "cpu-thermal" and
          float(fire["value"]) == 65.0 and fire["origin"] == "rule:temp.celsius",
          "fire %r" % fire)
    check(float(resolve["value"]) == 50.0, "resolve %r" % resolve)
    check(float(resolve["duration_s"]) >= 3 * 1.2, "duration %r" % resolve["duration_s"])
    # The first 65 sample and the fire are at least `for` apart.
    with open(os.path.join(env.host_dir("pi"), "temp.csv"), newline="") as f:
        temps = [r for r in csv.DictReader(f)]
    first_hot = min(int(r["time"]) for r in temps if float(r["celsius"]) == 65.0)
    check(int(fire["time"]) - first_hot >= hold_for * 1000,
          "fired %d ms after the first hot sample" % (int(fire["time"]) - first_hot))
    check(alarm_rows(env, "pi") == alarm_rows(env), "the host's file differs")
    check(env.api("/api/v1/alarms")["active"] == [], "still active")


def test_host_down_fires_and_resolves_with_notify(env):
    script, out = notify_script(env)
    timeout = 2.0
    env.start_server(timeout=timeout, extra={"notify": {"command": [script, out],
                                                        "timeout": 10.0}})
    agent = env.start_agent("stopped")
    env.wait_hosts_up(["stopped"])
    stopped_at = time.time()
    agent.p.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: named(alarm_rows(env), "host_down"), timeout + 10, "host_down",
                 [env.server])
        fired = alarm_rows(env)[0]
        delay = int(fired["time"]) / 1000.0 - stopped_at
        print("host_down fired %.2f s after SIGSTOP (timeout %.1f s)" % (delay, timeout))
        check(delay <= (timeout + 1.0) * SLOW, "host_down after %.2f s" % delay)
        check(env.hosts()["stopped"]["state"] == "down", "host not down")
    finally:
        agent.p.send_signal(signal.SIGCONT)
    wait_for(lambda: len(named(alarm_rows(env), "host_down")) == 2, 15, "the resolve",
             [env.server])
    rows = alarm_rows(env)
    check(named(rows, "host_down") == [("firing", "critical"), ("resolved", "critical")],
          "rows %r" % rows)
    check(rows[1]["message"].startswith("back after ") and float(rows[1]["duration_s"]) > 0,
          "resolve %r" % rows[1])
    wait_for(lambda: len(notified(out)) == 2, 15, "two notify runs", [env.server])
    time.sleep(0.5)
    runs = notified(out)
    check(len(runs) == 2, "%d notify runs" % len(runs))
    check([(r["PIMON_HOST"], r["PIMON_ALARM"], r["PIMON_LEVEL"], r["PIMON_STATE"])
           for r in runs] == [("stopped", "host_down", "critical", "firing"),
                              ("stopped", "host_down", "critical", "resolved")],
          "notify env %r" % runs)
    check(runs[0]["PIMON_MESSAGE"] == "no heartbeat: host is not answering", "%r" % runs[0])
    check(runs[0]["PIMON_TIME"] == rows[0]["time"] and runs[1]["PIMON_TIME"] == rows[1]["time"],
          "times %r" % runs)
    check(runs[0]["PIMON_DURATION_S"] == "" and
          float(runs[1]["PIMON_DURATION_S"]) == float(rows[1]["duration_s"]),
          "durations %r" % runs)
    check(set(runs[0]) == {"PIMON_HOST", "PIMON_ALARM", "PIMON_INSTANCE", "PIMON_LEVEL",
                           "PIMON_STATE", "PIMON_VALUE", "PIMON_MESSAGE", "PIMON_TIME",
                           "PIMON_DURATION_S"}, "variables %r" % sorted(runs[0]))


def need_plugins():
    for p in ("check_disk", "check_load", "check_procs"):
        if not os.access(os.path.join(PLUGINS, p), os.X_OK):
            raise TestSkip("%s/%s missing (Debian's monitoring-plugins-basic)" % (PLUGINS, p))


def test_monitoring_plugins_as_checks(env):
    need_plugins()
    env.start_server()
    checks = [
        {"name": "disk_ok", "interval": 2.0, "command": [PLUGINS + "/check_disk", "-w", "1%",
                                                         "-c", "1%", "-p", "/"]},
        {"name": "disk_full", "interval": 2.0, "command": [PLUGINS + "/check_disk", "-w",
                                                           "100%", "-c", "100%", "-p", "/"]},
        {"name": "load", "interval": 2.0, "command": [PLUGINS + "/check_load", "-w",
                                                      "1000,1000,1000", "-c",
                                                      "2000,2000,2000"]},
        {"name": "procs", "interval": 2.0, "command": [PLUGINS + "/check_procs", "-w", "0:0"]},
        {"name": "hangs", "interval": 30.0, "timeout": 1.0, "command": ["/bin/sleep", "60"]},
        {"name": "chatty", "interval": 30.0, "command": ["/usr/bin/seq", "1", "3000000"]},
    ]
    env.start_agent("checked", extra={"checks": checks})
    env.wait_hosts_up(["checked"])
    want = {"disk_full": ("firing", "critical"), "procs": ("firing", "warning"),
            "hangs": ("firing", "unknown")}

    def states():
        return {r["name"]: (r["state"], r["level"]) for r in alarm_rows(env)}
    wait_for(lambda: states() == want, 30, "the checks' alarms", [env.server])
    rows = {r["name"]: r for r in alarm_rows(env)}
    check(rows["hangs"]["message"] == "timed out after 1.0 s", "hangs %r" % rows["hangs"])
    check(rows["disk_full"]["message"].startswith("DISK CRITICAL"), "%r" % rows["disk_full"])
    check(rows["procs"]["message"].startswith("PROCS WARNING"), "%r" % rows["procs"])
    check(all(r["origin"].startswith("check:") for r in rows.values()), "origins %r" % rows)
    active = {a["name"]: a["level"] for a in env.api("/api/v1/alarms")["active"]}
    check(active == {"disk_full": "critical", "procs": "warning", "hangs": "unknown"},
          "active %r" % active)

    def latest(name):
        return env.hosts()["checked"]["latest"].get("check_" + name)
    wait_for(lambda: all(latest(n) for n in ("disk_ok", "load", "procs", "hangs", "chatty")), 30,
             "every check's perfdata", [env.server])
    load = latest("load")
    check(load["status"] == 0 and set(load) >= {"status", "duration_s", "load1", "load5",
                                                 "load15"}, "load %r" % load)
    disk = latest("disk_ok")
    check(disk["status"] == 0 and any(k.endswith("_bytes") for k in disk), "disk %r" % disk)
    check(latest("procs")["status"] == 1 and latest("procs").get("procs", 0) > 0,
          "procs %r" % latest("procs"))
    check(latest("hangs")["status"] == 3 and latest("hangs")["duration_s"] < 5 * SLOW,
          "hangs %r" % latest("hangs"))
    # Megabytes of output: the real exit status and the first line, the rest cut.
    check(latest("chatty")["status"] == 0, "chatty %r" % latest("chatty"))
    check("chatty" not in states(), "an OK check raised an alarm")
    with open(os.path.join(env.host_dir("checked"), "check_load.csv"), newline="") as f:
        header = next(csv.reader(f))
    check(header[:3] == ["time", "status", "duration_s"] and "load1" in header,
          "check_load.csv header %r" % header)
    check(not [p for p in os.popen("ps -eo pid,stat,comm").read().splitlines()
               if " Z" in p and ("sleep" in p or "check_" in p)], "zombies left")


def flip_check(env):
    """A check script whose exit status the test sets through a file."""
    state = os.path.join(env.dir, "flip.state")
    path = os.path.join(env.dir, "flip.sh")
    with open(path, "w") as f:
        f.write('#!/bin/sh\ns=$(cat "%s")\necho "FLIP state $s | value=$s;1;2"\nexit "$s"\n'
                % state)
    os.chmod(path, 0o755)

    def set_state(s):
        with open(state + ".tmp", "w") as f:
            f.write("%d\n" % s)
        os.replace(state + ".tmp", state)
    set_state(0)
    return path, set_state


def test_alarm_raised_while_server_down_arrives_once(env):
    script, set_state = flip_check(env)
    env.start_server()
    agent = env.start_agent("flip", extra={"checks": [{"name": "flip", "interval": 1.0,
                                                       "command": [script]}]})
    env.wait_hosts_up(["flip"])
    wait_for(lambda: env.hosts()["flip"]["latest"].get("check_flip"), 15, "a first result",
             [env.server])
    env.server.kill()
    set_state(2)
    wait_for(lambda: "check flip: OK -> CRITICAL" in agent.log_text(), 15,
             "the agent to see CRITICAL", [agent])
    # Kill the agent too: its spool must carry the alarm to the new run.
    time.sleep(1.0)
    agent.kill()
    agent = env.start_agent("flip", extra={"checks": [{"name": "flip", "interval": 1.0,
                                                       "command": [script]}]})
    env.start_server()
    env.wait_hosts_up(["flip"])
    wait_for(lambda: named(alarm_rows(env), "flip"), 15, "the alarm", [env.server])
    time.sleep(3.0)
    check(named(alarm_rows(env), "flip") == [("firing", "critical")],
          "rows %r" % alarm_rows(env))
    set_state(0)
    wait_for(lambda: len(named(alarm_rows(env), "flip")) == 2, 15, "the resolve",
             [env.server])
    time.sleep(2.0)
    check(named(alarm_rows(env), "flip") == [("firing", "critical"), ("resolved", "critical")],
          "rows %r" % alarm_rows(env))
    # The alarm kept its original time: when the agent saw it, before the restart.
    fire = [r for r in alarm_rows(env) if r["name"] == "flip"][0]
    check(fire["message"] == "FLIP state 2", "message %r" % fire["message"])


def test_local_alarm_from_a_shell_script(env):
    env.start_server()
    agent = env.start_agent("local")
    env.wait_hosts_up(["local"])
    sock = env.alarm_socket("local")
    wait_for(lambda: os.path.exists(sock), 10, "the alarm socket", [agent])
    check(stat.S_IMODE(os.stat(sock).st_mode) == 0o600, "socket mode %o"
          % stat.S_IMODE(os.stat(sock).st_mode))
    script = os.path.join(env.dir, "raise.sh")
    with open(script, "w") as f:
        f.write('#!/bin/sh\nexec "%s" alarm --socket "%s" --level critical --name fan '
                '"fan stopped on $(hostname)"\n' % (AGENT_BIN, sock))
    os.chmod(script, 0o755)
    t0 = time.time()
    r = subprocess.run([script], capture_output=True, text=True, timeout=30 * SLOW)
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr))
    wait_for(lambda: named(alarm_rows(env), "fan"), 10, "the local alarm", [env.server])
    took = time.time() - t0
    print("pimon-agent alarm reached alarms.csv in %.3f s" % took)
    check(took < 1.0 * SLOW, "took %.2f s" % took)
    row = alarm_rows(env)[0]
    check((row["host"], row["level"], row["state"]) == ("local", "critical", "firing") and
          row["message"].startswith("fan stopped on ") and row["origin"].startswith("local:"),
          "row %r" % row)
    # The same level again adds nothing; ok resolves it.
    base = [AGENT_BIN, "alarm", "--socket", sock, "--name", "fan"]
    check(subprocess.run(base + ["--level", "critical", "still"], timeout=30 * SLOW)
          .returncode == 0, "second raise")
    check(subprocess.run(base + ["--level", "ok", "spinning"], timeout=30 * SLOW)
          .returncode == 0, "resolve")
    wait_for(lambda: len(named(alarm_rows(env), "fan")) == 2, 10, "the resolve", [env.server])
    check(named(alarm_rows(env), "fan") == [("firing", "critical"), ("resolved", "critical")],
          "rows %r" % alarm_rows(env))
    # Refusals: a bad level (exit 1 with the agent's reason), no agent (exit 3).
    r = subprocess.run(base + ["--level", "loud", "x"], capture_output=True, text=True,
                       timeout=30 * SLOW)
    check(r.returncode == 1 and "level is not one of" in r.stderr, "bad level %r" % (r,))
    r = subprocess.run([AGENT_BIN, "alarm", "--socket", sock + ".none", "x"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    check(r.returncode == 3 and "no agent at" in r.stderr, "no agent %r" % (r,))
    r = subprocess.run([AGENT_BIN, "alarm", "--socket", sock], capture_output=True, text=True,
                       timeout=30 * SLOW)
    check(r.returncode == 2, "no text %r" % (r,))


def test_reload_rules_and_checks(env):
    rule = {"name": "load_any", "metric": "load.load1", "op": ">=", "value": 0.0}
    env.start_server(extra={"alarms": [rule]})
    cfg = os.path.join(env.dir, "server.cfg")
    good = open(cfg).read()
    agent = env.start_agent("r1")
    env.wait_hosts_up(["r1"])
    wait_for(lambda: named(alarm_rows(env), "load_any"), 10, "load_any", [env.server])
    # A bad file: the error names file and line, and the rules stay.
    with open(cfg, "a") as f:
        f.write("server: { alarms = ( { name = \"x\"; metric = \"load\"; value = 1.0; } ); };\n")
    env.server.p.send_signal(signal.SIGHUP)
    bad_line = len(good.splitlines()) + 1
    wait_for(lambda: "SIGHUP: %s:%d: duplicate setting name; the rules in force stay"
             % (cfg, bad_line) in env.server.log_text(), 10, "the reload error", [env.server])
    env.start_agent("r2")
    env.wait_hosts_up(["r2"])
    wait_for(lambda: named(alarm_rows(env, "r2"), "load_any"), 10, "load_any on r2",
             [env.server])
    # A good file replacing the rule: the old alarms resolve, the new rule fires.
    with open(cfg, "w") as f:
        f.write(good.replace('"load_any"', '"load_all"'))
    env.server.p.send_signal(signal.SIGHUP)
    wait_for(lambda: "1 alarm rules and the notify settings reloaded" in env.server.log_text(),
             10, "the reload", [env.server])
    for h in ("r1", "r2"):
        wait_for(lambda: named(alarm_rows(env, h), "load_all"), 10, "load_all on " + h,
                 [env.server])
        rows = [r for r in alarm_rows(env, h) if r["name"] == "load_any"]
        check([(r["state"], r["message"]) for r in rows][-1] == ("resolved", "rule removed"),
              "%s rows %r" % (h, rows))
    # The agent reloads its checks.
    script, _ = flip_check(env)
    path = os.path.join(env.dir, "agent-r1.cfg")
    text = open(path).read()
    with open(path, "w") as f:
        f.write(text.replace("agent: {", 'agent: {\n  checks = ({ name = "flip"; interval = 1.0; '
                             'command = ["%s"]; });' % script, 1))
    agent.p.send_signal(signal.SIGHUP)
    wait_for(lambda: env.hosts()["r1"]["latest"].get("check_flip"), 15, "the new check",
             [agent, env.server])
    with open(path, "w") as f:
        f.write(text + "agent: { bad }\n")
    agent.p.send_signal(signal.SIGHUP)
    wait_for(lambda: "the checks in force stay" in agent.log_text(), 10, "the agent's error",
             [agent])
    check(env.hosts()["r1"]["state"] == "up", "agent lost after a bad reload")


def test_shell_metacharacters_never_reach_a_shell(env):
    script, out = notify_script(env)
    env.start_server(extra={"notify": {"command": [script, out]}})
    agent = env.start_agent("meta")
    env.wait_hosts_up(["meta"])
    trap = os.path.join(env.dir, "p")
    nasty = "$(touch %s) `touch %s`; touch %s '\"|&" % ((trap,) * 3)
    sock = env.alarm_socket("meta")
    wait_for(lambda: os.path.exists(sock), 10, "the alarm socket", [agent])
    r = subprocess.run([AGENT_BIN, "alarm", "--socket", sock, "--level", "critical", nasty],
                       capture_output=True, text=True, timeout=30 * SLOW)
    check(r.returncode == 0, "alarm %r" % (r,))
    wait_for(lambda: notified(out), 15, "the notify run", [env.server])
    runs = notified(out)
    check(runs[0]["PIMON_MESSAGE"] == nasty, "message changed: %r" % runs[0]["PIMON_MESSAGE"])
    check([r["message"] for r in alarm_rows(env)] == [nasty], "rows %r" % alarm_rows(env))

    # A server that answers with shell in every string it sends.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    evil = "$(touch %s)" % trap
    done = threading.Event()

    def serve():
        # First a WELCOME naming shell as a metric: a bad frame to the agent.
        conn, _ = srv.accept()
        conn.sendall(frame(T_CHALLENGE, b"\0" * 32))
        read_frame(conn, challenge=True)
        welcome = struct.pack(">IIB", 500, 500, 2) + pstr("cpu") + pstr(evil[:32])
        conn.sendall(frame(T_WELCOME, welcome))
        conn.close()
        # Then shell in the BYE's reason, which is text.
        conn, _ = srv.accept()
        conn.sendall(frame(T_CHALLENGE, b"\0" * 32))
        read_frame(conn, challenge=True)
        welcome = struct.pack(">IIB", 500, 500, 1) + pstr("cpu")
        conn.sendall(frame(T_WELCOME, welcome))
        conn.sendall(frame(T_BYE, pstr("; touch %s; `touch %s`" % (trap, trap))))
        time.sleep(0.5)
        conn.close()
        done.set()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    victim = env.start_agent("victim", extra={"server": "127.0.0.1:%d" % port})
    check(done.wait(20 * SLOW), "the hostile server saw no agent")
    wait_for(lambda: "server said goodbye" in victim.log_text(), 10, "the BYE", [victim])
    check("metric name is outside [a-z0-9_]{1,32}" in victim.log_text(),
          "the agent took shell as a metric name")
    srv.close()
    time.sleep(0.5)
    check(not os.path.exists(trap), "an injected command ran")
    victim.check_alive()


def test_bad_alarm_frame_closes_only_that_session(env):
    env.start_server()
    witness = env.start_agent("witness")
    env.wait_hosts_up(["witness"])
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(hello("raw-alarm", run_id=7))
    check(read_frame(s)[0] == T_WELCOME, "no WELCOME")

    def alarm(seq, name, level=2, message="m"):
        p = struct.pack(">QQBB", seq, int(time.time() * 1000), level, 0)
        return frame(T_ALARM, p + pstr(name) + pstr(message))
    s.sendall(alarm(1, "fan"))
    ftype, payload = read_frame(s)
    check(ftype == T_ALARM_ACK and struct.unpack(">Q", payload)[0] == 1, "ack %r" % ftype)
    s.sendall(alarm(1, "fan"))  # a resend: acked, not recorded again
    ftype, payload = read_frame(s)
    check(ftype == T_ALARM_ACK and struct.unpack(">Q", payload)[0] == 1, "resend ack")
    s.sendall(alarm(2, "Fan; rm -rf /"))
    check(wait_closed(s), "a bad alarm name did not close the session")
    wait_for(lambda: "alarm name is outside" in env.server.log_text(), 10, "the log line",
             [env.server])
    check(named(alarm_rows(env), "fan") == [("firing", "critical")], "rows %r"
          % alarm_rows(env))
    env.server.check_alive()
    witness.check_alive()
    check(env.hosts()["witness"]["state"] == "up", "witness down")


def test_restart_keeps_each_hosts_alarms_csv(env):
    # The host's alarms.csv is its record of fires and resolves, not rows
    # of a batch: recovery at a restart must leave it whole, and the alarm
    # it shows firing stays active without firing again.
    rule = {"name": "load_any", "metric": "load.load1", "op": ">=", "value": 0.0}
    env.start_server(extra={"alarms": [rule]})
    env.start_agent("keep")
    env.wait_hosts_up(["keep"])
    wait_for(lambda: named(alarm_rows(env, "keep"), "load_any"), 10, "load_any", [env.server])
    path = os.path.join(env.host_dir("keep"), "alarms.csv")
    before = open(path).read()
    check(env.server.stop() == 0, "server exit status")
    env.start_server(extra={"alarms": [rule]}, name="server2")
    env.wait_hosts_up(["keep"])
    load = os.path.join(env.host_dir("keep"), "load.csv")
    stored = len(open(load).readlines())
    wait_for(lambda: len(open(load).readlines()) >= stored + 2, 10, "rows after the restart",
             [env.server])
    check(open(path).read().startswith(before), "the host's alarms.csv was cut: %r"
          % open(path).read())
    check(named(alarm_rows(env, "keep"), "load_any") == [("firing", "warning")],
          "rows %r" % alarm_rows(env, "keep"))
    active = [a["name"] for a in env.api("/api/v1/alarms")["active"] if a["host"] == "keep"]
    check(active == ["load_any"], "active %r" % active)


if __name__ == "__main__":
    run_tests(globals())
