#!/usr/bin/env bash
# Plain Avro (no Confluent header, the configured reader schema): the same exactly-once result.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 2 4 behavior-events

summary=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 5000 --format plain --malformed 0.02 --seed 41)
vigild_start v1 --set ingest.format=plain \
    --set ingest.reader_schema="$SRC_DIR/ingest/schemas/BehaviorEvent.avsc"
wait_until 60 "5000 messages committed" committed_at_least 5000
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "vigild exited with $TERM_RC"
assert_exactly_once "$(summary_field "$summary" good)" "$(summary_field "$summary" malformed)"
[ "$(sql "SELECT count(*) FROM vigil.dead_letters WHERE reason LIKE '%magic%'")" = 0 ] ||
    fail "plain messages were read as Confluent framing"
note "ok: $summary"
