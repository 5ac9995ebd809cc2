#!/usr/bin/env python3
"""Python peer of vigild for the end-to-end benchmark: the same job, written the way a competent
Python engineer would, so vigild's throughput and CPU cost can be compared with it.

Pipeline, one batch at a time:
  1. confluent-kafka Consumer.consume(num_messages=--batch, timeout=--poll-s) on topic
     behavior-events (auto commit off; on assignment it seeks to the offsets stored in peer_offsets).
  2. Each value is Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro body):
     the 5-byte header is checked and stripped, the body decoded with fastavro.schemaless_reader
     against ingest/schemas/BehaviorEvent.avsc. Undecodable messages are skipped (counted, their
     offsets still advance).
  3. Features (D = 27 columns, in this order; close in spirit to vigil's built-in spec in
     docs/features.md, not equal to it):
       amount.log        sign(x)*ln(1+|x|) clipped to +-20 (0 when absent)
       has_amount        1 when amount is present
       event_type#0..7   one-hot of FNV-1a-64(value) mod 8
       channel#0..7      one-hot of FNV-1a-64(value) mod 8 (all zero when absent)
       hour.sin/cos      event time's position in the UTC day on the circle
       user.count.1m/1h, user.sum.amount.1m/1h
                         sliding windows over event time (per-user deques, the event counts
                         itself; exact windows, not vigil's six buckets)
       user.since_last_s seconds since the user's newest earlier event (0 if not later / new)
       user.new          1 for the user's first event
       device.count.1h   sliding 1 h count per device_id (0 when absent)
     Per-entity state lives in Python dicts (unbounded; nothing is checkpointed).
  4. Score: MLP [27, 64, 32, 1], ReLU, sigmoid, as batched numpy float32 matmuls over the batch.
     The count/sum/seconds columns go through log1p before the model (the stored vector is raw).
     OPENBLAS_NUM_THREADS defaults to 1 (set before numpy loads; see below).
     Weights are RANDOM with a fixed seed (--seed); models/risk.safetensors is 70 wide, so it
     does not fit this vector.
  5. Write: one PostgreSQL transaction per batch (psycopg 3): COPY peer_scores ... FROM STDIN with
     write_row, plus an upsert of each partition's next offset into peer_offsets; commit; then
     consumer.commit(asynchronous=True).

Exits when --count events have been written, or after --idle-s seconds with no message, printing
  peer events=N seconds=S events_per_s=R cpu_s=C
where seconds runs from the first non-empty batch to the last commit and cpu_s is this process's
user+sys CPU time (librdkafka's threads included) over its whole life.
"""
import argparse
import io
import math
import os
import resource
import sys
import time
from collections import deque

# The matmuls are tiny (batch x 27 x 64): OpenBLAS's worker threads only spin on them, which
# doubled the process's CPU time for the same throughput on a 2-core machine. One thread unless
# the caller says otherwise (must be set before numpy is imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import fastavro
import numpy as np
import psycopg
from confluent_kafka import Consumer, KafkaError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOPIC = "behavior-events"
D = 27
MIN_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000

DDL = """
CREATE TABLE IF NOT EXISTS peer_scores (
    topic        text             NOT NULL,
    partition    integer          NOT NULL,
    kafka_offset bigint           NOT NULL,
    event_id     text             NOT NULL,
    user_id      text             NOT NULL,
    event_time   timestamptz      NOT NULL,
    amount       double precision,
    score        real             NOT NULL,
    features     real[]           NOT NULL,
    PRIMARY KEY (topic, partition, kafka_offset)
);
CREATE TABLE IF NOT EXISTS peer_offsets (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""
UPSERT = """INSERT INTO peer_offsets (topic, partition, next_offset) VALUES (%s, %s, %s)
            ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset"""
COPY = ("COPY peer_scores (topic, partition, kafka_offset, event_id, user_id, event_time, amount,"
        " score, features) FROM STDIN")


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Bucketer:
    """FNV-1a-64(value) mod n, memoised per distinct value."""

    def __init__(self, n):
        self.n, self.memo = n, {}

    def __call__(self, v):
        b = self.memo.get(v)
        if b is None:
            b = self.memo[v] = fnv1a64(v) % self.n
        return b


class Window:
    """Sliding count and sum over event time for one entity: events in (watermark - W, watermark]."""
    __slots__ = ("w", "q", "sum")

    def __init__(self, w):
        self.w, self.q, self.sum = w, deque(), 0.0

    def add(self, t, x, wm):
        self.q.append((t, x))
        self.sum += x
        lo = wm - self.w
        q = self.q
        while q and q[0][0] <= lo:
            self.sum -= q.popleft()[1]
        return len(q), self.sum


class UserState:
    __slots__ = ("wm", "m1", "h1")

    def __init__(self):
        self.wm, self.m1, self.h1 = None, Window(MIN_MS), Window(HOUR_MS)


class Model:
    def __init__(self, seed, dims=(D, 64, 32, 1)):
        rng = np.random.default_rng(seed)
        self.layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            w = (rng.standard_normal((a, b)) * math.sqrt(2.0 / a)).astype(np.float32)
            self.layers.append((w, np.zeros(b, np.float32)))

    def __call__(self, x):
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                np.maximum(x, 0, out=x)
        return 1.0 / (1.0 + np.exp(-x[:, 0]))


class Peer:
    def __init__(self, args):
        self.args = args
        with open(os.path.join(args.schema_dir, "BehaviorEvent.avsc")) as f:
            self.schema = fastavro.parse_schema(__import__("json").load(f))
        self.users, self.devices = {}, {}
        self.et_bucket, self.ch_bucket = Bucketer(8), Bucketer(8)
        self.model = Model(args.seed)
        self.malformed = 0
        # Columns that go through log1p before the model (counts, sums, seconds).
        self.log_cols = np.array([20, 21, 22, 23, 24, 26])

    def decode(self, value):
        if value is None or len(value) < 5 or value[0] != 0:
            return None
        try:
            return fastavro.schemaless_reader(io.BytesIO(value[5:]), self.schema)
        except Exception:
            return None

    def features(self, events):
        n = len(events)
        f = np.zeros((n, D), np.float32)
        users, devices = self.users, self.devices
        for i, e in enumerate(events):
            ms = e["_ms"]
            amt = e["amount"]
            row = f[i]
            if amt is not None:
                row[0] = max(-20.0, min(20.0, math.copysign(math.log1p(abs(amt)), amt)))
                row[1] = 1.0
            row[2 + self.et_bucket(e["event_type"])] = 1.0
            ch = e["channel"]
            if ch is not None:
                row[10 + self.ch_bucket(ch)] = 1.0
            u = users.get(e["user_id"])
            if u is None:
                u = users[e["user_id"]] = UserState()
                row[25] = 1.0  # user.new; since_last stays 0
                u.wm = ms
            else:
                if ms > u.wm:
                    row[24] = (ms - u.wm) / 1000.0
                    u.wm = ms
            a = amt if amt is not None else 0.0
            row[20], row[22] = u.m1.add(ms, a, u.wm)
            row[21], row[23] = u.h1.add(ms, a, u.wm)
            dev = e["device_id"]
            if dev is not None:
                d = devices.get(dev)
                if d is None:
                    d = devices[dev] = [ms, Window(HOUR_MS)]
                elif ms > d[0]:
                    d[0] = ms
                row[26] = d[1].add(ms, 0.0, d[0])[0]
        ms = np.fromiter((e["_ms"] for e in events), np.int64, n)
        ang = (ms % DAY_MS).astype(np.float64) * (2 * math.pi / DAY_MS)
        f[:, 18] = np.sin(ang)
        f[:, 19] = np.cos(ang)
        return f

    def on_assign(self, consumer, partitions):
        with self.conn.cursor() as cur:
            cur.execute("SELECT partition, next_offset FROM peer_offsets WHERE topic = %s", (TOPIC,))
            stored = dict(cur.fetchall())
        self.conn.commit()
        for p in partitions:
            if p.partition in stored:
                p.offset = stored[p.partition]
        consumer.assign(partitions)

    def run(self):
        a = self.args
        self.conn = psycopg.connect(a.dsn)
        with self.conn.cursor() as cur:
            cur.execute(DDL)
        self.conn.commit()
        consumer = Consumer({
            "bootstrap.servers": a.brokers,
            "group.id": a.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        })
        consumer.subscribe([TOPIC], on_assign=self.on_assign)
        written = 0
        t_first = t_last = None
        last_msg = time.monotonic()
        try:
            while written < a.count:
                msgs = consumer.consume(num_messages=a.batch, timeout=a.poll_s)
                if not msgs:
                    if time.monotonic() - last_msg > a.idle_s:
                        print(f"# peer: idle for {a.idle_s}s, stopping", file=sys.stderr)
                        break
                    continue
                last_msg = time.monotonic()
                if t_first is None:
                    t_first = time.perf_counter()
                events, metas, next_off = [], [], {}
                for m in msgs:
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            print(f"# peer: kafka error {m.error()}", file=sys.stderr)
                        continue
                    p, off = m.partition(), m.offset()
                    next_off[p] = off + 1
                    e = self.decode(m.value())
                    if e is None:
                        self.malformed += 1
                        continue
                    t = e["event_time"]
                    e["_ms"] = int(t.timestamp() * 1000)
                    events.append(e)
                    metas.append((p, off))
                if not next_off:
                    continue
                if events:
                    feats = self.features(events)
                    x = feats.copy()
                    x[:, self.log_cols] = np.log1p(np.maximum(x[:, self.log_cols], 0))
                    scores = self.model(x)
                    feat_lists = feats.tolist()
                    score_list = scores.tolist()
                with self.conn.cursor() as cur:
                    if events:
                        with cur.copy(COPY) as copy:
                            for e, (p, off), s, fv in zip(events, metas, score_list, feat_lists):
                                copy.write_row((TOPIC, p, off, e["event_id"], e["user_id"],
                                                e["event_time"], e["amount"], s, fv))
                    cur.executemany(UPSERT, [(TOPIC, p, o) for p, o in next_off.items()])
                self.conn.commit()
                consumer.commit(asynchronous=True)
                written += len(events)
                t_last = time.perf_counter()
        finally:
            consumer.close()
            self.conn.close()
        secs = (t_last - t_first) if t_first is not None and t_last is not None else 0.0
        ru = resource.getrusage(resource.RUSAGE_SELF)
        cpu = ru.ru_utime + ru.ru_stime
        rate = written / secs if secs > 0 else 0.0
        if self.malformed:
            print(f"# peer: {self.malformed} undecodable messages skipped", file=sys.stderr)
        print(f"peer events={written} seconds={secs:.3f} events_per_s={rate:.0f} cpu_s={cpu:.2f}")
        return 0 if written >= a.count else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", required=True, help="Kafka bootstrap servers")
    ap.add_argument("--group", default="vigil-peer", help="consumer group id")
    ap.add_argument("--dsn", required=True, help="PostgreSQL conninfo")
    ap.add_argument("--count", type=int, required=True, help="stop after this many events written")
    ap.add_argument("--idle-s", type=float, default=30.0, help="stop after this long with no message")
    ap.add_argument("--batch", type=int, default=1000, help="messages per consume() batch")
    ap.add_argument("--poll-s", type=float, default=0.5, help="consume() timeout in seconds")
    ap.add_argument("--seed", type=int, default=1, help="seed of the random MLP weights")
    ap.add_argument("--schema-dir", default=os.path.join(REPO_ROOT, "ingest", "schemas"))
    sys.exit(Peer(ap.parse_args()).run())


if __name__ == "__main__":
    main()
