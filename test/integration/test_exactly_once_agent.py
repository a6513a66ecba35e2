"""The agent's side of exactly once: an agent killed while it catches up
loses nothing the server acked, and agents that keep replacing each other
back off instead of flapping."""

import os
import random
import re
import socket
import struct
import threading
import time

from harness import (SLOW, T_ACK, T_HELLO, T_METRICS, T_WELCOME, check, read_csv, run_tests,
                     wait_for)

INTERVAL = 0.2
CATCHUP_RATE = 10
KILLS = 10
# Rows further apart than this are a gap.
GAP_LIMIT_MS = (INTERVAL + 0.6 * SLOW) * 1000


class Conn:
    """What one agent connection carried: its run, its batches, its ACKs."""

    def __init__(self):
        self.run_id = None
        self.welcomed = False
        self.batches = []  # [seq, load row times, acked], in the order sent


class Tap:
    """A TCP relay between the agent and the server that reads the frames
    going by: which batches the agent sent, which samples they held, and
    which of them the server acked on the same connection."""

    def __init__(self, server_port):
        self.server_port = server_port
        self.lock = threading.Lock()
        self.conns = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def close(self):
        self.stopping = True
        self.listener.close()

    def accept_loop(self):
        while not self.stopping:
            try:
                agent, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.server_port), timeout=2)
                server.settimeout(None)
            except OSError:
                agent.close()  # the server is away: so is the relay
                continue
            conn = Conn()
            with self.lock:
                self.conns.append(conn)
            pair = (agent, server)
            threading.Thread(target=self.pump, args=(agent, server, conn, True, pair),
                             daemon=True).start()
            threading.Thread(target=self.pump, args=(server, agent, conn, False, pair),
                             daemon=True).start()

    def pump(self, src, dst, conn, upstream, pair):
        buf = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                buf += data
                # Note each whole frame before passing it on, so an ACK the
                # server sends for it always finds it.
                while len(buf) >= 8:
                    ftype, length = struct.unpack(">xxxBI", buf[:8])
                    if len(buf) < 8 + length:
                        break
                    self.note(conn, upstream, ftype, buf[8:8 + length])
                    buf = buf[8 + length:]
                dst.sendall(data)
        except OSError:
            pass
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def note(self, conn, upstream, ftype, payload):
        with self.lock:
            if upstream and ftype == T_HELLO:
                conn.run_id = hello_run_id(payload)
            elif upstream and ftype == T_METRICS:
                seq = struct.unpack(">Q", payload[:8])[0]
                conn.batches.append([seq, metrics_times(payload, "load"), False])
            elif not upstream and ftype == T_WELCOME:
                conn.welcomed = True
            elif not upstream and ftype == T_ACK:
                acked = struct.unpack(">Q", payload)[0]
                for b in conn.batches:
                    if b[0] <= acked:
                        b[2] = True

    def current(self):
        with self.lock:
            return self.conns[-1] if self.conns else None

    def count(self):
        with self.lock:
            return len(self.conns)

    def sent_on(self, conn):
        with self.lock:
            return len(conn.batches)

    def runs(self):
        with self.lock:
            return {c.run_id for c in self.conns if c.run_id is not None}

    def acked_times(self):
        """Every sample in a batch the server acked on the connection that
        carried it."""
        with self.lock:
            return sorted({t for c in self.conns for b in c.batches if b[2] for t in b[1]})


def take_str(p, off):
    n = p[off]
    return p[off + 1:off + 1 + n].decode(), off + 1 + n


def hello_run_id(p):
    off = 0
    for _ in range(2):  # name, version
        _, off = take_str(p, off)
    off += 4  # caps
    for _ in range(4):  # os, kernel, model, boot_id
        _, off = take_str(p, off)
    return struct.unpack(">QQ", p[off:off + 16])[1]


def metrics_times(p, metric):
    """The row times of the groups of metric in a METRICS payload."""
    ngroups = struct.unpack(">QH", p[:10])[1]
    off = 10
    times = []
    for _ in range(ngroups):
        name, off = take_str(p, off)
        _, off = take_str(p, off)  # inst_key
        nfields = p[off]
        off += 1
        for _ in range(nfields):
            _, off = take_str(p, off)
        nrows = struct.unpack(">I", p[off:off + 4])[0]
        off += 4
        for _ in range(nrows):
            t = struct.unpack(">Q", p[off:off + 8])[0]
            off += 8
            _, off = take_str(p, off)  # instance
            off += 8 * nfields
            if name == metric:
                times.append(t)
    return times


def stored_times(env, host, metric):
    path = os.path.join(env.host_dir(host), metric + ".csv")
    if not os.path.exists(path):
        return []
    header, data = read_csv(path)
    check(header and header[0] == "time", "%s.csv header %r" % (metric, header))
    for r in data:
        check(len(r) == len(header), "torn row in %s.csv: %r" % (metric, r))
    return [int(r[0]) for r in data]


def drained(env, host):
    """The server holds a batch the agent sent with nothing queued behind it."""
    h = env.hosts().get(host)
    agent = h and h["latest"].get("agent")
    return h and h["state"] == "up" and agent and agent["queued_batches"] <= 1


def windows(times, limit):
    """(start, end) of every gap between consecutive times wider than limit."""
    return [(a, b) for a, b in zip(times, times[1:]) if b - a > limit]


def test_agent_killed_during_catch_up_loses_nothing_acked(env):
    rng = random.Random(int(os.environ.get("PIMON_SEED", time.time())))
    server_opts = dict(interval=INTERVAL, hb_interval=0.5, timeout=3.0)
    env.start_server(**server_opts)
    tap = Tap(env.port)
    opts = {"server": "127.0.0.1:%d" % tap.port, "catchup_rate": CATCHUP_RATE,
            "spool_flush": 0.2, "reconnect": {"min": 0.1, "max": 0.5}}
    agent = env.start_agent("catcher", extra=opts)
    env.wait_hosts_up(["catcher"])
    wait_for(lambda: len(stored_times(env, "catcher", "load")) >= 5, 15, "rows", [env.server])
    kills = []  # wall clock ms of each kill
    try:
        for i in range(KILLS):
            # An outage: the agent spools what it collects meanwhile.
            env.server.kill()
            outage = rng.uniform(1.5, 3.0)
            time.sleep(outage)  # the outage itself is what is being produced
            before = tap.count()
            env.start_server(name="server-%d" % i, **server_opts)
            wait_for(lambda: tap.count() > before and tap.current().welcomed, 20 * SLOW,
                     "the agent back (round %d)" % i, [env.server, agent])
            conn = tap.current()
            # Kill it at a random point of the replay: before, at or past the
            # end of what it had spooled.
            backlog = int(outage / INTERVAL)
            k = rng.randint(1, 2 * backlog)
            wait_for(lambda: tap.sent_on(conn) >= k or drained(env, "catcher"), 30,
                     "%d batches replayed (round %d)" % (k, i), [env.server, agent])
            agent.kill()
            kills.append(int(time.time() * 1000))
            agent = env.start_agent("catcher", extra=opts)
            wait_for(lambda: drained(env, "catcher"), 60,
                     "the backlog sent after restart %d" % i, [env.server, agent])
        wait_for(lambda: drained(env, "catcher"), 30, "the last backlog sent",
                 [env.server, agent])
        check(agent.stop() == 0, "agent exit status")
    finally:
        tap.close()
    acked = tap.acked_times()
    check(len(acked) >= 50, "only %d acked samples seen" % len(acked))
    for metric in ("load", "mem"):
        times = stored_times(env, "catcher", metric)
        check(len(times) == len(set(times)),
              "%d duplicate rows in %s.csv" % (len(times) - len(set(times)), metric))
        check(times == sorted(times), "%s.csv rows out of time order" % metric)
    times = stored_times(env, "catcher", "load")
    stored = set(times)
    lost = [t for t in acked if t not in stored]
    # The widest run of consecutive acked samples missing from the file.
    widest, run = 0.0, []
    for t in acked + [None]:
        if t is not None and t not in stored:
            run.append(t)
            continue
        if run:
            widest = max(widest, (run[-1] - run[0]) / 1000.0 + INTERVAL)
        run = []
    gaps = windows(times, GAP_LIMIT_MS)
    largest_gap = max([(b - a) / 1000.0 for a, b in zip(times, times[1:])], default=0.0)
    print("  %d kills, %d runs; %d acked samples, %d stored; acked but not stored: %d "
          "(largest window lost %.1f s); largest gap between stored rows %.1f s"
          % (len(kills), len(tap.runs()), len(acked), len(times), len(lost), widest,
             largest_gap))
    check(not lost, "%d acked samples never stored, the widest window %.1f s: %s"
          % (len(lost), widest, lost[:10]))
    # A gap may only be the agent's dead time around a kill: what it held in
    # memory, never acked, and the seconds it was not running.
    for a, b in gaps:
        check(any(a <= t <= b for t in kills),
              "gap of %d ms at %d with no kill in it" % (b - a, a))
    header, data = read_csv(os.path.join(env.host_dir("catcher"), "agent.csv"))
    dropped = max(float(r[header.index("dropped_batches")]) for r in data)
    check(dropped == 0, "the agent dropped %d batches" % dropped)


def reconnect_delays(log):
    return [float(x) for x in re.findall(r"reconnecting in ([0-9.]+) s", log)]


def test_twins_back_off_instead_of_flapping(env):
    env.start_server(workers=2, interval=0.5, hb_interval=0.5, timeout=3.0)
    opts = {"reconnect": {"min": 1.0, "max": 30.0}}
    # Each with a config, a log and a spool of its own; both called twin.
    twins = [env.start_agent("twin-" + x, extra=dict(opts, name="twin",
                                                     spool_dir=os.path.join(env.dir, "spool-" + x)))
             for x in ("a", "b")]
    events = os.path.join(env.host_dir("twin"), "events.csv")

    def replaced():
        if not os.path.exists(events):
            return 0
        return sum(1 for r in read_csv(events)[1] if len(r) > 2 and r[2] == "replaced")

    wait_for(lambda: replaced() >= 1, 15, "the first replacement", [env.server] + twins)
    t0 = time.monotonic()
    time.sleep(20.0)  # the window over which flapping is counted
    for t in twins:
        t.check_alive()
    n = replaced()
    delays = [reconnect_delays(t.log_text()) for t in twins]
    print("  %d replacements in %.0f s; reconnect delays %s"
          % (n, time.monotonic() - t0, " / ".join(" ".join("%.1f" % d for d in ds)
                                                   for ds in delays)))
    # Worst case with the delay doubling from 1 s: six reconnects each in
    # 20 s, one more after a session that lasted, and the first one.
    check(n <= 15, "%d replacements in 20 s" % n)
    for ds in delays:
        # Doubling with equal jitter: each delay is at least the one before,
        # and the third at least twice the first.
        check(len(ds) >= 3, "a twin reconnected %d times only" % len(ds))
        check(ds[:4] == sorted(ds[:4]), "reconnect delays did not grow: %s" % ds)
        check(ds[2] >= 2 * ds[0], "reconnect delays did not grow: %s" % ds)
    for t in twins:
        check(t.stop() == 0, "twin exit status")


if __name__ == "__main__":
    run_tests(globals())
