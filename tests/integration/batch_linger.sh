#!/usr/bin/env bash
# A batch is written as soon as Kafka has nothing more waiting (ingest.batch_linger_ms = 0, the
# default), not at batch_max_delay_ms: with a one-minute delay, a few events trickling in are each
# committed within seconds, in more than one transaction. The opposite (a batch held while
# batch_linger_ms lasts) is what fenced_instance.sh relies on.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 1 2 behavior-events

vigild_start v1 --set ingest.batch_max=100000 --set ingest.batch_max_delay_ms=60000
start=$SECONDS
for round in 1 2 3; do
    summary=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 5 --seed "$round")
    [ "$(summary_field "$summary" delivered)" = 5 ] || fail "producer: $summary"
    wait_until 20 "the $((round * 5)) events produced so far to be committed" committed_at_least $((round * 5))
done
elapsed=$((SECONDS - start))
[ "$elapsed" -lt 50 ] || fail "15 events took ${elapsed}s: batches waited for their delay"
txns=$(sql "SELECT count(DISTINCT xmin::text) FROM vigil.risk_scores")
[ "$txns" -ge 3 ] || fail "15 events in $txns transactions; expected one or more per round"
assert_exactly_once 15 0
vigild_term "$VIGILD_PID" 30
note "ok: 15 events in $txns transactions within ${elapsed}s, batch_max_delay_ms 60000"
