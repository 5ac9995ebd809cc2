#!/usr/bin/env bash
# Fraud alerts end to end (docs/alerts.md): the built-in rules raise alerts from the risk model's
# scores in the batch's own transaction; an entity's alert-worthy events grow one alert; every
# alert is explained; kill -9 again and again while batches are in flight leaves the alerts table
# identical to an uninterrupted run's, and a LISTEN client sees each committed change exactly
# once (revisions 1, 2, ... with no gap and no repeat: a rolled-back change that had been
# delivered would repeat a revision). Then an analyst's ack and resolve (labels), the quiet
# period, the metrics, and a malformed rule file (exit 2, file:line).
source "$(dirname "$0")/../lib/harness.sh"
source "$(dirname "$0")/../lib/alerts.sh"
harness_init
pg_start
kafka_start 3 4 behavior-events

RISK=$SRC_DIR/models/risk.safetensors
LISTEN=$BUILD_DIR/tests/pg_listen
events=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" --kind events -n 30000 --seed 61)
good=$(summary_field "$events" good)
common=(--set model.risk_path="$RISK" --set model.backend=cpu --set ingest.batch_max=200
        --set ingest.batch_max_delay_ms=20 --set features.checkpoint_interval_ms=300)

# A malformed rule file stops vigild at start with exit status 2, naming file and line.
printf 'rule high score>=0.9\nrule urgent score>=0.5\n' >"$HARNESS_TMP/bad.rules"
vigild_start bad "${common[@]}" --set alerts.rules="$HARNESS_TMP/bad.rules"
rc=0
wait "$VIGILD_PID" || rc=$?
[ "$rc" = 2 ] || fail "a malformed rule file: exit status $rc, expected 2"
grep -q 'msg="cannot load the alert rules".*bad.rules:2: .*urgent' "$HARNESS_TMP/bad.log" ||
    fail "the refusal does not name bad.rules:2: $(tail -n 2 "$HARNESS_TMP/bad.log")"

# check_alerts DB NOTIFY_FILE: every alert-worthy event is in exactly one alert's count, and
# the notifications are exactly revisions 1..revision of every alert (check_revisions).
check_alerts() {
    local db=$1 notify=$2 worthy in_alerts
    worthy=$(psql -X -t -A -d "$db" -c "SELECT count(*) FROM vigil.risk_scores WHERE score >= 0.80::real")
    in_alerts=$(psql -X -t -A -d "$db" -c "SELECT coalesce(sum(event_count), 0) FROM vigil.alerts")
    [ "$worthy" = "$in_alerts" ] || fail "$db: $worthy events score >= 0.80 but the alerts count $in_alerts"
    check_revisions "$db" "$notify"
}

# Run A: uninterrupted, its own database and consumer group.
psql -X -q -d postgres -c "CREATE DATABASE vigil_a" >/dev/null
base_conninfo=$TEST_CONNINFO
TEST_CONNINFO="$base_conninfo dbname=vigil_a"
export PGDATABASE=vigil_a # for sql and committed_total
VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO "$VIGIL" migrate >/dev/null || fail "vigil migrate failed"
listen_start a "$TEST_CONNINFO"
listen_a=$LISTEN_PID
VIGIL_HTTP_LISTEN=127.0.0.1:0 vigild_start a "${common[@]}" --set kafka.group.id=run-a
port=$(vigild_http_port a)
wait_until 180 "run A committed everything" committed_at_least "$good"
metrics=$(http_get "$port" /metrics)
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "run A exited with $TERM_RC"
n_a=$(sql "SELECT count(*) FROM vigil.alerts")
grown=$(sql "SELECT count(*) FROM vigil.alerts WHERE event_count > 1")
[ "$n_a" -gt 20 ] && [ "$grown" -gt 5 ] || fail "run A raised $n_a alerts, $grown with more than one event"
raised=$(echo "$metrics" | awk '$1 ~ /^vigil_alerts_raised_total\{kind="fraud"/ {s += $2} END {print s + 0}')
[ "$raised" = "$n_a" ] || fail "vigil_alerts_raised_total says $raised, the table holds $n_a"
# Explained: five features each, with value, contribution and the entity's own mean.
unexplained=$(sql "SELECT count(*) FROM vigil.alerts WHERE jsonb_array_length(explanation->'features') <> 5
                   OR NOT explanation->'features'->0 ?& ARRAY['name', 'value', 'contribution', 'entity_mean']
                   OR (explanation->'features'->0->>'contribution')::float <= 0")
[ "$unexplained" = 0 ] || fail "$unexplained alerts lack a proper explanation"
wait_until 30 "run A's notifications" notified_all vigil_a "$HARNESS_TMP/a.notify"
kill -TERM "$listen_a"
wait "$listen_a" || fail "the LISTEN client of run A failed: $(cat "$HARNESS_TMP/a.listen.log")"
check_alerts vigil_a "$HARNESS_TMP/a.notify"
note "run A: $n_a alerts, $grown grown, $(sql "SELECT sum(event_count) FROM vigil.alerts") events"

# Run B: killed with -9 three times while its (slowed) batch transactions are in flight.
TEST_CONNINFO=$base_conninfo
export PGDATABASE=vigil
VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO "$VIGIL" migrate >/dev/null || fail "vigil migrate failed"
sql "CREATE FUNCTION public.slow_commit() RETURNS trigger LANGUAGE plpgsql AS
     \$\$ BEGIN PERFORM pg_sleep(0.02); RETURN NULL; END \$\$;
     CREATE TRIGGER slow_commit AFTER UPDATE ON vigil.kafka_offsets
     FOR EACH STATEMENT EXECUTE FUNCTION public.slow_commit()" >/dev/null
listen_start b "$TEST_CONNINFO"
listen_b=$LISTEN_PID
for round in 1 2 3; do
    vigild_start "b$round" "${common[@]}" --set kafka.group.id=run-b
    wait_until 120 "run B, round $round, committed more" committed_at_least $((round * 6000))
    kill -9 "$VIGILD_PID"
    wait "$VIGILD_PID" 2>/dev/null || true
    at_kill=$(committed_total)
    [ "$at_kill" -lt "$good" ] || fail "everything was committed by round $round: nothing was in flight"
    note "round $round: killed at $at_kill committed, $(sql "SELECT count(*) FROM vigil.alerts") alerts"
done
sql "DROP TRIGGER slow_commit ON vigil.kafka_offsets" >/dev/null
vigild_start b4 "${common[@]}" --set kafka.group.id=run-b
wait_until 180 "run B committed everything" committed_at_least "$good"
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "the last run of B exited with $TERM_RC"
assert_exactly_once "$good" 0

# The same alerts, event for event (scores within float rounding: batches of other sizes).
cols="alert_id, severity, event_count, first_event_id, last_event_id, event_ids, max_score"
psql -X -q -d vigil_a -c "\\copy (SELECT $cols FROM vigil.alerts) TO '$HARNESS_TMP/a.tsv'"
sql "CREATE TABLE alerts_a AS SELECT $cols FROM vigil.alerts WITH NO DATA" >/dev/null
psql -X -q -c "\\copy alerts_a FROM '$HARNESS_TMP/a.tsv'"
differ=$(sql "SELECT count(*) FROM vigil.alerts b FULL JOIN alerts_a a USING (alert_id)
              WHERE a.alert_id IS NULL OR b.alert_id IS NULL OR a.severity <> b.severity
                 OR a.event_count <> b.event_count OR a.first_event_id <> b.first_event_id
                 OR a.last_event_id <> b.last_event_id OR a.event_ids <> b.event_ids
                 OR abs(a.max_score - b.max_score) > 1e-5")
[ "$differ" = 0 ] || {
    sql "SELECT coalesce(a.alert_id, b.alert_id), a.event_count, b.event_count FROM vigil.alerts b
         FULL JOIN alerts_a a USING (alert_id) WHERE a.event_count IS DISTINCT FROM b.event_count LIMIT 5" >&2
    fail "$differ alerts differ from the uninterrupted run's"
}
wait_until 30 "run B's notifications" notified_all vigil "$HARNESS_TMP/b.notify"
check_alerts vigil "$HARNESS_TMP/b.notify"
note "run B: the same $n_a alerts after three kills; every committed change notified once"

# An analyst acknowledges and resolves an alert; resolving as legit labels its events.
id=$(sql "SELECT alert_id FROM vigil.alerts ORDER BY event_count DESC, alert_id LIMIT 1")
alerts() { VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO "$VIGIL" alerts "$@"; }
listed=$(alerts list --status open --limit 100000)
grep -q "^$id"$'\t'"fraud"$'\t' <<<"$listed" || fail "vigil alerts list does not show $id"
shown=$(alerts show "$id")
grep -q '^explanation: {.*"entity_mean"' <<<"$shown" || fail "vigil alerts show $id lacks the explanation"
[[ "$(alerts ack "$id" --by ana)" == "$id acknowledged"* ]] || fail "vigil alerts ack $id failed"
alerts ack "$id" --by ana 2>/dev/null && fail "acknowledging $id twice succeeded"
[[ "$(alerts resolve "$id" --as legit --by ana)" == "$id resolved"* ]] || fail "vigil alerts resolve $id failed"
alerts resolve "$id" --as fraud 2>/dev/null && fail "resolving $id twice succeeded"
alerts show no-such-alert >/dev/null 2>&1 && fail "vigil alerts show found a missing alert"
[ "$(sql "SELECT count(*) FROM vigil.labels WHERE alert_id = '$id' AND label_source = 'analyst' AND NOT is_fraud")" = \
  "$(sql "SELECT cardinality(event_ids) FROM vigil.alerts WHERE alert_id = '$id'")" ] ||
    fail "resolving $id as legit did not label each of its events"
[ "$(sql "SELECT status || ' ' || resolution || ' ' || resolved_by FROM vigil.alerts WHERE alert_id = '$id'")" = "resolved legit ana" ] ||
    fail "$id is not resolved legit by ana"

# The quiet period: a vigild with resolve_after 1s resolves every open alert on its own.
printf 'rule high score>=0.9\nrule medium score>=0.8\nresolve_after 1s\n' >"$HARNESS_TMP/quiet.rules"
vigild_start quiet "${common[@]}" --set kafka.group.id=run-b --set alerts.rules="$HARNESS_TMP/quiet.rules"
wait_until 60 "every alert resolved" bash -c \
    "[ \$(psql -X -t -A -c \"SELECT count(*) FROM vigil.alerts WHERE status <> 'resolved'\") = 0 ]"
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "the quiet run exited with $TERM_RC"
[ "$(sql "SELECT count(*) FROM vigil.alerts WHERE resolution = 'quiet'")" = $((n_a - 1)) ] ||
    fail "expected $((n_a - 1)) alerts resolved as quiet: $(sql "SELECT resolution, count(*) FROM vigil.alerts GROUP BY 1")"
wait_until 30 "the last notifications" notified_all vigil "$HARNESS_TMP/b.notify"
kill -TERM "$listen_b"
wait "$listen_b" || fail "the LISTEN client of run B failed: $(cat "$HARNESS_TMP/b.listen.log")"
check_alerts vigil "$HARNESS_TMP/b.notify"
note "ok: $n_a alerts identical after kill -9, acknowledged, resolved, quiet-resolved, each change notified once"
