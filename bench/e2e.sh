#!/usr/bin/env bash
# make bench-e2e: vigild end to end against the raw I/O ceiling and a Python peer, on this machine,
# with a throwaway PostgreSQL (fsync off, unix socket) and the embedded Kafka in its own process.
# Prints `BENCH <name> <value> <unit>` lines (as make bench) and writes a markdown report and a PNG
# plot into the output folder; --append adds the report to docs/benchmarks.md and the plot to
# docs/img/. Benchmarks measure; they assert nothing.
#
# What is measured (each figure is the median of --runs runs, with min and max):
#   vigild   N BehaviorEvents are produced first (--users distinct users, seed 1) into a topic
#            with enough partitions to hold them all. vigild, with the shipped risk model and the
#            built-in feature spec, runs against a fresh database and a new consumer group; the
#            clock runs from its first consumed message (vigil_messages_consumed_total leaving 0)
#            to its N-th committed row (vigil_rows_written_total reaching N), both polled every
#            20 ms through its metrics. CPU seconds per million events are vigild's own, and
#            separately PostgreSQL's (all its processes, exited backends included). Peak RSS is
#            vigild's VmHWM; the live entities are its vigil_entities gauge. The per-stage
#            breakdown is each stage histogram's sum: decode, featurise, infer, write (COPY and
#            commit, mostly waiting on PostgreSQL, summed over the writers); the stages overlap
#            (the lane's reader and its writers), so they do not add up to the wall time.
#   ceiling  The same messages consumed by kcat (every partition from the beginning, to the end,
#            payloads read and discarded) while psql \copy loads the rows vigild wrote (dumped in
#            binary COPY format beforehand) into a table of the same shape (LIKE
#            vigil.risk_scores INCLUDING ALL: columns, defaults, indexes). Both run at once, as the
#            stages of a pipeline would; the figure is N over the time until both are done. No
#            decoding, no features, no model: what Kafka and PostgreSQL allow on this machine.
#   peer     bench/peer (Python: confluent-kafka, fastavro, numpy, psycopg) on the same messages
#            into a fresh database, timed by itself from its first batch to its last commit.
#   latency  vigild running on an empty topic (8 partitions), warmed up with 1,000 events; then
#            `vigil produce --rate R` offers R events/s for 3 + --latency-seconds s, and the rows
#            of the last --latency-seconds are counted. A row's latency is its transaction's
#            commit time (track_commit_timestamp) minus its Kafka message timestamp (set when the
#            producer created it). p50, p99 and max over those rows, per rate; per-second figures
#            go to latency-RATE-RUN.tsv in the output folder.
#   mixed    Whether news slows fraud scoring. vigild loads the risk model and the news model
#            (models/news-heads.safetensors on the MiniLM encoder in .cache/models, which
#            scripts/fetch_model.sh fetches) and runs as in the latency phase (8 partitions a
#            topic, the same warm-up, --mixed-rate events/s for 3 + --latency-seconds s, the rows
#            of the last --latency-seconds s counted). Two variants, interleaved run by run:
#            with news, where `vigil produce --kind news` offers --news-rate articles/s over the
#            same time, and without. The fraud lane's p50, p99 and max (vigil.risk_scores, as in
#            the latency phase) in both; with news also the news lane's (vigil.news_scores, same
#            definition), the articles offered in the counted window (by Kafka timestamp) and
#            those committed in it (by commit timestamp), so a lane that falls behind shows.
#            Every article must be scored. The /metrics of each run at its end (per-lane stage
#            times, model servers) go to mixed-VARIANT-RUN.metrics in the output folder, its
#            vigild log to mixed-VARIANT-RUN.log, per-second fraud figures to .tsv as above.
#            Alert latency, in both variants: a LISTEN vigil_alerts client (tests/tools/pg_listen
#            --stamp) stamps each notification when it reads it; for each fraud alert raised in
#            the counted window (revision 1), that stamp minus the Kafka timestamp of the event
#            that raised it (named by the alert's id); p50, p99, max and the count.
#   alerts   What alerting costs. --alert-events BehaviorEvents (default 500,000) of seed 11
#            among 10,000 users, on the simulated clock the shipped risk model was trained on
#            (`vigil produce --sim-rate 3`: 3 events a second of event time, 46 hours for
#            500,000), the traffic the alert quality benchmark scores (docs/alert-quality.md).
#            The vigild phase's stream is no measure of this: it stamps the wall clock, so each
#            user's events fall within seconds of each other, and the rules flag several times
#            as many events as on this one. vigild as in the vigild phase, with the built-in
#            alert rules and with alerts.rules=off, interleaved run by run (which goes first
#            alternates); events/s and CPU of each, and with rules the alerts raised and the
#            events they hold. A --set alerts.rules=... given to the benchmark stands for the
#            rules in the first variant.
#
# Usage: bash bench/e2e.sh [--build DIR] [--events N] [--users N] [--runs R]
#                          [--rates "1000 10000 50000"] [--latency-seconds S]
#                          [--mixed-rate EVENTS_PER_S] [--news-rate ARTICLES_PER_S]
#                          [--alert-events N]
#                          [--only vigild,ceiling,peer,latency,mixed,alerts] [--set KEY=VALUE]...
#                          [--out DIR] [--append]
# --set passes a setting to every vigild the benchmark starts (vigild --set). --mixed-rate
# (default 10000) and --news-rate (default 50) are the mixed phase's offered rates.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
COMMAND="bash bench/e2e.sh $*"
BUILD=build N=1000000 USERS=1000000 RUNS=3 RATES="1000 10000 50000" LAT_S=20
MIXED_RATE=10000 NEWS_RATE=50 ALERT_EVENTS=500000
ONLY=vigild,ceiling,peer,latency,mixed,alerts OUT=$SRC/.cache/bench-e2e APPEND=0 EXTRA_SET=()
while [ $# -gt 0 ]; do
    case $1 in
    --build) BUILD=$2; shift 2 ;;
    --events) N=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --latency-seconds) LAT_S=$2; shift 2 ;;
    --mixed-rate) MIXED_RATE=$2; shift 2 ;;
    --news-rate) NEWS_RATE=$2; shift 2 ;;
    --alert-events) ALERT_EVENTS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --append) APPEND=1; shift ;;
    --set) EXTRA_SET+=(--set "$2"); shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/e2e.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
export VIGIL_BUILD_DIR=$BUILD
source "$SRC/tests/lib/harness.sh"
wants() { [[ ",$ONLY," == *",$1,"* ]]; }
MODEL=$SRC/models/risk.safetensors
[ -f "$MODEL" ] || fail "no $MODEL (it is in the repository; was it deleted?)"
command -v kcat >/dev/null || fail "kcat not installed (run scripts/deps.sh)"
# The mixed phase's news model: the shipped heads on the MiniLM encoder.
NEWS_MODEL=$SRC/models/news-heads.safetensors ENCODER=$SRC/.cache/models/all-MiniLM-L6-v2
if wants mixed; then
    [ -f "$NEWS_MODEL" ] || fail "no $NEWS_MODEL (it is in the repository; was it deleted?)"
    if [ ! -f "$ENCODER/model.safetensors" ] || [ ! -f "$ENCODER/vocab.txt" ]; then
        fail "no MiniLM encoder in $ENCODER, which the mixed phase needs (make model fetches it)"
    fi
fi
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv # one line per measurement: phase run key value
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }
now_s() { date +%s.%N; }
# CPU seconds of a process (utime + stime; with children=1 also its reaped children's).
cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" -v c="${2:-0}" \
        '{ t = $14 + $15; if (c) t += $16 + $17; printf "%.3f", t / hz }' "/proc/$1/stat"
}
# All of PostgreSQL: the postmaster with its reaped children, plus every live child.
pg_cpu_s() {
    local pm total
    pm=$(head -n 1 "$PGDATA/postmaster.pid")
    total=$(cpu_s "$pm" 1)
    for c in $(pgrep -P "$pm"); do
        total=$(awk -v a="$total" -v b="$(cpu_s "$c" 2>/dev/null || echo 0)" 'BEGIN { printf "%.3f", a + b }')
    done
    echo "$total"
}
metric() { # metric PORT NAME: the sum of a metric's samples (every label set)
    http_get "$1" /metrics | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%.6f", s }'
}
written_at_least() { [ "$(metric "$1" vigil_rows_written_total | cut -d. -f1)" -ge "$2" ]; }
fresh_db() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS vigil" -c "CREATE DATABASE vigil" \
        -c "CHECKPOINT" >/dev/null
}
# A process that has been waited for leaves HARNESS_PIDS (the exact pid: ${a[@]/pid/} would also
# cut it out of a longer pid that contains its digits).
forget_pid() {
    local p kept=()
    for p in "${HARNESS_PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
    HARNESS_PIDS=("${kept[@]}")
}
# Stops every server but PostgreSQL (Kafka, a vigild left behind) between phases.
stop_others() {
    for p in "${HARNESS_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${HARNESS_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    HARNESS_PIDS=()
    rm -f "$HARNESS_TMP/bootstrap"
}
# fetch.wait.max.ms: the embedded Kafka (librdkafka's mock cluster) holds a fetch that finds no
# new message for the whole fetch.wait.max.ms (500 ms by default), even when messages arrive
# meanwhile (its Fetch handler says so); a real broker answers as soon as they arrive. 5 ms
# makes the mock answer about as a broker would; it changes nothing when a backlog is waiting.
VIGILD_ARGS=(--set log.level=info --set "model.risk_path=$MODEL" --set http.listen=127.0.0.1:0
    --set kafka.fetch.wait.max.ms=5 "${EXTRA_SET[@]}")

harness_init
# Commit timestamps are what the latency phase measures against. A run writes about 1.5 GB of
# WAL; with the default max_wal_size (1 GB) PostgreSQL checkpointed in the middle of some runs
# and not others. Each run starts after a CHECKPOINT instead (fresh_db), with room for its WAL.
PG_OPTS="-c track_commit_timestamp=on -c max_wal_size=16GB -c checkpoint_timeout=1h" pg_start
export OMP_WAIT_POLICY=passive

# librdkafka's mock cluster keeps about 5 MB of messages per partition and deletes the oldest
# beyond that (not configurable), so the topic has enough partitions to hold all the messages
# (BehaviorEvents are about 130 bytes); produce_events checks that none was lost.
# produce_events COUNT USERS PRODUCE_ARGS...: the embedded Kafka with a fresh behavior-events
# topic holding COUNT events of USERS users, made by `vigil produce PRODUCE_ARGS`.
produce_events() {
    local count=$1 users=$2 parts t0 held
    shift 2
    parts=$(((count * 160 / 4000000) + 1))
    [ "$parts" -ge 8 ] || parts=8
    kafka_start 3 "$parts" behavior-events
    t0=$(now_s)
    "$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n "$count" --users "$users" "$@" >"$HARNESS_TMP/produce.out" 2>&1 ||
        fail "producing $count events failed: $(tail -n 3 "$HARNESS_TMP/produce.out")"
    held=$(kcat -C -b "$KAFKA_BOOTSTRAP" -t behavior-events -o beginning -e -q -f '\n' | wc -l)
    [ "$held" = "$count" ] || fail "the embedded Kafka holds $held of the $count messages (raise the partitions)"
    note "produced $count events ($users users, $parts partitions) in $(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }') s"
}

if wants vigild || wants ceiling || wants peer; then produce_events "$N" "$USERS" --seed 1; fi

# --- vigild -------------------------------------------------------------------------------------
# throughput_run PHASE RUN COUNT ARGS...: vigild with ARGS against a fresh database and a new
# consumer group, timed from its first consumed message to its COUNT-th committed row; records
# events/s, CPU seconds per million events (vigild's, PostgreSQL's), peak RSS, live entities and
# the stage sums under PHASE RUN, and leaves the rate in RATE and a summary in RUN_NOTE.
throughput_run() {
    local phase=$1 run=$2 count=$3
    shift 3
    fresh_db
    local pg0 port t0 t1 cpu pgcpu hwm entities s
    pg0=$(pg_cpu_s)
    vigild_start "$phase$run" "${VIGILD_ARGS[@]}" --set "kafka.group.id=bench-$phase-$run" "$@"
    port=$(vigild_http_port "$phase$run")
    # Polled through vigild's metrics (a few small processes per poll), not with psql: Debian's
    # psql is a Perl wrapper, and polling PostgreSQL every few ms took a quarter of the CPU.
    until [ "$(metric "$port" vigil_messages_consumed_total | cut -d. -f1)" -gt 0 ]; do sleep 0.02; done
    t0=$(now_s)
    until written_at_least "$port" "$count"; do
        kill -0 "$VIGILD_PID" 2>/dev/null || fail "vigild exited (see its log above)"
        sleep 0.02
    done
    t1=$(now_s)
    cpu=$(cpu_s "$VIGILD_PID")
    pgcpu=$(awk -v a="$pg0" -v b="$(pg_cpu_s)" 'BEGIN { printf "%.3f", b - a }')
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$VIGILD_PID/status")
    entities=$(metric "$port" vigil_entities)
    for s in decode featurize infer write; do
        record "$phase" "$run" "${s}_s" "$(metric "$port" "vigil_${s}_seconds_sum")"
    done
    vigild_term "$VIGILD_PID" 60
    forget_pid "$VIGILD_PID"
    [ "$(count_rows risk_scores)" = "$count" ] || fail "vigild wrote $(count_rows risk_scores) rows, not $count"
    [ "$(sql "SELECT count(*) FROM vigil.risk_scores WHERE score IS NULL")" = 0 ] ||
        fail "vigild wrote unscored rows: the model did not load (see $HARNESS_TMP/$phase$run.log)"
    RATE=$(awk -v n="$count" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
    record "$phase" "$run" events_per_s "$RATE"
    record "$phase" "$run" cpu_s_per_m "$(awk -v c="$cpu" -v n="$count" 'BEGIN { printf "%.2f", c / n * 1e6 }')"
    record "$phase" "$run" pg_cpu_s_per_m "$(awk -v c="$pgcpu" -v n="$count" 'BEGIN { printf "%.2f", c / n * 1e6 }')"
    record "$phase" "$run" peak_rss_mib "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')"
    record "$phase" "$run" entities "${entities%.*}"
    RUN_NOTE="$RATE events/s, vigild $cpu CPU s, PostgreSQL $pgcpu CPU s, peak RSS $hwm kB, ${entities%.*} entities"
}
if wants vigild || wants ceiling; then
    for run in $(seq 1 "$RUNS"); do
        throughput_run vigild "$run" "$N"
        note "vigild run $run: $RUN_NOTE"
    done
fi

# --- the raw ceiling ----------------------------------------------------------------------------
if wants ceiling; then
    COLS=$(sql "SELECT string_agg(quote_ident(column_name), ',' ORDER BY ordinal_position)
                FROM information_schema.columns
                WHERE table_schema = 'vigil' AND table_name = 'risk_scores' AND column_name <> 'written_at'")
    ROWS=$HARNESS_TMP/rows.bin
    psql -X -q -v ON_ERROR_STOP=1 -c "\\copy (SELECT $COLS FROM vigil.risk_scores) TO '$ROWS' WITH (FORMAT binary)"
    for run in $(seq 1 "$RUNS"); do
        sql "DROP TABLE IF EXISTS public.ceiling_scores; CREATE TABLE public.ceiling_scores (LIKE vigil.risk_scores INCLUDING ALL)" >/dev/null
        psql -X -q -c "CHECKPOINT" >/dev/null
        pg0=$(pg_cpu_s)
        t0=$(now_s)
        kcat -C -b "$KAFKA_BOOTSTRAP" -t behavior-events -o beginning -e -q -f '%s' >/dev/null &
        kpid=$!
        psql -X -q -v ON_ERROR_STOP=1 -c "\\copy public.ceiling_scores ($COLS) FROM '$ROWS' WITH (FORMAT binary)" &
        ppid=$!
        wait "$kpid" || fail "kcat failed"
        tk=$(now_s)
        wait "$ppid" || fail "psql \\copy failed"
        tp=$(now_s)
        pgcpu=$(awk -v a="$pg0" -v b="$(pg_cpu_s)" 'BEGIN { printf "%.3f", b - a }')
        loaded=$(sql "SELECT count(*) FROM public.ceiling_scores")
        [ "$loaded" = "$N" ] || fail "the ceiling loaded $loaded rows, not $N"
        t1=$(awk -v a="$tk" -v b="$tp" 'BEGIN { print (a > b ? a : b) }')
        rate=$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
        record ceiling "$run" events_per_s "$rate"
        record ceiling "$run" kcat_s "$(awk -v a="$t0" -v b="$tk" 'BEGIN { printf "%.2f", b - a }')"
        record ceiling "$run" copy_s "$(awk -v a="$t0" -v b="$tp" 'BEGIN { printf "%.2f", b - a }')"
        record ceiling "$run" pg_cpu_s_per_m "$(awk -v c="$pgcpu" -v n="$N" 'BEGIN { printf "%.2f", c / n * 1e6 }')"
        note "ceiling run $run: $rate events/s (kcat $(awk -v a="$t0" -v b="$tk" 'BEGIN { printf "%.2f", b - a }') s, \\copy $(awk -v a="$t0" -v b="$tp" 'BEGIN { printf "%.2f", b - a }') s)"
    done
    sql "DROP TABLE public.ceiling_scores" >/dev/null
fi

# --- the Python peer ----------------------------------------------------------------------------
if wants peer; then
    for run in $(seq 1 "$RUNS"); do
        fresh_db
        # vigild's schema, which the peer copies its tables' shape from.
        VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO "$VIGIL" migrate >"$HARNESS_TMP/migrate.log" 2>&1 ||
            fail "vigil migrate failed: $(tail -n 3 "$HARNESS_TMP/migrate.log")"
        pg0=$(pg_cpu_s)
        line=$(bash "$SRC/bench/peer/run.sh" --brokers "$KAFKA_BOOTSTRAP" --dsn "$TEST_CONNINFO" \
            --count "$N" --group "bench-peer-$run" --idle-s 30 --model "$MODEL" 2>"$HARNESS_TMP/peer$run.log" |
            grep '^peer ') || { tail -n 20 "$HARNESS_TMP/peer$run.log" >&2; fail "the peer failed"; }
        pgcpu=$(awk -v a="$pg0" -v b="$(pg_cpu_s)" 'BEGIN { printf "%.3f", b - a }')
        field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
        [ "$(field events)" = "$N" ] || fail "the peer wrote $(field events) events, not $N"
        record peer "$run" events_per_s "$(field events_per_s)"
        record peer "$run" cpu_s_per_m "$(awk -v c="$(field cpu_s)" -v n="$N" 'BEGIN { printf "%.2f", c / n * 1e6 }')"
        record peer "$run" pg_cpu_s_per_m "$(awk -v c="$pgcpu" -v n="$N" 'BEGIN { printf "%.2f", c / n * 1e6 }')"
        note "peer run $run: $line"
    done
fi
stop_others

# --- latency: shared by the latency and mixed phases --------------------------------------------
# latency_vigild_start NAME ARGS...: the embedded Kafka with empty topics (8 partitions each, so
# vigild reads every message from the first), a fresh database, and vigild with ARGS, its group
# settled and warmed up. Sets port (and VIGILD_PID, as vigild_start does).
latency_vigild_start() {
    local name=$1
    shift
    stop_others
    kafka_start 3 8 behavior-events
    fresh_db
    vigild_start "$name" "$@" --set "kafka.group.id=bench-$name"
    port=$(vigild_http_port "$name")
    # Every partition of the four topics it reads (8 each) assigned: the group has settled.
    until [ "$(metric "$port" vigil_assigned_partitions | cut -d. -f1)" -ge 32 ]; do sleep 0.05; done
    # Warm-up, not counted: 1,000 events, written before the measured load starts, so the
    # consumer is fetching and the connections are open.
    "$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 1000 --users "$USERS" --seed 99 \
        >"$HARNESS_TMP/lat-produce.out" 2>&1 || fail "producing the warm-up events failed"
    wait_until 60 "vigild to write the warm-up events" written_at_least "$port" 1000
}
latency_vigild_stop() {
    vigild_term "$VIGILD_PID" 60
    forget_pid "$VIGILD_PID"
}
# The first 3 s of offered load are not counted: the producer's own start (connecting, fetching
# metadata) holds its first messages for about a second. Prints when the counted window starts.
latency_window_start() { awk -v t="$(now_s)" 'BEGIN { printf "%.3f", t + 3 }'; }
# A row's latency in seconds, and the rows of vigil.$1 in the counted window (from $2 on).
latency_rows() {
    echo "SELECT kafka_timestamp, extract(epoch FROM pg_xact_commit_timestamp(xmin) - kafka_timestamp) AS l
          FROM vigil.$1 WHERE kafka_timestamp >= to_timestamp($2)"
}
# latency_stats TABLE T_START: "p50 p99 max" in ms over the counted rows of vigil.TABLE.
latency_stats() {
    psql -X -q -t -A -F ' ' -v ON_ERROR_STOP=1 -c "
        SELECT round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY l)::numeric, 1),
               round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY l)::numeric, 1),
               round(1000 * max(l)::numeric, 1)
        FROM ($(latency_rows "$1" "$2")) s"
}
# latency_per_second TABLE T_START FILE: per second of offered load, count, p50, p99 and max, to
# see when a tail happened.
latency_per_second() {
    psql -X -q -v ON_ERROR_STOP=1 -c "\\copy (
        SELECT extract(epoch FROM date_trunc('second', kafka_timestamp))::bigint AS second,
               count(*), round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY l)::numeric, 1),
               round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY l)::numeric, 1),
               round(1000 * max(l)::numeric, 1)
        FROM ($(latency_rows "$1" "$2")) s
        GROUP BY 1 ORDER BY 1) TO '$3'"
}
# record_latency PHASE RUN PREFIX TABLE T_START: p50, p99 and max as PREFIX{p50,p99,max}_ms, and
# in LAT_P50, LAT_P99 and LAT_MAX for the caller's note.
record_latency() {
    read -r LAT_P50 LAT_P99 LAT_MAX < <(latency_stats "$4" "$5")
    [ -n "$LAT_MAX" ] || fail "no rows of vigil.$4 in the counted window of $1 run $2"
    record "$1" "$2" "${3}p50_ms" "$LAT_P50"
    record "$1" "$2" "${3}p99_ms" "$LAT_P99"
    record "$1" "$2" "${3}max_ms" "$LAT_MAX"
}

# --- latency at fixed offered rates -------------------------------------------------------------
if wants latency; then
    for rate in $RATES; do
        for run in $(seq 1 "$RUNS"); do
            latency_vigild_start "lat$rate-$run" "${VIGILD_ARGS[@]}"
            t_start=$(latency_window_start)
            count=$((rate * (LAT_S + 3)))
            "$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n "$count" -r "$rate" --users "$USERS" --seed "$((100 + run))" \
                >"$HARNESS_TMP/lat-produce.out" 2>&1 || fail "producing at $rate/s failed"
            wait_until 120 "vigild to write the $count events offered at $rate/s" \
                written_at_least "$port" "$((1000 + count))"
            latency_vigild_stop
            record_latency "latency$rate" "$run" "" risk_scores "$t_start"
            latency_per_second risk_scores "$t_start" "$OUT/latency-$rate-$run.tsv"
            note "latency at $rate events/s, run $run: p50 $LAT_P50 ms, p99 $LAT_P99 ms, max $LAT_MAX ms"
        done
    done
fi

# --- fraud latency with and without news alongside ----------------------------------------------
# metric_of PORT NAME LABEL: the sum of NAME's samples whose labels include LABEL (topic="x").
metric_of() {
    http_get "$1" /metrics | awk -v m="$2" -v l="$3" 'index($1, m "{") == 1 && index($1, l) { s += $2 }
        END { printf "%.6f", s }'
}
topic_written_at_least() { # PORT TOPIC N
    [ "$(metric_of "$1" vigil_rows_written_total "topic=\"$2\"" | cut -d. -f1)" -ge "$3" ]
}
# alert_latency PHASE RUN: of the fraud alerts raised in the counted window (revision 1), the time
# from the Kafka timestamp of the event that raised it (its id names the event's partition and
# offset) to the LISTEN client reading its NOTIFY; alert_{p50,p99,max}_ms and alerts recorded,
# and in LAT_P50, LAT_P99, LAT_MAX and ALERTS for the note.
alert_latency() {
    read -r LAT_P50 LAT_P99 LAT_MAX ALERTS < <(python3 - "$HARNESS_TMP/mixed.notify" "$t_start" <<'PY'
import json, subprocess, sys
first = {}
for line in open(sys.argv[1]):
    if line.strip() == "listening":
        continue
    ms, payload = line.rstrip("\n").split("\t", 1)
    n = json.loads(payload)
    if n["kind"] == "fraud" and n["revision"] == 1:
        first[n["alert_id"]] = int(ms)
# The raising event's Kafka timestamp, by (partition, offset) from the alert id.
rows = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-F", " ", "-c",
                       "SELECT 'fraud:' || topic || ':' || partition || ':' || kafka_offset, "
                       "(extract(epoch FROM kafka_timestamp) * 1000)::bigint FROM vigil.risk_scores "
                       "WHERE kafka_timestamp >= to_timestamp(%s)" % sys.argv[2]],
                      check=True, capture_output=True, text=True).stdout.split("\n")
ts = dict(r.split(" ") for r in rows if r.strip())
lat = sorted(first[a] - int(ts[a]) for a in first if a in ts)
if not lat:
    print("- - - 0")
else:
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    print(q(0.5), q(0.99), lat[-1], len(lat))
PY
)
    [ "$ALERTS" != 0 ] || fail "$1 run $2: no fraud alert raised in the counted window"
    record "$1" "$2" alert_p50_ms "$LAT_P50"
    record "$1" "$2" alert_p99_ms "$LAT_P99"
    record "$1" "$2" alert_max_ms "$LAT_MAX"
    record "$1" "$2" alerts "$ALERTS"
}

# mixed_run VARIANT RUN: one run of the mixed phase; VARIANT with_news or without_news.
mixed_run() {
    local variant=$1 run=$2 phase=mixed_$1 count=$((MIXED_RATE * (LAT_S + 3)))
    local news_count=0 npid="" lpid t_start t_end cpu0 cpu1 f offered committed
    if [ "$variant" = with_news ]; then news_count=$((NEWS_RATE * (LAT_S + 3))); fi
    latency_vigild_start "mixed-$variant-$run" "${VIGILD_ARGS[@]}" "${NEWS_ARGS[@]}"
    # A LISTEN client stamping each notification as it reads it (alert latency, below).
    "$BUILD/tests/pg_listen" --stamp "$TEST_CONNINFO" vigil_alerts >"$HARNESS_TMP/mixed.notify" \
        2>"$HARNESS_TMP/mixed.listen.log" &
    lpid=$!
    HARNESS_PIDS+=("$lpid")
    wait_until 30 "the LISTEN client" grep -q '^listening$' "$HARNESS_TMP/mixed.notify"
    cpu0=$(cpu_s "$VIGILD_PID")
    t_start=$(latency_window_start)
    if [ "$news_count" -gt 0 ]; then
        "$VIGIL" produce -b "$KAFKA_BOOTSTRAP" --kind news -n "$news_count" -r "$NEWS_RATE" \
            --seed "$((200 + run))" >"$HARNESS_TMP/mixed-news.out" 2>"$HARNESS_TMP/mixed-news.log" &
        npid=$!
        HARNESS_PIDS+=("$npid")
    fi
    # The same events in both variants of a run.
    "$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n "$count" -r "$MIXED_RATE" --users "$USERS" \
        --seed "$((100 + run))" \
        >"$HARNESS_TMP/lat-produce.out" 2>&1 || fail "producing at $MIXED_RATE events/s failed"
    if [ -n "$npid" ]; then
        wait "$npid" ||
            fail "producing articles at $NEWS_RATE/s failed: $(tail -n 3 "$HARNESS_TMP/mixed-news.log")"
        forget_pid "$npid"
        [ "$(summary_field "$(cat "$HARNESS_TMP/mixed-news.out")" delivered)" = "$news_count" ] ||
            fail "the news producer delivered $(cat "$HARNESS_TMP/mixed-news.out"), not $news_count articles"
    fi
    wait_until 120 "vigild to write the $count events offered at $MIXED_RATE/s" \
        topic_written_at_least "$port" behavior-events "$((1000 + count))"
    wait_until 120 "vigild to write the $news_count articles offered at $NEWS_RATE/s" \
        topic_written_at_least "$port" news-articles "$news_count"
    cpu1=$(cpu_s "$VIGILD_PID")
    record "$phase" "$run" cpu_s "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')"
    record "$phase" "$run" news_busy_s "$(metric_of "$port" vigil_model_busy_seconds_total 'model="news"')"
    http_get "$port" /metrics | sed '1,/^$/d' >"$OUT/mixed-$variant-$run.metrics"
    latency_vigild_stop
    cp "$HARNESS_TMP/mixed-$variant-$run.log" "$OUT/mixed-$variant-$run.log"
    [ "$(count_rows risk_scores)" = "$((1000 + count))" ] ||
        fail "$phase run $run: vigild wrote $(count_rows risk_scores) risk rows, not $((1000 + count))"
    [ "$(count_rows news_scores)" = "$news_count" ] ||
        fail "$phase run $run: vigild wrote $(count_rows news_scores) news rows, not $news_count"
    [ "$(sql "SELECT count(*) FROM vigil.risk_scores WHERE score IS NULL")" = 0 ] ||
        fail "$phase run $run: unscored risk rows (see the vigild log)"
    [ "$(sql "SELECT count(*) FROM vigil.news_scores WHERE model_version IS NULL")" = 0 ] ||
        fail "$phase run $run: unscored articles: the news model did not score them (see the vigild log)"
    record_latency "$phase" "$run" fraud_ risk_scores "$t_start"
    latency_per_second risk_scores "$t_start" "$OUT/mixed-$variant-$run.tsv"
    f="fraud p50 $LAT_P50 ms, p99 $LAT_P99 ms, max $LAT_MAX ms"
    kill -TERM "$lpid"
    wait "$lpid" || fail "the LISTEN client failed: $(cat "$HARNESS_TMP/mixed.listen.log")"
    forget_pid "$lpid"
    alert_latency "$phase" "$run"
    f="$f; $ALERTS alerts raised in the window, NOTIFY p50 $LAT_P50 ms, p99 $LAT_P99 ms, max $LAT_MAX ms"
    if [ "$news_count" -gt 0 ]; then
        record_latency "$phase" "$run" news_ news_scores "$t_start"
        # The window ends with the last article offered; committed: by commit timestamp in it.
        t_end=$(sql "SELECT extract(epoch FROM max(kafka_timestamp)) FROM vigil.news_scores")
        read -r offered committed < <(psql -X -q -t -A -F ' ' -v ON_ERROR_STOP=1 -c "
            SELECT count(*) FILTER (WHERE kafka_timestamp >= to_timestamp($t_start)),
                   count(*) FILTER (WHERE pg_xact_commit_timestamp(xmin)
                                    BETWEEN to_timestamp($t_start) AND to_timestamp($t_end))
            FROM vigil.news_scores")
        record "$phase" "$run" news_offered "$offered"
        record "$phase" "$run" news_committed "$committed"
        f="$f; news p50 $LAT_P50 ms, p99 $LAT_P99 ms, max $LAT_MAX ms; of the $offered articles"
        f="$f offered in the window, $committed committed in it"
    fi
    note "mixed $variant, run $run: $f"
}
if wants mixed; then
    NEWS_ARGS=(--set "model.news_path=$NEWS_MODEL" --set "model.encoder_dir=$ENCODER")
    for run in $(seq 1 "$RUNS"); do
        for variant in with_news without_news; do mixed_run "$variant" "$run"; done
    done
fi

# --- alerting's cost ----------------------------------------------------------------------------
if wants alerts; then
    stop_others
    produce_events "$ALERT_EVENTS" 10000 --seed 11 --sim-rate 3
    for run in $(seq 1 "$RUNS"); do
        order="rules off"
        [ $((run % 2)) = 1 ] || order="off rules"
        for variant in $order; do
            if [ "$variant" = rules ]; then
                throughput_run alerts_rules "$run" "$ALERT_EVENTS"
                alerts=$(sql "SELECT count(*) FROM vigil.alerts WHERE kind = 'fraud'")
                hits=$(sql "SELECT coalesce(sum(event_count), 0) FROM vigil.alerts WHERE kind = 'fraud'")
                [ "$alerts" -gt 0 ] || fail "alerts run $run: the rules raised no fraud alert"
                record alerts_rules "$run" alerts "$alerts"
                record alerts_rules "$run" alert_events "$hits"
                note "alerts with rules, run $run: $RUN_NOTE; $alerts fraud alerts holding $hits events"
            else
                throughput_run alerts_off "$run" "$ALERT_EVENTS" --set alerts.rules=off
                note "alerts off, run $run: $RUN_NOTE"
            fi
        done
    done
fi

# --- report -------------------------------------------------------------------------------------
stop_others
source "$SRC/bench/venv.sh"
bench_venv "$SRC/.cache/plot-venv" "$SRC/bench/requirements-plot.txt"
"$SRC/.cache/plot-venv/bin/python" "$SRC/bench/e2e_report.py" --results "$RESULTS" --out "$OUT" \
    --events "$N" --users "$USERS" --runs "$RUNS" --latency-seconds "$LAT_S" \
    --mixed-rate "$MIXED_RATE" --news-rate "$NEWS_RATE" --alert-events "$ALERT_EVENTS" --command "$COMMAND" \
    $([ "$APPEND" = 1 ] && echo "--append $SRC/docs/benchmarks.md")
