#!/usr/bin/env bash
# 100,000 events, 1% malformed, 8 partitions on 3 brokers: exactly the good ones land in
# vigil.risk_scores, exactly the malformed ones in vigil.dead_letters, nothing twice; /metrics
# and /readyz tell the same story.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 3 8 behavior-events

summary=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -t behavior-events -n 100000 --malformed 0.01 --seed 11)
note "producer: $summary"
good=$(summary_field "$summary" good)
bad=$(summary_field "$summary" malformed)
[ "$(summary_field "$summary" delivered)" = 100000 ] || fail "producer did not deliver everything: $summary"
[ "$bad" -gt 500 ] && [ "$bad" -lt 1500 ] || fail "expected about 1% malformed, got $bad"

VIGIL_HTTP_LISTEN=127.0.0.1:0 vigild_start v1 --set ingest.batch_max=2000
port=$(vigild_http_port v1)
wait_until 180 "100000 messages committed" committed_at_least 100000

# Readiness needs PostgreSQL and assigned partitions: both hold now.
ready=$(http_get "$port" /readyz)
echo "$ready" | head -n 1 | grep -q ' 200 ' || fail "/readyz not 200: $ready"
# The counters move just after the commit the rows came from, so poll for them.
metrics_match() { http_get "$port" /metrics | grep -q "$1"; }
wait_until 10 "/metrics written == $good" metrics_match "^vigil_rows_written_total{topic=\"behavior-events\"} $good\$"
wait_until 10 "/metrics dead == $bad" metrics_match "^vigil_messages_dead_lettered_total{topic=\"behavior-events\"} $bad\$"
metrics_match '^vigil_write_seconds_count [1-9]' || fail "/metrics has no write latency"
# Every message with a value went through the decoder once (empty ones are not decoded).
m=$(http_get "$port" /metrics)
decodes=$(echo "$m" | sed -n 's/^vigil_decode_seconds_count{topic="behavior-events"} //p')
empty=$(echo "$m" | sed -n 's/^vigil_messages_dead_lettered_by_reason_total{topic="behavior-events",reason="empty"} //p')
[ $((decodes + empty)) = 100000 ] || fail "decode histogram counts $decodes + $empty empty, not 100000"
# Dead letters by kind add up, and the generator's kinds show up under their labels.
by_reason=$(http_get "$port" /metrics | awk '/^vigil_messages_dead_lettered_by_reason_total/ { s += $2 } END { print s }')
[ "$by_reason" = "$bad" ] || fail "dead letters by reason add up to $by_reason, not $bad"
for kind in empty truncated bad_magic unknown_schema; do
    metrics_match "^vigil_messages_dead_lettered_by_reason_total{topic=\"behavior-events\",reason=\"$kind\"} [1-9]" ||
        fail "no dead letters counted as $kind"
done
# Everything consumed: every partition's lag reaches 0 (refreshed once a second).
lag_zero() { [ "$(http_get "$port" /metrics | grep -c '^vigil_consumer_lag{topic="behavior-events",partition="[0-7]"} 0$')" = 8 ]; }
wait_until 15 "consumer lag 0 on all 8 partitions" lag_zero

vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "vigild exited with $TERM_RC"
assert_exactly_once "$good" "$bad"

# Each dead letter keeps its coordinates, raw bytes and a reason; rows are "not scored yet".
[ "$(sql "SELECT count(*) FROM vigil.dead_letters WHERE reason = '' OR payload IS NULL AND reason NOT LIKE 'empty%'")" = 0 ] ||
    fail "dead letters without reason or payload"
[ "$(sql "SELECT count(*) FROM vigil.risk_scores WHERE score IS NOT NULL OR model_version IS NOT NULL")" = 0 ] ||
    fail "rows carry scores before any model exists"
[ "$(sql "SELECT count(DISTINCT event_id) FROM vigil.risk_scores")" = "$good" ] || fail "event ids not unique"
[ "$(sql "SELECT count(*) FROM vigil.kafka_offsets WHERE next_offset IS NOT NULL")" = 8 ] ||
    fail "expected stored offsets for all 8 partitions"
note "ok: $good rows, $bad dead letters, no duplicates"
