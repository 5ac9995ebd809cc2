# Shared shell harness for vigil's integration tests: a throwaway PostgreSQL cluster and the
# embedded Kafka (librdkafka's mock cluster, in its own process via `vigil kafka-mock`), both
# private to one test and removed when it exits, whether it passed or not.
#
# Source it, then:  harness_init; pg_start; kafka_start 3 8 behavior-events; ...
# Every helper fails the test (exit 1 with a message) rather than returning an error.
set -euo pipefail

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_DIR=$(cd "$HARNESS_DIR/../.." && pwd)
BUILD_DIR=${VIGIL_BUILD_DIR:-$SRC_DIR/build}
# vigild treats every VIGIL_* variable as configuration and rejects unknown ones: keep the
# harness's own out of the environment of the programs it starts.
unset VIGIL_BUILD_DIR
VIGILD=${VIGILD:-$BUILD_DIR/vigild}
VIGIL=${VIGIL:-$BUILD_DIR/vigil}
HARNESS_PIDS=()

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "# $*" >&2; }

harness_cleanup() {
    local rc=$?
    set +e
    for pid in "${HARNESS_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
    for pid in "${HARNESS_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    if [ -n "${PGDATA:-}" ] && [ -f "$PGDATA/postmaster.pid" ]; then
        pg_run "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1
    fi
    if [ $rc -ne 0 ] && [ -n "${HARNESS_TMP:-}" ]; then
        for f in "$HARNESS_TMP"/*.log; do
            [ -f "$f" ] || continue
            echo "---- tail of $f" >&2
            tail -n 40 "$f" >&2
        done
    fi
    [ -n "${HARNESS_TMP:-}" ] && rm -rf "$HARNESS_TMP"
    exit $rc
}

harness_init() {
    HARNESS_TMP=$(mktemp -d /tmp/vigil-test.XXXXXX)
    chmod 755 "$HARNESS_TMP"
    # Owned by the unprivileged server user when we are root, so postgres can write its log here.
    if [ "$(id -u)" = 0 ]; then chown nobody "$HARNESS_TMP"; fi
    trap harness_cleanup EXIT
    trap 'exit 130' INT TERM
}

# Runs a command as the unprivileged owner of the cluster (PostgreSQL refuses to run as root).
pg_run() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u nobody -- "$@"
    else
        "$@"
    fi
}

# Starts a private cluster listening only on a unix socket in the test's own directory, so no
# port can clash with anything. $PG_OPTS adds server settings ("-c name=value ..."). Exports
# PGHOST, PGPORT, PGDATABASE, PGUSER; sets TEST_CONNINFO.
pg_start() {
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -x "$PG_BIN/initdb" ] || fail "PostgreSQL server not installed (run scripts/deps.sh)"
    PGDATA=$HARNESS_TMP/pgdata
    local sock=$HARNESS_TMP/pgsock
    mkdir -p "$PGDATA" "$sock"
    if [ "$(id -u)" = 0 ]; then chown nobody "$PGDATA" "$sock"; fi
    chmod 700 "$PGDATA"
    chmod 755 "$sock"
    pg_run "$PG_BIN/initdb" -D "$PGDATA" -U vigil -A trust -E UTF8 --no-sync >"$HARNESS_TMP/initdb.log" 2>&1 ||
        { cat "$HARNESS_TMP/initdb.log" >&2; fail "initdb failed"; }
    export PGPORT=$((20000 + RANDOM % 20000))
    pg_run "$PG_BIN/pg_ctl" -D "$PGDATA" -w -t 60 -l "$HARNESS_TMP/postgres.log" \
        -o "-k $sock -p $PGPORT -c listen_addresses='' -c fsync=off -c max_connections=50 ${PG_OPTS:-}" start >/dev/null ||
        fail "pg_ctl start failed"
    export PGHOST=$sock PGUSER=vigil PGDATABASE=vigil
    psql -X -q -d postgres -c "CREATE DATABASE vigil" >/dev/null || fail "CREATE DATABASE failed"
    TEST_CONNINFO="host=$sock port=$PGPORT user=vigil dbname=vigil"
}

pg_stop() { pg_run "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null; }
# Starts the cluster pg_start made again, on the same socket and port (after pg_stop).
pg_restart() {
    pg_run "$PG_BIN/pg_ctl" -D "$PGDATA" -w -t 60 -l "$HARNESS_TMP/postgres.log" \
        -o "-k $PGHOST -p $PGPORT -c listen_addresses='' -c fsync=off -c max_connections=50 ${PG_OPTS:-}" start >/dev/null ||
        fail "pg_ctl restart failed"
}
# Resident set size of a process in KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# One value from a query.
sql() { psql -X -q -t -A -v ON_ERROR_STOP=1 -c "$1"; }

# Starts the embedded Kafka in its own process: kafka_start BROKERS PARTITIONS TOPIC...
# The four topics vigild reads by default (behavior-events, news-articles, fraud-labels,
# news-labels) are always created too, so a default vigild finds every input it subscribes to.
# Exports KAFKA_BOOTSTRAP; KAFKA_PID is the process, for tests that take Kafka away.
kafka_start() {
    local brokers=$1 partitions=$2
    shift 2
    local topics=() t
    for t in "$@" behavior-events news-articles fraud-labels news-labels; do
        [[ " ${topics[*]} " == *" --topic $t "* ]] || topics+=(--topic "$t")
    done
    "$VIGIL" kafka-mock --brokers "$brokers" --partitions "$partitions" "${topics[@]}" \
        --bootstrap-file "$HARNESS_TMP/bootstrap" --control "$HARNESS_TMP/kafka.ctl" \
        >"$HARNESS_TMP/kafka.log" 2>&1 &
    KAFKA_PID=$!
    HARNESS_PIDS+=($KAFKA_PID)
    wait_until 30 "embedded Kafka bootstrap file" test -s "$HARNESS_TMP/bootstrap"
    KAFKA_BOOTSTRAP=$(cat "$HARNESS_TMP/bootstrap")
    export KAFKA_BOOTSTRAP
}

# kafka_ctl COMMAND...: sends a fault-injection command to the embedded Kafka (see
# ingest/ingest_mock.h for the commands) and waits until it has been applied.
kafka_ctl() {
    local cmd="$*" before
    before=$(grep -c '' "$HARNESS_TMP/kafka.log")
    echo "$cmd" >"$HARNESS_TMP/kafka.ctl"
    wait_until 10 "kafka-mock to apply '$cmd'" bash -c \
        "tail -n +$((before + 1)) '$HARNESS_TMP/kafka.log' | grep -q -e '^ok: $cmd\$' -e '^error: '"
    if tail -n +$((before + 1)) "$HARNESS_TMP/kafka.log" | grep -q '^error: '; then
        fail "kafka-mock refused '$cmd': $(tail -n 1 "$HARNESS_TMP/kafka.log")"
    fi
    note "kafka: $cmd"
}

# am_start [PORT]: the real Prometheus Alertmanager (Debian's prometheus-alertmanager), private to the
# test, clustering off, one receiver that drops what it is given; sets AM_URL and AM_PID. Without
# PORT (a restart gives the old one) the port is a free one found just before; should another
# process take it first, Alertmanager exits at once and the next port is tried.
am_start() {
    local bin=${ALERTMANAGER:-prometheus-alertmanager} port=${1:-} try
    command -v "$bin" >/dev/null || fail "$bin missing: run scripts/deps.sh"
    printf 'route:\n  receiver: "null"\n  group_wait: 1s\nreceivers:\n  - name: "null"\n' \
        >"$HARNESS_TMP/alertmanager.yml"
    for try in 1 2 3 4 5; do
        [ -n "${1:-}" ] ||
            port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        "$bin" --config.file="$HARNESS_TMP/alertmanager.yml" --storage.path="$HARNESS_TMP/am-data" \
            --web.listen-address="127.0.0.1:$port" --cluster.listen-address= \
            >"$HARNESS_TMP/alertmanager.log" 2>&1 &
        AM_PID=$!
        HARNESS_PIDS+=($AM_PID)
        AM_URL=http://127.0.0.1:$port
        if wait_until 30 "Alertmanager to listen or exit" am_up_or_gone; then :; fi
        if kill -0 "$AM_PID" 2>/dev/null; then
            note "alertmanager at $AM_URL"
            return 0
        fi
    done
    fail "Alertmanager did not start: $(tail -n 3 "$HARNESS_TMP/alertmanager.log")"
}
am_up_or_gone() { ! kill -0 "$AM_PID" 2>/dev/null || am_get /-/ready >/dev/null; }
# am_get PATH: the body of GET $AM_URL/PATH (fails when Alertmanager does not answer 200).
am_get() { python3 - "$AM_URL$1" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    sys.stdout.write(r.read().decode())
PY
}
am_stop() { kill -TERM "$AM_PID" 2>/dev/null; wait "$AM_PID" 2>/dev/null || true; }

# wait_until SECONDS WHAT COMMAND...: polls COMMAND until it succeeds, or fails the test naming
# WHAT. The poll is a condition check, not a guess at how long something takes. The limit is
# measured in microseconds (EPOCHREALTIME), not in bash's whole SECONDS: with those, a 6 s limit
# started late in a second was barely more than 5 s, and a test that bounds a 5 s shutdown with
# it failed whenever vigild took the whole bound.
wait_until() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((${EPOCHREALTIME//[!0-9]/} + limit * 1000000))
    until "$@" >/dev/null 2>&1; do
        [ "${EPOCHREALTIME//[!0-9]/}" -lt "$deadline" ] || fail "timed out after ${limit}s waiting for $what"
        sleep 0.1
    done
}

# Starts vigild in the background with the test's Kafka and PostgreSQL; extra args are passed
# through (e.g. --set ingest.batch_max=100). Sets VIGILD_PID; its log goes to $HARNESS_TMP/NAME.log.
# The short Kafka session timeout lets the group notice a kill -9'd member in seconds rather
# than the default 45 s; it changes how fast recovery starts, not what is recovered.
vigild_start() {
    local name=$1
    shift
    VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO VIGIL_KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP \
        VIGIL_KAFKA_SESSION_TIMEOUT_MS=6000 VIGIL_KAFKA_HEARTBEAT_INTERVAL_MS=500 \
        VIGIL_INGEST_SCHEMA_DIR=$SRC_DIR/ingest/schemas VIGIL_HTTP_LISTEN=${VIGIL_HTTP_LISTEN:-off} \
        "$VIGILD" "$@" >>"$HARNESS_TMP/$name.log" 2>&1 &
    VIGILD_PID=$!
    HARNESS_PIDS+=($VIGILD_PID)
}

# producer_start ARGS...: `vigil produce ARGS` into the test's Kafka in the background, while
# the test does other things; producer_wait then waits for it (failing the test if it failed)
# and sets PRODUCER_SUMMARY to its summary line.
producer_start() {
    "$VIGIL" produce -b "$KAFKA_BOOTSTRAP" "$@" >"$HARNESS_TMP/produce.out" 2>"$HARNESS_TMP/produce.log" &
    PRODUCER_PID=$!
    HARNESS_PIDS+=($PRODUCER_PID)
}
producer_wait() {
    wait "$PRODUCER_PID" || fail "producer failed: $(tail -n 3 "$HARNESS_TMP/produce.log")"
    PRODUCER_SUMMARY=$(cat "$HARNESS_TMP/produce.out")
}

# Exact-count helpers used by several tests.
count_rows() { sql "SELECT count(*) FROM vigil.$1"; }
count_duplicates() {
    sql "SELECT count(*) FROM (SELECT topic, partition, kafka_offset FROM vigil.$1
         GROUP BY 1, 2, 3 HAVING count(*) > 1) d"
}

# http_get PORT PATH: prints the status line and body of a GET to 127.0.0.1:PORT (no curl needed).
http_get() {
    local port=$1 path=$2
    exec 9<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&9
    cat <&9 | tr -d '\r'
    exec 9<&-
}

# The HTTP port vigild logged (it logs "http listening ... port=N"); waits for the line.
vigild_http_port() {
    local log=$HARNESS_TMP/$1.log
    wait_until 30 "vigild HTTP port in $log" grep -q 'msg="http listening"' "$log"
    grep 'msg="http listening"' "$log" | tail -n 1 | sed -E 's/.* port=([0-9]+).*/\1/'
}

# Sends SIGTERM to a vigild and waits for it; sets TERM_RC to its exit status. Fails the test if
# it does not exit within LIMIT seconds. (Not run in $(...): only this shell can wait for it.)
vigild_term() {
    local pid=$1 limit=$2 start=$SECONDS
    TERM_RC=0
    kill -TERM "$pid"
    wait_until "$limit" "vigild $pid to exit after SIGTERM" bash -c "! kill -0 $pid 2>/dev/null"
    wait "$pid" || TERM_RC=$?
    note "vigild $pid exited with $TERM_RC after $((SECONDS - start))s"
}

# Asserts: rows in risk_scores == GOOD, rows in dead_letters == BAD, no duplicates in either,
# and every partition's stored next_offset accounts for exactly the rows and dead letters in it.
assert_exactly_once() {
    local good=$1 bad=$2 rows dead
    # Doubles first: a failure then says whether vigild wrote an offset twice or the counts differ.
    [ "$(count_duplicates risk_scores)" = 0 ] || fail "duplicate (topic, partition, offset) in risk_scores"
    [ "$(count_duplicates dead_letters)" = 0 ] || fail "duplicate (topic, partition, offset) in dead_letters"
    rows=$(count_rows risk_scores)
    dead=$(count_rows dead_letters)
    [ "$rows" = "$good" ] || fail "risk_scores has $rows rows, expected $good"
    [ "$dead" = "$bad" ] || fail "dead_letters has $dead rows, expected $bad"
    local bad_parts
    assert_offsets_match_rows
}

# Every stored offset equals the rows and dead letters of its partition, over every table a
# topic's records go to (each offset of a partition is one row or one dead letter).
assert_offsets_match_rows() {
    local bad_parts
    bad_parts=$(sql "SELECT count(*) FROM vigil.kafka_offsets o
        WHERE coalesce(o.next_offset, 0) <>
          (SELECT count(*) FROM vigil.risk_scores r WHERE r.topic = o.topic AND r.partition = o.partition)
        + (SELECT count(*) FROM vigil.news_scores n WHERE n.topic = o.topic AND n.partition = o.partition)
        + (SELECT count(*) FROM vigil.labels l WHERE l.topic = o.topic AND l.partition = o.partition)
        + (SELECT count(*) FROM vigil.dead_letters d WHERE d.topic = o.topic AND d.partition = o.partition)")
    [ "$bad_parts" = 0 ] || fail "$bad_parts partitions whose stored offset does not match their rows"
}

# Total of rows and dead letters, for waiting on progress.
# Every risk row carries the vector of its own event: its amount columns agree with the row's
# amount (a vector written for the wrong event, or never computed, fails this).
assert_features_match_rows() {
    local spec has_col log_col bad
    spec=$(sql "SELECT spec_hash FROM vigil.feature_specs LIMIT 1")
    [ -n "$spec" ] || fail "no feature spec registered"
    has_col=$(sql "SELECT array_position(columns, 'has_amount') FROM vigil.feature_specs WHERE spec_hash = '$spec'")
    log_col=$(sql "SELECT array_position(columns, 'amount.log') FROM vigil.feature_specs WHERE spec_hash = '$spec'")
    bad=$(sql "SELECT count(*) FROM vigil.risk_scores WHERE features IS NULL
               OR features[$has_col] <> (CASE WHEN amount IS NULL THEN 0 ELSE 1 END)
               OR abs(features[$log_col] - coalesce(ln(1 + amount), 0)) > 1e-4")
    [ "$bad" = 0 ] || fail "$bad rows carry a feature vector that is not their event's"
}
committed_total() { sql "SELECT (SELECT count(*) FROM vigil.risk_scores) + (SELECT count(*) FROM vigil.news_scores) + (SELECT count(*) FROM vigil.labels) + (SELECT count(*) FROM vigil.dead_letters)"; }
committed_at_least() { [ "$(committed_total 2>/dev/null || echo 0)" -ge "$1" ]; }
# Whether the vigild on PORT holds N partitions of TOPIC (its vigil_assigned_partitions gauge).
# A group of three members (one per lane) takes a few seconds to form, more on a loaded machine
# (the embedded Kafka answered the first join 3 s after it was sent; a member that joins late
# starts another round): a test that times what vigild does with a load waits for this before
# offering the load.
topic_assigned() { # PORT TOPIC N
    [ "$(http_get "$1" /metrics | sed -n "s/^vigil_assigned_partitions{topic=\"$2\"} //p")" = "$3" ]
}
# Whether the vigild on PORT holds N partitions over all the topics it reads: every lane's member
# is in the group's current generation, and no more rounds come unless a member joins or leaves.
all_assigned() { # PORT N
    [ "$(http_get "$1" /metrics | awk '$1 ~ /^vigil_assigned_partitions\{/ { n += $2 } END { print n + 0 }')" = "$2" ]
}

# Parses produce's summary line "produced=N good=N malformed=N delivered=N failed=N".
summary_field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
