#!/usr/bin/env bash
# An event PostgreSQL refuses (here: a CHECK constraint an operator added) must not stall its
# partition by being retried forever: the batch is rewritten one event at a time, the refused
# event becomes a dead letter saying why, and everything else lands exactly once.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 1 2 behavior-events

VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO "$VIGIL" migrate || fail "vigil migrate failed"
sql "ALTER TABLE vigil.risk_scores ADD CONSTRAINT poison_check
     CHECK (NOT (partition = 0 AND kafka_offset = 7))" >/dev/null

summary=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -t behavior-events -n 3000 --seed 5)
[ "$(summary_field "$summary" delivered)" = 3000 ] || fail "producer did not deliver everything: $summary"
good=$(summary_field "$summary" good)
[ "$good" = 3000 ] || fail "expected no malformed events: $summary"

vigild_start v1 --set ingest.batch_max=500
wait_until 120 "3000 messages committed" committed_at_least 3000
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "vigild exited with $TERM_RC"

assert_exactly_once 2999 1
reason=$(sql "SELECT partition || ':' || kafka_offset || ' ' || reason FROM vigil.dead_letters")
case "$reason" in
"0:7 refused by PostgreSQL:"*poison_check*) ;;
*) fail "dead letter does not name the refusal: $reason" ;;
esac
[ "$(sql "SELECT count(*) FROM vigil.dead_letters WHERE payload IS NULL")" = 0 ] ||
    fail "the refused event's payload was not kept"
grep -q 'msg="batch refused by PostgreSQL' "$HARNESS_TMP/v1.log" || fail "no log line for the refused batch"
note "ok: refused event dead-lettered, 2999 rows"
