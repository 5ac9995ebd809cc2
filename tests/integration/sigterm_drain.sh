#!/usr/bin/env bash
# SIGTERM under load: vigild exits 0 within the configured bound, and everything it consumed was
# committed (its last status line: consumed = written + dead-lettered, and the stored offsets
# account for exactly the rows). A restart then finishes the stream exactly once.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 3 8 behavior-events

producer_start -n 80000 --rate 20000 --malformed 0.01 --seed 31

vigild_start v1 --set ingest.batch_max=1000 --set daemon.shutdown_timeout_ms=5000
wait_until 60 "load flowing" committed_at_least 10000
start=$SECONDS
vigild_term "$VIGILD_PID" 6
[ "$TERM_RC" = 0 ] || fail "vigild exited with $TERM_RC after SIGTERM"
[ $((SECONDS - start)) -le 6 ] || fail "vigild took longer than the 5 s bound"

last=$(grep 'msg="status"' "$HARNESS_TMP/v1.log" | tail -n 1)
consumed=$(echo "$last" | sed -E 's/.* consumed=([0-9]+).*/\1/')
written=$(echo "$last" | sed -E 's/.* written=([0-9]+).*/\1/')
dead=$(echo "$last" | sed -E 's/.* dead_lettered=([0-9]+).*/\1/')
[ -n "$consumed" ] && [ "$consumed" = $((written + dead)) ] ||
    fail "consumed=$consumed but written=$written dead=$dead at exit: in-flight work lost"
[ "$(committed_total)" = "$consumed" ] || fail "PostgreSQL has $(committed_total), vigild consumed $consumed"
assert_exactly_once "$(count_rows risk_scores)" "$(count_rows dead_letters)"
note "stopped at $consumed consumed, all committed"

producer_wait
summary=$PRODUCER_SUMMARY
vigild_start v2
wait_until 120 "all 80000 committed" committed_at_least 80000
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "second vigild exited with $TERM_RC"
assert_exactly_once "$(summary_field "$summary" good)" "$(summary_field "$summary" malformed)"
