#!/usr/bin/env bash
# SIGHUP: the file is read again; reloadable keys change and are logged, a key that needs a
# restart is logged as such and keeps its running value, and a broken file changes nothing.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 1 2 behavior-events

conf=$HARNESS_TMP/vigild.conf
printf '[ingest]\nbatch_max = 100\n[log]\nlevel = info\n[kafka]\nsasl.password = first-secret\n' >"$conf"
vigild_start v1 --config "$conf"
log=$HARNESS_TMP/v1.log
wait_until 60 "partitions assigned" grep -q 'msg="partition assigned"' "$log"

printf '[ingest]\nbatch_max = 250\ntopic = elsewhere\n[log]\nlevel = debug\n[kafka]\nsasl.password = second-secret\n' >"$conf"
kill -HUP "$VIGILD_PID"
wait_until 10 "reload logged" grep -q 'msg="configuration reloaded"' "$log"
grep -q 'msg="config changed" key=ingest.batch_max old="100" new="250"' "$log" || fail "batch_max change not logged"
grep -q 'msg="config changed" key=log.level old="info" new="debug"' "$log" || fail "log.level change not logged"
grep -q 'level=warn msg="config change needs a restart.*key=ingest.topic' "$log" || fail "topic change not flagged"
# Credentials never reach the log, not even as the old or new value of a change.
grep -q 'key=kafka.sasl.password old="(redacted)" new="(redacted)"' "$log" || fail "secret change not logged redacted"
! grep -q 'first-secret\|second-secret' "$log" || fail "a secret was logged"

# The new level is in force: debug lines appear once a batch is committed.
"$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 500 --seed 3 >/dev/null 2>&1
wait_until 30 "events committed" committed_at_least 500
wait_until 10 "a debug line" grep -q 'level=debug msg="batch committed"' "$log"

# A broken file is refused and the running configuration stays.
printf '[ingest]\nbatch_max = many\n' >"$conf"
kill -HUP "$VIGILD_PID"
wait_until 10 "refused reload logged" grep -q 'msg="reload failed; keeping the running configuration"' "$log"
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "vigild exited with $TERM_RC"
# The topic never changed: everything produced to behavior-events was consumed.
assert_exactly_once 500 0
note "ok"
