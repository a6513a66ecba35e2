"""Every sample stored exactly once through server kills, agent kills, full
disks; memory bounded against peers that flood or never read."""

import os
import signal
import socket
import struct
import subprocess
import threading
import time

from harness import (SERVER_BIN, SLOW, T_WELCOME, WRAPPER, Proc, TestSkip, can_connect, check,
                     frame, free_port, hello, read_csv, read_frame, rendezvous_rank, run_tests,
                     wait_for)

INTERVAL = 1.0
# Memory figures mean something only without sanitizers or valgrind.
MEASURED_RSS = not os.environ.get("PIMON_SANITIZED") and not os.environ.get("PIMON_WRAPPER")


def rows(env, host, metric):
    path = os.path.join(env.host_dir(host), metric + ".csv")
    if not os.path.exists(path):
        return [], []
    return read_csv(path)


def check_exactly_once(env, host, metric="load", interval=INTERVAL, allow_gap=None):
    """No duplicate time, no torn row, rows in time order, no gap beyond the
    interval plus a tolerance (except the one allowed window, for an agent
    that was dead). Returns the times."""
    header, data = rows(env, host, metric)
    check(header and header[0] == "time", "%s.csv header %r" % (metric, header))
    for r in data:
        check(len(r) == len(header), "torn row in %s.csv: %r" % (metric, r))
    times = [int(r[0]) for r in data]
    check(len(times) == len(set(times)),
          "%d duplicate rows in %s.csv" % (len(times) - len(set(times)), metric))
    check(times == sorted(times), "%s.csv rows out of time order" % metric)
    limit = (interval + 0.6 * SLOW) * 1000
    for a, b in zip(times, times[1:]):
        if allow_gap and allow_gap[0] <= a and b <= allow_gap[1]:
            continue
        check(b - a <= limit, "gap of %d ms in %s.csv at %d (limit %d)" % (b - a, metric, a, limit))
    return times


def drained(env, host):
    """The agent reports nothing left to send, in a sample taken since it
    connected: a resent batch carries the queue of its own time."""
    h = env.hosts().get(host)
    agent = h and h["latest"].get("agent")
    if not (h and h["state"] == "up" and agent and agent["queued_batches"] <= 1):
        return False
    _, data = rows(env, host, "agent")
    return bool(data) and max(int(r[0]) for r in data) >= h["since"]


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path],
                       capture_output=True)
    if r.returncode != 0:
        raise TestSkip("cannot mount a tmpfs here: %s" % r.stderr.decode().strip())


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True)


def fill(path):
    """Fill the file system holding path; returns the filler's path."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_server_killed_three_times_every_sample_once(env):
    port = None
    env.start_server(interval=INTERVAL, hb_interval=0.5, timeout=3.0)
    agent = env.start_agent("steady")
    env.wait_hosts_up(["steady"])
    for pause in (2.0, 3.5, 5.0):
        time.sleep(4.0)
        env.server.kill()
        time.sleep(pause)
        env.start_server(interval=INTERVAL, hb_interval=0.5, timeout=3.0,
                         name="server-%d" % int(pause * 10))
    wait_for(lambda: drained(env, "steady"), 30, "the agent's backlog sent", [env.server])
    agent.check_alive()
    check(agent.stop() == 0, "agent exit status")
    times = check_exactly_once(env, "steady")
    check_exactly_once(env, "steady", "cpu")
    check_exactly_once(env, "steady", "mem")
    span = (times[-1] - times[0]) / 1000.0
    check(len(times) >= span / INTERVAL - 1, "%d rows over %.1f s" % (len(times), span))
    check(span >= 20, "only %.1f s of rows" % span)


def test_backlog_past_the_first_ring_every_sample_once(env):
    """An outage queues more batches than the agent's ring first holds (32
    slots): the ring grows, every sample is stored once, and the backlog
    drains."""
    interval = 0.2
    env.start_server(interval=interval, hb_interval=0.5, timeout=3.0)
    agent = env.start_agent("backlog")
    env.wait_hosts_up(["backlog"])
    time.sleep(2.0)
    env.server.kill()
    time.sleep(10.0)  # 50 batches and more
    env.start_server(interval=interval, hb_interval=0.5, timeout=3.0, name="server-again")
    wait_for(lambda: drained(env, "backlog"), 30, "the agent's backlog sent", [env.server])
    agent.check_alive()
    check(agent.stop() == 0, "agent exit status")
    times = check_exactly_once(env, "backlog", interval=interval)
    span = (times[-1] - times[0]) / 1000.0
    check(len(times) >= span / interval - 1, "%d rows over %.1f s" % (len(times), span))
    check(span >= 12, "only %.1f s of rows" % span)


def test_failover_to_the_next_server_loses_nothing(env):
    # A second server, with its own ports and data folder.
    port2, http2 = free_port(), free_port()
    data2 = os.path.join(env.dir, "data2")
    path = env.write_cfg("second.cfg", {"server": {
        "listen": "127.0.0.1:%d" % port2, "workers": 2, "data_dir": data2,
        "heartbeat": {"timeout": 3.0, "interval": 0.5}, "collect": {"interval": INTERVAL},
        "http": {"listen": "127.0.0.1:%d" % http2}, "alarms": (), "log_level": "debug"}})
    second = Proc("second", WRAPPER + [SERVER_BIN, "-c", path], env.dir)
    env.procs.append(second)
    wait_for(lambda: can_connect(port2), 15, "the second server", [second])
    env.start_server(interval=INTERVAL, hb_interval=0.5, timeout=3.0)
    servers = ["127.0.0.1:%d" % env.port, "127.0.0.1:%d" % port2]
    # A name whose first choice is the server killed below.
    name = next(n for n in ("roamer%d" % i for i in range(100))
                if rendezvous_rank(n, servers)[0] == servers[0])
    agent = env.start_agent(name, extra={"server": servers})
    env.wait_hosts_up([name])
    time.sleep(4.0)
    env.server.kill()
    first_dir = env.host_dir(name)
    second_dir = os.path.join(data2, "hosts", name)
    wait_for(lambda: os.path.exists(os.path.join(second_dir, "load.csv")), 15,
             "rows on the second server", [second, agent])
    time.sleep(4.0)
    check("trying the next server" in agent.log_text(), "no failover in the agent's log")
    # Once the second server has everything, stop the agent (BYE).
    def second_drained():
        h, d = read_csv(os.path.join(second_dir, "agent.csv"))
        return d and float(d[-1][h.index("queued_batches")]) <= 1
    wait_for(second_drained, 30, "the backlog on the second server", [second, agent])
    check(agent.stop() == 0, "agent exit status")
    second.check_alive()
    times = {}
    for d in (first_dir, second_dir):
        header, data = read_csv(os.path.join(d, "load.csv"))
        times[d] = [int(r[0]) for r in data]
        check(times[d] == sorted(times[d]) and len(times[d]) == len(set(times[d])),
              "%s: rows out of order or doubled" % d)
    check(times[first_dir] and times[second_dir], "rows on both servers")
    # Between them the two servers hold every sample: no gap.
    union = sorted(set(times[first_dir]) | set(times[second_dir]))
    limit = (INTERVAL + 0.6 * SLOW) * 1000
    for a, b in zip(union, union[1:]):
        check(b - a <= limit, "gap of %d ms at %d across the two servers" % (b - a, a))
    span = (union[-1] - union[0]) / 1000.0
    check(span >= 6, "only %.1f s of rows" % span)
    check(max(times[first_dir]) < max(times[second_dir]), "the second server did not go on")


def test_server_killed_before_first_sync_rows_not_doubled(env):
    # A sync interval longer than the test: rows reach the files, no commit
    # record and no ACK does. The restarted server must cut those rows; the
    # agent sends the batches again and each row is stored once.
    env.start_server(interval=0.3, hb_interval=0.3, timeout=3.0, extra={"sync_interval": 600.0})
    env.start_agent("early")
    env.wait_hosts_up(["early"])
    wait_for(lambda: len(rows(env, "early", "load")[1]) >= 4, 10, "rows", [env.server])
    env.server.kill()
    env.start_server(interval=0.3, hb_interval=0.3, timeout=3.0, name="server2")
    wait_for(lambda: drained(env, "early"), 30, "the backlog sent", [env.server])
    check("never acked" in env.server.log_text(), "no rows were cut on start")
    times = check_exactly_once(env, "early", interval=0.3)
    check(len(times) >= 4, "rows lost: %d" % len(times))


def test_agent_killed_while_server_down_spool_carries(env):
    env.start_server(interval=INTERVAL, hb_interval=0.5, timeout=3.0)
    agent = env.start_agent("spooler")
    env.wait_hosts_up(["spooler"])
    time.sleep(3.0)
    env.server.kill()
    server_gone = time.time() * 1000
    spool = os.path.join(env.dir, "spool", "spooler", "spool.dat")
    wait_for(lambda: os.path.exists(spool) and os.path.getsize(spool) > 2000, 15,
             "batches in the spool")
    time.sleep(2.5)
    agent.kill()
    agent_gone = time.time() * 1000
    time.sleep(1.0)
    agent = env.start_agent("spooler")
    time.sleep(2.0)
    env.start_server(interval=INTERVAL, hb_interval=0.5, timeout=3.0, name="server2")
    wait_for(lambda: drained(env, "spooler"), 30, "the spool sent", [env.server])
    wait_for(lambda: not os.path.exists(spool), 15, "the spool cleared once acked")
    times = check_exactly_once(env, "spooler", allow_gap=(agent_gone - 3000, agent_gone + 6000))
    outage = [t for t in times if server_gone <= t <= agent_gone]
    expected = (agent_gone - server_gone) / 1000.0 / INTERVAL
    # Up to spool_flush (0.5 s) of samples may be lost with a SIGKILL.
    check(len(outage) >= expected - 2, "%d rows from the outage, expected about %.0f"
          % (len(outage), expected))
    check(agent.stop() == 0, "agent exit status")


def test_agent_spool_on_full_disk_counts_loss(env):
    spool_dir = os.path.join(env.dir, "spool")
    mount_tmpfs(spool_dir, "64k")
    try:
        fill(spool_dir)
        env.start_server(interval=0.2, hb_interval=0.2, timeout=2.0)
        agent = env.start_agent("tight", extra={"queue_max": 5})
        env.wait_hosts_up(["tight"])
        env.server.kill()
        wait_for(lambda: "No space left on device" in agent.log_text(), 15,
                 "the agent's spool error")
        time.sleep(2.0)
        agent.check_alive()
        env.start_server(interval=0.2, hb_interval=0.2, timeout=2.0, name="server2")
        wait_for(lambda: env.hosts().get("tight", {}).get("latest", {}).get("agent", {})
                 .get("dropped_batches", 0) > 0, 20, "the loss reported", [env.server])
        agent.check_alive()
        check("dropping the oldest" in agent.log_text(), "the agent did not log the loss")
        check(agent.stop() == 0, "agent exit status")
        check_exactly_once(env, "tight", interval=0.2, allow_gap=(0, 1 << 62))
    finally:
        for p in env.procs:
            p.kill()
        umount(spool_dir)


def test_server_full_disk_survives_and_resumes(env):
    mount_tmpfs(env.data_dir, "2m")
    try:
        env.start_server(interval=0.3, hb_interval=0.3, timeout=3.0, workers=2)
        agents = [env.start_agent(n) for n in ("full-a", "full-b")]
        env.wait_hosts_up(["full-a", "full-b"])
        wait_for(lambda: len(rows(env, "full-a", "load")[1]) >= 3, 10, "rows", [env.server])
        filler = fill(env.data_dir)
        wait_for(lambda: "No space left on device" in env.server.log_text(), 15,
                 "the server's disk error", [env.server])
        t_err = time.monotonic()
        # A write fails only when a file needs another page of the full
        # disk, so when the next failure comes depends on row sizes: wait.
        wait_for(lambda: sum(w["store_errors"] for w in env.api("/api/v1/workers")) >= 2, 30,
                 "a second batch refused on the full disk", [env.server])
        # Longer than the heartbeat timeout on the full disk: nobody goes down.
        time.sleep(max(0.0, t_err + 3.0 * SLOW - time.monotonic()))
        hosts = env.hosts()
        check(all(hosts[n]["state"] == "up" for n in ("full-a", "full-b")),
              "hosts went down on a full disk: %r" % {n: hosts[n]["state"] for n in hosts})
        log = env.server.log_text()
        check(log.count("full-a: load.csv: No space left") + log.count("full-a: cpu.csv: No space")
              <= 3, "the error was logged on every batch")
        before = len(rows(env, "full-a", "load")[1])
        os.unlink(filler)
        wait_for(lambda: "storing again" in env.server.log_text(), 20, "recovery", [env.server])
        wait_for(lambda: len(rows(env, "full-a", "load")[1]) > before + 5, 20,
                 "rows after recovery", [env.server])
        wait_for(lambda: drained(env, "full-a") and drained(env, "full-b"), 30,
                 "backlogs sent", [env.server])
        for a in agents:
            check(a.stop() == 0, "agent exit status")
        for n in ("full-a", "full-b"):
            check_exactly_once(env, n, interval=0.3)
        check(env.server.stop() == 0, "server exit status")
    finally:
        for p in env.procs:
            p.kill()
        umount(env.data_dir)


def metrics_frame(seq, nrows, t0):
    p = struct.pack(">QH", seq, 1)
    p += struct.pack(">B", 4) + b"load" + struct.pack(">B", 0)
    p += struct.pack(">B", 1) + struct.pack(">B", 1) + b"v" + struct.pack(">I", nrows)
    for i in range(nrows):
        p += struct.pack(">QBd", t0 + i, 0, float(i))
    return frame(4, p)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_flood_and_non_readers_keep_memory_bounded(env):
    env.start_server(workers=1, interval=0.3, hb_interval=0.3, timeout=5.0)
    witness = env.start_agent("witness")
    env.wait_hosts_up(["witness"])
    base = rss_kb(env.server.pid)
    stop = threading.Event()
    sent = [0]

    def flood():
        s = socket.create_connection(("127.0.0.1", env.port))
        s.sendall(hello("flood"))
        s.settimeout(5 * SLOW)
        t0 = int(time.time() * 1000)
        seq = 1
        try:
            while not stop.is_set() and seq < 20000:
                s.sendall(metrics_frame(seq, 200, t0 + seq * 1000))
                sent[0] += 1
                seq += 1
        except OSError:
            pass  # blocked: the server stopped reading us, as it should
        stop.wait(30)
        s.close()

    def http_hog():
        socks = []
        req = b"GET /api/v1/hosts HTTP/1.1\r\nHost: x\r\n\r\n" * 200
        for _ in range(20):
            h = socket.create_connection(("127.0.0.1", env.http_port))
            h.settimeout(2)
            try:
                h.sendall(req)
            except OSError:
                pass
            socks.append(h)
        stop.wait(30)
        for h in socks:
            h.close()

    threads = [threading.Thread(target=flood), threading.Thread(target=http_hog)]
    for t in threads:
        t.start()
    try:
        before = len(rows(env, "witness", "load")[1])
        time.sleep(6.0)
        peak = rss_kb(env.server.pid)
        after = len(rows(env, "witness", "load")[1])
        check(after >= before + 5, "the witness was starved: %d -> %d rows" % (before, after))
        check(env.hosts()["witness"]["state"] == "up", "witness down during the flood")
        print("  server RSS %d kB before, %d kB under flood (%d frames sent)"
              % (base, peak, sent[0]))
        if MEASURED_RSS:
            check(peak - base < 64 * 1024, "server RSS grew by %d kB" % (peak - base))
        else:
            print("  (RSS not checked: sanitizers and valgrind hold freed memory)")
    finally:
        stop.set()
        for t in threads:
            t.join(60)


if __name__ == "__main__":
    run_tests(globals())
