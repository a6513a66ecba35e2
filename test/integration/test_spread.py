"""Agents spread over several servers by rendezvous ranking: hundreds of
pimon-bench hosts and a few real pimon-agents land where the ranking,
computed here independently, says; a killed server's hosts move to their
second choice and come back once it restarts; a fourth server takes about a
quarter of the hosts and moves none between the old three; a server's
WELCOME hands its peers to an agent that knows only one address, which
keeps them across a restart; three servers remote-writing to one
Prometheus while one dies and returns leave it every sample once."""

import glob
import json
import os
import time
import urllib.request

from harness import (BUILD, SERVER_BIN, SLOW, WRAPPER, Proc, TestFailure, TestSkip, can_connect,
                     check, free_port, read_csv, rendezvous_rank, run_tests, wait_for)
from prom import PROMETHEUS, counts, csv_series, prom_series, start_prometheus

BENCH_BIN = os.path.join(BUILD, "tools", "pimon-bench")
# Fewer hosts under the sanitizers, which make every daemon several times slower.
NHOSTS = 240 if os.environ.get("PIMON_SANITIZED") else 300
RETURN_DELAY = 2.0
PREFIX = "sp-"


class Server:
    """One pimon-server of the fleet, with its own ports and data folder."""

    def __init__(self, env, name, peers=(), extra=None):
        self.env = env
        self.name = name
        self.extra = extra or {}
        self.port = free_port()
        self.http_port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.peers = list(peers)
        self.proc = None

    def start(self):
        cfg = {
            "listen": self.addr,
            "workers": 2,
            "data_dir": os.path.join(self.env.dir, "data-" + self.name),
            "heartbeat": {"timeout": 2.0, "interval": 0.5},
            "collect": {"interval": 1.0},
            "http": {"listen": "127.0.0.1:%d" % self.http_port},
            "alarms": (),
            "sync": "none",
            "peers": self.peers,
            "log_level": "info",
        }
        cfg.update(self.extra)
        path = self.env.write_cfg(self.name + ".cfg", {"server": cfg})
        self.proc = Proc(self.name, WRAPPER + [SERVER_BIN, "-c", path], self.env.dir)
        self.env.procs.append(self.proc)
        wait_for(lambda: can_connect(self.port), 15, "%s's agent port" % self.name, [self.proc])
        wait_for(lambda: self.hosts() is not None, 15, "%s's API" % self.name, [self.proc])

    def hosts(self):
        url = "http://127.0.0.1:%d/api/v1/hosts" % self.http_port
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.loads(r.read().decode())
        except OSError:
            return None

    def api(self, path):
        url = "http://127.0.0.1:%d%s" % (self.http_port, path)
        with urllib.request.urlopen(url, timeout=10 * SLOW) as r:
            return json.loads(r.read().decode())

    def up(self):
        """Names of the hosts up on this server."""
        return {h["name"] for h in self.hosts() or () if h["state"] == "up"}


def start_bench(env, servers, name="bench"):
    argv = [BENCH_BIN, "-n", NHOSTS, "-P", 2, "--heartbeat", 0.5, "--interval", 1,
            "--fields", 2, "--ramp", 2, "--duration", 3600, "--prefix", PREFIX,
            "--return-delay", RETURN_DELAY, "--json"]
    for s in servers:
        argv += ["-s", s.addr]
    p = Proc(name, [str(a) for a in argv], env.dir)
    env.procs.append(p)
    return p


def start_agent(env, name, servers, extra=None):
    agent = {
        "server": servers,
        "name": name,
        "reconnect": {"min": 0.2, "max": 1.0},
        "return_delay": RETURN_DELAY,
        "spool_dir": os.path.join(env.dir, "spool"),
        "spool_flush": 0.5,
        "alarm_socket": "",
        "log_level": "debug",
    }
    agent.update(extra or {})
    path = env.write_cfg("agent-%s.cfg" % name, {"agent": agent})
    p = Proc("agent-" + name, WRAPPER + [os.path.join(BUILD, "agent", "pimon-agent"), "-c",
                                         path], env.dir)
    env.procs.append(p)
    return p


def expected(names, ranked, alive):
    """Which names each alive server should hold: the first alive server of
    each name's ranking over the addresses ranked."""
    want = {a: set() for a in alive}
    for n in names:
        first = next(a for a in rendezvous_rank(n, ranked) if a in alive)
        want[first].add(n)
    return want


def wait_spread(servers, want, procs, what, timeout=40):
    """Wait until every server holds exactly the hosts want gives it."""
    last = {}

    def ok():
        for s in servers:
            last[s.addr] = s.up()
        return all(last[a] == w for a, w in want.items())
    try:
        wait_for(ok, timeout * SLOW, what, procs)
    except Exception:
        for a, w in want.items():
            got = last.get(a, set())
            print("  %s: %d up, %d expected; missing %s, extra %s" % (
                a, len(got), len(w), sorted(w - got)[:5], sorted(got - w)[:5]))
        raise
    return last


def pick(names, ranked, addr, taken):
    """A name from names whose first choice over ranked is addr."""
    return next(n for n in names if n not in taken and rendezvous_rank(n, ranked)[0] == addr)


def check_every_sample(env, name, servers):
    """Each server holds the host's load rows once each and in order, and
    between them every sample: what one did not ack went to the next."""
    union = set()
    for s in servers:
        path = os.path.join(env.dir, "data-" + s.name, "hosts", name, "load.csv")
        _, rows = read_csv(path)
        times = [int(r[0]) for r in rows]
        check(times == sorted(times) and len(times) == len(set(times)),
              "%s on %s: rows out of order or doubled" % (name, s.name))
        union |= set(times)
    union = sorted(union)
    limit = (1.0 + 0.6 * SLOW) * 1000
    gaps = [(a, b - a) for a, b in zip(union, union[1:]) if b - a > limit]
    check(not gaps, "%s: gaps across the servers (time, ms): %s" % (name, gaps[:5]))
    return union


def test_spread_failover_return_and_growth(env):
    servers = [Server(env, "s%d" % i) for i in range(3)]
    for s in servers:
        s.start()
    addrs = [s.addr for s in servers]
    bench_names = ["%s%d" % (PREFIX, i) for i in range(NHOSTS)]
    # Three real agents, one whose first choice is each server.
    candidates = ["pi-%d" % i for i in range(200)]
    real = []
    for a in addrs:
        real.append(pick(candidates, addrs, a, real))
    names = bench_names + real
    bench = start_bench(env, servers)
    agents = [start_agent(env, n, addrs) for n in real]
    procs = [s.proc for s in servers] + [bench] + agents

    want = expected(names, addrs, addrs)
    check(all(len(w) > NHOSTS // 5 for w in want.values()),
          "uneven ranking: %s" % [len(w) for w in want.values()])
    wait_spread(servers, want, procs, "the spread of the ranking")

    # Kill the second server: its hosts go to their second choice, the
    # others stay where they are.
    victim = servers[1]
    victim.proc.kill()
    alive = [addrs[0], addrs[2]]
    moved = expected(names, addrs, alive)
    wait_spread([servers[0], servers[2]], moved, [p for p in procs if p is not victim.proc],
                "the killed server's hosts on their second choice")
    agent = agents[1]
    check("trying the next server" in agent.log_text(),
          "the real agent of %s did not fail over" % victim.name)

    # Restart it: after the return delay its hosts come back.
    victim.start()
    procs = [s.proc for s in servers] + [bench] + agents
    wait_spread(servers, want, procs, "the hosts back on their first choice")
    wait_for(lambda: "answers; leaving" in agent.log_text(), 10 * SLOW,
             "the real agent's return in its log", [agent])
    second = [s for s in servers if s.addr == rendezvous_rank(real[1], addrs)[1]][0]

    def drained():
        h = [h for h in victim.hosts() or () if h["name"] == real[1]]
        a = h and h[0]["state"] == "up" and h[0]["latest"].get("agent")
        return a and a["queued_batches"] <= 1
    wait_for(drained, 15 * SLOW, "the returned agent's backlog sent", [agent])
    check(len(check_every_sample(env, real[1], [victim, second])) >= 4,
          "too few rows of the agent that moved")

    # A fourth server: a new bench run ranks over four. The real agents
    # still know three and stay.
    check(bench.stop() == 0, "pimon-bench exit status")
    before = {n: a for a, w in want.items() for n in w}
    fourth = Server(env, "s3")
    fourth.start()
    servers.append(fourth)
    addrs4 = addrs + [fourth.addr]
    bench2 = start_bench(env, servers, "bench4")
    want4 = expected(bench_names, addrs4, addrs4)
    for n in real:
        want4[before[n]].add(n)
    procs = [s.proc for s in servers] + [bench2] + agents
    wait_spread(servers, want4, procs, "the spread over four servers")
    after = {n: a for a, w in want4.items() for n in w}
    changed = [n for n in bench_names if after[n] != before[n]]
    between = [n for n in changed if after[n] != fourth.addr]
    print("  %d of %d hosts moved to the fourth server" % (len(changed), NHOSTS))
    check(not between, "hosts moved between the old servers: %s" % between[:5])
    # A quarter is expected; four standard deviations over it stays near a third.
    most = NHOSTS / 4 + 4 * (NHOSTS * 3 / 16) ** 0.5
    check(NHOSTS // 8 <= len(changed) <= most,
          "%d of %d hosts moved (expected about a quarter, at most %d)"
          % (len(changed), NHOSTS, most))
    check(bench2.stop() == 0, "pimon-bench exit status")


def test_welcome_peers_reach_a_bootstrap_agent(env):
    ports = [free_port() for _ in range(3)]
    addrs = ["127.0.0.1:%d" % p for p in ports]
    servers = []
    for i, p in enumerate(ports):
        s = Server(env, "s%d" % i, peers=addrs)
        s.port, s.addr = p, addrs[i]
        servers.append(s)
        s.start()
    # Its only address is a server that is not its first choice.
    name = next("boot-%d" % i for i in range(200)
                if rendezvous_rank("boot-%d" % i, addrs)[0] != addrs[0])
    first = rendezvous_rank(name, addrs)[0]
    agent = start_agent(env, name, [addrs[0]])
    procs = [s.proc for s in servers] + [agent]
    wait_spread(servers, {a: ({name} if a == first else set()) for a in addrs}, procs,
                "the bootstrap agent on its first choice")
    log = agent.log_text()
    check("sent 3 servers; first choice for %s: %s" % (name, first) in log,
          "no peers from WELCOME in the agent's log")
    saved = open(os.path.join(env.dir, "spool", name, "servers")).read()
    check(saved == "".join(a + "\n" for a in addrs), "servers file %r" % saved)

    # Restarted with its bootstrap server gone, it still knows the fleet.
    check(agent.stop() == 0, "agent exit status")
    servers[0].proc.kill()
    # The old session gone first, so that the one seen next is the new agent's.
    wait_spread(servers[1:], {a: set() for a in addrs[1:]}, [s.proc for s in servers[1:]],
                "the stopped agent's session ended")
    agent = start_agent(env, name, [addrs[0]])
    procs = [s.proc for s in servers[1:]] + [agent]
    wait_spread(servers[1:], {a: ({name} if a == first else set()) for a in addrs[1:]}, procs,
                "the restarted agent on its first choice")
    line = "3 servers from the last WELCOME; first choice for %s: %s" % (name, first)
    wait_for(lambda: line in agent.log_text(), 10, "the saved list used", procs)
    log = agent.log_text()
    # The list is kept while it stays the same: one WELCOME taught it.
    check(log.count("sent 3 servers") == 1, "the list was taken more than once")


def test_stale_peers_fall_back_to_agent_server(env):
    # The server names only servers that do not exist.
    gone = ["127.0.0.1:%d" % free_port() for _ in range(2)]
    server = Server(env, "s0", peers=gone)
    server.start()
    agent = start_agent(env, "stale", [server.addr])
    wait_spread([server], {server.addr: {"stale"}}, [server.proc, agent], "the agent up")
    wait_for(lambda: os.path.exists(os.path.join(env.dir, "spool", "stale", "servers")),
             10 * SLOW, "the saved list", [agent])
    # Its server gone and back: the learned two fail, agent.server is used.
    server.proc.kill()
    wait_for(lambda: "back to agent.server" in agent.log_text(), 20 * SLOW,
             "the agent giving up on the learned list", [agent])
    server.start()
    wait_spread([server], {server.addr: {"stale"}}, [server.proc, agent], "the agent back")


def fleet_series(servers):
    """{host: [times of each series]}: every server's committed rows of a
    host together, a sample stored on two servers counted once."""
    union = {}
    for s in servers:
        for hostdir in glob.glob(os.path.join(s.env.dir, "data-" + s.name, "hosts", "*")):
            host = os.path.basename(hostdir)
            keys = {m["metric"]: m["instance_key"]
                    for m in s.api("/api/v1/hosts/%s/metrics" % host)["metrics"]}
            for key, times in csv_series(hostdir, keys).items():
                union.setdefault(host, {}).setdefault(key, set()).update(times)
    return {h: list(v.values()) for h, v in union.items()}


def test_spread_history_reaches_one_prometheus(env):
    if not PROMETHEUS:
        raise TestSkip("prometheus is not installed")
    port = free_port()
    prom = start_prometheus(env, port, os.path.join(env.dir, "tsdb"))
    rw = {"remote_write": [{"name": "prom", "url": "http://127.0.0.1:%d/api/v1/write" % port,
                            "max_samples_per_send": 2000}]}
    servers = [Server(env, "s%d" % i, extra=rw) for i in range(3)]
    for s in servers:
        s.start()
    addrs = [s.addr for s in servers]
    bench_names = ["%s%d" % (PREFIX, i) for i in range(NHOSTS)]
    real = []
    for a in addrs:
        real.append(pick(["pi-%d" % i for i in range(200)], addrs, a, real))
    bench = start_bench(env, servers)
    agents = [start_agent(env, n, addrs) for n in real]
    procs = [s.proc for s in servers] + [bench, prom] + agents
    want = expected(bench_names + real, addrs, addrs)
    wait_spread(servers, want, procs, "the spread of the ranking")

    # One server dies with rows not yet sent; its hosts go on elsewhere;
    # it comes back and sends the rest.
    victim = servers[1]
    victim.proc.kill()
    alive = [addrs[0], addrs[2]]
    others = [p for p in procs if p is not victim.proc]
    wait_spread([servers[0], servers[2]], expected(bench_names + real, addrs, alive), others,
                "the killed server's hosts on their second choice")
    victim.start()
    procs = [s.proc for s in servers] + [bench, prom] + agents
    wait_spread(servers, want, procs, "the hosts back on their first choice")
    check(bench.stop() == 0, "pimon-bench exit status")
    for a in agents:
        check(a.stop() == 0, "agent exit status")
    procs = [s.proc for s in servers] + [prom]

    last = {}

    def equal():
        if any(s.api("/api/v1/stats")["remote_write"]["prom"]["lag_s"] != 0 for s in servers):
            return False
        last["csv"] = counts(fleet_series(servers))
        last["prom"] = counts(prom_series(port, time.time()))
        return last["csv"] == last["prom"]
    try:
        wait_for(equal, 120, "Prometheus to hold every server's rows", procs)
    except TestFailure:
        want_c, got_c = last.get("csv", {}), last.get("prom", {})
        bad = [h for h in sorted(set(want_c) | set(got_c)) if want_c.get(h) != got_c.get(h)]
        for h in bad[:10]:
            print("  %s: csv %r prometheus %r" % (h, want_c.get(h), got_c.get(h)))
        print("  %d of %d hosts differ" % (len(bad), len(want_c)))
        raise
    check(len(last["csv"]) == NHOSTS + len(real), "hosts in the files: %d" % len(last["csv"]))
    folders = {}
    for s in servers:
        for d in glob.glob(os.path.join(env.dir, "data-" + s.name, "hosts", "*")):
            folders[os.path.basename(d)] = folders.get(os.path.basename(d), 0) + 1
    moved = [h for h, n in folders.items() if n > 1]
    check(len(moved) >= len(want[victim.addr]), "%d hosts stored on two servers, %d expected"
          % (len(moved), len(want[victim.addr])))
    print("  %d samples in %d series reached Prometheus" % (
        sum(sum(c) for c in last["csv"].values()), sum(len(c) for c in last["csv"].values())))
    for s in servers:
        st = s.api("/api/v1/stats")["remote_write"]["prom"]
        check(st["samples_failed"] == 0 and st["samples_dropped"] == 0,
              "%s: stats %r" % (s.name, st))


if __name__ == "__main__":
    run_tests(globals())
