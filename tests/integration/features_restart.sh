#!/usr/bin/env bash
# Entity state survives kill -9: a run killed mid-stream and restarted gives every event exactly
# the feature vector an uninterrupted run gives. The restarted instance must rebuild its entity
# state by replaying from the checkpoint (checkpoints are rare here, so the replay is long) and
# write nothing twice. A small entity bound and TTL make evictions and expiries part of what must
# come back identical.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 3 4 behavior-events

summary=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 30000 --malformed 0.01 --seed 31)
good=$(summary_field "$summary" good)
bad=$(summary_field "$summary" malformed)
common=(--set ingest.batch_max=300 --set ingest.batch_max_delay_ms=20
        --set features.max_entities=400 --set features.ttl_s=600)

# Run A: uninterrupted, its own database and consumer group.
psql -X -q -d postgres -c "CREATE DATABASE vigil_a" >/dev/null
base_conninfo=$TEST_CONNINFO
TEST_CONNINFO="$base_conninfo dbname=vigil_a"
vigild_start a "${common[@]}" --set kafka.group.id=run-a
wait_until 180 "run A committed everything" \
    bash -c "[ \$(psql -X -t -A -d vigil_a -c 'SELECT count(*) FROM vigil.risk_scores') -ge $good ]"
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "run A exited with $TERM_RC"

# Run B: checkpoint only when a partition has none yet (the interval is a day), killed with -9
# mid-stream, restarted; the restart replays from the first checkpoint.
TEST_CONNINFO=$base_conninfo
vigild_start b1 "${common[@]}" --set kafka.group.id=run-b \
    --set features.checkpoint_interval_ms=86400000
wait_until 120 "run B committed a part" committed_at_least 8000
kill -9 "$VIGILD_PID"
wait "$VIGILD_PID" 2>/dev/null || true
at_kill=$(committed_total)
checkpointed=$(sql "SELECT coalesce(sum(next_offset), 0) FROM vigil.entity_state")
stored=$(sql "SELECT coalesce(sum(next_offset), 0) FROM vigil.kafka_offsets WHERE topic = 'behavior-events'")
note "killed run B at $at_kill committed; checkpoints cover $checkpointed of $stored offsets"
[ "$checkpointed" -lt "$stored" ] || fail "no replay to test: checkpoints ($checkpointed) caught up with offsets ($stored)"
# Per partition with a checkpoint: "partition checkpoint stored", what the restart must resume from.
at_kill_parts=$(sql "SELECT s.partition || ' ' || s.next_offset || ' ' || o.next_offset
                     FROM vigil.entity_state s JOIN vigil.kafka_offsets o USING (consumer_group, topic, partition)
                     WHERE s.consumer_group = 'run-b' ORDER BY 1")

VIGIL_HTTP_LISTEN=127.0.0.1:0 vigild_start b2 "${common[@]}" --set kafka.group.id=run-b \
    --set features.checkpoint_interval_ms=86400000
port=$(vigild_http_port b2)
wait_until 180 "run B committed everything" committed_at_least $((good + bad))
# The partitions may be assigned more than once: the killed instance stays a member of the group
# until its session times out, and its leaving reassigns them; each assignment restores the state
# and replays again, from the checkpoint of the time (tests/lib/harness.sh, vigild_start).
announced() { awk '/entity state restored/ { for (i = 1; i <= NF; i++) if ($i ~ /^replay=/) s += substr($i, 8) }
                   END { print s + 0 }' "$HARNESS_TMP/b2.log"; }
replay_done() {
    metrics=$(http_get "$port" /metrics)
    replayed=$(echo "$metrics" | awk '$1 == "vigil_features_replayed_total" {print $2}')
    [ "$replayed" = "$(announced)" ]
}
wait_until 120 "every replay the log announced counted in vigil_features_replayed_total" replay_done
entities=$(echo "$metrics" | awk '$1 == "vigil_entities" {print $2}')
# 4 partitions x 4 entity types, at most 400 each; the users alone are more than 400
[ "$entities" -gt 400 ] && [ "$entities" -le 6400 ] || fail "vigil_entities is $entities"
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "run B exited with $TERM_RC"
assert_exactly_once "$good" "$bad"
assert_features_match_rows
# The first restore of each partition resumed from the checkpoint and the offset the kill left,
# and replayed exactly the events between them.
while read -r part ckpt next; do
    first=$(grep -m1 "entity state restored.* partition=$part " "$HARNESS_TMP/b2.log") ||
        fail "partition $part had a checkpoint at the kill but the restart did not restore it"
    [[ "$first" == *" checkpoint=$ckpt stored=$next replay=$((next - ckpt))"* ]] ||
        fail "partition $part: expected checkpoint=$ckpt stored=$next at the first restore: $first"
done <<<"$at_kill_parts"

# The vectors of both runs, compared event by event.
psql -X -q -d vigil_a -c "\\copy (SELECT event_id, features FROM vigil.risk_scores) TO '$HARNESS_TMP/a.tsv'"
sql "CREATE TABLE run_a (event_id text, features real[])"
psql -X -q -c "\\copy run_a FROM '$HARNESS_TMP/a.tsv'"
[ "$(sql "SELECT count(*) FROM run_a")" = "$good" ] || fail "run A has $(sql "SELECT count(*) FROM run_a") rows, expected $good"
width=$(sql "SELECT cardinality(columns) FROM vigil.feature_specs")
[ "$(sql "SELECT count(*) FROM vigil.risk_scores WHERE cardinality(features) = $width")" = "$good" ] ||
    fail "not every row has a $width-column feature vector"
differ=$(sql "SELECT count(*) FROM vigil.risk_scores r FULL JOIN run_a a USING (event_id)
              WHERE r.features IS DISTINCT FROM a.features")
[ "$differ" = 0 ] || {
    sql "SELECT r.event_id, r.partition, r.kafka_offset FROM vigil.risk_scores r JOIN run_a a USING (event_id)
         WHERE r.features IS DISTINCT FROM a.features ORDER BY r.partition, r.kafka_offset LIMIT 5" >&2
    fail "$differ events got a different feature vector after kill -9 and replay"
}
# The test is only as good as its state: entities were evicted and aggregates are not trivial.
col=$(sql "SELECT array_position(columns, 'user.count.24h') FROM vigil.feature_specs")
[ "$(sql "SELECT count(*) FROM vigil.risk_scores WHERE features[$col] > 1")" -gt 1000 ] ||
    fail "hardly any user has more than one event in 24h: the aggregates were not exercised"
note "ok: $good vectors identical after kill -9 at $at_kill and a replay of $replayed events"

# Run C: no checkpoint from the checkpoint writer ever lands (a trigger refuses every one that
# holds entities), as when the process dies after its first commits and before the writer stored
# any. The restart must still rebuild the state: from the empty state that each partition's first
# batch stored in its own transaction, replaying everything up to the stored offset.
psql -X -q -d postgres -c "CREATE DATABASE vigil_c" >/dev/null
export PGDATABASE=vigil_c
TEST_CONNINFO="$base_conninfo dbname=vigil_c"
VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO "$VIGIL" migrate >/dev/null || fail "vigil migrate failed"
sql "CREATE FUNCTION public.no_checkpoints() RETURNS trigger LANGUAGE plpgsql AS
     \$\$ BEGIN IF NEW.entities > 0 THEN RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END \$\$;
     CREATE TRIGGER no_checkpoints BEFORE INSERT OR UPDATE ON vigil.entity_state
     FOR EACH ROW EXECUTE FUNCTION public.no_checkpoints()" >/dev/null
vigild_start c1 "${common[@]}" --set kafka.group.id=run-c
# A partition's first batch may come well after another's (the consumer fetches a partition in
# large chunks), so "8000 committed" alone can leave one without any: wait for all four.
run_c_started() { committed_at_least 8000 &&
    [ "$(sql "SELECT count(*) FROM vigil.kafka_offsets WHERE topic = 'behavior-events' AND next_offset > 0")" = 4 ]; }
wait_until 120 "run C committed a part of every partition" run_c_started
kill -9 "$VIGILD_PID"
wait "$VIGILD_PID" 2>/dev/null || true
[ "$(sql "SELECT count(*) FROM vigil.entity_state WHERE entities = 0 AND next_offset = 0")" = 4 ] ||
    fail "not every partition stored its empty first state: $(sql "SELECT partition, next_offset, entities FROM vigil.entity_state")"
vigild_start c2 "${common[@]}" --set kafka.group.id=run-c
wait_until 180 "run C committed everything" committed_at_least $((good + bad))
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "run C exited with $TERM_RC"
! grep -q "no entity state checkpoint" "$HARNESS_TMP/c2.log" || fail "run C restarted a partition with an empty state"
sql "CREATE TABLE run_a (event_id text, features real[])"
psql -X -q -c "\\copy run_a FROM '$HARNESS_TMP/a.tsv'"
differ=$(sql "SELECT count(*) FROM vigil.risk_scores r FULL JOIN run_a a USING (event_id)
              WHERE r.features IS DISTINCT FROM a.features")
[ "$differ" = 0 ] || fail "run C: $differ events got a different feature vector after kill -9 without a checkpoint"
note "ok: run C rebuilt its state from the first batches' empty states"
