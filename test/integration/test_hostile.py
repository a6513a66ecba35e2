"""Bad bytes on one session close that session with a log line; the server
and the other agents carry on."""

import os
import socket
import struct
import time

from harness import (SLOW, T_BYE, T_HEARTBEAT, T_WELCOME, check, frame, heartbeat, hello, read_frame,
                     run_tests, wait_closed, wait_for)


def start_with_witness(env):
    """A server and one well-behaved agent that must stay up throughout."""
    env.start_server(workers=2)
    witness = env.start_agent("witness")
    env.wait_hosts_up(["witness"])
    return witness


def still_fine(env, witness):
    """The server answers, the witness is up, and a new session still works."""
    env.server.check_alive()
    witness.check_alive()
    check(env.hosts()["witness"]["state"] == "up", "witness went down")
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(hello("after-%d" % time.monotonic_ns()))
    check(read_frame(s)[0] == T_WELCOME, "a new session got no WELCOME")
    s.close()


def log_has(env, text):
    return text in env.server.log_text()


def test_garbage_bytes_close_session(env):
    witness = start_with_witness(env)
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(512))
    check(wait_closed(s), "session with garbage not closed")
    wait_for(lambda: log_has(env, "bad frame: bad magic"), 5, "a log line", [env.server])
    still_fine(env, witness)


def test_oversized_frame_closes_session(env):
    witness = start_with_witness(env)
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(hello("big"))
    check(read_frame(s)[0] == T_WELCOME, "no WELCOME")
    # A header announcing more than the maximum: refused before any payload.
    s.sendall(struct.pack(">HBBI", 0x504D, 1, 4, 64 * 1024 * 1024))
    check(wait_closed(s), "session with oversized frame not closed")
    wait_for(lambda: log_has(env, "too large"), 5, "a log line", [env.server])
    wait_for(lambda: env.hosts()["big"]["state"] == "down", 5, "big down", [env.server])
    check(env.hosts()["big"]["reason"] == "bad frame", "reason %r" % env.hosts()["big"])
    still_fine(env, witness)


def test_truncated_frame_then_close(env):
    witness = start_with_witness(env)
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(hello("trunc"))
    check(read_frame(s)[0] == T_WELCOME, "no WELCOME")
    s.sendall(heartbeat()[:11])  # header and 3 of 8 payload bytes
    s.shutdown(socket.SHUT_WR)
    check(wait_closed(s), "session not closed")
    wait_for(lambda: log_has(env, "truncated frame"), 5, "a log line", [env.server])
    still_fine(env, witness)


def test_bad_fields_close_session(env):
    witness = start_with_witness(env)
    cases = [
        ("bad version", frame(T_HEARTBEAT, struct.pack(">Q", 1), version=9)),
        ("unknown type", frame(99, b"")),
        ("trailing bytes", frame(T_HEARTBEAT, struct.pack(">Q", 1) + b"x")),
        ("short payload", frame(T_HEARTBEAT, b"\x00\x01")),
        ("METRICS before HELLO", frame(4, struct.pack(">QH", 1, 0))),
    ]
    for what, data in cases:
        s = socket.create_connection(("127.0.0.1", env.port))
        if what != "METRICS before HELLO":
            s.sendall(hello("fields"))
            check(read_frame(s)[0] == T_WELCOME, "no WELCOME (%s)" % what)
        s.sendall(data)
        check(wait_closed(s), "session not closed after %s" % what)
        s.close()
    still_fine(env, witness)
    check(env.server.log_text().count("bad frame") >= len(cases), "missing log lines")


def tree(top):
    """Every path under top with its size and mtime: what a test compares."""
    out = {}
    for d, dirs, files in os.walk(top):
        for f in dirs + files:
            p = os.path.join(d, f)
            st = os.lstat(p)
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


def raw_hello(name_bytes):
    """A HELLO whose name is any bytes (the harness's hello() takes text)."""
    p = struct.pack(">B", len(name_bytes) & 0xFF) + name_bytes
    p += struct.pack(">B", 4) + b"test" + struct.pack(">I", 0)
    for text in (b"TestOS", b"6.0", b"", b"boot"):
        p += struct.pack(">B", len(text)) + text
    p += struct.pack(">QQH", 1, 1, 0)
    return frame(1, p)


def test_invalid_host_names_refused(env):
    witness = start_with_witness(env)
    # Nothing beside the data folder may change (the daemons' logs aside),
    # and in it only the witness's own folder appears.
    outside = os.path.dirname(env.dir)
    def outside_data():
        return {p: v for p, v in tree(env.dir).items()
                if not p.startswith(env.data_dir) and not p.endswith(".log")}
    before = outside_data()
    parent_before = set(os.listdir(outside))
    for name in ["../etc", "../../etc/x", ".hidden", "a/b", "-x", "a b", "", "bad\nname"]:
        s = socket.create_connection(("127.0.0.1", env.port))
        s.sendall(hello(name))
        f = read_frame(s)
        check(f is not None and f[0] == T_BYE and b"invalid host name" in f[1],
              "%r got %r" % (name, f))
        check(wait_closed(s), "session for %r not closed" % name)
        s.close()
    # Not even valid frames: longer than the protocol allows, or with a NUL.
    for name in [b"x" * 65, b"x" * 10240, b"pi\0x"]:
        s = socket.create_connection(("127.0.0.1", env.port))
        s.sendall(raw_hello(name))
        check(wait_closed(s), "a name of %d bytes was not refused" % len(name))
        s.close()
    check(sorted(os.listdir(os.path.join(env.data_dir, "hosts"))) == ["witness"],
          "folders: %r" % os.listdir(os.path.join(env.data_dir, "hosts")))
    after = outside_data()
    check(before == after, "files outside the data folder changed: %r" %
          sorted(set(before.items()) ^ set(after.items())))
    check(set(os.listdir(outside)) - parent_before <= {n for n in os.listdir(outside)
                                                       if n.startswith("pimon-")},
          "something appeared beside the test folder")
    check(set(os.listdir(env.data_dir)) == {"hosts", "events.csv", "alarms.csv"},
          "data folder: %r" % os.listdir(env.data_dir))
    still_fine(env, witness)


def test_frame_size_edges_and_a_4_gib_length(env):
    witness = start_with_witness(env)
    limit = 1048576
    # Exactly the maximum payload: a well-formed METRICS that size is taken.
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(hello("edge"))
    check(read_frame(s)[0] == T_WELCOME, "no WELCOME")
    # seq, one group "load", no instance key, one field of name length n,
    # then rows of 17 bytes: pick n so the payload is exactly the limit.
    n = next(n for n in range(1, 18) if (limit - 22 - n) % 17 == 0)
    nrows = (limit - 22 - n) // 17
    payload = struct.pack(">QH", 1, 1) + struct.pack(">B", 4) + b"load" + struct.pack(">B", 0)
    payload += struct.pack(">BB", 1, n) + b"v" * n + struct.pack(">I", nrows)
    t0 = int(time.time() * 1000)
    payload += b"".join(struct.pack(">QBd", t0 + i, 0, 1.0) for i in range(nrows))
    check(len(payload) == limit, "payload %d, want %d" % (len(payload), limit))
    frame_ok = frame(4, payload)
    s.sendall(frame_ok)
    f = read_frame(s, timeout=20)
    while f and f[0] != 5:
        f = read_frame(s, timeout=20)
    check(f is not None and f[0] == 5, "the largest frame was not acked: %r" % (f,))
    s.close()
    # One byte over, and a length of 4 GiB - 1: refused from the header alone.
    for length in (limit + 1, 0xFFFFFFFF):
        s = socket.create_connection(("127.0.0.1", env.port))
        s.sendall(hello("over"))
        check(read_frame(s)[0] == T_WELCOME, "no WELCOME")
        s.sendall(struct.pack(">HBBI", 0x504D, 1, 4, length))
        check(wait_closed(s), "a %d-byte frame was not refused" % length)
        s.close()
    wait_for(lambda: env.server.log_text().count("too large") >= 2, 5, "log lines", [env.server])
    still_fine(env, witness)


def test_slow_and_silent_crowds_closed(env):
    env.start_server(workers=2, extra={"limits": {"hello_timeout": 1.0}})
    witness = env.start_agent("witness")
    env.wait_hosts_up(["witness"])
    before = len(open(os.path.join(env.host_dir("witness"), "events.csv")).read())
    # 2,000 connections that never speak, and one that sends a byte a second.
    crowd = []
    for i in range(2000):
        crowd.append(socket.create_connection(("127.0.0.1", env.port)))
    trickle = socket.create_connection(("127.0.0.1", env.port))
    data = hello("trickle")
    closed = False
    for b in data[:8]:
        try:
            trickle.sendall(bytes([b]))
        except OSError:
            closed = True
            break
        time.sleep(0.3)
    check(closed or wait_closed(trickle, timeout=10), "a byte-a-second HELLO was not cut off")
    wait_for(lambda: sum(w["hello_timeouts"] for w in env.api("/api/v1/workers")) >= 2001, 60,
             "the silent crowd closed", [env.server])
    for s in crowd:
        check(wait_closed(s, timeout=1), "a silent connection stayed open")
        s.close()
    check(env.hosts()["witness"]["state"] == "up", "the witness went down")
    events = open(os.path.join(env.host_dir("witness"), "events.csv")).read()
    check(len(events) == before, "the witness had transitions: %r" % events[before:])
    still_fine(env, witness)


def test_silent_connection_closed_after_hello_timeout(env):
    env.start_server(extra={"limits": {"hello_timeout": 0.5}})
    s = socket.create_connection(("127.0.0.1", env.port))
    t0 = time.monotonic()
    check(wait_closed(s, timeout=10), "a connection that never said HELLO stayed open")
    # Elapsed time is only printed: the log line and the counter, which only
    # the HELLO timeout moves, are what show it was this limit that acted.
    print("  closed after %.2f s" % (time.monotonic() - t0))
    wait_for(lambda: log_has(env, "no HELLO in time"), 5, "the log line", [env.server])
    check(sum(w["hello_timeouts"] for w in env.api("/api/v1/workers")) == 1, "counter")
    # A slow but honest agent still gets in.
    s = socket.create_connection(("127.0.0.1", env.port))
    time.sleep(0.1)
    s.sendall(hello("slowpoke"))
    check(read_frame(s)[0] == T_WELCOME, "no WELCOME")
    s.close()


def test_max_sessions_refuses_extra_connections(env):
    env.start_server(extra={"limits": {"max_sessions": 3}})
    held = []
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", env.port))
        s.sendall(hello("held-%d" % i))
        check(read_frame(s)[0] == T_WELCOME, "no WELCOME for held-%d" % i)
        held.append(s)
    extra = socket.create_connection(("127.0.0.1", env.port))
    check(wait_closed(extra), "a fourth connection was kept")
    check(sum(w["refused"] for w in env.api("/api/v1/workers")) == 1, "refused counter")
    held.pop().close()
    wait_for(lambda: sum(env.workers()) == 2, 10, "a slot freed", [env.server])
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(hello("late"))
    check(read_frame(s)[0] == T_WELCOME, "no WELCOME once a slot was free")
    for h in held + [s]:
        h.close()


def test_peer_that_never_reads_is_paused_then_closed(env):
    env.start_server(timeout=2.0, extra={"limits": {"max_output": 4096}})
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", env.port))
    s.sendall(hello("deaf"))
    s.settimeout(2)
    burst = heartbeat() * 1000  # each one is echoed, and we never read
    deadline = time.monotonic() + 60 * SLOW
    stalled = 0
    # Keep talking without listening until the kernel's buffers are full,
    # the server's queue passes max_output, and it gives up on us.
    while not stalled and time.monotonic() < deadline:
        try:
            s.sendall(burst)
        except (socket.timeout, ConnectionError):
            pass  # the server stopped reading us, or closed
        stalled = sum(w["stalled"] for w in env.api("/api/v1/workers"))
    check(sum(w["throttled"] for w in env.api("/api/v1/workers")) >= 1,
          "reading never paused for a peer that does not read")
    check(stalled == 1, "the session of a peer that reads nothing was never closed")
    check("has not read for" in env.server.log_text(), "no log line")
    s.close()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_descriptor_exhaustion_pauses_accepting(env):
    # 64 descriptors: the server's own files take some, connections the rest.
    env.start_server(workers=1, nofile=64, extra={"limits": {"hello_timeout": 60.0}})
    witness = env.start_agent("witness")
    env.wait_hosts_up(["witness"])
    held = []
    deadline = time.monotonic() + 20
    while "Too many open files" not in env.server.log_text():
        check(time.monotonic() < deadline, "accept never ran out of descriptors")
        held.append(socket.create_connection(("127.0.0.1", env.port)))
        if len(held) % 10 == 0:
            time.sleep(0.05)
    # Out of descriptors: the listener pauses instead of spinning on accept.
    c0, t0 = cpu_seconds(env.server.pid), time.monotonic()
    time.sleep(2.0)
    busy = (cpu_seconds(env.server.pid) - c0) / (time.monotonic() - t0)
    check(busy < 0.5, "the server spun at %.0f%% CPU with no descriptors" % (busy * 100))
    for s in held:
        s.close()
    # Descriptors come back; the listener resumes by itself.
    def welcomed():
        s = socket.create_connection(("127.0.0.1", env.port), timeout=2)
        s.sendall(hello("after-emfile"))
        ok = read_frame(s, timeout=2)
        s.close()
        return ok and ok[0] == T_WELCOME
    wait_for(welcomed, 20, "a session after the descriptors came back", [env.server])
    # The session that was there all along was kept.
    witness.check_alive()
    check(env.hosts()["witness"]["state"] == "up", "the existing session was lost")
    events = open(os.path.join(env.data_dir, "events.csv")).read()
    check(events.count(",witness,up,") == 1 and ",witness,down," not in events,
          "the witness had to reconnect: %s" % events)


if __name__ == "__main__":
    run_tests(globals())
