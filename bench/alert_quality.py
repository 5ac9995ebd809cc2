#!/usr/bin/env python3
"""The analysis of bench/alert_quality.sh (docs/alert-quality.md): how vigild's fraud alerts do on
`vigil produce`'s planted fraud, whose ground truth is known. Standard library only.

  alert_quality.py encode EVENTS.csv OUT KEY_DELIM MSG_DELIM
      The events of an event file (`vigil produce --output`, simulated event times) as Kafka
      messages for `kcat -P -l -K KEY_DELIM -D MSG_DELIM`: key = user_id, value = BehaviorEvent
      in Confluent Avro (magic 0, schema id 1), in file order. The delimiters are hex strings.
  alert_quality.py check-encoding EVENTS.csv MSG_DIR
      Compares that encoding with `vigil produce --output-dir MSG_DIR` (the encoder vigil itself
      sends to Kafka with) for the first files of MSG_DIR: byte for byte, after taking the
      event_time of vigil's message (it stamps the wall clock there). Exits 1 on any difference.
  alert_quality.py analyze --events CSV --truth CSV --scores TSV --alerts TSV --out DIR
      The figures: printed, and written to DIR (results.json, table.md, pr.svg).

Scores are compared at float precision, as vigild does (docs/alerts.md): score >= t holds when
the float score is >= the float nearest t.
"""
import argparse
import collections
import csv
import json
import math
import os
import statistics
import struct
import sys

# BehaviorEvent (ingest/schemas/1.avsc), in field order: (name, kind) with kind one of
# "string", "enum", "ostring" (union null/string), "odouble" (union null/double), "long".
FIELDS = [
    ("event_id", "string"), ("event_type", "enum"), ("user_id", "string"),
    ("account_id", "ostring"), ("device_id", "ostring"), ("ip", "ostring"),
    ("amount", "odouble"), ("currency", "ostring"), ("merchant_id", "ostring"),
    ("merchant_category", "ostring"), ("country", "ostring"), ("latitude", "odouble"),
    ("longitude", "odouble"), ("event_time", "long"), ("channel", "ostring"),
]
EVENT_TYPES = ["TRANSACTION", "LOGIN", "LOGIN_FAILED", "CLICK", "PASSWORD_CHANGE"]
SCHEMA_ID = 1
GAP_MS = 30 * 60 * 1000  # the built-in rules' `group user_id 30m`
DEFAULT_T = 0.80  # the lowest built-in rule: `rule medium score>=0.80`
THRESHOLDS = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99]
PATTERNS = ["card_testing", "account_takeover", "amount_spike"]


def f32(x):
    """x rounded to the nearest float, as a Python float."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


# ---- Avro binary (the subset BehaviorEvent needs) ----

def _long(n):
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _string(s):
    b = s.encode("utf-8")
    return _long(len(b)) + b


def encode_event(row, event_time=None):
    """Confluent-framed Avro of one event file row (a dict of CSV text; '' is null)."""
    out = bytearray(b"\x00" + struct.pack(">i", SCHEMA_ID))
    for name, kind in FIELDS:
        v = row.get(name, "")
        if name == "event_time" and event_time is not None:
            v = str(event_time)
        if kind == "string":
            out += _string(v)
        elif kind == "enum":
            out += _long(EVENT_TYPES.index(v))
        elif kind == "long":
            out += _long(int(v))
        elif v == "":
            out += _long(0)
        elif kind == "ostring":
            out += _long(1) + _string(v)
        else:  # odouble: the file's shortest round-trip text gives the exact double
            out += _long(1) + struct.pack("<d", float(v))
    return bytes(out)


def decode_event(buf):
    """The fields of a Confluent-framed BehaviorEvent message, as Python values."""
    if buf[0] != 0:
        raise ValueError("not a Confluent-framed message")
    pos = 5

    def read_long():
        nonlocal pos
        shift = z = 0
        while True:
            b = buf[pos]
            pos += 1
            z |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return (z >> 1) ^ -(z & 1)

    def read_string():
        nonlocal pos
        n = read_long()
        s = buf[pos:pos + n].decode("utf-8")
        pos += n
        return s

    out = {}
    for name, kind in FIELDS:
        if kind == "string":
            out[name] = read_string()
        elif kind == "enum":
            out[name] = EVENT_TYPES[read_long()]
        elif kind == "long":
            out[name] = read_long()
        elif read_long() == 0:
            out[name] = None
        elif kind == "ostring":
            out[name] = read_string()
        else:
            out[name] = struct.unpack("<d", buf[pos:pos + 8])[0]
            pos += 8
    if pos != len(buf):
        raise ValueError("%d bytes left over" % (len(buf) - pos))
    return out


def cmd_encode(a):
    kd, md = bytes.fromhex(a.key_delim), bytes.fromhex(a.msg_delim)
    n = 0
    with open(a.events, newline="") as f, open(a.out, "wb") as out:
        for row in csv.DictReader(f):
            key, value = row["user_id"].encode(), encode_event(row)
            for part in (key, value):
                if kd in part or md in part:
                    sys.exit("encode: a delimiter occurs in event %s; pick others" % row["event_id"])
            out.write(key + kd + value + md)
            n += 1
    print("encoded=%d" % n)


def cmd_check_encoding(a):
    names = sorted(os.listdir(a.msg_dir))
    rows = {}
    with open(a.events, newline="") as f:
        for k, row in enumerate(csv.DictReader(f)):
            if k >= len(names):
                break
            rows[k] = row
    bad = 0
    for name in names:
        k = int(name.split(".")[0])
        with open(os.path.join(a.msg_dir, name), "rb") as f:
            theirs = f.read()
        t = decode_event(theirs)["event_time"]
        if encode_event(rows[k], event_time=t) != theirs:
            bad += 1
            if bad <= 3:
                print("check-encoding: message %d differs: %r" % (k, decode_event(theirs)),
                      file=sys.stderr)
    print("check-encoding: %d messages compared, %d differ" % (len(names), bad))
    sys.exit(1 if bad or not names else 0)


# ---- The analysis ----

def pct(xs, q):
    """The q-th percentile (0..100) of xs, nearest rank."""
    s = sorted(xs)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def load(a):
    ev = {}  # event_id -> [index, user, event_time_ms, is_fraud]
    order = []
    with open(a.events, newline="") as f:
        for k, row in enumerate(csv.DictReader(f)):
            ev[row["event_id"]] = [k, row["user_id"], int(row["event_time"]), row["is_fraud"] == "1"]
            order.append(row["event_id"])
    truth = {}  # event_id -> (pattern, episode)
    with open(a.truth, newline="") as f:
        for row in csv.DictReader(f):
            truth[row["event_id"]] = (row["pattern"], int(row["episode"]))
    scores = {}  # event_id -> (score as the float vigild compared, partition, offset, time)
    with open(a.scores) as f:
        for line in f:
            eid, part, off, user, t_ms, score = line.rstrip("\n").split("\t")
            if eid in scores:
                sys.exit("analyze: event %s scored twice" % eid)
            if score == "":
                sys.exit("analyze: event %s has no score" % eid)
            scores[eid] = (f32(float(score)), int(part), int(off), int(t_ms), user)
    alerts = []
    with open(a.alerts) as f:
        for line in f:
            (aid, entity, count, first_id, first_t, last_id, last_t, max_score, severity,
             ids, top) = line.rstrip("\n").split("\t")
            alerts.append({"alert_id": aid, "entity": entity, "event_count": int(count),
                           "first_event_id": first_id, "first_event_time": int(first_t),
                           "last_event_id": last_id, "last_event_time": int(last_t),
                           "max_score": float(max_score), "severity": severity,
                           "event_ids": ids.split(" ") if ids else [],
                           "top_feature": top})
    return ev, order, truth, scores, alerts


def verify(ev, order, truth, scores, same_times):
    """What vigild scored is exactly the generator's stream: the same event ids, users and (when
    same_times) event times as the event file, and the truth file covers exactly its fraud
    labels."""
    problems = []
    if set(scores) != set(ev):
        problems.append("scored ids differ from the file's: %d scored, %d in the file, %d common"
                        % (len(scores), len(ev), len(set(scores) & set(ev))))
    mism = sum(1 for e, s in scores.items()
               if e in ev and ((same_times and s[3] != ev[e][2]) or s[4] != ev[e][1]))
    if mism:
        problems.append("%d events differ in %suser_id from the file"
                        % (mism, "event_time or " if same_times else ""))
    fraud_ids = {e for e, v in ev.items() if v[3]}
    if fraud_ids != set(truth):
        problems.append("the truth file's %d events are not the file's %d fraud labels"
                        % (len(truth), len(fraud_ids)))
    # Within a user, Kafka order (partition, offset) must be the generator's order: the alert
    # grouping follows offsets.
    by_user = {}
    for e in order:
        if e in scores:
            by_user.setdefault(ev[e][1], []).append(scores[e])
    disorder = 0
    for lst in by_user.values():
        if len({s[1] for s in lst}) != 1 or any(x[2] >= y[2] for x, y in zip(lst, lst[1:])):
            disorder += 1
    if disorder:
        problems.append("%d users whose events are not in one partition in generator order"
                        % disorder)
    return problems


def group(users, thr, gap=GAP_MS):
    """vigild's grouping (sinks/migrations/0005_alerts.sql, alerts_fraud_apply), simulated: per
    user, in offset order, an event scoring >= thr grows the user's alert whose newest event is
    at most gap before it, else raises one. users: user -> [(time, score, event_id)] in offset
    order. Returns the alerts as lists of event ids."""
    thr = f32(thr)
    out = []
    for lst in users.values():
        cur, last = None, None
        for t, s, e in lst:
            if s < thr:
                continue
            if cur is not None and last >= t - gap:
                cur.append(e)
                last = max(last, t)
            else:
                cur, last = [e], t
                out.append(cur)
    return out


def episodes_of(ev, truth):
    """episode -> {pattern, events (ids in generator order), start (event time of the first)}."""
    eps = {}
    for e, (pattern, episode) in truth.items():
        d = eps.setdefault(episode, {"pattern": pattern, "events": []})
        d["events"].append(e)
    for d in eps.values():
        d["events"].sort(key=lambda e: ev[e][0])
        d["start"] = ev[d["events"][0]][2]
    return eps


def quality_at(thr, users, ev, truth, eps, n_legit, scores, skip):
    """Event level and episode level at threshold thr (grouping as vigild's), over the events
    from index skip on (scores and truth hold only those; an alert counts when its first event
    is one of them)."""
    t32 = f32(thr)
    tp = sum(1 for e in truth if scores[e][0] >= t32)
    flagged = sum(1 for s in scores.values() if s[0] >= t32)
    groups = [g for g in group(users, thr) if ev[g[0]][0] >= skip]
    with_fraud = sum(1 for g in groups if any(e in truth for e in g))
    detected = sum(1 for d in eps.values() if any(scores[e][0] >= t32 for e in d["events"]))
    return {
        "threshold": thr,
        "event_flagged": flagged, "event_tp": tp,
        "event_precision": tp / flagged if flagged else None,
        "event_recall": tp / len(truth),
        "alerts": len(groups), "alerts_with_fraud": with_fraud,
        "alert_precision": with_fraud / len(groups) if groups else None,
        "episodes_detected": detected, "episode_recall": detected / len(eps),
        "false_alerts": len(groups) - with_fraud,
        "false_alerts_per_10k_legit": (len(groups) - with_fraud) / n_legit * 1e4,
    }


def average_precision(scores, truth):
    """Event-level average precision (step-wise, ties taken together)."""
    pairs = sorted(((s[0], e in truth) for e, s in scores.items()), reverse=True)
    n_pos = len(truth)
    ap, tp, fp, k = 0.0, 0, 0, 0
    while k < len(pairs):
        j, dtp = k, 0
        while j < len(pairs) and pairs[j][0] == pairs[k][0]:
            dtp += pairs[j][1]
            j += 1
        tp += dtp
        fp += (j - k) - dtp
        ap += dtp / n_pos * tp / (tp + fp)
        k = j
    return ap


def event_pr_curve(scores, truth, points=400):
    """(recall, precision, threshold) at up to `points` distinct score cut-offs."""
    pairs = sorted(((s[0], e in truth) for e, s in scores.items()), reverse=True)
    n_pos, out, tp, fp = len(truth), [], 0, 0
    step_k, step_tp = max(1, len(pairs) // points), max(1, n_pos // points)
    last_k = last_tp = None
    for k, (s, pos) in enumerate(pairs):
        tp += pos
        fp += not pos
        if k + 1 < len(pairs) and pairs[k + 1][0] == s:
            continue  # inside a run of equal scores: one point for the run
        if (last_k is None or k + 1 == len(pairs) or k - last_k >= step_k
                or tp - last_tp >= step_tp):
            out.append((tp / n_pos, tp / (tp + fp), s))
            last_k, last_tp = k, tp
    return out


def svg_plot(path, ev_curve, ep_curve, table, title):
    """A PR plot by hand: recall across, precision up, both in [0, 1]."""
    W, H, L, R, T, B = 640, 480, 64, 24, 40, 56
    pw, ph = W - L - R, H - T - B

    def xy(r, p):
        return L + r * pw, T + (1 - p) * ph

    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="sans-serif" font-size="12">' % (W, H, W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="14" text-anchor="middle">%s</text>' % (W // 2, title)]
    for k in range(11):
        v = k / 10
        x, y = xy(v, v)
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (x, T, x, T + ph))
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, y, L + pw, y))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%.1f</text>' % (x, T + ph + 16, v))
        o.append('<text x="%d" y="%.1f" text-anchor="end" dy="4">%.1f</text>' % (L - 6, y, v))
    o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="black"/>'
             % (L, T, pw, ph))
    o.append('<text x="%d" y="%d" text-anchor="middle">recall</text>' % (L + pw // 2, H - 14))
    o.append('<text x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">precision'
             '</text>' % (T + ph // 2, T + ph // 2))
    for curve, colour, key in ((ev_curve, "#1f77b4", "event"), (ep_curve, "#d62728", "episode")):
        pts = " ".join("%.1f,%.1f" % xy(r, p) for r, p, _ in curve)
        o.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>' % (pts, colour))
        for row in table:
            r, p = (row["event_recall"], row["event_precision"]) if key == "event" else \
                (row["episode_recall"], row["alert_precision"])
            if p is None:
                continue
            x, y = xy(r, p)
            big = abs(row["threshold"] - DEFAULT_T) < 1e-9
            o.append('<circle cx="%.1f" cy="%.1f" r="%d" fill="%s" stroke="black" '
                     'stroke-width="%s"/>' % (x, y, 6 if big else 3, colour, "1.5" if big else "0"))
            o.append('<text x="%.1f" y="%.1f" font-size="10" fill="%s">%g</text>'
                     % (x + 6, y - 5 if key == "event" else y + 13, colour, row["threshold"]))
    lx, ly = L + 12, T + ph - 58
    o.append('<rect x="%d" y="%d" width="390" height="50" fill="white" stroke="#999"/>'
             % (lx - 6, ly - 14))
    o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#1f77b4" stroke-width="2"/>'
             % (lx, ly, lx + 24, ly))
    o.append('<text x="%d" y="%d" dy="4">events: precision / recall of score &gt;= t</text>'
             % (lx + 30, ly))
    o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d62728" stroke-width="2"/>'
             % (lx, ly + 20, lx + 24, ly + 20))
    o.append('<text x="%d" y="%d" dy="4">episodes caught / alerts with fraud (30m grouping)'
             '</text>' % (lx + 30, ly + 20))
    o.append('<text x="%d" y="%d" font-size="10" fill="#555">large dots: 0.80, the default '
             'rules\' lowest threshold</text>' % (lx, ly + 40 + 8))
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def fmt(x, d=3):
    return "-" if x is None else "%.*f" % (d, x)


def cmd_analyze(a):
    ev, order, truth_all, scores_all, alerts_all = load(a)
    problems = verify(ev, order, truth_all, scores_all, not a.wall_clock)
    for p in problems:
        print("VERIFY FAILED: " + p, file=sys.stderr)
    if problems:
        sys.exit(1)
    for e, v in ev.items():
        v[2] = scores_all[e][3]  # the event time vigild saw (the file's, unless --wall-clock)
    users = {}
    for e in order:
        users.setdefault(ev[e][1], []).append((ev[e][2], scores_all[e][0], e))
    # Everything is scored and grouped; the figures count the events from index skip on (the
    # ones before warm the users' feature state up), the episodes that begin there and the
    # alerts whose first event is there.
    skip = a.skip
    scores = {e: s for e, s in scores_all.items() if ev[e][0] >= skip}
    truth = {e: v for e, v in truth_all.items() if ev[e][0] >= skip}
    eps_all = episodes_of(ev, truth_all)
    eps = {k: d for k, d in eps_all.items() if ev[d["events"][0]][0] >= skip}
    n, n_fraud = len(scores), len(truth)
    n_legit = n - n_fraud

    # The real alerts: their events. event_ids holds the first 100; the simulated grouping must
    # reproduce every alert exactly (same first event, count and listed events) for its full
    # membership to stand in for a longer alert's.
    sim = group(users, DEFAULT_T)
    sim_by_first = {g[0]: g for g in sim}
    mismatch = 0
    for al in alerts_all:
        g = sim_by_first.get(al["first_event_id"])
        if g is None or len(g) != al["event_count"] or g[:100] != al["event_ids"]:
            mismatch += 1
    if mismatch or len(sim) != len(alerts_all):
        print("VERIFY FAILED: the simulated grouping at %.2f gives %d alerts, vigild raised %d, "
              "%d of them differ" % (DEFAULT_T, len(sim), len(alerts_all), mismatch),
              file=sys.stderr)
        sys.exit(1)
    print("QUALITY verified: vigild scored exactly the generator's %d events (ids, users, %s"
          "per-user order); its %d alerts are exactly the simulated grouping's at %.2f"
          % (len(ev), "" if a.wall_clock else "event times, ", len(alerts_all), DEFAULT_T))
    members = {al["alert_id"]: sim_by_first[al["first_event_id"]] for al in alerts_all}
    alerts = [al for al in alerts_all if ev[al["first_event_id"]][0] >= skip]

    # (a) episodes with an alert, (b) false alerts, (d) time to alert.
    alert_of = {}  # event_id -> alert (any alert: one begun in the warm-up may catch an episode)
    for al in alerts_all:
        for e in members[al["alert_id"]]:
            alert_of[e] = al
    false_alerts = [al for al in alerts if not any(e in truth for e in members[al["alert_id"]])]
    per_pattern = {p: {"episodes": 0, "caught": 0, "delays_s": [], "first_alerting_step": []}
                   for p in PATTERNS}
    delays_alert_first, delays_detect, grown_from_earlier, missed = [], [], 0, []
    for epi, d in sorted(eps.items()):
        pp = per_pattern[d["pattern"]]
        pp["episodes"] += 1
        hits = [(k, e) for k, e in enumerate(d["events"]) if e in alert_of]
        if not hits:
            missed.append((epi, d))
            continue
        pp["caught"] += 1
        k, e = hits[0]
        al = alert_of[e]
        da = (al["first_event_time"] - d["start"]) / 1000.0  # the brief's: alert's first event
        dd = (ev[e][2] - d["start"]) / 1000.0  # the first of its events that is in an alert
        delays_alert_first.append(da)
        delays_detect.append(dd)
        grown_from_earlier += da < 0
        pp["delays_s"].append(dd)
        pp["first_alerting_step"].append(k + 1)
    caught = sum(p["caught"] for p in per_pattern.values())

    table = [quality_at(t, users, ev, truth, eps, n_legit, scores, skip) for t in THRESHOLDS]
    grid = sorted(set([k / 200 for k in range(1, 200)] + [0.995, 0.998, 0.999] + THRESHOLDS))
    gq = [quality_at(t, users, ev, truth, eps, n_legit, scores, skip) for t in grid]
    ep_curve = [(q["episode_recall"], q["alert_precision"], q["threshold"])
                for q in gq if q["alert_precision"] is not None]
    # Where each goal would be met, on the grid (steps of 0.005): the highest threshold with
    # episode recall >= 95%, the lowest with at most 1 false alert per 10k legitimate events.
    ok_recall = [q for q in gq if q["episode_recall"] >= 0.95]
    ok_false = [q for q in gq if q["false_alerts_per_10k_legit"] <= 1]
    goal_thresholds = {
        "recall_95_at_most": ok_recall[-1] if ok_recall else None,
        "false_1_at_least": ok_false[0] if ok_false else None,
        "both": [q["threshold"] for q in gq if q in ok_recall and q in ok_false],
    }
    ev_curve = event_pr_curve(scores, truth)
    ap = average_precision(scores, truth)
    fraud_at_1 = sum(1 for e in truth if scores[e][0] == 1.0)

    # The feature the explanation of each alert ranks first (its highest-scoring event's).
    top_false = collections.Counter(al["top_feature"] for al in false_alerts)
    false_ids = {al["alert_id"] for al in false_alerts}
    top_true = collections.Counter(al["top_feature"] for al in alerts
                                   if al["alert_id"] not in false_ids)

    # By window of 65,536 indices (the generator's unit of planning; window 0 starts cold).
    windows = []
    for w in range(max(v[0] for v in ev.values()) // 65536 + 1):
        wd = {"window": w, "counted": w * 65536 >= skip}
        weps = [d for d in eps_all.values() if ev[d["events"][0]][0] // 65536 == w]
        wd["episodes"] = len(weps)
        wd["caught"] = sum(1 for d in weps if any(e in alert_of for e in d["events"]))
        for p in PATTERNS:
            pe = [d for d in weps if d["pattern"] == p]
            wd[p] = "%d/%d" % (sum(1 for d in pe if any(e in alert_of for e in d["events"])),
                               len(pe))
        wl = sum(1 for e, v in ev.items() if v[0] // 65536 == w and e not in truth_all)
        wf = sum(1 for al in alerts_all if ev[al["first_event_id"]][0] // 65536 == w
                 and not any(e in truth_all for e in members[al["alert_id"]]))
        wd["legit_events"], wd["false_alerts"] = wl, wf
        # Of those, the ones whose explanation ranks a 24 h window first.
        wd["false_alerts_24h_first"] = sum(
            1 for al in alerts_all if ev[al["first_event_id"]][0] // 65536 == w
            and not any(e in truth_all for e in members[al["alert_id"]])
            and al["top_feature"].endswith(".24h"))
        wd["false_alerts_per_10k_legit"] = wf / wl * 1e4 if wl else None
        windows.append(wd)

    # By quarter of the UTC day (event time): the shipped model was trained on 00:00-18:31.
    quarters = []
    for qd in range(4):
        inq = lambda t: (t // 3600000) % 24 // 6 == qd  # noqa: E731
        qeps = [d for d in eps.values() if inq(d["start"])]
        ql = sum(1 for e in scores if e not in truth and inq(ev[e][2]))
        qf = sum(1 for al in false_alerts if inq(al["first_event_time"]))
        quarters.append({
            "hours": "%02d-%02d" % (6 * qd, 6 * qd + 6), "episodes": len(qeps),
            "caught": sum(1 for d in qeps if any(e in alert_of for e in d["events"])),
            "spikes": "%d/%d" % (sum(1 for d in qeps if d["pattern"] == "amount_spike" and
                                     any(e in alert_of for e in d["events"])),
                                 sum(1 for d in qeps if d["pattern"] == "amount_spike")),
            "legit_events": ql, "false_alerts": qf,
            "false_alerts_per_10k_legit": qf / ql * 1e4 if ql else None})

    # What the missed episodes looked like: their best score.
    missed_rows = []
    for epi, d in missed:
        best = max(scores[e][0] for e in d["events"])
        missed_rows.append({"episode": epi, "pattern": d["pattern"], "events": len(d["events"]),
                            "best_score": best})

    res = {
        "events_produced": len(ev), "warm_up_events": skip,
        "events": n, "fraud_events": n_fraud, "legit_events": n_legit,
        "episodes": len(eps), "alerts": len(alerts),
        "alerts_by_severity": {s: sum(1 for al in alerts if al["severity"] == s)
                               for s in ("medium", "high", "critical")},
        "episode_recall": caught / len(eps), "episodes_caught": caught,
        "false_alerts": len(false_alerts),
        "false_alerts_per_10k_legit": len(false_alerts) / n_legit * 1e4,
        "delay_s_alert_first_event": {
            "median": statistics.median(delays_alert_first) if delays_alert_first else None,
            "p99": pct(delays_alert_first, 99) if delays_alert_first else None},
        "delay_s_first_alerting_event": {
            "median": statistics.median(delays_detect) if delays_detect else None,
            "p99": pct(delays_detect, 99) if delays_detect else None},
        "episodes_whose_alert_began_before_them": grown_from_earlier,
        "per_pattern": {p: {"episodes": v["episodes"], "caught": v["caught"],
                            "recall": v["caught"] / v["episodes"] if v["episodes"] else None,
                            "delay_s_median": statistics.median(v["delays_s"]) if v["delays_s"] else None,
                            "delay_s_p99": pct(v["delays_s"], 99) if v["delays_s"] else None,
                            "alerting_step_median": statistics.median(v["first_alerting_step"])
                            if v["first_alerting_step"] else None,
                            "alerting_step_max": max(v["first_alerting_step"])
                            if v["first_alerting_step"] else None}
                        for p, v in per_pattern.items()},
        "event_average_precision": ap, "fraud_events_scoring_1": fraud_at_1,
        "table": table, "windows": windows, "quarters": quarters, "missed": missed_rows,
        "goal_thresholds": goal_thresholds, "grid": gq,
        "top_feature_false_alerts": top_false.most_common(8),
        "top_feature_true_alerts": top_true.most_common(8),
        "false_alert_examples": [{k: al[k] for k in ("alert_id", "entity", "event_count",
                                                     "max_score", "severity")}
                                 for al in false_alerts[:10]],
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    svg_plot(os.path.join(a.out, "pr.svg"), ev_curve, ep_curve, table, a.title)

    md = ["| threshold | events flagged | event precision | event recall | alerts | alert precision "
          "| episodes caught | episode recall | false alerts per 10k legit events |",
          "|---|---|---|---|---|---|---|---|---|"]
    for q in table:
        md.append("| %g | %d | %s | %s | %d | %s | %d / %d | %s | %s |" % (
            q["threshold"], q["event_flagged"], fmt(q["event_precision"]), fmt(q["event_recall"]),
            q["alerts"], fmt(q["alert_precision"]), q["episodes_detected"], len(eps),
            fmt(q["episode_recall"]), fmt(q["false_alerts_per_10k_legit"], 2)))
    md.append("")
    md.append("| pattern | episodes | caught | recall | delay median (s) | delay p99 (s) "
              "| alerting event: median / max step |")
    md.append("|---|---|---|---|---|---|---|")
    for p, v in res["per_pattern"].items():
        md.append("| %s | %d | %d | %s | %s | %s | %g / %g |" % (
            p, v["episodes"], v["caught"], fmt(v["recall"]), fmt(v["delay_s_median"], 1),
            fmt(v["delay_s_p99"], 1), v["alerting_step_median"], v["alerting_step_max"]))
    md.append("")
    md.append("| window (65,536 events) | counted | episodes caught | card testing | account takeover "
              "| amount spike | false alerts | per 10k legit events | false, a 24 h window first |")
    md.append("|---|---|---|---|---|---|---|---|---|")
    for w in windows:
        md.append("| %d | %s | %d / %d | %s | %s | %s | %d | %s | %d |" % (
            w["window"], "yes" if w["counted"] else "no (warm-up)", w["caught"], w["episodes"],
            w["card_testing"], w["account_takeover"], w["amount_spike"], w["false_alerts"],
            fmt(w["false_alerts_per_10k_legit"], 2), w["false_alerts_24h_first"]))
    md.append("")
    md.append("| event time (UTC hours) | episodes caught | amount spikes caught | legit events "
              "| false alerts | per 10k legit events |")
    md.append("|---|---|---|---|---|---|")
    for q in quarters:
        md.append("| %s | %d / %d | %s | %d | %d | %s |" % (
            q["hours"], q["caught"], q["episodes"], q["spikes"], q["legit_events"],
            q["false_alerts"], fmt(q["false_alerts_per_10k_legit"], 2)))
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write("\n".join(md) + "\n")

    # The figures, one line each, then the tables.
    da, dd = res["delay_s_alert_first_event"], res["delay_s_first_alerting_event"]
    print("QUALITY counted: events %d (of %d; the first %d warm the feature state up) "
          "fraud_events %d legit_events %d episodes %d alerts %d" % (
              n, len(ev), skip, n_fraud, n_legit, len(eps), len(alerts)))
    print("QUALITY episode_recall %.4f (%d of %d episodes got an alert; goal >= 0.95)" % (
        res["episode_recall"], caught, len(eps)))
    print("QUALITY false_alerts_per_10k_legit %.3f (%d alerts without a fraudulent event; "
          "goal <= 1)" % (res["false_alerts_per_10k_legit"], len(false_alerts)))
    print("QUALITY delay_alert_first_event_s median %s p99 %s (event time: alert "
          "first_event_time - episode's first event_time)" % (fmt(da["median"], 1), fmt(da["p99"], 1)))
    print("QUALITY delay_first_alerting_event_s median %s p99 %s (event time: the episode's first "
          "event in an alert - its first event)" % (fmt(dd["median"], 1), fmt(dd["p99"], 1)))
    print("QUALITY episodes_whose_alert_began_before_them %d" % grown_from_earlier)
    print("QUALITY event_average_precision %.4f (%d fraudulent events score exactly 1.0)"
          % (ap, fraud_at_1))
    for q in table:
        goal = q["episode_recall"] >= 0.95 and q["false_alerts_per_10k_legit"] <= 1
        print("QUALITY at %.2f: event P %s R %s | alerts %d, precision %s | episode recall %s | "
              "false alerts/10k legit %s%s" % (
                  q["threshold"], fmt(q["event_precision"]), fmt(q["event_recall"]), q["alerts"],
                  fmt(q["alert_precision"]), fmt(q["episode_recall"]),
                  fmt(q["false_alerts_per_10k_legit"], 2), "  (both goals met)" if goal else ""))
    for p, v in res["per_pattern"].items():
        print("QUALITY pattern %s: %d/%d caught, delay median %s s p99 %s s, alerting step median %g "
              "max %g" % (p, v["caught"], v["episodes"], fmt(v["delay_s_median"], 1),
                          fmt(v["delay_s_p99"], 1), v["alerting_step_median"], v["alerting_step_max"]))
    g = goal_thresholds
    if g["recall_95_at_most"]:
        q = g["recall_95_at_most"]
        print("QUALITY goal episode recall >= 95%%: thresholds up to %.3f (there: recall %.4f, "
              "%.2f false alerts per 10k legit)" % (q["threshold"], q["episode_recall"],
                                                   q["false_alerts_per_10k_legit"]))
    else:
        print("QUALITY goal episode recall >= 95%%: met at no threshold >= %.3f (best: %.4f at "
              "%.3f)" % (grid[0], gq[0]["episode_recall"], grid[0]))
    if g["false_1_at_least"]:
        q = g["false_1_at_least"]
        print("QUALITY goal <= 1 false alert per 10k legit: thresholds from %.3f (there: %.2f, "
              "episode recall %.4f)" % (q["threshold"], q["false_alerts_per_10k_legit"],
                                        q["episode_recall"]))
    print("QUALITY both goals at once: %s" % (
        ", ".join("%.3f" % t for t in g["both"]) if g["both"] else "at no threshold"))
    for w in windows:
        print("QUALITY window %d%s: %d/%d episodes caught (card testing %s, takeover %s, spike %s), "
              "%d false alerts, %s per 10k legit, %d of them explained first by a 24h window" % (
                  w["window"], "" if w["counted"] else " (warm-up, not counted)", w["caught"],
                  w["episodes"], w["card_testing"], w["account_takeover"], w["amount_spike"],
                  w["false_alerts"], fmt(w["false_alerts_per_10k_legit"], 2),
                  w["false_alerts_24h_first"]))
    for q in quarters:
        print("QUALITY hours %s UTC (counted events): %d/%d episodes caught (spikes %s), %d false "
              "alerts in %d legit events, %s per 10k" % (
                  q["hours"], q["caught"], q["episodes"], q["spikes"], q["false_alerts"],
                  q["legit_events"], fmt(q["false_alerts_per_10k_legit"], 2)))
    print("QUALITY top explained feature, false alerts: %s" % ", ".join(
        "%s %d" % kv for kv in top_false.most_common(6)))
    print("QUALITY top explained feature, alerts with fraud: %s" % ", ".join(
        "%s %d" % kv for kv in top_true.most_common(6)))
    by_pat = {}
    for m in missed_rows:
        by_pat.setdefault(m["pattern"], []).append(m["best_score"])
    for p, best in sorted(by_pat.items()):
        print("QUALITY missed %s: %d episodes, their best score median %.3f max %.3f" % (
            p, len(best), statistics.median(best), max(best)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("encode")
    e.add_argument("events")
    e.add_argument("out")
    e.add_argument("key_delim")
    e.add_argument("msg_delim")
    c = sub.add_parser("check-encoding")
    c.add_argument("events")
    c.add_argument("msg_dir")
    z = sub.add_parser("analyze")
    for k in ("events", "truth", "scores", "alerts", "out"):
        z.add_argument("--" + k, required=True)
    z.add_argument("--title", default="vigil alerts on vigil produce's planted fraud")
    z.add_argument("--wall-clock", action="store_true",
                   help="the events in Kafka carry other event times than the file's (vigil "
                        "produce -b): do not compare them")
    z.add_argument("--skip", type=int, default=0,
                   help="events (from index 0) that warm the feature state up, not counted")
    a = ap.parse_args()
    {"encode": cmd_encode, "check-encoding": cmd_check_encoding, "analyze": cmd_analyze}[a.cmd](a)


if __name__ == "__main__":
    main()
