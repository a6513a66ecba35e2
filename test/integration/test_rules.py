"""Alarm rule validation with the real server: `pimon-server -t` and a
SIGHUP reject a rule whose metric nothing produces, naming FILE:LINE and the
nearest valid name, and the unit file's ExecReload runs that same check."""

import os
import signal
import subprocess

from harness import SERVER_BIN, check, run_tests, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
UNIT = os.path.join(HERE, "..", "..", "etc", "pimon-server.service")
BAD_RULE = ("server: { alarms = ( { name = \"full\"; metric = \"disk.usedpct\"; "
            "value = 90.0; } ); };\n")


def exec_reload_check(cfg):
    """The first ExecReload= command of the unit file, run on cfg."""
    lines = [l.split("=", 1)[1].split() for l in open(UNIT).read().splitlines()
             if l.startswith("ExecReload=")]
    check(len(lines) == 2 and lines[1][0] == "/bin/kill", "ExecReload lines: %r" % lines)
    argv = lines[0]
    check(argv[0] == "/usr/bin/pimon-server" and argv[-1] == "/etc/pimon.cfg",
          "first ExecReload: %r" % argv)
    argv = [SERVER_BIN] + argv[1:-1] + [cfg]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_check_rejects_unknown_metric(env):
    cfg = os.path.join(env.dir, "bad.cfg")
    with open(cfg, "w") as f:
        f.write("# a rule with a misspelt metric\n" + BAD_RULE)
    r = exec_reload_check(cfg)
    check(r.returncode == 2, "exit %d: %s" % (r.returncode, r.stderr))
    want = "%s:2:" % cfg
    check(want in r.stderr, "no %s in %r" % (want, r.stderr))
    check("did you mean disk.used_pct?" in r.stderr, "no suggestion in %r" % r.stderr)
    # The same file with the metric spelt right passes.
    with open(cfg, "w") as f:
        f.write(BAD_RULE.replace("usedpct", "used_pct"))
    r = exec_reload_check(cfg)
    check(r.returncode == 0, "good file: exit %d: %s" % (r.returncode, r.stderr))


def test_sighup_bad_metric_keeps_rules(env):
    rule = {"name": "load_any", "metric": "load.load1", "op": ">=", "value": 0.0}
    env.start_server(extra={"alarms": [rule]})
    cfg = os.path.join(env.dir, "server.cfg")
    good = open(cfg).read()
    check('"load_any"' in good, "the rule is in the file")
    with open(cfg, "w") as f:
        f.write(good.replace('"load.load1"', '"load.lod1"'))
    env.server.p.send_signal(signal.SIGHUP)
    wait_for(lambda: "did you mean load.load1?" in env.server.log_text()
             and "the rules in force stay" in env.server.log_text(), 10,
             "the reload error", [env.server])
    log = env.server.log_text()
    check("SIGHUP: %s:" % cfg in log, "the error names the file: %r" % log[-2000:])
    # The old rule still fires for a new host.
    env.start_agent("r1")
    env.wait_hosts_up(["r1"])
    path = os.path.join(env.data_dir, "alarms.csv")
    wait_for(lambda: os.path.exists(path) and "load_any" in open(path).read(), 10,
             "load_any fires", [env.server])


if __name__ == "__main__":
    run_tests(globals())
