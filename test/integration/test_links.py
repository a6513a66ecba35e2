"""Links planted in the data folder are never followed: the server neither
creates, appends to, truncates nor reads a file outside it through a link,
refuses a host whose folder is a link or not its own, refuses to start on
linked shared logs, and the other hosts carry on."""

import hashlib
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request

from harness import (AGENT_BIN, SERVER_BIN, SLOW, WRAPPER, TestSkip, check, free_port, read_csv,
                     run_tests, wait_for)

# A file that looks like a metric file, so that reading it through a link
# would show: its field names and values appear nowhere else.
SECRET_CSV = "time,secret_a,secret_b\n%d,111.25,222.75\n"
LOAD_RULE = {"name": "load_any", "metric": "load.load1", "op": ">=", "value": 0.0}


def now_ms():
    return int(time.time() * 1000)


def outside(env):
    """A folder beside the data folder standing for the rest of the system."""
    path = os.path.join(env.dir, "outside")
    os.makedirs(path, exist_ok=True)
    return path


def plant_file(env, name, text=None):
    """A file outside with CSV-looking text; its path."""
    path = os.path.join(outside(env), name)
    with open(path, "w") as f:
        f.write(text if text is not None else SECRET_CSV % now_ms())
    return path


def snapshot(top):
    """Every file and folder under top with its size, mtime and content hash."""
    out = {}
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            digest = ""
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, top)] = (st.st_size, st.st_mtime_ns, digest)
    return out


def rows(env, host, metric):
    path = os.path.join(env.host_dir(host), metric + ".csv")
    if not os.path.isfile(path) or os.path.islink(path):
        return []
    return read_csv(path)[1]


def log_has(env, text):
    return text in env.server.log_text()


def store_errors(env):
    return sum(w["store_errors"] for w in env.api("/api/v1/workers"))


def get(env, path):
    """Status and body of a GET, errors included."""
    try:
        with urllib.request.urlopen(env.request(path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def start_with_witness(env, **kw):
    """A server (its hosts folder made) and an agent ok1 that must store
    normally whatever the test plants for other hosts."""
    env.start_server(workers=2, **kw)
    witness = env.start_agent("ok1")
    env.wait_hosts_up(["ok1"])
    return witness


def witness_stores(env):
    """ok1 goes on storing load rows."""
    before = len(rows(env, "ok1", "load"))
    wait_for(lambda: len(rows(env, "ok1", "load")) > before + 1, 10, "ok1 storing", [env.server])


def refused_at_hello(agent):
    return "server cannot store data for this host" in agent.log_text()


def wait_unchanged(env, top, before, cond, what, procs=(), timeout=10):
    """Wait for cond, failing as soon as anything under top changes."""
    def done():
        check(snapshot(top) == before, "written through a link while waiting for %s: %r"
              % (what, sorted(set(snapshot(top).items()) ^ set(before.items()))))
        return cond()
    wait_for(done, timeout, what, [env.server] + list(procs))


def test_host_folder_link_refused(env):
    start_with_witness(env)
    out = outside(env)
    os.symlink(out, env.host_dir("victim"))
    before = snapshot(out)
    victim = env.start_agent("victim")
    wait_unchanged(env, out, before, lambda: refused_at_hello(victim), "victim refused at HELLO",
                   [victim])
    wait_for(lambda: log_has(env, "host victim: %s is a symbolic link: refusing to store"
                             % env.host_dir("victim")), 5, "the log line", [env.server])
    witness_stores(env)
    check(snapshot(out) == before, "something was written through the link")
    check(os.path.islink(env.host_dir("victim")), "the link itself was replaced")
    check(env.hosts()["ok1"]["state"] == "up", "ok1 went down")


def test_metric_file_link_not_written(env):
    start_with_witness(env)
    wait_for(lambda: rows(env, "ok1", "load"), 10, "ok1's load rows", [env.server])
    # With the header the server expects, the file would be appended to.
    with open(os.path.join(env.host_dir("ok1"), "load.csv")) as f:
        target = plant_file(env, "shadow.csv", f.readline())
    os.makedirs(env.host_dir("ok2"))
    os.symlink(target, os.path.join(env.host_dir("ok2"), "load.csv"))
    before = snapshot(outside(env))
    errors = store_errors(env)
    env.start_agent("ok2")
    env.wait_hosts_up(["ok2"])
    line = ("host ok2: %s/load.csv is a symbolic link: refusing to store; not acking"
            % env.host_dir("ok2"))
    wait_unchanged(env, outside(env), before, lambda: log_has(env, line), "the refusal logged")
    # A batch is stored whole or not at all: none of ok2's is, while the
    # agent keeps them to send again; the host stays up.
    wait_for(lambda: store_errors(env) >= errors + 2, 15, "two batches refused", [env.server])
    check(env.server.log_text().count(line) == 1, "the refusal was logged for every batch")
    # A refused batch's rows are cut back as it fails; while the agent
    # sends it again they show for a moment: wait for a moment between.
    wait_for(lambda: all(rows(env, "ok2", m) == [] for m in ("cpu", "mem", "net")), 15,
             "no rows stored for ok2 from the refused batches", [env.server])
    check(env.hosts()["ok2"]["state"] == "up", "ok2 went down")
    witness_stores(env)
    check(snapshot(outside(env)) == before, "the linked file changed")
    # Once the link is gone, the host stores again, its backlog included.
    os.unlink(os.path.join(env.host_dir("ok2"), "load.csv"))
    wait_for(lambda: log_has(env, "host ok2: storing again"), 20, "storing again", [env.server])
    wait_for(lambda: len(rows(env, "ok2", "load")) >= 2, 10, "ok2 load rows", [env.server])
    check(snapshot(outside(env)) == before, "the linked file changed")


def test_recovery_does_not_cut_through_links(env):
    env.start_server()
    agent = env.start_agent("rec")
    env.wait_hosts_up(["rec"])
    wait_for(lambda: len(rows(env, "rec", "load")) >= 3, 10, "rows", [env.server])
    check(agent.stop() == 0, "agent exit status")
    check(env.server.stop() == 0, "server exit status")
    # Files larger than the commit record says, behind links in their place:
    # one the record names (cut to its length), one it does not (cut to
    # its header).
    hdir = env.host_dir("rec")
    committed = os.path.getsize(os.path.join(hdir, "load.csv"))
    big = plant_file(env, "big.csv", "time,x\n" + "1,2\n" * (committed + 1000))
    stale = plant_file(env, "stale.csv", "time,y\n1,2\n3,4\n")
    os.unlink(os.path.join(hdir, "load.csv"))
    os.symlink(big, os.path.join(hdir, "load.csv"))
    os.symlink(stale, os.path.join(hdir, "stale.csv"))
    before = snapshot(outside(env))
    env.start_server(name="server2")
    agent = env.start_agent("rec")
    env.wait_hosts_up(["rec"])
    for name in ("load.csv", "stale.csv"):
        wait_unchanged(env, outside(env), before,
                       lambda: log_has(env, "%s/%s is a symbolic link: refusing to store"
                                       % (hdir, name)), "%s named in the log" % name)


def test_commit_record_link_refuses_host(env):
    start_with_witness(env)
    target = plant_file(env, "record", "x" * 10000)
    os.makedirs(env.host_dir("cr"))
    os.symlink(target, os.path.join(env.host_dir("cr"), "commit.state"))
    before = snapshot(outside(env))
    agent = env.start_agent("cr")
    wait_unchanged(env, outside(env), before, lambda: refused_at_hello(agent),
                   "cr refused at HELLO", [agent])
    wait_for(lambda: log_has(env, "host cr: %s/commit.state is a symbolic link: refusing to store"
                             % env.host_dir("cr")), 5, "the log line", [env.server])
    witness_stores(env)
    check(snapshot(outside(env)) == before, "the linked record was written")
    check(os.listdir(env.host_dir("cr")) == ["commit.state"], "files made for cr: %r"
          % os.listdir(env.host_dir("cr")))


def test_host_alarm_and_event_links_not_appended(env):
    start_with_witness(env, extra={"alarms": [LOAD_RULE]})
    os.makedirs(env.host_dir("al"))
    for name in ("alarms.csv", "events.csv"):
        os.symlink(plant_file(env, name, "time,old\n1,row\n"),
                   os.path.join(env.host_dir("al"), name))
    before = snapshot(outside(env))
    agent = env.start_agent("al")
    env.wait_hosts_up(["al"])

    def server_rows(name):
        with open(os.path.join(env.data_dir, name)) as f:
            return f.read()
    # The rule fired and the host connected: both reached the server's own
    # files, and neither the host's linked ones.
    wait_unchanged(env, outside(env), before, lambda: ",al,load_any," in server_rows("alarms.csv"),
                   "al's alarm")
    check(",al,up,connected," in server_rows("events.csv"), "al's event not in events.csv")
    refusal = ("host al: %s/alarms.csv is a symbolic link: alarm not recorded"
               % env.host_dir("al"))
    wait_for(lambda: log_has(env, refusal), 5, "the alarm refusal", [env.server])
    check(log_has(env, "host al: %s/events.csv is a symbolic link: refusing to store; the event "
                  "is not recorded there" % env.host_dir("al")), "the event refusal not logged")
    check(log_has(env, "host al: %s/alarms.csv is a symbolic link: its active alarms are not known"
                  % env.host_dir("al")), "the unread alarm log not logged")
    check(snapshot(outside(env)) == before, "a linked file was appended to")
    # Metrics are not behind a link: they are stored.
    wait_for(lambda: len(rows(env, "al", "load")) >= 2, 10, "al's rows", [env.server])
    # ok1's own alarms.csv takes its alarm.
    wait_for(lambda: os.path.exists(os.path.join(env.host_dir("ok1"), "alarms.csv")), 10,
             "ok1's alarms.csv", [env.server])
    # An agent's alarm reaches the server's alarms.csv, not the linked one.
    sock = env.alarm_socket("al")
    wait_for(lambda: os.path.exists(sock), 10, "al's alarm socket", [agent])
    tries = env.server.log_text().count(refusal)
    r = subprocess.run([AGENT_BIN, "alarm", "--socket", sock, "--level", "critical", "--name",
                        "fan", "fan stopped"], capture_output=True, text=True, timeout=30 * SLOW)
    check(r.returncode == 0, "pimon-agent alarm: %r" % (r,))
    wait_unchanged(env, outside(env), before, lambda: ",al,fan," in server_rows("alarms.csv"),
                   "the agent's alarm")
    check(env.server.log_text().count(refusal) > tries, "the agent's alarm refusal not logged")
    check(snapshot(outside(env)) == before, "a linked file was appended to")


def start_refused(env, what):
    """Run a server that must refuse to start; its exit status and log."""
    path = env.write_cfg("server-%s.cfg" % what, {"server": {
        "listen": "127.0.0.1:%d" % free_port(), "data_dir": env.data_dir, "http": {"listen": ""},
        "alarms": ()}})
    try:
        r = subprocess.run(WRAPPER + [SERVER_BIN, "-c", path], capture_output=True, text=True,
                           timeout=20 * SLOW)
    except subprocess.TimeoutExpired as e:
        out = [o.decode() if isinstance(o, bytes) else o or "" for o in (e.stdout, e.stderr)]
        return None, "".join(out)
    return r.returncode, r.stdout + r.stderr


def test_shared_logs_and_hosts_links_stop_the_start(env):
    out = outside(env)
    for name in ("events.csv", "alarms.csv", "hosts"):
        shutil.rmtree(env.data_dir, ignore_errors=True)
        os.makedirs(env.data_dir)
        os.symlink(out if name == "hosts" else plant_file(env, name),
                   os.path.join(env.data_dir, name))
        before = snapshot(out)
        code, log = start_refused(env, name)
        check(code is not None, "%s a link: the server started, log:\n%s" % (name, log))
        check(code == 1, "%s a link: exit status %d, log:\n%s" % (name, code, log))
        check("%s/%s is a symbolic link: refusing" % (env.data_dir, name) in log,
              "%s a link: no clear line:\n%s" % (name, log))
        check("cannot use data folder" in log, "no fatal line:\n%s" % log)
        check(snapshot(out) == before, "%s a link: something written outside" % name)
    # The data folder itself may be a link: that is the admin's choice.
    shutil.rmtree(env.data_dir)
    real = os.path.join(env.dir, "real-data")
    os.makedirs(real)
    os.symlink(real, env.data_dir)
    env.start_server()
    env.start_agent("ok1")
    env.wait_hosts_up(["ok1"])
    wait_for(lambda: len(rows(env, "ok1", "load")) >= 1, 10, "rows", [env.server])
    check(os.path.isfile(os.path.join(real, "hosts", "ok1", "load.csv")), "no rows in real-data")


def test_host_folder_of_another_user_refused(env):
    if os.geteuid() != 0:
        raise TestSkip("only root can make a folder owned by another user")
    start_with_witness(env)
    os.makedirs(env.host_dir("theirs"))
    os.chown(env.host_dir("theirs"), 65534, 65534)
    agent = env.start_agent("theirs")
    wait_unchanged(env, env.host_dir("theirs"), {}, lambda: refused_at_hello(agent),
                   "theirs refused at HELLO", [agent])
    check(log_has(env, "host theirs: %s is not owned by uid 0: refusing to store"
                  % env.host_dir("theirs")), "no clear log line")
    check(os.listdir(env.host_dir("theirs")) == [], "files written: %r"
          % os.listdir(env.host_dir("theirs")))
    witness_stores(env)


def test_api_does_not_read_through_links(env):
    start_with_witness(env)
    witness_stores(env)
    hosts = os.path.join(env.data_dir, "hosts")
    # A folder-only host with a linked metric file, and a host folder that
    # is a link to a folder holding one.
    os.makedirs(env.host_dir("ghost"))
    os.symlink(plant_file(env, "load.csv"), os.path.join(env.host_dir("ghost"), "load.csv"))
    os.symlink(outside(env), os.path.join(hosts, "ghostdir"))
    # The shared alarms.csv swapped for a link while the server runs.
    fake = plant_file(env, "alarms.csv",
                      "time,host,name,instance,level,state,value,message,duration_s,origin\n"
                      "%d,secret_host,secret_alarm,,critical,firing,1,secret,,server\n"
                      % now_ms())
    os.rename(os.path.join(env.data_dir, "alarms.csv"), os.path.join(env.dir, "alarms.moved"))
    os.symlink(fake, os.path.join(env.data_dir, "alarms.csv"))
    for path in ["/api/v1/hosts/ghost/metrics", "/api/v1/hosts/ghost/series/load",
                 "/api/v1/hosts/ghost/series/load?field=secret_a",
                 "/api/v1/hosts/ghostdir/metrics", "/api/v1/hosts/ghostdir/series/load",
                 "/api/v1/hosts/ghostdir/series/load?field=secret_a", "/api/v1/alarms"]:
        status, body = get(env, path)
        check("secret" not in body and "111.25" not in body,
              "%s disclosed the linked file: %d %s" % (path, status, body))
        check(status in (200, 404, 500), "%s: status %d" % (path, status))
    check(get(env, "/api/v1/hosts/ghost/series/load")[0] == 500, "the linked metric not refused")
    check(get(env, "/api/v1/hosts/ghostdir/metrics")[0] == 500, "the linked folder not refused")
    check(log_has(env, "host ghost: %s/load.csv is a symbolic link: not read"
                  % env.host_dir("ghost")), "no log line for the linked metric")
    check(log_has(env, "host ghostdir: %s is a symbolic link: not read" % env.host_dir("ghostdir")),
          "no log line for the linked folder")
    # What is not behind a link is still served.
    status, body = get(env, "/api/v1/hosts/ok1/series/load")
    check(status == 200, "ok1's series: %d %s" % (status, body))


if __name__ == "__main__":
    run_tests(globals())
