#!/usr/bin/env bash
# vigil dlq: dead letters are listed, and once their cause is fixed (here: the writer schema of
# an unknown schema id is added to the schema directory) replayed into vigil.risk_scores at
# their own offsets. A dry run writes nothing, a second replay finds nothing to do, and every
# offset is still stored exactly once, as a row or as a dead letter.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 1 2 behavior-events

schemas=$HARNESS_TMP/schemas
mkdir -p "$schemas"
cp "$SRC_DIR"/ingest/schemas/*.avsc "$schemas/"

summary=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 5000 --malformed 0.05 --seed 81)
good=$(summary_field "$summary" good)
bad=$(summary_field "$summary" malformed)
vigild_start v1 --set ingest.schema_dir="$schemas"
wait_until 60 "all 5000 committed" committed_at_least 5000
vigild_term "$VIGILD_PID" 30
assert_exactly_once "$good" "$bad"

dlq() { VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO "$VIGIL" dlq "$@" --set ingest.schema_dir="$schemas"; }
unknown=$(sql "SELECT count(*) FROM vigil.dead_letters WHERE reason LIKE 'unknown schema id%'")
[ "$unknown" -gt 0 ] || fail "the producer made no unknown-schema messages"
listed=$(dlq list --reason 'unknown schema id%' --limit 100000 | wc -l)
[ "$listed" = "$unknown" ] || fail "dlq list showed $listed of $unknown"
[ "$(dlq list --limit 3 | wc -l)" = 3 ] || fail "--limit not honoured"
dlq list --limit 1 | awk -F'\t' 'NF != 6 { exit 1 }' || fail "list lines are not 6 tab-separated fields"

# Still broken: nothing to replay.
dlq replay --reason 'unknown schema id%' 2>"$HARNESS_TMP/r0.err" >/dev/null
grep -q '^replayed=0 still_bad='"$unknown"' ' "$HARNESS_TMP/r0.err" || fail "replay before the fix: $(cat "$HARNESS_TMP/r0.err")"

# The fix: the producer's schema id is now known.
cp "$schemas/1.avsc" "$schemas/999999.avsc"
dlq replay --dry-run 2>"$HARNESS_TMP/r1.err" >/dev/null
grep -q "^would_replay=$unknown " "$HARNESS_TMP/r1.err" || fail "dry run: $(cat "$HARNESS_TMP/r1.err")"
assert_exactly_once "$good" "$bad"

dlq replay 2>"$HARNESS_TMP/r2.err" >"$HARNESS_TMP/r2.out"
grep -q "^replayed=$unknown still_bad=$((bad - unknown)) " "$HARNESS_TMP/r2.err" ||
    fail "replay: $(cat "$HARNESS_TMP/r2.err")"
assert_exactly_once $((good + unknown)) $((bad - unknown))
[ "$(sql "SELECT count(*) FROM vigil.dead_letters WHERE reason LIKE 'unknown schema id%'")" = 0 ] ||
    fail "unknown-schema dead letters left after the replay"

dlq replay 2>"$HARNESS_TMP/r3.err" >/dev/null
grep -q "^replayed=0 " "$HARNESS_TMP/r3.err" || fail "second replay: $(cat "$HARNESS_TMP/r3.err")"
assert_exactly_once $((good + unknown)) $((bad - unknown))
note "ok: $unknown replayed, $((bad - unknown)) still dead letters"
