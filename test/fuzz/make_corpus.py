#!/usr/bin/env python3
"""Write the seed corpora in corpus/<target>/: valid inputs of every kind,
from which libFuzzer mutates. Run once after a format change; the files
are committed."""

import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import frame, heartbeat, hello, pstr  # noqa: E402

FIX = os.path.join(HERE, "..", "fixtures")


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def metrics(seq):
    p = struct.pack(">QH", seq, 2)
    p += pstr("cpu") + pstr("") + struct.pack(">B", 2) + pstr("usage") + pstr("user")
    p += struct.pack(">I", 1) + struct.pack(">Q", 1700000000000) + pstr("")
    p += struct.pack(">dd", 12.5, 3.25)
    p += pstr("disk") + pstr("mount") + struct.pack(">B", 1) + pstr("used_pct")
    p += struct.pack(">I", 2)
    for m, v in (("/", 40.0), ("/boot/firmware", 12.0)):
        p += struct.pack(">Q", 1700000000000) + pstr(m) + struct.pack(">d", v)
    return frame(4, p)


def main():
    frames = {
        "hello": hello("pi-1", boot_id="0b1e6c58-7d0c-4c57-9a53-2c1f52a3d8b4", run_id=7),
        "welcome": frame(2, struct.pack(">IIB", 10000, 3000, 2) + pstr("cpu") + pstr("mem")),
        "heartbeat": heartbeat(),
        "metrics": metrics(42),
        "ack": frame(5, struct.pack(">Q", 42)),
        "poll": frame(6, struct.pack(">I", 1)),
        "bye": frame(7, pstr("agent stopping")),
        "challenge": frame(8, bytes(range(32))),
    }
    for name, f in frames.items():
        put("frame", name, f)
        put("payload", name, bytes([f[3] - 1]) + f[8:])
    put("payload", "hello-auth", bytes([0]) + hello("pi-2", auth=bytes(32))[8:])
    put("frame", "two", frames["hello"] + frames["metrics"])
    # Sessions as the server sees them: HELLO, then batches and alarms.
    def alarm(seq, level, name, message):
        return frame(9, struct.pack(">QQBB", seq, 1700000000500, level, 1) + pstr(name) +
                     pstr(message))
    temp = struct.pack(">QH", 3, 1) + pstr("temp") + pstr("zone") + struct.pack(">B", 1)
    temp += pstr("celsius") + struct.pack(">I", 2)
    for t, v in ((1700000001000, 85.0), (1700000002000, 1e308)):
        temp += struct.pack(">Q", t) + pstr("cpu-thermal, \"soc\" caf\u00e9") + struct.pack(">d", v)
    put("server", "session", frames["hello"] + metrics(1) + metrics(2) + frame(4, temp))
    put("server", "alarms", frames["hello"] + alarm(1, 2, "fan", "fan stopped") +
        alarm(2, 0, "fan", "fan ok") + metrics(1) + frames["heartbeat"])
    put("server", "two-hosts", frames["hello"] + metrics(1) + hello("pi-2", run_id=9) +
        metrics(1) + frames["bye"])
    for rel in ["pi4/proc/stat", "pi4/proc/meminfo", "pi4/proc/loadavg", "pi4/proc/mounts",
                "pi4/proc/net/dev", "pi4/proc/uptime", "pi4/etc/os-release",
                "pi4/sys/class/thermal/thermal_zone0/temp", "wrap/proc/net/dev"]:
        put("proc", rel.replace("/", "_"), open(os.path.join(FIX, rel), "rb").read())
    put("config", "pimon.cfg", open(os.path.join(HERE, "..", "..", "etc", "pimon.cfg"), "rb").read())
    for f in ["good_custom.cfg", "bad_syntax.cfg", "bad_unknown_heartbeat.cfg"]:
        put("config", f, open(os.path.join(FIX, "config", f), "rb").read())
    spool = b"PMSPOOL1" + struct.pack(">IIQQ", 1, 0, 7, 0)
    for seq in (41, 42):
        data = metrics(seq)
        body = struct.pack(">Q", seq) + data
        spool += struct.pack(">II", len(data), zlib.crc32(body)) + body
    put("records", "spool", spool)
    slot = struct.pack(">IIQQQI", 0x504D5354, 1, 3, 7, 42, 2)
    for name, size in (("cpu", 1234), ("disk", 5678)):
        slot += name.encode().ljust(32, b"\0") + struct.pack(">Q", size)
    slot += struct.pack(">I", zlib.crc32(slot))
    put("records", "state", slot.ljust(4096, b"\0"))


if __name__ == "__main__":
    main()
