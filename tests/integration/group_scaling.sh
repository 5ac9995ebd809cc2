#!/usr/bin/env bash
# Three vigild instances in one consumer group while events keep arriving: partitions move when
# members join and leave (a SIGTERM and a kill -9), and the offsets stored in PostgreSQL keep
# every event exactly once.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 3 6 behavior-events

producer_start -n 60000 --rate 4000 --malformed 0.01 --seed 41

opts=(--set ingest.batch_max=500 --set ingest.batch_max_delay_ms=50)
vigild_start v1 "${opts[@]}"
v1=$VIGILD_PID
wait_until 60 "v1 committing" committed_at_least 2000

VIGIL_HTTP_LISTEN=127.0.0.1:0 vigild_start v2 "${opts[@]}"
v2=$VIGILD_PID
v2_port=$(vigild_http_port v2)
wait_until 60 "v2 assigned partitions" grep -q 'msg="partition assigned"' "$HARNESS_TMP/v2.log"
vigild_start v3 "${opts[@]}"
v3=$VIGILD_PID
wait_until 60 "v3 assigned partitions" grep -q 'msg="partition assigned"' "$HARNESS_TMP/v3.log"
# v1 gave partitions up to the newcomers.
wait_until 60 "v1 revoked partitions" grep -q 'msg="partition revoked"' "$HARNESS_TMP/v1.log"
at_join=$(committed_total)
wait_until 60 "progress with three members" committed_at_least $((at_join + 3000))
# v2 resumes its partitions' state (checkpoint, replay) before its first commit after the second
# rebalance: wait for that commit rather than assume 3,000 events were time enough.
v2_committed() { http_get "$v2_port" /metrics | grep -q '^vigil_batches_committed_total [1-9]'; }
wait_until 60 "v2 to commit a batch as a member" v2_committed

# One leaves politely, one dies: the survivor ends up with everything.
vigild_term "$v2" 30
[ "$TERM_RC" = 0 ] || fail "v2 exited with $TERM_RC"
v2_written=$(grep 'msg="status"' "$HARNESS_TMP/v2.log" | tail -n 1 | sed -E 's/.* written=([0-9]+).*/\1/')
[ "${v2_written:-0}" -gt 0 ] || fail "v2 wrote nothing while it was a member"
kill -9 "$v3"
wait "$v3" 2>/dev/null || true
note "v2 stopped, v3 killed at $(committed_total) committed"

producer_wait
summary=$PRODUCER_SUMMARY
wait_until 180 "all 60000 committed by v1" committed_at_least 60000
vigild_term "$v1" 30
[ "$TERM_RC" = 0 ] || fail "v1 exited with $TERM_RC"
assert_exactly_once "$(summary_field "$summary" good)" "$(summary_field "$summary" malformed)"

note "ok"
