#!/usr/bin/env python3
"""Physical floor of a message's one-way trip through an MQTT bridge (A -> B).

A minimal raw-socket MQTT 3.1.1 client (standard library only, TCP_NODELAY on
both sockets): one connection to broker A publishes, one connection to broker B
subscribes to the topic as the bridge maps it there. Each iteration publishes one
message on A and waits until B delivered it and every acknowledgement flow of the
iteration is over, before the next one starts (sequential, as the probes are).
Both instants are time.perf_counter_ns() of this process.

Two figures per iteration (the output shape of ../shared/bench/rtt_floor.py, so
the same readers work; "rtt" here is the one-way time):
  rtt      PUBLISH written on A -> the PUBLISH delivered by B
  complete PUBLISH written on A -> all handshakes of the iteration finished
           (QoS 1: + PUBACK from A, PUBACK to B; QoS 2: + PUBREC/PUBREL/PUBCOMP
            with A and with B)

Usage:
  bridge_floor.py --port-a 1883 --port-b 1884 [--topic T] [--remote-topic R]
                  [--qos 0|1|2|all] [-n 2000] [--warmup 100] [--json]

Why sequential: mosquitto 2.0.11 does not set TCP_NODELAY on a bridge's outgoing
socket (set_tcp_nodelay is for listeners), so a PUBLISH written behind an earlier
unacknowledged one waits for B's delayed ACK (~40 ms on Linux). --in-flight 2
keeps two messages open at a time (the next one is published before the last one
arrived), to show that cost.

Every loop is bounded: -n iterations, --timeout seconds per wait (default 2 s)
and --max-seconds per QoS; the script gives up if a broker stops answering.
"""
import argparse
import json
import os
import select
import socket
import struct
import sys
import time

# MQTT 3.1.1 control packet types (section 2.2.1)
T_CONNECT, T_CONNACK, T_PUBLISH, T_PUBACK = 1, 2, 3, 4
T_PUBREC, T_PUBREL, T_PUBCOMP = 5, 6, 7
T_SUBSCRIBE, T_SUBACK, T_DISCONNECT = 8, 9, 14


def remaining_length(n):
    """The variable-length 'remaining length' field (section 2.2.3)."""
    out = bytearray()
    while True:
        digit, n = n & 0x7F, n >> 7
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s):
    raw = s.encode()
    return len(raw).to_bytes(2, "big") + raw


def frame(kind, flags, body=b""):
    return bytes([kind << 4 | flags]) + remaining_length(len(body)) + body


class Timeout(Exception):
    pass


class Peer:
    """One MQTT connection: blocking writes, reads through a buffer split into packets."""

    def __init__(self, host, port, client_id, nodelay, timeout):
        self.name = "%s:%d" % (host, port)
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inbox = bytearray()
        # protocol level 4 (3.1.1), clean session, keep-alive 60 s
        self.write(frame(T_CONNECT, 0, utf8("MQTT") + b"\x04\x02" + (60).to_bytes(2, "big") + utf8(client_id)))
        kind, _, body = self.wait_packet(time.monotonic() + timeout)
        if kind != T_CONNACK or body[1:2] != b"\x00":
            raise RuntimeError("%s refused the connection: %r" % (self.name, bytes(body)))

    def write(self, data):
        self.sock.sendall(data)

    def packet(self):
        """The next whole packet in the buffer as (type, flags, body), or None."""
        length, shift = 0, 0
        for i in range(1, min(len(self.inbox), 5)):
            length |= (self.inbox[i] & 0x7F) << shift
            shift += 7
            if self.inbox[i] & 0x80:
                continue
            end = i + 1 + length
            if len(self.inbox) < end:
                return None
            head, body = self.inbox[0], bytes(self.inbox[i + 1:end])
            del self.inbox[:end]
            return head >> 4, head & 0x0F, body
        return None

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("%s closed the connection" % self.name)
        self.inbox += chunk

    def wait_packet(self, deadline):
        while True:
            p = self.packet()
            if p is not None:
                return p
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise Timeout("no answer from %s" % self.name)
            self.fill()

    def subscribe(self, topic_filter, qos):
        self.write(frame(T_SUBSCRIBE, 0x02, b"\x00\x01" + utf8(topic_filter) + bytes([qos])))
        deadline = time.monotonic() + self.timeout
        while True:
            kind, _, body = self.wait_packet(deadline)
            if kind == T_SUBACK:
                if body[2] >= 0x80:
                    raise RuntimeError("%s refused the subscription to %s" % (self.name, topic_filter))
                return body[2]

    def leave(self):
        try:
            self.write(frame(T_DISCONNECT, 0))
        except OSError:
            pass
        self.sock.close()


def next_packet(peers, deadline):
    """(peer, packet) from whichever connection has a whole packet first."""
    while True:
        for p in peers:
            pkt = p.packet()
            if pkt is not None:
                return p, pkt
        left = deadline - time.monotonic()
        ready = select.select([p.sock for p in peers], [], [], max(left, 0))[0] if left > 0 else []
        if not ready:
            raise Timeout("no answer from %s" % " or ".join(p.name for p in peers))
        for p in peers:
            if p.sock in ready:
                p.fill()


class Trip:
    """What one message still waits for."""

    def __init__(self, seq, payload, qos, written):
        self.seq, self.payload, self.written = seq, payload, written
        self.acked = qos == 0          # A's PUBACK (QoS 1) or PUBCOMP (QoS 2)
        self.arrived = None            # perf_counter_ns of B's delivery
        self.released = True           # QoS 2: B's PUBREL for the delivery answered
        self.b_pid = None              # B's packet id of the delivery

    def over(self):
        return self.acked and self.arrived is not None and self.released


def measure(args, qos):
    run = os.urandom(4).hex()
    tag = "%d-%d-%s" % (os.getpid(), qos, run)
    topic = args.topic or "bridgefloor/%s" % tag
    remote = args.remote_topic or topic
    b = Peer(args.host, args.port_b, "bridgefloor-b-" + tag, not args.no_nodelay, args.timeout)
    a = Peer(args.host, args.port_a, "bridgefloor-a-" + tag, not args.no_nodelay, args.timeout)
    granted = b.subscribe(remote, qos)
    if granted != qos:
        raise RuntimeError("%s granted QoS %d instead of %d" % (b.name, granted, qos))
    # run id + sequence: a message from an earlier run (a bridge may replay) never counts
    marker = b"bf" + bytes.fromhex(run)
    filler = b"." * max(0, args.payload - len(marker) - 8)
    total = args.warmup + args.n
    one_way, complete = [], []
    open_trips = {}                    # seq -> Trip
    by_pid = {}                        # A's packet id -> seq
    stop_at = time.monotonic() + args.max_seconds
    seq = 0
    while seq < total or open_trips:
        now = time.monotonic()
        if now > stop_at:
            print("stopping early: --max-seconds reached after %d messages" % seq, file=sys.stderr)
            break
        # sequential (--in-flight 1): the next message once the last one is over
        if seq < total and len(open_trips) < args.in_flight:
            payload = marker + seq.to_bytes(8, "big") + filler
            pid = seq % 65535 + 1
            header = utf8(topic) + (pid.to_bytes(2, "big") if qos else b"")
            trip = Trip(seq, payload, qos, time.perf_counter_ns())
            a.write(frame(T_PUBLISH, qos << 1, header + payload))
            open_trips[seq], by_pid[pid] = trip, seq
            seq += 1
            continue
        peer, (kind, flags, body) = next_packet([a, b], now + args.timeout)
        if kind == T_PUBLISH and peer is b:
            at = time.perf_counter_ns()
            q = (flags >> 1) & 3
            off = 2 + int.from_bytes(body[:2], "big")
            pid = int.from_bytes(body[off:off + 2], "big") if q else None
            data = body[off + (2 if q else 0):]
            if q == 1:
                b.write(frame(T_PUBACK, 0, pid.to_bytes(2, "big")))
            elif q == 2:
                b.write(frame(T_PUBREC, 0, pid.to_bytes(2, "big")))
            if data[:len(marker)] == marker:
                s = int.from_bytes(data[len(marker):len(marker) + 8], "big")
                t = open_trips.get(s)
                if t is not None and t.arrived is None:
                    t.arrived = at
                    if q == 2:
                        t.released = False
                        t.b_pid = pid
        elif kind == T_PUBREL and peer is b:
            b.write(frame(T_PUBCOMP, 0, body[:2]))
            pid = int.from_bytes(body[:2], "big")
            for t in open_trips.values():
                if not t.released and t.b_pid == pid:
                    t.released = True
                    break
        elif kind == T_PUBACK and peer is a and qos == 1:
            s = by_pid.pop(int.from_bytes(body[:2], "big"), None)
            if s in open_trips:
                open_trips[s].acked = True
        elif kind == T_PUBREC and peer is a and qos == 2:
            a.write(frame(T_PUBREL, 0x02, body[:2]))
        elif kind == T_PUBCOMP and peer is a and qos == 2:
            s = by_pid.pop(int.from_bytes(body[:2], "big"), None)
            if s in open_trips:
                open_trips[s].acked = True
        # anything else (PINGRESP, a stranger's message) is ignored
        for s in [s for s, t in open_trips.items() if t.over()]:
            t = open_trips.pop(s)
            if s >= args.warmup:
                one_way.append((t.arrived - t.written) / 1000.0)
                complete.append((time.perf_counter_ns() - t.written) / 1000.0)
            if args.interval and not open_trips:
                time.sleep(args.interval)
    a.leave()
    b.leave()
    return stats(one_way), stats(complete)


def percentile(ordered, p):
    """Linear interpolation between closest ranks (as rtt_floor.py)."""
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def stats(values):
    v = sorted(values)
    r1 = lambda x: round(x, 1) if v else None
    return {
        "n": len(v),
        "min_us": r1(v[0] if v else 0),
        "p50_us": round(percentile(v, 0.50), 1),
        "p90_us": round(percentile(v, 0.90), 1),
        "p99_us": round(percentile(v, 0.99), 1),
        "max_us": r1(v[-1] if v else 0),
        "mean_us": r1(sum(v) / len(v) if v else 0),
        "stalls_over_20ms": sum(x > 20000 for x in v),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-a", type=int, required=True, help="broker A (published on)")
    ap.add_argument("--port-b", type=int, required=True, help="broker B (subscribed on)")
    ap.add_argument("--topic", default="", help="topic published on A [bridgefloor/<pid>-<qos>-<random>]")
    ap.add_argument("--remote-topic", default="", help="the topic as the bridge maps it on B [--topic]")
    ap.add_argument("--qos", default="all", help="0, 1, 2 or all")
    ap.add_argument("-n", type=int, default=2000, help="measured messages")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--payload", type=int, default=64, help="payload bytes (>= 14)")
    ap.add_argument("--no-nodelay", action="store_true", help="leave Nagle on for our sockets")
    ap.add_argument("--in-flight", type=int, default=1,
                    help="messages open at a time (1: sequential, the fair comparison)")
    ap.add_argument("--interval", type=float, default=0.0, help="sleep seconds between messages")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds per wait for a packet")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="hard bound on one QoS run")
    ap.add_argument("--label", default="", help="free text copied into the output")
    ap.add_argument("--json", action="store_true", help="one JSON object per QoS")
    args = ap.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        ap.error("loopback only: --host 127.0.0.1")
    if not 1 <= args.in_flight <= 100:
        ap.error("--in-flight must be 1..100")
    if args.n < 1 or args.warmup < 0:
        ap.error("-n must be >= 1 and --warmup >= 0")
    if args.qos not in ("0", "1", "2", "all"):
        ap.error("--qos must be 0, 1, 2 or all")
    for q in [0, 1, 2] if args.qos == "all" else [int(args.qos)]:
        try:
            one_way, comp = measure(args, q)
        except (OSError, TimeoutError, RuntimeError, Timeout) as e:
            # A refused port, a broker that stops answering, a bridge that does not carry the
            # topic (nothing arrives on B within --timeout): one line, exit 1.
            sys.exit("bridge_floor: qos %d: %s: %s" % (q, type(e).__name__, e))
        if args.json:
            print(json.dumps({"label": args.label, "port": args.port_a, "to_port": args.port_b, "qos": q,
                              "in_flight": args.in_flight, "client_nodelay": not args.no_nodelay,
                              "rtt": one_way, "complete": comp}))
        else:
            for name, s in (("one-way", one_way), ("complete", comp)):
                print("%s qos=%d %-8s n=%d min=%sus p50=%.1fus p90=%.1fus p99=%.1fus max=%sus mean=%sus stalls>20ms=%d"
                      % (args.label, q, name, s["n"], s["min_us"], s["p50_us"], s["p90_us"], s["p99_us"],
                         s["max_us"], s["mean_us"], s["stalls_over_20ms"]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
