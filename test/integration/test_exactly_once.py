"""Exactly once on the server's side, driven over loopback with hand-built
frames: ACKs name the run's highest stored batch and never go down, seq 0
and an unknown version are refused with BYE, and resends store nothing."""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.error

from harness import (AGENT_BIN, CTL_BIN, FIXTURES, SLOW, T_ACK, T_BYE, T_METRICS, T_WELCOME, check,
                     frame, hello, read_csv, read_frame, run_tests, session, wait_closed,
                     wait_for)

T_ALARM, T_ALARM_ACK = 9, 10


def pstr(s):
    b = s.encode()
    return struct.pack(">B", len(b)) + b


def group_frame(seq, metric, fields, rows, inst_key=""):
    """One METRICS batch of one group; rows are (time, instance, values)."""
    p = struct.pack(">QH", seq, 1) + pstr(metric) + pstr(inst_key)
    p += struct.pack(">B", len(fields)) + b"".join(pstr(f) for f in fields)
    p += struct.pack(">I", len(rows))
    for t, inst, values in rows:
        p += struct.pack(">Q", t) + pstr(inst) + b"".join(struct.pack(">d", v) for v in values)
    return frame(T_METRICS, p)


def batch(seq, t):
    """One METRICS batch: a load row at time t."""
    p = struct.pack(">QH", seq, 1) + pstr("load") + pstr("") + struct.pack(">B", 1)
    p += pstr("load1") + struct.pack(">I", 1) + struct.pack(">Q", t) + pstr("")
    p += struct.pack(">d", float(seq))
    return frame(T_METRICS, p)


def alarm(seq, level, message="fan"):
    p = struct.pack(">QQBB", seq, int(time.time() * 1000), level, 1)
    return frame(T_ALARM, p + pstr("fan") + pstr(message))


def next_of(s, ftype):
    """The payload's u64 of the next frame of ftype (others skipped)."""
    deadline = time.monotonic() + 10 * SLOW
    while time.monotonic() < deadline:
        f = read_frame(s, timeout=10)
        check(f is not None, "closed while waiting for frame type %d" % ftype)
        if f[0] == ftype:
            return struct.unpack(">Q", f[1][:8])[0]
    check(False, "no frame of type %d in time" % ftype)


def test_acks_name_the_highest_stored_and_never_go_down(env):
    """Batches 1-5 stored, then 3 and 4 again: each resend gets ACK 5 and
    stores nothing (today: ACK 3, ACK 4). ALARM_ACK likewise."""
    env.start_server(workers=1, extra={"sync": "none"})
    s = session(env)
    t0 = int(time.time() * 1000) - 10000
    for seq in range(1, 6):
        s.sendall(batch(seq, t0 + seq))
        check(next_of(s, T_ACK) == seq, "ACK for batch %d" % seq)
    for seq in (3, 4):
        s.sendall(batch(seq, t0 + seq))
        got = next_of(s, T_ACK)
        check(got == 5, "resent batch %d got ACK %d, want 5" % (seq, got))
    # The same on a new session of the same run.
    s.close()
    s = session(env)
    s.sendall(batch(2, t0 + 2))
    got = next_of(s, T_ACK)
    check(got == 5, "resend on a new session got ACK %d, want 5" % got)
    s.sendall(batch(6, t0 + 6))
    check(next_of(s, T_ACK) == 6, "batch 6")
    _, rows = read_csv(os.path.join(env.host_dir("h1"), "load.csv"))
    check([int(r[0]) - t0 for r in rows] == [1, 2, 3, 4, 5, 6], "rows %r" % rows)
    for seq in (1, 2, 3):
        s.sendall(alarm(seq, 2 if seq % 2 else 0))
        check(next_of(s, T_ALARM_ACK) == seq, "ALARM_ACK %d" % seq)
    s.sendall(alarm(2, 0))
    got = next_of(s, T_ALARM_ACK)
    check(got == 3, "a resent ALARM 2 got ALARM_ACK %d, want 3" % got)
    s.close()


def test_seq_zero_and_unknown_version_get_bye(env):
    """One rule for seq 0 (refused, METRICS and ALARM alike) and BYE
    "unsupported version" for a frame of another version (today: METRICS 0
    dropped without a word, ALARM 0 stored, a bare close)."""
    env.start_server(workers=1)
    t = int(time.time() * 1000)
    for f, why in ((batch(0, t), b"seq is 0"), (alarm(0, 2), b"alarm seq is 0")):
        s = session(env)
        s.sendall(f)
        got = read_frame(s)
        check(got is not None and got[0] == T_BYE and why in got[1], "got %r" % (got,))
        check(wait_closed(s), "not closed")
        s.close()
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(frame(1, b"\0" * 20, version=2))
    got = read_frame(s)
    check(got is not None and got[0] == T_BYE and b"unsupported version" in got[1],
          "version 2 got %r" % (got,))
    check(wait_closed(s), "not closed")
    check(not os.path.exists(os.path.join(env.host_dir("h1"), "load.csv")), "seq 0 was stored")


def active(env, host, name):
    """The active alarm name of host, or None."""
    for a in env.api("/api/v1/alarms")["active"]:
        if a["host"] == host and a["name"] == name:
            return a
    return None


def host_up_sample(env, host):
    """pimon_host_up{host=...} of /metrics, None when absent."""
    import urllib.request
    with urllib.request.urlopen(env.url("/metrics"), timeout=10 * SLOW) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('pimon_host_up{host="%s"}' % host):
                return float(line.rsplit(" ", 1)[1])
    return None


def restart_keeps_alarms_and_fleet(env, sig):
    """Alarms and hosts survive a server restart by sig; a host that never
    comes back reads down and raises host_down; forget removes it."""
    timeout = 2.0
    env.start_server(workers=2, timeout=timeout)
    r1 = env.start_agent("r1")
    r2 = env.start_agent("r2")
    env.wait_hosts_up(["r1", "r2"])
    for h in ("r1", "r2"):
        wait_for(lambda: os.path.exists(os.path.join(env.host_dir(h), "load.csv")), 10,
                 "rows of " + h, [env.server])
    sock = env.alarm_socket("r1")
    wait_for(lambda: os.path.exists(sock), 10, "the alarm socket", [r1])
    p = subprocess.run([AGENT_BIN, "alarm", "--socket", sock, "--level", "critical", "--name",
                        "fan", "fan stopped"], capture_output=True, text=True, timeout=30 * SLOW)
    check(p.returncode == 0, "pimon-agent alarm: %r" % (p,))
    wait_for(lambda: active(env, "r1", "fan"), 10, "the fan alarm", [env.server])
    alarms_csv = os.path.join(env.host_dir("r1"), "alarms.csv")
    before = open(alarms_csv).read()
    # r2 dies while the server is away and never returns.
    r2.kill()
    wait_for(lambda: env.hosts()["r2"]["state"] == "down", 10, "r2 down", [env.server])
    if sig == signal.SIGKILL:
        env.server.kill()
    else:
        env.server.signal(sig)
        env.server.p.wait(30 * SLOW)
    check(open(alarms_csv).read() == before, "alarms.csv changed by the stop")
    restarted = env.start_server(workers=2, timeout=timeout, name="server2")
    # At once, before any agent is back: both hosts listed, the alarm active.
    hosts = env.hosts()
    check(sorted(hosts) == ["r1", "r2"], "hosts after the restart: %r" % sorted(hosts))
    check(hosts["r2"]["state"] == "down", "r2 %r" % hosts["r2"])
    check(active(env, "r1", "fan"), "the fan alarm is not active after the restart: %r"
          % env.api("/api/v1/alarms")["active"])
    check(open(alarms_csv).read().startswith(before), "alarms.csv lost rows: %r"
          % open(alarms_csv).read())
    check(host_up_sample(env, "r2") == 0.0, "pimon_host_up for r2: %r" % host_up_sample(env, "r2"))
    env.wait_hosts_up(["r1"])
    # r1's store reopened (its recovery ran): the alarm rows stay, the alarm too.
    wait_for(lambda: len(open(os.path.join(env.host_dir("r1"), "events.csv")).read().splitlines())
             > 2, 10, "r1's events", [restarted])
    check(open(alarms_csv).read().startswith(before), "alarms.csv lost rows after r1 came back: %r"
          % open(alarms_csv).read())
    check(active(env, "r1", "fan"), "the fan alarm is gone after r1 came back")
    a = wait_for(lambda: active(env, "r2", "host_down"), timeout + 10, "host_down for r2",
                 [restarted])
    check("server's start" in a["message"] or "session ended" in a["message"],
          "host_down %r" % a)
    check(not active(env, "r1", "host_down"), "r1 came back but has host_down")
    # Forget: only a host that is not connected; its files stay.
    env.token = None
    c = subprocess.run([CTL_BIN, "-a", "127.0.0.1:%d" % env.http_port, "forget", "r1"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    check(c.returncode == 1 and "connected" in c.stderr, "forget r1: %r" % (c,))
    c = subprocess.run([CTL_BIN, "-a", "127.0.0.1:%d" % env.http_port, "forget", "r2"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    check(c.returncode == 0, "forget r2: %r" % (c,))
    check(sorted(env.hosts()) == ["r1"], "hosts after forget: %r" % sorted(env.hosts()))
    check(host_up_sample(env, "r2") is None, "r2 still in /metrics")
    check(os.path.exists(os.path.join(env.host_dir("r2"), "load.csv")), "r2's files went")
    try:
        env.api("/api/v1/hosts/r2")
        check(False, "a forgotten host answers")
    except urllib.error.HTTPError as e:
        check(e.code == 404, "forgotten host: %d" % e.code)
    restarted.stop()
    env.start_server(workers=2, timeout=timeout, name="server3")
    check(sorted(env.hosts()) == ["r1"], "r2 back after a restart: %r" % sorted(env.hosts()))


def test_restart_by_sigterm_keeps_alarms_and_the_fleet(env):
    restart_keeps_alarms_and_fleet(env, signal.SIGTERM)


def test_restart_by_sigkill_keeps_alarms_and_the_fleet(env):
    restart_keeps_alarms_and_fleet(env, signal.SIGKILL)


def series_values(env, host, metric, field, t0, t1, instance=None):
    """{time: avg} of a field over [t0, t1], one bucket per millisecond."""
    import json
    import urllib.parse
    import urllib.request
    q = {"field": field, "from": t0, "to": t1, "points": t1 - t0 + 1}
    if instance is not None:
        q["instance"] = instance
    url = env.url("/api/v1/hosts/%s/series/%s?%s" % (host, metric, urllib.parse.urlencode(q)))
    with urllib.request.urlopen(url, timeout=10 * SLOW) as r:
        return {p[0]: p[1] for p in json.loads(r.read())["points"]}


def test_changed_fields_start_a_new_generation(env):
    """An agent upgrade reorders, adds and drops fields, then adds an instance
    key: each change starts a new file generation, the old rows stay where
    they were and every field reads back from both (today: rows appended
    under the old header, values in the wrong columns, and after a restart
    the old file moved to .old out of reach)."""
    env.start_server(workers=1, extra={"sync": "none"})
    t = int(time.time() * 1000) - 60000
    s = session(env, run_id=1)
    s.sendall(group_frame(1, "cpu", ["user", "system"], [(t + i, "", [i, 100 + i]) for i in range(3)]))
    check(next_of(s, T_ACK) == 1, "batch 1")
    s.close()
    # The upgraded agent: a new run, fields reordered, one added, one dropped.
    s = session(env, run_id=2)
    s.sendall(group_frame(1, "cpu", ["system", "iowait"],
                          [(t + 10 + i, "", [200 + i, 300 + i]) for i in range(3)]))
    check(next_of(s, T_ACK) == 1, "batch 1 of run 2")
    # And in the same session, a metric gains an instance key.
    s.sendall(group_frame(2, "temp", ["celsius"], [(t + 20, "", [40.0])]))
    check(next_of(s, T_ACK) == 2, "batch 2 of run 2")
    s.sendall(group_frame(3, "temp", ["celsius"], [(t + 21, "cpu0", [41.0])], "zone"))
    check(next_of(s, T_ACK) == 3, "batch 3 of run 2")
    s.close()
    hdir = env.host_dir("h1")
    gens = sorted(n for n in os.listdir(hdir) if re.match(r"^cpu\.\d+\.csv$", n))
    check(len(gens) == 1, "generations %r in %r" % (gens, sorted(os.listdir(hdir))))
    cur = open(os.path.join(hdir, "cpu.csv")).read().splitlines()
    check(cur[0] == "time,system,iowait" and len(cur) == 4, "current %r" % cur)
    old = open(os.path.join(hdir, gens[0])).read().splitlines()
    check(old[0] == "time,user,system" and len(old) == 4, "first generation %r" % old)
    tgens = [n for n in os.listdir(hdir) if re.match(r"^temp\.\d+\.csv$", n)]
    check(len(tgens) == 1 and open(os.path.join(hdir, "temp.csv")).readline().strip()
          == "time,zone,celsius", "temp: %r" % sorted(os.listdir(hdir)))
    check("columns changed" in env.server.log_text(), "the change was not logged")
    for restart in (False, True):
        if restart:
            env.server.stop()
            env.start_server(workers=1, extra={"sync": "none"}, name="server2")
            check(not [n for n in os.listdir(hdir) if n.endswith(".old")], "moved aside")
        system = series_values(env, "h1", "cpu", "system", t, t + 19)
        check(system == {t: 100, t + 1: 101, t + 2: 102, t + 10: 200, t + 11: 201, t + 12: 202},
              "system across generations: %r" % system)
        check(series_values(env, "h1", "cpu", "user", t, t + 19) == {t: 0, t + 1: 1, t + 2: 2},
              "user, only in the first generation")
        check(series_values(env, "h1", "cpu", "iowait", t, t + 19) ==
              {t + 10: 300, t + 11: 301, t + 12: 302}, "iowait, only in the second")
        check(series_values(env, "h1", "temp", "celsius", t, t + 30, instance="cpu0") ==
              {t + 21: 41}, "the keyed generation")


def cloned_proc(env, name, boot_id):
    """A copy of the Pi fixture's /proc whose boot id is boot_id: a cloned SD
    card booted on another Pi."""
    root = os.path.join(env.dir, "proc-" + name)
    shutil.copytree(os.path.join(FIXTURES, "pi4", "proc"), root)
    with open(os.path.join(root, "sys", "kernel", "random", "boot_id"), "w") as f:
        f.write(boot_id + "\n")
    return root


def test_twins_do_not_flap_or_store_twice(env):
    """Two Pis from one SD card image, both named twin, for 20 s: the first
    keeps the name, the second is refused with BYE and backs off further
    each time, name_conflict names both, and no row is stored twice (today:
    26 replacements in 10 s and dozens of rows stored twice)."""
    env.start_server(workers=2, timeout=2.0, extra={"sync": "none"})
    spool = {"reconnect": {"min": 0.2, "max": 4.0}}
    a = env.start_agent("twin", proc_root=cloned_proc(env, "a", "aaaaaaaa-0000-4000-8000-000000000001"),
                        extra=dict(spool, spool_dir=os.path.join(env.dir, "spool-a"),
                                   alarm_socket=os.path.join(env.dir, "alarm-a.sock")))
    env.wait_hosts_up(["twin"])
    b = env.start_agent("twin", proc_root=cloned_proc(env, "b", "bbbbbbbb-0000-4000-8000-000000000002"),
                        extra=dict(spool, spool_dir=os.path.join(env.dir, "spool-b"),
                                   alarm_socket=os.path.join(env.dir, "alarm-b.sock")))
    conflict = wait_for(lambda: active(env, "twin", "name_conflict"), 15, "name_conflict",
                        [env.server, a, b])
    msg = conflict["message"]
    check("aaaaaaaa-0000-4000-8000-000000000001" in msg and
          "bbbbbbbb-0000-4000-8000-000000000002" in msg and msg.count("127.0.0.1:") == 2,
          "name_conflict does not name both agents: %r" % msg)
    check(conflict["level"] == "warning", "level %r" % conflict["level"])
    end = time.monotonic() + 20
    while time.monotonic() < end:
        env.server.check_alive()
        a.check_alive()
        b.check_alive()
        time.sleep(0.5)
    check("name conflict" in env.server.log_text(), "no warning in the server's log")
    events = open(os.path.join(env.host_dir("twin"), "events.csv")).read()
    replaced = events.count(",replaced,")
    check(replaced <= 3, "the twins replaced each other %d times" % replaced)
    delays = [float(x) for x in re.findall(r"name conflict.*?reconnecting in ([0-9.]+) s",
                                           b.log_text())]
    check(len(delays) >= 3, "the second twin was not refused again and again: %r" % delays)
    check(max(delays[-3:]) >= 2.0 and len(delays) <= 20,
          "the second twin's back-off does not grow: %r" % delays)
    for name in ("load.csv", "mem.csv", "cpu.csv"):
        path = os.path.join(env.host_dir("twin"), name)
        if not os.path.exists(path):
            continue
        lines = open(path).read().splitlines()[1:]
        times = [l.split(",", 1)[0] for l in lines]
        check(len(times) == len(set(times)), "%s holds a row twice" % name)
    rows = len(open(os.path.join(env.host_dir("twin"), "load.csv")).read().splitlines()) - 1
    check(rows >= 10, "the first twin stored only %d rows" % rows)


if __name__ == "__main__":
    run_tests(globals())
