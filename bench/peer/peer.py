#!/usr/bin/env python3
"""Python peer of vigild for the end-to-end benchmark: the same job, written the way a competent
Python engineer would, so vigild's throughput and CPU cost can be compared with it.

Pipeline, one batch at a time:
  1. confluent-kafka Consumer.consume(num_messages=--batch, timeout=--poll-s) on topic
     behavior-events (auto commit off; on assignment it seeks to the offsets stored in
     peer.kafka_offsets for its group).
  2. Each value is Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro body):
     the body is decoded with fastavro.schemaless_reader, the writer schema read from
     <schema-dir>/<id>.avsc (as vigild does without a registry) and resolved to
     BehaviorEvent.avsc when it differs. Undecodable messages are skipped (counted, their offsets
     still advance).
  3. Features: vigild's built-in spec (docs/features.md, "The built-in spec"): the same 70
     columns in the same order, with the semantics of "Exact semantics": per-entity state per
     partition and entity type (user, device, merchant, ip), event time, watermarks, windows of
     six epoch-aligned buckets with 16-bit saturating counts and float32 sums, late events,
     since_last/new, geo velocity, Welford z-score, novelty over 32-bit hashes, TTL 30 days.
     Stateful columns are computed per event in plain Python (dicts, __slots__ classes, bucket
     counters in array.array); the stateless ones (numeric, one-hot, hour of day) with numpy
     over the batch. The vectors equal vigild's bit for bit (checked event by event).
  4. Score: models/risk.safetensors (the file vigild loads with --set model.risk_path=...),
     parsed with numpy; the same normalisation ((x - mean) * (1/std) in float32, clipped to
     +-vigil.norm_clip), ReLU hidden layers and sigmoid output, as batched float32 matmuls.
     Scores agree with vigild's to 4e-7: another OpenBLAS build sums in another order, and
     vigild's expf is its own polynomial. OPENBLAS_NUM_THREADS defaults to 1 (set before numpy
     loads; see below).
  5. Write: one PostgreSQL transaction per batch (psycopg 3): binary COPY into peer.risk_scores
     (the shape of vigil.risk_scores: same columns, types and indexes; every column vigild
     fills, filled the same way), an upsert of each partition's next offset into
     peer.kafka_offsets; commit; then consumer.commit(asynchronous=True). Binary because the 70
     floats a row dominate the row: text COPY cost 123 us a row against 17.5 in binary, and
     psycopg's own real[] dumper, element by element in Python, 40 (so the vectors are encoded
     by numpy, a batch at a time, for a four-line psycopg Dumper).

How it differs from vigild, on purpose or for brevity:
  - The entity state is not checkpointed: after a restart the peer resumes at its stored offsets
    with empty state, so later vectors differ from an uninterrupted run (vigild replays from its
    checkpoint). State is kept for every partition ever assigned (the benchmark has one consumer).
  - No bound on entities: vigild evicts the least recently seen entity beyond 1,000,000 per
    partition and entity type (features.max_entities); the benchmark stays far below that.
  - Entities are keyed by their key string; vigild keys them by the 64-bit FNV-1a hash of it, so
    the two differ only if two keys of a partition share a 64-bit hash.
  - No dead-letter table and no validation beyond what fastavro checks (vigild refuses empty
    required strings, non-finite numbers, times outside 1970..2200); the benchmark produces none.
  - Offsets are upserted; vigild's update is conditional on the offset it expects (fencing for
    several instances of a group). feature_spec is the model file's vigil.feature_spec_hash,
    which the peer accepts only when the model's spec text is the built-in spec; vigild computes
    the hash from the compiled spec (it covers the record layout too) and checks it equals.

Exits when --count events have been written, or after --idle-s seconds with no message, printing
  peer events=N seconds=S events_per_s=R cpu_s=C batch=B
where seconds runs from the first non-empty batch to the last commit and cpu_s is this process's
user+sys CPU time (librdkafka's threads included) over its whole life.
"""
import argparse
import hashlib
import io
import json
import math
import os
import resource
import socket
import struct
import sys
import time
from array import array
from datetime import datetime, timedelta, timezone

# The matmuls are small (batch x 70 x 64): OpenBLAS's worker threads only spin on them, which
# doubled the process's CPU time for the same throughput on a 2-core machine. One thread unless
# the caller says otherwise (must be set before numpy is imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import fastavro
import numpy as np
import psycopg
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError
from psycopg.adapt import Dumper
from psycopg.pq import Format

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOPIC = "behavior-events"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MS = timedelta(milliseconds=1)
DAY_MS = 86_400_000
TTL_MS = 30 * DAY_MS  # features.ttl_s default
U16 = 65535

# vigild's built-in spec (pipeline/features/behavior_features.c, features_default_spec). The peer
# implements exactly this; the model file says which spec it was trained on, and the peer
# refuses a model trained on another.
SPEC = """\
entity user user_id
entity device device_id
entity merchant merchant_id
entity ip ip
numeric amount.log amount log clip=-20:20
numeric has_amount amount present
categorical event_type event_type 8
categorical channel channel 8
categorical merchant_category merchant_category 16
categorical currency currency 8
hour_of_day
count user 1m 1h 24h
sum user amount 1m 1h 24h
count_if user event_type=LOGIN_FAILED 1h 24h
since_last user
geo_velocity user latitude longitude
zscore user amount
novelty user device_id 4
novelty user merchant_id 4
novelty user country 3
count device 1h 24h
since_last device
count merchant 1h 24h
count ip 1h 24h
since_last ip
"""
# (name, field, buckets) of the one-hot columns, in vector order.
CATEGORICAL = [("event_type", "event_type", 8), ("channel", "channel", 8),
               ("merchant_category", "merchant_category", 16), ("currency", "currency", 8)]
# Windows: six buckets of W/6 each (rounded up to a millisecond), aligned to the epoch.
W1M, W1H, W24H = (-(-w // 6) for w in (60_000, 3_600_000, 86_400_000))
USER_WINDOWS = (W1M, W1H, W24H)
OTHER_WINDOWS = (W1H, W24H)  # device, merchant, ip: counts over 1h and 24h

COLUMNS = (
    ["amount.log", "has_amount"]
    + [f"{name}#{i}" for name, _, b in CATEGORICAL for i in range(b)]
    + ["hour.sin", "hour.cos"]
    + [f"user.count.{w}" for w in ("1m", "1h", "24h")]
    + [f"user.sum.amount.{w}" for w in ("1m", "1h", "24h")]
    + [f"user.count_if.event_type=LOGIN_FAILED.{w}" for w in ("1h", "24h")]
    + ["user.since_last_s", "user.new", "user.geo_km", "user.geo_kmh", "user.zscore.amount",
       "user.novel.device_id", "user.novel.merchant_id", "user.novel.country",
       "device.count.1h", "device.count.24h", "device.since_last_s", "device.new",
       "merchant.count.1h", "merchant.count.24h", "ip.count.1h", "ip.count.24h",
       "ip.since_last_s", "ip.new"])
D = len(COLUMNS)  # 70
AGG0 = COLUMNS.index("user.count.1m")  # the per-event (stateful) columns start here
N_AGG = D - AGG0

# The tables take vigild's own shape (columns, types, defaults, indexes) from its schema, so the
# two cannot drift apart: the database must have had vigild's migrations applied (`vigil migrate`,
# as bench/e2e.sh does, or any vigild run).
DDL = """
CREATE SCHEMA IF NOT EXISTS peer;
CREATE TABLE IF NOT EXISTS peer.risk_scores (LIKE vigil.risk_scores INCLUDING ALL);
CREATE TABLE IF NOT EXISTS peer.kafka_offsets (LIKE vigil.kafka_offsets INCLUDING ALL);
"""
UPSERT = """INSERT INTO peer.kafka_offsets
                (consumer_group, topic, partition, next_offset, updated_by)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (consumer_group, topic, partition) DO UPDATE
            SET next_offset = EXCLUDED.next_offset, updated_at = now(),
                updated_by = EXCLUDED.updated_by"""
# Binary COPY, as vigild does: 70 floats a row printed by Python and parsed by float4in would
# cost more than the rest of the row; in binary they travel as their bits.
COPY = ("COPY peer.risk_scores (topic, partition, kafka_offset, kafka_timestamp, event_id,"
        " event_type, user_id, account_id, device_id, ip, amount, currency, merchant_id,"
        " merchant_category, country, latitude, longitude, event_time, channel, features,"
        " feature_spec, score, model_version) FROM STDIN (FORMAT BINARY)")
FLOAT4_ARRAY_OID = 1021
# real[] in array_send form: one dimension, no NULLs, element type float4 (oid 700), D elements,
# lower bound 1; then each element as its length (4) and its big-endian bits.
F4_ARRAY_HEADER = struct.pack(">5i", 1, 0, 700, D, 1)
COPY_TYPES = ["text", "int4", "int8", "timestamptz", "text", "text", "text", "text", "text",
              "text", "float8", "text", "text", "text", "text", "float8", "float8", "timestamptz",
              "text", "float4[]", "text", "float4", "text"]


def fnv1a64(s):
    """FNV-1a-64 of the UTF-8 bytes, never 0 (pipeline/features/entity_store.c, entity_key_hash)."""
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h or 1


class Hashes(dict):
    """fnv1a64 memoised per distinct string: the values repeat (merchants, devices, countries)."""

    def __missing__(self, s):
        h = self[s] = fnv1a64(s)
        return h


def spec_words(text):
    """A spec's directives word by word, without comments: what vigild's spec hash covers."""
    return [line.split("#")[0].split() for line in text.splitlines() if line.split("#")[0].split()]


# --- entity state ----------------------------------------------------------------------------

class Entity:
    """A device, merchant or IP: its watermark and six bucket counts per window.

    Bucket state lives in flat array.array buffers, bucket r of window i at 6 * i + r: 'H' is
    vigild's 16-bit count and 'f' its float32 sum (storing into it rounds as C does), and arrays
    hold no Python objects, so the cyclic GC does not walk millions of them after every few
    hundred allocations (that alone cost a third of the featurisation time)."""
    __slots__ = ("last", "cnt", "amt", "fail")
    WINDOWS = OTHER_WINDOWS
    _ZEROS = array("H", bytes(2 * 6 * len(OTHER_WINDOWS)))

    def __init__(self):
        self.last = None  # watermark: newest event time so far; None before the first event
        self.cnt = array("H", self._ZEROS)
        self.amt = self.fail = None  # amount sums and LOGIN_FAILED counts: users only


class User(Entity):
    """A user: windows over 1m/1h/24h with amount sums and LOGIN_FAILED counts, plus the geo,
    z-score and novelty state."""
    __slots__ = ("geo_ms", "lat", "lon", "zn", "zmean", "zm2", "nov_dev", "nov_mer", "nov_cty")
    WINDOWS = USER_WINDOWS
    _ZEROS = array("H", bytes(2 * 6 * len(USER_WINDOWS)))
    _FZEROS = array("f", bytes(4 * 6 * len(USER_WINDOWS)))

    def __init__(self):
        self.last = None
        self.cnt = array("H", self._ZEROS)
        self.amt = array("f", self._FZEROS)
        # LOGIN_FAILED is counted over all three windows for simplicity; the spec reads 1h, 24h.
        self.fail = array("H", self._ZEROS)
        self.geo_ms = None  # time of the last located event
        self.lat = self.lon = 0.0  # its position, rounded to float32 as vigild stores it
        self.zn, self.zmean, self.zm2 = 0, 0.0, 0.0  # Welford over earlier amounts
        # The last K distinct device, merchant, country hashes, most recent first (0: empty).
        self.nov_dev = array("I", (0,) * 4)
        self.nov_mer = array("I", (0,) * 4)
        self.nov_cty = array("I", (0,) * 3)


class Store:
    """One partition's entities of one type, with its own event-time clock for the TTL."""
    __slots__ = ("ents", "clock", "make")

    def __init__(self, make):
        self.ents, self.clock, self.make = {}, -1, make

    def get(self, key, t):
        """The entity of key (created, or reset when expired), and whether it is new."""
        if t > self.clock:
            self.clock = t
        e = self.ents.get(key)
        if e is None or self.clock - e.last > TTL_MS:
            e = self.ents[key] = self.make()
            return e, True
        return e, False


class PartitionState:
    __slots__ = ("user", "device", "merchant", "ip", "late_dropped")

    def __init__(self):
        self.user, self.device = Store(User), Store(Entity)
        self.merchant, self.ip = Store(Entity), Store(Entity)
        self.late_dropped = 0


def fold(e, t, a32, failed):
    """Adds the event at t to entity e: moves e's watermark and windows forward, emptying the
    buckets that fall out, then counts the event in its bucket unless that has left the window.
    Returns the watermark before the event and how many windows it came too late for."""
    prev = e.last
    if prev is None or t > prev:
        e.last = t
    last, late = e.last, 0
    cnt, amt, fail = e.cnt, e.amt, e.fail
    base = 0
    for width in e.WINDOWS:
        nb = last // width
        if prev is not None and nb != prev // width:
            pb = prev // width
            for r in range(6) if nb - pb >= 6 else [b % 6 for b in range(pb + 1, nb + 1)]:
                cnt[base + r] = 0
                if amt is not None:
                    amt[base + r] = 0.0
                    fail[base + r] = 0
        eb = t // width
        if eb <= nb - 6:
            late += 1
        else:
            i = base + eb % 6
            if cnt[i] < U16:
                cnt[i] += 1
            if amt is not None:
                if a32 is not None:
                    amt[i] += a32
                if failed and fail[i] < U16:
                    fail[i] += 1
        base += 6
    return prev, late


def total(b, i):
    """Window i's total: its six buckets summed left to right in double (vigild's order; not
    sum(), which compensates from Python 3.12 on), rounded to float32 when the vector is built."""
    i *= 6
    return b[i] + b[i + 1] + b[i + 2] + b[i + 3] + b[i + 4] + b[i + 5]


def since_last(e, is_new, prev, t):
    if is_new:
        return 0.0, 1.0
    return ((t - prev) / 1000.0 if t > prev else 0.0), 0.0


def novel(ring, h):
    """1.0 when h is not among the ring's last K distinct hashes; h becomes the most recent."""
    try:
        del ring[ring.index(h)]
        ring.insert(0, h)
        return 0.0
    except ValueError:
        ring.pop()
        ring.insert(0, h)
        return 1.0


def haversine_km(lat1, lon1, lat2, lon2):
    # Same expression, order of operations and libm as vigild's, so the doubles agree.
    rad = math.pi / 180.0
    dlat, dlon = (lat2 - lat1) * rad, (lon2 - lon1) * rad
    a = (math.sin(dlat / 2) * math.sin(dlat / 2)
         + math.cos(lat1 * rad) * math.cos(lat2 * rad) * math.sin(dlon / 2) * math.sin(dlon / 2))
    return 2.0 * 6371.0088 * math.asin(math.sqrt(min(a, 1.0)))


_F32 = array("f", [0.0])


def f32(x):
    """x rounded to float32, as C's (float)x (out of range gives inf, as there)."""
    _F32[0] = x
    return _F32[0]


class Features:
    """The built-in spec's 70 columns for a batch of events, updating per-partition state."""

    def __init__(self):
        self.parts = {}  # partition -> PartitionState
        self.hashes = Hashes()

    def state(self, p):
        st = self.parts.get(p)
        if st is None:
            st = self.parts[p] = PartitionState()
        return st

    def aggregates(self, st, e, t, out):
        """Appends event e's 26 stateful columns to out (in COLUMNS order) and folds e into st."""
        H = self.hashes
        amount = e["amount"]
        a32 = f32(amount) if amount is not None else None
        failed = e["event_type"] == "LOGIN_FAILED"

        # user (user_id is required, so always present)
        u, unew = st.user.get(e["user_id"], t)
        uprev, late = fold(u, t, a32, failed)
        c, s, f = u.cnt, u.amt, u.fail
        out += (total(c, 0), total(c, 1), total(c, 2), total(s, 0), total(s, 1), total(s, 2),
                total(f, 1), total(f, 2))
        out += since_last(u, unew, uprev, t)
        # geo velocity: only events with both coordinates in range take part
        lat, lon = e["latitude"], e["longitude"]
        km = kmh = 0.0
        if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
            if u.geo_ms is not None:
                km = haversine_km(u.lat, u.lon, lat, lon)
                kmh = km / (max(abs(t - u.geo_ms), 60_000) / 3_600_000.0)
            if u.geo_ms is None or t >= u.geo_ms:  # a late event does not replace the location
                u.geo_ms, u.lat, u.lon = t, f32(lat), f32(lon)
        out += (km, kmh)
        # z-score of the amount against the user's earlier amounts, then the amount joins them
        z = 0.0
        if amount is not None:
            if u.zn >= 2:
                sd = math.sqrt(u.zm2 / (u.zn - 1))
                z = max(-100.0, min(100.0, (amount - u.zmean) / sd)) if sd > 0 else 0.0
            u.zn += 1
            d = amount - u.zmean
            u.zmean += d / u.zn
            u.zm2 += d * (amount - u.zmean)
        out.append(z)
        # novelty over 32-bit hashes (low half of FNV-1a-64, lowest bit set: 0 marks empty)
        for ring, field in ((u.nov_dev, "device_id"), (u.nov_mer, "merchant_id"),
                            (u.nov_cty, "country")):
            v = e[field]
            out.append(novel(ring, (H[v] & 0xFFFFFFFF) | 1) if v is not None else 0.0)

        # device, merchant, ip: zeros when the event has no key, and the state is not touched
        for store, field, with_since in ((st.device, "device_id", True),
                                         (st.merchant, "merchant_id", False),
                                         (st.ip, "ip", True)):
            key = e[field]
            if key is None:
                out += (0.0, 0.0, 0.0, 0.0) if with_since else (0.0, 0.0)
                continue
            ent, new = store.get(key, t)
            prev, n_late = fold(ent, t, None, False)
            late += n_late
            out += (total(ent.cnt, 0), total(ent.cnt, 1))
            if with_since:
                out += since_last(ent, new, prev, t)
        st.late_dropped += late

    def compute(self, events, parts, times):
        """(n, 70) float32 vectors of events (in offset order per partition)."""
        n = len(events)
        agg = []
        for e, p, t in zip(events, parts, times):
            self.aggregates(self.state(p), e, t, agg)
        x = np.zeros((n, D), np.float32)
        x[:, AGG0:] = np.array(agg, np.float64).reshape(n, N_AGG)

        amount = np.array([np.nan if e["amount"] is None else e["amount"] for e in events])
        has = ~np.isnan(amount)
        v = np.copysign(np.log1p(np.abs(amount)), amount)
        x[:, 0] = np.where(has, np.clip(v, -20.0, 20.0), 0.0)
        x[:, 1] = has

        rows, col = np.arange(n), 2
        H = self.hashes
        for _, field, buckets in CATEGORICAL:
            idx = np.array([-1 if e[field] is None else H[e[field]] % buckets for e in events])
            hit = idx >= 0
            x[rows[hit], col + idx[hit]] = 1.0
            col += buckets

        ang = 2.0 * math.pi * ((np.array(times, np.int64) % DAY_MS) / float(DAY_MS))
        x[:, col] = np.sin(ang)
        x[:, col + 1] = np.cos(ang)
        return x


# --- model -----------------------------------------------------------------------------------

class RiskModel:
    """The risk MLP from a vigil model file (safetensors; pipeline/models/model_risk.c)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            raw = f.read()
        (hlen,) = struct.unpack_from("<Q", raw)
        header = json.loads(raw[8:8 + hlen])
        meta = header.pop("__metadata__", {})
        data = raw[8 + hlen:]
        if meta.get("vigil.format") != "1" or meta.get("vigil.arch") != "risk_mlp":
            raise ValueError(f"{path}: not a vigil risk model (format 1, arch risk_mlp)")
        if hashlib.sha256(data).hexdigest() != meta.get("vigil.sha256"):
            raise ValueError(f"{path}: checksum mismatch: the file is corrupt or was edited")
        if meta["vigil.activation"] != "relu":
            raise ValueError(f"{path}: activation {meta['vigil.activation']} is not supported")
        if spec_words(meta["vigil.feature_spec"]) != spec_words(SPEC):
            raise ValueError(f"{path}: trained on another feature spec than the built-in one")
        if json.loads(meta["vigil.feature_columns"]) != COLUMNS:
            raise ValueError(f"{path}: its feature columns are not the built-in spec's")

        def tensor(name, shape):
            t = header[name]
            if t["dtype"] != "F32" or t["shape"] != list(shape):
                raise ValueError(f"{path}: tensor {name} is {t['dtype']} {t['shape']},"
                                 f" not F32 {list(shape)}")
            a, b = t["data_offsets"]
            return np.frombuffer(data[a:b], "<f4").reshape(shape)

        dims = json.loads(meta["vigil.layers"])
        self.layers = [(tensor(f"layers.{l}.weight", (dims[l], dims[l + 1])),
                        tensor(f"layers.{l}.bias", (dims[l + 1],)))
                       for l in range(len(dims) - 1)]
        # vigild keeps mean and 1/std as float32 and normalises with a multiplication.
        self.mean = np.array(json.loads(meta["vigil.norm_mean"]), np.float64).astype(np.float32)
        std = np.array(json.loads(meta["vigil.norm_std"]), np.float64)
        self.inv_std = (1.0 / std).astype(np.float32)
        self.clip = np.float32(meta["vigil.norm_clip"])
        self.version = meta["vigil.version"]
        self.spec_hash = meta["vigil.feature_spec_hash"]

    def __call__(self, x):
        h = (x - self.mean) * self.inv_std
        np.clip(h, -self.clip, self.clip, out=h)
        for i, (w, b) in enumerate(self.layers):
            h = h @ w
            h += b
            if i < len(self.layers) - 1:
                np.maximum(h, 0, out=h)
        v = h[:, 0]
        # sigmoid with exp of a non-positive argument only (no overflow), as vigild computes it
        e = np.exp(-np.abs(v))
        s = 1.0 / (1.0 + e)
        return np.where(v >= 0, s, e * s)


# --- the database ---------------------------------------------------------------------------

class Float4ArrayDumper(Dumper):
    """real[] for binary COPY from bytes already in array_send form (f4_arrays). psycopg's own
    list dumper works element by element in Python: it took a third of the peer's time."""
    format = Format.BINARY
    oid = FLOAT4_ARRAY_OID

    def dump(self, obj):
        return obj


def f4_arrays(x):
    """The rows of x (n, D float32) as real[] values in binary, for Float4ArrayDumper."""
    n, width = len(x), 8 * D
    cells = np.empty((n, D, 2), ">u4")
    cells[:, :, 0] = 4
    cells[:, :, 1] = np.ascontiguousarray(x, np.float32).view(np.uint32)
    buf = cells.tobytes()
    return [F4_ARRAY_HEADER + buf[i * width:(i + 1) * width] for i in range(n)]


# --- the consumer ----------------------------------------------------------------------------

class Peer:
    def __init__(self, args):
        self.args = args
        with open(os.path.join(args.schema_dir, "BehaviorEvent.avsc")) as f:
            self.reader = fastavro.parse_schema(json.load(f))
        self.writers = {}  # schema id -> parsed writer schema, None when unknown
        self.features = Features()
        self.model = RiskModel(args.model)
        self.malformed = 0
        self.instance = f"peer@{socket.gethostname()}:{os.getpid()}"

    def writer_schema(self, sid):
        if sid not in self.writers:
            try:
                with open(os.path.join(self.args.schema_dir, f"{sid}.avsc")) as f:
                    text = json.load(f)
                w = fastavro.parse_schema(text)
                # Resolution costs time on every record: skip it when the writer is the reader.
                self.writers[sid] = (w, None if w == self.reader else self.reader)
            except (OSError, ValueError, fastavro.schema.SchemaParseException):
                self.writers[sid] = None
        return self.writers[sid]

    def decode(self, value):
        if value is None or len(value) < 5 or value[0] != 0:
            return None
        ws = self.writer_schema(int.from_bytes(value[1:5], "big"))
        if ws is None:
            return None
        try:
            return fastavro.schemaless_reader(io.BytesIO(value[5:]), ws[0], ws[1])
        except Exception:
            return None

    def on_assign(self, consumer, partitions):
        with self.conn.cursor() as cur:
            cur.execute("SELECT partition, next_offset FROM peer.kafka_offsets"
                        " WHERE consumer_group = %s AND topic = %s", (self.args.group, TOPIC))
            stored = dict(cur.fetchall())
        self.conn.commit()
        for p in partitions:
            if stored.get(p.partition) is not None:
                p.offset = stored[p.partition]
        consumer.assign(partitions)

    def process(self, msgs):
        """Decodes, featurises and scores a batch. Returns the rows and each partition's next
        offset."""
        events, parts, times, metas, next_off = [], [], [], [], {}
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
            if e["latitude"] is None or e["longitude"] is None:
                e["latitude"] = e["longitude"] = None  # vigild: a position needs both
            ts_type, ts = m.timestamp()  # vigild: NULL when there is none (or before 1970)
            kts = None if ts_type == TIMESTAMP_NOT_AVAILABLE or ts < 0 else EPOCH + ts * ONE_MS
            events.append(e)
            parts.append(p)
            times.append((e["event_time"] - EPOCH) // ONE_MS)
            metas.append((p, off, kts))
        if not events:
            return [], next_off
        x = self.features.compute(events, parts, times)
        scores = self.model(x).tolist()
        spec, version = self.model.spec_hash, self.model.version
        rows = [(TOPIC, p, off, kts, e["event_id"], e["event_type"], e["user_id"], e["account_id"],
                 e["device_id"], e["ip"], e["amount"], e["currency"], e["merchant_id"],
                 e["merchant_category"], e["country"], e["latitude"], e["longitude"],
                 e["event_time"], e["channel"], fv, spec, s, version)
                for e, (p, off, kts), fv, s in zip(events, metas, f4_arrays(x), scores)]
        return rows, next_off

    def run(self):
        a = self.args
        self.conn = psycopg.connect(a.dsn)
        # Only for the COPY's features column (set_types looks dumpers up by oid).
        self.conn.adapters.register_dumper(None, Float4ArrayDumper)
        with self.conn.cursor() as cur:
            cur.execute("SELECT to_regclass('vigil.risk_scores') IS NOT NULL")
            if not cur.fetchone()[0]:
                print("# peer: no vigil.risk_scores in this database to copy the table shape "
                      "from; run `vigil migrate` on it first", file=sys.stderr)
                return 2
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
                rows, next_off = self.process(msgs)
                if not next_off:
                    continue
                with self.conn.cursor() as cur:
                    if rows:
                        with cur.copy(COPY) as copy:
                            copy.set_types(COPY_TYPES)
                            for r in rows:
                                copy.write_row(r)
                    cur.executemany(UPSERT, [(a.group, TOPIC, p, o, self.instance)
                                             for p, o in next_off.items()])
                self.conn.commit()
                # Kafka's offsets only for monitoring (lag): the database's are the ones used.
                consumer.commit(asynchronous=True)
                written += len(rows)
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
        late = sum(st.late_dropped for st in self.features.parts.values())
        print(f"# peer: model {self.model.version}, {late} late window updates dropped",
              file=sys.stderr)
        print(f"peer events={written} seconds={secs:.3f} events_per_s={rate:.0f} cpu_s={cpu:.2f}"
              f" batch={a.batch}")
        return 0 if written >= a.count else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", required=True, help="Kafka bootstrap servers")
    ap.add_argument("--group", default="vigil-peer", help="consumer group id")
    ap.add_argument("--dsn", required=True, help="PostgreSQL conninfo")
    ap.add_argument("--count", type=int, required=True, help="stop after this many events written")
    ap.add_argument("--idle-s", type=float, default=30.0,
                    help="stop after this long with no message")
    # 5000: about 7% more events/s than 1000 on the benchmark machine (fewer transactions,
    # longer numpy calls); vigild's ingest.batch_max default is 5000 too.
    ap.add_argument("--batch", type=int, default=5000, help="messages per consume() batch")
    ap.add_argument("--poll-s", type=float, default=0.5, help="consume() timeout in seconds")
    ap.add_argument("--seed", type=int, default=1,
                    help="unused, kept for old callers (the weights come from --model now)")
    ap.add_argument("--model", default=os.path.join(REPO_ROOT, "models", "risk.safetensors"),
                    help="risk model file (vigild's model.risk_path)")
    ap.add_argument("--schema-dir", default=os.path.join(REPO_ROOT, "ingest", "schemas"))
    sys.exit(Peer(ap.parse_args()).run())


if __name__ == "__main__":
    main()
