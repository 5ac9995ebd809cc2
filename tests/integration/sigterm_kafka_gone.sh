#!/usr/bin/env bash
# SIGTERM after Kafka has vanished: everything consumed is already committed, so vigild must
# still exit 0 within its shutdown bound instead of hanging on leaving a group whose
# coordinator no longer answers.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 1 2 behavior-events

"$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 2000 --seed 9 >/dev/null
vigild_start v1 --set daemon.shutdown_timeout_ms=3000
wait_until 60 "2000 events committed" committed_at_least 2000

kill -9 "$KAFKA_PID"
wait "$KAFKA_PID" 2>/dev/null || true
start=$SECONDS
vigild_term "$VIGILD_PID" 8
[ "$TERM_RC" = 0 ] || fail "vigild exited with $TERM_RC with everything committed"
[ $((SECONDS - start)) -le 5 ] || fail "vigild took $((SECONDS - start))s, past its 3 s bound"
assert_exactly_once 2000 0
note "how it ended: $(grep -o 'msg="[^"]*"' "$HARNESS_TMP/v1.log" | tail -n 3 | tr '\n' ' ')"
note "ok: exit 0 in $((SECONDS - start))s with Kafka gone"
