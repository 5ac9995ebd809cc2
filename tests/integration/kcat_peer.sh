#!/usr/bin/env bash
# An external client we did not write (kcat) produces into vigild's in-process embedded Kafka,
# and vigild consumes exactly what it produced: 300 Avro messages and one that is not Avro.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
command -v kcat >/dev/null || fail "kcat not installed (scripts/deps.sh installs it)"

VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO VIGIL_INGEST_SCHEMA_DIR=$SRC_DIR/ingest/schemas \
    VIGIL_HTTP_LISTEN=off "$VIGILD" --embedded-kafka --set embedded_kafka.partitions=4 \
    >"$HARNESS_TMP/vigild.out" 2>"$HARNESS_TMP/vigild.log" &
pid=$!
HARNESS_PIDS+=($pid)
wait_until 30 "bootstrap line on stdout" grep -q '^embedded kafka bootstrap=' "$HARNESS_TMP/vigild.out"
bootstrap=$(sed -nE 's/^embedded kafka bootstrap=([^ ]+).*/\1/p' "$HARNESS_TMP/vigild.out")
note "embedded kafka at $bootstrap"

# The Avro bytes come from our encoder, written to files; kcat sends each file as one message.
mkdir "$HARNESS_TMP/msgs"
"$VIGIL" produce --output-dir "$HARNESS_TMP/msgs" -n 300 --seed 5 >/dev/null
[ "$(ls "$HARNESS_TMP/msgs" | wc -l)" = 300 ] || fail "expected 300 message files"
kcat -P -b "$bootstrap" -t behavior-events -p -1 "$HARNESS_TMP"/msgs/* 2>"$HARNESS_TMP/kcat.log" ||
    fail "kcat produce failed: $(cat "$HARNESS_TMP/kcat.log")"
printf 'this is not avro\n' | kcat -P -b "$bootstrap" -t behavior-events -k peer 2>>"$HARNESS_TMP/kcat.log" ||
    fail "kcat produce failed: $(cat "$HARNESS_TMP/kcat.log")"

wait_until 60 "301 messages committed" committed_at_least 301
kill -TERM "$pid"
wait "$pid" || fail "vigild exited with $?"

assert_exactly_once 300 1
[ "$(sql "SELECT count(*) FROM vigil.risk_scores WHERE event_id LIKE 'e5-%'")" = 300 ] ||
    fail "rows are not the events we encoded"
[ "$(sql "SELECT convert_from(payload, 'UTF8') || '|' || convert_from(key, 'UTF8') FROM vigil.dead_letters")" = "this is not avro|peer" ] ||
    fail "the dead letter does not keep kcat's raw payload and key"
note "ok: kcat's 300 Avro messages landed, its text message was dead-lettered"
