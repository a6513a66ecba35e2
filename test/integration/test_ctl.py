"""pimon-ctl against the real server: each command as a table and as
--json, its exit codes (0 ok, 1 the server said no, 2 bad usage, 3 no
server) and its messages."""

import datetime
import json
import os
import subprocess
import time

from harness import CTL_BIN, FIXTURES, SLOW, check, free_port, run_tests, wait_for

STEP = 10 * 1000
PI4 = {"proc_root": os.path.join(FIXTURES, "pi4", "proc"),
       "sys_root": os.path.join(FIXTURES, "pi4", "sys")}


def ctl(env, *args, addr=None):
    """Run pimon-ctl in UTC against env's server (or addr)."""
    argv = [CTL_BIN, "-a", addr or "127.0.0.1:%d" % env.http_port] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30 * SLOW,
                          env=dict(os.environ, TZ="UTC"))


def ok(env, *args):
    r = ctl(env, *args)
    check(r.returncode == 0 and r.stderr == "", "pimon-ctl %s: %d %r"
          % (" ".join(args), r.returncode, r.stderr))
    return r.stdout


def fails(env, code, *args, says=None, addr=None):
    r = ctl(env, *args, addr=addr)
    check(r.returncode == code, "pimon-ctl %s: exit %d, want %d (%r)"
          % (" ".join(args), r.returncode, code, r.stderr))
    check(r.stdout == "" and r.stderr.startswith("pimon-ctl: "), "pimon-ctl %s: out %r err %r"
          % (" ".join(args), r.stdout, r.stderr))
    if says:
        check(says in r.stderr, "pimon-ctl %s: %r does not say %r" % (" ".join(args), r.stderr,
                                                                     says))
    return r


def key_values(text):
    """Aligned "key  value" lines as a dict; every value starts in one column."""
    out, starts = {}, set()
    for line in text.splitlines():
        key = line.split()[0]
        rest = line[len(key):]
        value = rest.lstrip()
        starts.add(len(line) - len(value))
        out[key] = value
    check(len(starts) == 1, "values not aligned: %r" % text)
    return out


def table(lines):
    """Rows of an aligned table as dicts, cut at the header's column starts."""
    header = lines[0]
    names = header.split()
    starts = [header.index(n) if i == 0 else header.index("  " + n) + 2
              for i, n in enumerate(names)]
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
        rows.append(dict(zip(names, cells)))
    return rows


def number_table(lines):
    """Rows of a table whose cells hold no spaces (numbers right-aligned)."""
    names = lines[0].split()
    return [dict(zip(names, line.split())) for line in lines[1:]]


def iso_utc(text):
    check(text.endswith("+00:00") and "T" in text, "not a local ISO time in UTC: %r" % text)
    return datetime.datetime.fromisoformat(text).timestamp() * 1000


def write_history(env, end):
    """hist: load.csv every 10 s over two hours up to end (load1 = i % 10,
    load5 = i % 4 + 0.5) and disk.csv with two mounts."""
    d = os.path.join(env.data_dir, "hosts", "hist")
    os.makedirs(d)
    rows = []
    with open(os.path.join(d, "load.csv"), "w") as f, \
            open(os.path.join(d, "disk.csv"), "w") as g:
        f.write("time,load1,load5,load15,running,total\n")
        g.write("time,mount,total_bytes,used_pct\n")
        for i in range(721):
            t = end - (720 - i) * STEP
            f.write("%d,%d,%s,1,1,100\n" % (t, i % 10, i % 4 + 0.5))
            g.write('%d,/,100,%d\n%d,"/mnt/a,b",100,%d\n' % (t, 10 + i % 3, t, 50 + i % 3))
            rows.append((t, i % 10))
    return rows


def test_show_host_details_and_latest_values(env):
    env.start_server(workers=2)
    env.start_agent("ctl-a", **PI4)
    env.wait_hosts_up(["ctl-a"])
    wait_for(lambda: "load" in env.hosts()["ctl-a"]["latest"] and
             "net" in env.hosts()["ctl-a"]["latest"], 10, "latest values", [env.server])
    kv = key_values(ok(env, "show", "ctl-a"))
    check(kv["name"] == "ctl-a" and kv["state"].startswith("up (connected) since "),
          "name/state %r" % kv)
    check(kv["addr"].startswith("127.0.0.1:") and kv["worker"] in ("0", "1"), "addr %r" % kv)
    check(kv["os"] != "-" and kv["boot_id"] != "-", "facts %r" % kv)
    iso_utc(kv["last_seen"].split()[0])
    check(kv["load.load1"] == "0.52" and kv["load.total"] == "345", "load %r" % kv)
    check("net[eth0].rx_bytes" in kv and "net[wlan0].tx_bytes" in kv, "net %r" % sorted(kv))
    check(kv["mem.total_bytes"].isdigit(), "mem %r" % kv["mem.total_bytes"])
    for args in (["--json", "show", "ctl-a"], ["show", "ctl-a", "--json"]):
        doc = json.loads(ok(env, *args))
        check(doc["name"] == "ctl-a" and doc["latest"]["load"]["load1"] == 0.52,
              "%s: %r" % (args, doc))
    fails(env, 1, "show", "nobody", says="no such host")
    fails(env, 2, "show", "bad@name", says="not a valid host name")
    fails(env, 2, "show")
    fails(env, 2, "show", "a", "b")
    out = ok(env, "hosts")
    check(out.split()[:2] == ["NAME", "STATE"] and "ctl-a" in out, "hosts %r" % out)
    check(json.loads(ok(env, "hosts", "--json"))[0]["name"] == "ctl-a", "hosts --json")


def test_stats_and_workers(env):
    env.start_server(workers=2)
    env.start_agent("ctl-s")
    env.wait_hosts_up(["ctl-s"])
    kv = key_values(ok(env, "stats"))
    check(kv["workers"] == "2" and kv["hosts"] == "1 (1 up, 0 down)" and kv["sessions"] == "1",
          "stats %r" % kv)
    check(kv["version"] == env.api("/api/v1/stats")["version"], "version %r" % kv["version"])
    check(kv["uptime"].startswith("0d 0h "), "uptime %r" % kv["uptime"])
    counters = [k for k in env.api("/api/v1/workers")[0] if k not in ("id", "sessions")]
    check(all(kv[c].isdigit() for c in counters), "counters %r" % kv)
    doc = json.loads(ok(env, "stats", "--json"))
    check(doc["hosts"]["total"] == 1 and list(doc["counters"]) == counters, "json %r" % doc)
    rows = ok(env, "workers").splitlines()
    check(rows[0].split()[:2] == ["WORKER", "SESSIONS"] and len(rows) == 3, "workers %r" % rows)
    check(len(json.loads(ok(env, "--json", "workers"))) == 2, "workers --json")
    fails(env, 2, "stats", "extra")
    fails(env, 2, "stats", "--points", "5")


def test_alarms_active_then_recent(env):
    env.start_server(extra={"alarms": [{"name": "load_any", "metric": "load.load1",
                                        "op": ">=", "value": 0.0}]})
    env.start_agent("ctl-up")
    b = env.start_agent("ctl-down")
    env.wait_hosts_up(["ctl-up", "ctl-down"])
    wait_for(lambda: len(env.api("/api/v1/alarms")["active"]) == 2, 15, "two load alarms",
             [env.server])
    out = ok(env, "alarms").splitlines()
    check(out[0] == "ACTIVE" and out[1].split() == ["HOST", "ALARM", "LEVEL", "SINCE", "MESSAGE"],
          "header: %r" % out)
    b.stop()
    wait_for(lambda: env.hosts()["ctl-down"]["state"] == "down", 10, "ctl-down down",
             [env.server])
    wait_for(lambda: len(env.api("/api/v1/alarms")["active"]) == 3, 10, "host_down",
             [env.server])
    out = ok(env, "alarms").splitlines()
    gap = out.index("")
    active = table(out[1:gap])
    check([(a["HOST"], a["ALARM"], a["LEVEL"]) for a in active]
          == [("ctl-down", "host_down", "critical"), ("ctl-down", "load_any", "warning"),
              ("ctl-up", "load_any", "warning")], "active %r" % active)
    check(active[0]["MESSAGE"] == "session ended: goodbye", "message %r" % active[0])
    check(active[0]["SINCE"].endswith(" ago)"), "since %r" % active[0]["SINCE"])
    iso_utc(active[0]["SINCE"].split()[0])
    check(out[gap + 1] == "RECENT", "sections %r" % out)
    recent = table(out[gap + 2:])
    check(len(recent) == 3, "recent %r" % recent)
    check((recent[0]["HOST"], recent[0]["ALARM"], recent[0]["STATE"])
          == ("ctl-down", "host_down", "firing"), "newest %r" % recent[0])
    doc = json.loads(ok(env, "alarms", "--json"))
    check(doc["active"][0]["host"] == "ctl-down" and len(doc["recent"]) == 3, "json %r" % doc)
    check([(r["HOST"], r["ALARM"], r["STATE"], iso_utc(r["TIME"])) for r in recent]
          == [(e["host"], e["name"], e["state"], e["time"] // 1000 * 1000)
              for e in doc["recent"]], "table %r vs json %r" % (recent, doc["recent"]))


def test_series_table_values_and_options(env):
    end = (int(time.time() * 1000) // STEP) * STEP
    rows = write_history(env, end)
    env.start_server()
    # Enough points for one row per bucket: every value is a row's own.
    out = ok(env, "series", "hist", "load", "--since", "1h", "--points", "10000").splitlines()
    check(out[0].split() == ["TIME", "AVG", "MIN", "MAX"], "header %r" % out[0])
    got = number_table(out)
    check(340 <= len(got) <= 361, "%d rows for the last hour" % len(got))
    by_time = dict(rows)
    last = 0
    for r in got:
        t = iso_utc(r["TIME"])
        check(t > last, "times not increasing: %r" % r)
        last = t
        near = [v for rt, v in by_time.items() if t <= rt < t + 2000]
        check(len(near) == 1 and r["AVG"] == r["MIN"] == r["MAX"] == str(near[0]),
              "row %r vs %r" % (r, near))
    # Right-aligned numbers: every line of the table is as long as the header.
    check(len({len(line) for line in out}) == 1, "ragged table %r" % out[:3])
    got = number_table(ok(env, "series", "hist", "load", "--since", "2h", "--points",
                          "5").splitlines())
    check(1 <= len(got) <= 5, "5 points: %r" % got)
    for r in got:
        check(float(r["MIN"]) <= float(r["AVG"]) <= float(r["MAX"]) and r["MIN"] == "0"
              and r["MAX"] == "9", "bucket %r" % r)
    doc = json.loads(ok(env, "series", "hist", "load", "--json", "--field", "load5",
                        "--since", "15m", "--points", "3"))
    check(doc["field"] == "load5" and 1 <= len(doc["points"]) <= 3, "json %r" % doc)
    check(doc["to"] - doc["from"] == 15 * 60 * 1000, "15m: %r" % doc)
    check(all(0.5 <= p[2] <= p[1] <= p[3] <= 3.5 for p in doc["points"]), "load5 %r" % doc)
    got = number_table(ok(env, "series", "--instance", "/mnt/a,b", "hist", "disk", "--field",
                          "used_pct").splitlines())
    check(got and all(50 <= float(r["AVG"]) <= 52 for r in got), "disk /mnt/a,b %r" % got)
    fails(env, 1, "series", "hist", "disk", says="instance required")
    fails(env, 1, "series", "hist", "load", "--field", "nope", says="no such field")
    fails(env, 1, "series", "hist", "disk", "--instance", "/nope", says="no such instance")
    fails(env, 1, "series", "hist", "cpu", says="no such metric")
    fails(env, 1, "series", "nobody", "load", says="no such host")
    for since in ["90s", "15m", "1h", "24h", "7d", "2w", "400d", "3600"]:
        ok(env, "series", "hist", "load", "--since", since)
    for since in ["0", "0m", "5x", "1.5h", "-1h", "401d", "", "h", "1hh", "99999999999999999d"]:
        fails(env, 2, "series", "hist", "load", "--since", since, says="--since")
    for points in ["0", "10001", "abc", "-1", "", "5x"]:
        fails(env, 2, "series", "hist", "load", "--points", points, says="--points")
    fails(env, 2, "series", "hist")
    fails(env, 2, "series", "hist", "load", "extra")
    fails(env, 2, "series", "hist", "Load", says="not a valid")
    fails(env, 2, "series", "hist", "load", "--field", "a-b", says="not a valid")
    fails(env, 2, "series", "bad@name", "load", says="not a valid host name")
    fails(env, 2, "series", "hist", "load", "--bogus")
    fails(env, 2, "hosts", "--field", "x")
    fails(env, 2, "frobnicate")


def test_unreachable_server_exit_3(env):
    addr = "127.0.0.1:%d" % free_port()
    for args in (["hosts"], ["show", "x"], ["workers"], ["stats"], ["alarms"],
                 ["series", "x", "load"], ["poll", "x"], ["--json", "stats"],
                 ["series", "x", "load", "--json", "--since", "7d"]):
        fails(None, 3, *args, addr=addr, says="cannot reach pimon-server at " + addr)


def test_bad_names_exit_2_before_asking(env):
    # No server at all: a bad name is refused before any connection.
    addr = "127.0.0.1:%d" % free_port()
    for args in (["show", "bad@name"], ["poll", "../x"], ["series", "a/b", "load"],
                 ["show", "a" * 65], ["series", "x", "no-such"], ["poll", ".hidden"]):
        fails(None, 2, *args, addr=addr, says="not a valid")
    fails(None, 2, "show", "-x", addr=addr)  # taken for an option: usage too


def test_unknown_host_exit_1(env):
    env.start_server()
    fails(env, 1, "show", "nobody", says="server answered 404: no such host")
    fails(env, 1, "series", "nobody", "load", says="404")
    fails(env, 1, "poll", "nobody", says="404")
    fails(env, 1, "--json", "show", "nobody", says="404")


if __name__ == "__main__":
    run_tests(globals())
