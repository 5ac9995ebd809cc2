#!/usr/bin/env bash
# kill -9 while every lane has several batches in flight, again and again: afterwards every
# record is in its table exactly once, every stored offset accounts for exactly its partition's
# rows and dead letters, every article is scored, and every event has the feature vector (and
# score) an uninterrupted run gives it, so the entity state checkpoints taken while batches were
# in flight agree with the offsets they were stored against.
#
# To keep batches in flight, every batch transaction is slowed down on the server (a statement
# trigger on the offset update sleeps), so each lane's writer is always behind its reader and the
# readers keep ingest.batches_in_flight closed batches queued. Each round waits until
# /metrics shows at least two batches in flight in every lane, then kills.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 3 4 behavior-events news-articles fraud-labels news-labels

NGRAM_HEADS=$SRC_DIR/models/news-heads-ngram.safetensors
events=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" --kind events -n 60000 --malformed 0.01 --seed 41)
news=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" --kind news -n 6000 --malformed 0.02 --seed 41)
fraud=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" --kind fraud-labels -n 40000 --seed 41)
nlabels=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" --kind news-labels -n 6000 --malformed 0.02 --seed 41)
total=$((60000 + 6000 + 40000 + 6000))
common=(--set ingest.batch_max=100 --set ingest.batches_in_flight=3
        --set "model.news_path=$NGRAM_HEADS" --set model.news_max_batch=16
        --set model.risk_path="$SRC_DIR/models/risk.safetensors"
        --set features.max_entities=2000 --set features.checkpoint_interval_ms=300)

# The reference: the same records, uninterrupted, into a database of its own.
psql -X -q -d postgres -c "CREATE DATABASE vigil_ref" >/dev/null
base_conninfo=$TEST_CONNINFO
TEST_CONNINFO="$base_conninfo dbname=vigil_ref"
vigild_start ref "${common[@]}" --set kafka.group.id=ref
wait_until 240 "the reference run committed everything" bash -c \
    "[ \$(psql -X -t -A -d vigil_ref -c 'SELECT (SELECT count(*) FROM vigil.risk_scores) + (SELECT count(*) FROM vigil.news_scores) + (SELECT count(*) FROM vigil.labels) + (SELECT count(*) FROM vigil.dead_letters)') -ge $total ]"
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "the reference run exited with $TERM_RC"
TEST_CONNINFO=$base_conninfo

# The schema first, then every batch transaction made slow.
VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO "$VIGIL" migrate >"$HARNESS_TMP/migrate.log" 2>&1 ||
    fail "vigil migrate failed: $(tail -n 3 "$HARNESS_TMP/migrate.log")"
sql "CREATE FUNCTION public.slow_commit() RETURNS trigger LANGUAGE plpgsql AS
     \$\$ BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END \$\$;
     CREATE TRIGGER slow_commit AFTER UPDATE ON vigil.kafka_offsets
     FOR EACH STATEMENT EXECUTE FUNCTION public.slow_commit()" >/dev/null

in_flight() { # in_flight PORT LANE: the lane's vigil_lane_batches_in_flight
    http_get "$1" /metrics | sed -n "s/^vigil_lane_batches_in_flight{lane=\"$2\"} //p"
}
every_lane_in_flight() { # every_lane_in_flight PORT N
    local lane n
    for lane in events news labels; do
        n=$(in_flight "$1" "$lane")
        [ -n "$n" ] && [ "$n" -ge "$2" ] || return 1
    done
}

rounds=4
for round in $(seq 1 $rounds); do
    VIGIL_HTTP_LISTEN=127.0.0.1:0 vigild_start "r$round" "${common[@]}"
    port=$(vigild_http_port "r$round")
    wait_until 120 "two or more batches in flight in every lane (round $round)" \
        every_lane_in_flight "$port" 2
    kill -9 "$VIGILD_PID"
    wait "$VIGILD_PID" 2>/dev/null || true
    at_kill=$(committed_total)
    note "round $round: killed with batches in flight in every lane; $at_kill of $total committed"
    [ "$at_kill" -lt "$total" ] || fail "everything was committed by round $round: nothing was in flight to lose"
done

sql "DROP TRIGGER slow_commit ON vigil.kafka_offsets" >/dev/null
vigild_start last "${common[@]}"
wait_until 240 "all $total records committed" committed_at_least "$total"
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "the last run exited with $TERM_RC"

# Exactly once, per table and per topic's dead letters.
[ "$(count_rows risk_scores)" = "$(summary_field "$events" good)" ] ||
    fail "risk_scores has $(count_rows risk_scores) rows, expected $(summary_field "$events" good)"
[ "$(count_rows news_scores)" = "$(summary_field "$news" good)" ] ||
    fail "news_scores has $(count_rows news_scores) rows, expected $(summary_field "$news" good)"
labels_want=$(($(summary_field "$fraud" good) + $(summary_field "$nlabels" good)))
[ "$(count_rows labels)" = "$labels_want" ] || fail "labels has $(count_rows labels) rows, expected $labels_want"
for t in behavior-events news-articles fraud-labels news-labels; do
    case $t in
    behavior-events) want=$(summary_field "$events" malformed) ;;
    news-articles) want=$(summary_field "$news" malformed) ;;
    fraud-labels) want=0 ;;
    news-labels) want=$(summary_field "$nlabels" malformed) ;;
    esac
    [ "$(sql "SELECT count(*) FROM vigil.dead_letters WHERE topic = '$t'")" = "$want" ] ||
        fail "$t has $(sql "SELECT count(*) FROM vigil.dead_letters WHERE topic = '$t'") dead letters, expected $want"
done
for t in risk_scores news_scores labels dead_letters; do
    [ "$(count_duplicates "$t")" = 0 ] || fail "duplicate (topic, partition, offset) in $t"
done
assert_offsets_match_rows
[ "$(sql "SELECT count(*) FROM vigil.news_scores WHERE model_version IS NULL")" = 0 ] ||
    fail "articles written unscored"

# Every event's vector is the uninterrupted run's, bit for bit, and so is its score within float
# rounding: the MLP's products are blocked differently for batches of other sizes, and a kill
# changes how the events fall into batches. Differences of 1.3e-6 were seen (2 of 60,000 events);
# 1e-5 is the bound tests/unit/pipeline/models/test_model_risk.c holds for batch sizes.
# The diagnostic reads the same FULL JOIN (the view): an inner join with ORDER BY ... LIMIT may
# be planned as a nested loop over the unanalysed 60,000-row ref table and run for minutes.
psql -X -q -d vigil_ref -c "\\copy (SELECT event_id, features, score FROM vigil.risk_scores) TO '$HARNESS_TMP/ref.tsv'"
sql "CREATE TABLE ref (event_id text, features real[], score real)" >/dev/null
psql -X -q -c "\\copy ref FROM '$HARNESS_TMP/ref.tsv'"
sql "ANALYZE ref" >/dev/null
sql "CREATE VIEW differ AS
     SELECT event_id, r.partition, r.kafka_offset, r.score, ref.score AS ref_score,
            r.features IS DISTINCT FROM ref.features AS vector_differs
     FROM vigil.risk_scores r FULL JOIN ref USING (event_id)
     WHERE r.features IS DISTINCT FROM ref.features OR r.score IS NULL OR ref.score IS NULL
        OR abs(r.score - ref.score) > 1e-5" >/dev/null
differ=$(sql "SELECT count(*) FROM differ")
[ "$differ" = 0 ] || {
    sql "SELECT * FROM differ ORDER BY partition, kafka_offset LIMIT 5" >&2
    fail "$differ events got another vector or score than in the uninterrupted run"
}
[ "$(sql "SELECT count(*) FROM vigil.entity_state")" -gt 0 ] || fail "no entity state checkpoint was stored"
note "ok: $total records after $rounds kills with batches in flight in every lane"
