"""Exactly once on the server's side, driven over loopback with hand-built
frames: ACKs name the run's highest stored batch and never go down, seq 0
and an unknown version are refused with BYE, and resends store nothing."""

import os
import socket
import struct
import time

from harness import (SLOW, T_ACK, T_BYE, T_METRICS, T_WELCOME, check, frame, hello, read_csv,
                     read_frame, run_tests, wait_closed)

T_ALARM, T_ALARM_ACK = 9, 10


def pstr(s):
    b = s.encode()
    return struct.pack(">B", len(b)) + b


def batch(seq, t):
    """One METRICS batch: a load row at time t."""
    p = struct.pack(">QH", seq, 1) + pstr("load") + pstr("") + struct.pack(">B", 1)
    p += pstr("load1") + struct.pack(">I", 1) + struct.pack(">Q", t) + pstr("")
    p += struct.pack(">d", float(seq))
    return frame(T_METRICS, p)


def alarm(seq, level, message="fan"):
    p = struct.pack(">QQBB", seq, int(time.time() * 1000), level, 1)
    return frame(T_ALARM, p + pstr("fan") + pstr(message))


def session(env, name="h1", run_id=7):
    s = socket.create_connection(("127.0.0.1", env.port))
    s.sendall(hello(name, run_id=run_id))
    f = read_frame(s)
    check(f is not None and f[0] == T_WELCOME, "no WELCOME: %r" % (f,))
    return s


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


if __name__ == "__main__":
    run_tests(globals())
