#!/usr/bin/env bash
# A fenced instance cannot commit: v1 holds a batch it has not written (long batch delay and linger), is
# frozen (SIGSTOP) until the group evicts it, v2 takes the partitions and commits the same
# events; when v1 wakes up and tries to write what it holds, PostgreSQL's offset condition
# refuses it. Every event is in PostgreSQL once.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 1 2 behavior-events

summary=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 1000 --seed 51)
[ "$(summary_field "$summary" delivered)" = 1000 ] || fail "producer: $summary"

VIGIL_HTTP_LISTEN=127.0.0.1:0 vigild_start v1 --set ingest.batch_max=100000 \
    --set ingest.batch_max_delay_ms=60000 --set ingest.batch_linger_ms=60000
v1=$VIGILD_PID
port=$(vigild_http_port v1)
consumed_all() { http_get "$port" /metrics | grep -q '^vigil_messages_consumed_total{topic="behavior-events"} 1000$'; }
wait_until 60 "v1 holding all 1000 events in its batch" consumed_all
[ "$(committed_total)" = 0 ] || fail "v1 wrote before being fenced"

kill -STOP "$v1"
vigild_start v2 --set ingest.batch_max=100
v2=$VIGILD_PID
wait_until 120 "v2 committed the events v1 holds" committed_at_least 1000

kill -CONT "$v1"
wait_until 60 "v1 fenced" grep -q 'msg="batch fenced' "$HARNESS_TMP/v1.log"
vigild_term "$v1" 30
vigild_term "$v2" 30
[ "$TERM_RC" = 0 ] || fail "v2 exited with $TERM_RC"
assert_exactly_once 1000 0
[ "$(sql "SELECT count(DISTINCT updated_by) FROM vigil.kafka_offsets")" = 1 ] ||
    fail "offsets written by more than one instance"
note "ok: the fenced batch of 1000 was refused, v2's commit stands"
