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
#            commit, mostly waiting on PostgreSQL).
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
#
# Usage: bash bench/e2e.sh [--build DIR] [--events N] [--users N] [--runs R]
#                          [--rates "1000 10000 50000"] [--latency-seconds S]
#                          [--only vigild,ceiling,peer,latency] [--set KEY=VALUE]... [--out DIR]
#                          [--append]
# --set passes a setting to every vigild the benchmark starts (vigild --set).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
COMMAND="bash bench/e2e.sh $*"
BUILD=build N=1000000 USERS=1000000 RUNS=3 RATES="1000 10000 50000" LAT_S=20
ONLY=vigild,ceiling,peer,latency OUT=$SRC/.cache/bench-e2e APPEND=0 EXTRA_SET=()
while [ $# -gt 0 ]; do
    case $1 in
    --build) BUILD=$2; shift 2 ;;
    --events) N=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --rates) RATES=$2; shift 2 ;;
    --latency-seconds) LAT_S=$2; shift 2 ;;
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
MODEL=$SRC/models/risk.safetensors
[ -f "$MODEL" ] || fail "no $MODEL (it is in the repository; was it deleted?)"
command -v kcat >/dev/null || fail "kcat not installed (run scripts/deps.sh)"
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv # one line per measurement: phase run key value
: >"$RESULTS"
wants() { [[ ",$ONLY," == *",$1,"* ]]; }
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
# beyond that (not configurable), so the topic has enough partitions to hold all N messages
# (BehaviorEvents are about 130 bytes); produce_all checks that none was lost.
PARTITIONS=$(((N * 160 / 4000000) + 1))
[ "$PARTITIONS" -ge 8 ] || PARTITIONS=8
produce_all() {
    kafka_start 3 "$PARTITIONS" behavior-events
    local t0
    t0=$(now_s)
    "$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n "$N" --users "$USERS" --seed 1 >"$HARNESS_TMP/produce.out" 2>&1 ||
        fail "producing $N events failed: $(tail -n 3 "$HARNESS_TMP/produce.out")"
    local held
    held=$(kcat -C -b "$KAFKA_BOOTSTRAP" -t behavior-events -o beginning -e -q -f '\n' | wc -l)
    [ "$held" = "$N" ] || fail "the embedded Kafka holds $held of the $N messages (raise PARTITIONS)"
    note "produced $N events ($USERS users, $PARTITIONS partitions) in $(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }') s"
}

if wants vigild || wants ceiling || wants peer; then produce_all; fi

# --- vigild -------------------------------------------------------------------------------------
if wants vigild || wants ceiling; then
    for run in $(seq 1 "$RUNS"); do
        fresh_db
        pg0=$(pg_cpu_s)
        vigild_start "vigild$run" "${VIGILD_ARGS[@]}" --set "kafka.group.id=bench-vigild-$run"
        port=$(vigild_http_port "vigild$run")
        # Polled through vigild's metrics (a few small processes per poll), not with psql: Debian's
        # psql is a Perl wrapper, and polling PostgreSQL every few ms took a quarter of the CPU.
        until [ "$(metric "$port" vigil_messages_consumed_total | cut -d. -f1)" -gt 0 ]; do sleep 0.02; done
        t0=$(now_s)
        until written_at_least "$port" "$N"; do
            kill -0 "$VIGILD_PID" 2>/dev/null || fail "vigild exited (see its log above)"
            sleep 0.02
        done
        t1=$(now_s)
        cpu=$(cpu_s "$VIGILD_PID")
        pgcpu=$(awk -v a="$pg0" -v b="$(pg_cpu_s)" 'BEGIN { printf "%.3f", b - a }')
        hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$VIGILD_PID/status")
        entities=$(metric "$port" vigil_entities)
        for s in decode featurize infer write; do
            record vigild "$run" "${s}_s" "$(metric "$port" "vigil_${s}_seconds_sum")"
        done
        vigild_term "$VIGILD_PID" 60
        HARNESS_PIDS=("${HARNESS_PIDS[@]/$VIGILD_PID/}")
        [ "$(count_rows risk_scores)" = "$N" ] || fail "vigild wrote $(count_rows risk_scores) rows, not $N"
        rate=$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
        record vigild "$run" events_per_s "$rate"
        record vigild "$run" cpu_s_per_m "$(awk -v c="$cpu" -v n="$N" 'BEGIN { printf "%.2f", c / n * 1e6 }')"
        record vigild "$run" pg_cpu_s_per_m "$(awk -v c="$pgcpu" -v n="$N" 'BEGIN { printf "%.2f", c / n * 1e6 }')"
        record vigild "$run" peak_rss_mib "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')"
        record vigild "$run" entities "${entities%.*}"
        note "vigild run $run: $rate events/s, vigild $cpu CPU s, PostgreSQL $pgcpu CPU s, peak RSS $hwm kB, ${entities%.*} entities"
    done
    [ "$(sql "SELECT count(*) FROM vigil.risk_scores WHERE score IS NULL")" = 0 ] ||
        fail "vigild wrote unscored rows: the model did not load (see $HARNESS_TMP/vigild*.log)"
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

# --- latency at fixed offered rates -------------------------------------------------------------
if wants latency; then
    for rate in $RATES; do
        for run in $(seq 1 "$RUNS"); do
            stop_others
            kafka_start 3 8 behavior-events # empty: vigild reads every message from the first
            fresh_db
            vigild_start "lat$rate-$run" "${VIGILD_ARGS[@]}" --set "kafka.group.id=bench-lat-$rate-$run"
            port=$(vigild_http_port "lat$rate-$run")
            # Every partition of the four topics it reads (8 each) assigned: the group has settled.
            until [ "$(metric "$port" vigil_assigned_partitions | cut -d. -f1)" -ge 32 ]; do sleep 0.05; done
            # Warm-up, not counted: 1,000 events, written before the measured load starts, so the
            # consumer is fetching and the connections are open.
            "$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 1000 --users "$USERS" --seed 99 \
                >"$HARNESS_TMP/lat-produce.out" 2>&1 || fail "producing the warm-up events failed"
            wait_until 60 "vigild to write the warm-up events" written_at_least "$port" 1000
            # The first 3 s of offered load are not counted either: the producer's own start
            # (connecting, fetching metadata) holds its first messages for about a second.
            t_start=$(awk -v t="$(now_s)" 'BEGIN { printf "%.3f", t + 3 }')
            count=$((rate * (LAT_S + 3)))
            "$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n "$count" -r "$rate" --users "$USERS" --seed "$((100 + run))" \
                >"$HARNESS_TMP/lat-produce.out" 2>&1 || fail "producing at $rate/s failed"
            wait_until 120 "vigild to write the $count events offered at $rate/s" \
                written_at_least "$port" "$((1000 + count))"
            vigild_term "$VIGILD_PID" 60
            HARNESS_PIDS=("${HARNESS_PIDS[@]/$VIGILD_PID/}")
            read -r p50 p99 max < <(psql -X -q -t -A -F ' ' -c "
                SELECT round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY l)::numeric, 1),
                       round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY l)::numeric, 1),
                       round(1000 * max(l)::numeric, 1)
                FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - kafka_timestamp) AS l
                      FROM vigil.risk_scores WHERE kafka_timestamp >= to_timestamp($t_start)) s")
            # Per second of offered load: count, p50, p99 and max, to see when a tail happened.
            psql -X -q -v ON_ERROR_STOP=1 -c "\\copy (
                SELECT extract(epoch FROM date_trunc('second', kafka_timestamp))::bigint AS second,
                       count(*), round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY l)::numeric, 1),
                       round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY l)::numeric, 1),
                       round(1000 * max(l)::numeric, 1)
                FROM (SELECT kafka_timestamp,
                             extract(epoch FROM pg_xact_commit_timestamp(xmin) - kafka_timestamp) AS l
                      FROM vigil.risk_scores WHERE kafka_timestamp >= to_timestamp($t_start)) s
                GROUP BY 1 ORDER BY 1) TO '$OUT/latency-$rate-$run.tsv'"
            record "latency$rate" "$run" p50_ms "$p50"
            record "latency$rate" "$run" p99_ms "$p99"
            record "latency$rate" "$run" max_ms "$max"
            note "latency at $rate events/s, run $run: p50 $p50 ms, p99 $p99 ms, max $max ms"
        done
    done
fi

# --- report -------------------------------------------------------------------------------------
stop_others
source "$SRC/bench/venv.sh"
bench_venv "$SRC/.cache/plot-venv" "$SRC/bench/requirements-plot.txt"
"$SRC/.cache/plot-venv/bin/python" "$SRC/bench/e2e_report.py" --results "$RESULTS" --out "$OUT" \
    --events "$N" --users "$USERS" --runs "$RUNS" --latency-seconds "$LAT_S" --command "$COMMAND" \
    $([ "$APPEND" = 1 ] && echo "--append $SRC/docs/benchmarks.md")
