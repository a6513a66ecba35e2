#!/usr/bin/env python3
"""Send gauge values to a collectd network plugin at a steady rate, in
collectd's binary network protocol (parts: host, time_hr, interval_hr,
plugin, plugin_instance, type, values). Each value list carries one gauge;
each (host, plugin_instance) is sent at most once per packet and with a
later time each packet, so collectd keeps every one. Packets go out every
millisecond in equal shares, not in bursts.

Usage: bench/collectd_send.py --port P --rate VALUES_PER_S --seconds S
         [--hosts H] [--instances M] [--prefix NAME]
Prints the number of values sent."""

import argparse
import socket
import struct
import sys
import time

PART_HOST, PART_TIME_HR, PART_PLUGIN, PART_PLUGIN_INSTANCE = 0x0000, 0x0008, 0x0002, 0x0003
PART_TYPE, PART_VALUES, PART_INTERVAL_HR = 0x0004, 0x0006, 0x0009
GAUGE = 1
MAX_PACKET = 1452


def part_str(kind, s):
    b = s.encode() + b"\0"
    return struct.pack(">HH", kind, 4 + len(b)) + b


def part_u64(kind, v):
    return struct.pack(">HHQ", kind, 12, v)


def part_gauge(v):
    # Gauges are little-endian doubles; the rest of the protocol is big-endian.
    return struct.pack(">HHHB", PART_VALUES, 4 + 2 + 1 + 8, 1, GAUGE) + struct.pack("<d", v)


def to_hr(t):
    """Seconds to collectd's high-resolution time: 2^-30 s units."""
    return int(t * (1 << 30))


class Sender:
    def __init__(self, port, hosts, instances, prefix):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addr = ("127.0.0.1", port)
        # Per host, the packets that together send each instance once: the
        # time part is patched at send time (its offset is kept).
        self.packets = []
        for h in range(hosts):
            head = part_str(PART_HOST, "%s%d" % (prefix, h))
            time_off = len(head) + 4
            head += part_u64(PART_TIME_HR, 0) + part_u64(PART_INTERVAL_HR, to_hr(1.0))
            head += part_str(PART_PLUGIN, "bench") + part_str(PART_TYPE, "gauge")
            body, count = b"", 0
            for i in range(instances):
                vl = part_str(PART_PLUGIN_INSTANCE, "i%d" % i) + part_gauge(float(i) + 0.25)
                if len(head) + len(body) + len(vl) > MAX_PACKET:
                    self.packets.append((bytearray(head + body), time_off, count))
                    body, count = b"", 0
                body += vl
                count += 1
            if count:
                self.packets.append((bytearray(head + body), time_off, count))
        self.next = 0
        self.last_hr = 0
        self.sent = 0

    def send_one(self):
        pkt, off, count = self.packets[self.next]
        self.next = (self.next + 1) % len(self.packets)
        hr = max(to_hr(time.time()), self.last_hr + 1)
        self.last_hr = hr
        struct.pack_into(">Q", pkt, off, hr)
        self.sock.sendto(pkt, self.addr)
        self.sent += count
        return count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True, help="values per second")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--instances", type=int, default=20)
    ap.add_argument("--prefix", default="cd-")
    a = ap.parse_args()
    s = Sender(a.port, a.hosts, a.instances, a.prefix)
    total = int(a.rate * a.seconds)
    t0 = time.monotonic()
    while s.sent < total:
        # Catch up to where the schedule says we should be, then sleep 1 ms.
        due = min(total, int((time.monotonic() - t0) * a.rate))
        while s.sent < due:
            s.send_one()
        time.sleep(0.001)
    print(s.sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
