#!/usr/bin/env bash
# sd_notify spoken over a real datagram socket: READY=1 once consuming, STATUS= lines, WATCHDOG=1
# at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM, in that order.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 1 2 behavior-events

sock=$HARNESS_TMP/notify.sock
"$BUILD_DIR/tests/sd_listen" "$sock" 120 >"$HARNESS_TMP/notify.out" 2>"$HARNESS_TMP/notify.log" &
listener=$!
HARNESS_PIDS+=($listener)
wait_until 10 "notify socket" test -S "$sock"

# WATCHDOG_USEC=600000: pings expected every 300 ms. WATCHDOG_PID is left unset.
NOTIFY_SOCKET=$sock WATCHDOG_USEC=600000 vigild_start v1 --set daemon.status_interval_ms=200
wait_until 60 "READY=1" grep -qx 'READY=1' "$HARNESS_TMP/notify.out"
wait_until 10 "three WATCHDOG=1" bash -c "[ \$(grep -cx 'WATCHDOG=1' '$HARNESS_TMP/notify.out') -ge 3 ]"
wait_until 10 "STATUS=" grep -q '^STATUS=consumed=' "$HARNESS_TMP/notify.out"

vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "vigild exited with $TERM_RC"
wait "$listener" || fail "listener saw no STOPPING=1: $(cat "$HARNESS_TMP/notify.out")"

ready_line=$(grep -nx 'READY=1' "$HARNESS_TMP/notify.out" | head -n 1 | cut -d: -f1)
stop_line=$(grep -nx 'STOPPING=1' "$HARNESS_TMP/notify.out" | head -n 1 | cut -d: -f1)
[ "$ready_line" -lt "$stop_line" ] || fail "STOPPING=1 came before READY=1"
[ "$(grep -cx 'READY=1' "$HARNESS_TMP/notify.out")" = 1 ] || fail "READY=1 sent more than once"
note "ok: $(sort "$HARNESS_TMP/notify.out" | sed 's/=.*//' | uniq -c | tr '\n' ' ')"
