#!/usr/bin/env bash
# Writer schemas from a schema registry (tests/tools/registry.py answers as Confluent's does)
# over HTTPS with basic auth: the first answers are 500s (retried), an unknown id is a dead
# letter naming the registry's answer, a registry that goes away holds the stream (nothing
# dead-lettered, nothing skipped) until it is back, and everything lands exactly once.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 1 2 behavior-events

reg=$HARNESS_TMP/registry
mkdir -p "$reg"
cp "$SRC_DIR/ingest/schemas/1.avsc" "$reg/1.avsc"
cp "$SRC_DIR/ingest/schemas/1.avsc" "$reg/2.avsc"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$HARNESS_TMP/key.pem" -out "$HARNESS_TMP/cert.pem" \
    -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 ||
    fail "openssl could not make a test certificate"

registry_start() {
    rm -f "$HARNESS_TMP/registry.port"
    python3 "$SRC_DIR/tests/tools/registry.py" --dir "$reg" --port-file "$HARNESS_TMP/registry.port" \
        --user vigil --password 's3cret:x' --tls-cert "$HARNESS_TMP/cert.pem" --tls-key "$HARNESS_TMP/key.pem" \
        "$@" >>"$HARNESS_TMP/registry.log" 2>&1 &
    REGISTRY_PID=$!
    HARNESS_PIDS+=($REGISTRY_PID)
    wait_until 30 "registry port file" test -s "$HARNESS_TMP/registry.port"
    REGISTRY_PORT=$(cat "$HARNESS_TMP/registry.port")
}
registry_start --fail-first 2

summary=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 3000 --malformed 0.05 --seed 91)
good=$(summary_field "$summary" good)
bad=$(summary_field "$summary" malformed)
# No local writer schemas at all (schema_dir points nowhere), so every one must come from the
# registry. The other inputs are off: their reader schemas live in schema_dir.
VIGIL_HTTP_LISTEN=127.0.0.1:0 vigild_start v1 --set ingest.schema_dir=/nonexistent \
    --set ingest.reader_schema="$SRC_DIR/ingest/schemas/BehaviorEvent.avsc" \
    --set ingest.news_topic= --set ingest.fraud_labels_topic= --set ingest.news_labels_topic= \
    --set ingest.schema_registry_url="https://127.0.0.1:$REGISTRY_PORT" \
    --set ingest.schema_registry_user=vigil --set ingest.schema_registry_password='s3cret:x' \
    --set ingest.schema_registry_ca_file="$HARNESS_TMP/cert.pem" \
    --set ingest.batch_max=3000 --set ingest.batch_max_delay_ms=60000
port=$(vigild_http_port v1)
wait_until 60 "all 3000 committed" committed_at_least 3000
assert_exactly_once "$good" "$bad"
[ "$(grep -c '^GET /schemas/ids/1 500$' "$HARNESS_TMP/registry.log")" = 2 ] || fail "expected two 500s for id 1"
[ "$(grep -c '^GET /schemas/ids/1 200$' "$HARNESS_TMP/registry.log")" = 1 ] || fail "id 1 not fetched exactly once (cache)"
unknown=$(sql "SELECT count(*) FROM vigil.dead_letters WHERE reason LIKE 'unknown schema id 999999 (registry: Schema 999999 not found)%'")
[ "$unknown" -gt 0 ] || fail "unknown schema id not dead-lettered with the registry's answer"

# The registry goes away. Events on the cached id 1 still land, the ones before the first
# event on id 2 (not fetched yet) included: those are still in the batch (its delay is 60 s)
# when the id-2 event comes, and are committed before vigild starts waiting for the registry.
kill "$REGISTRY_PID"
wait "$REGISTRY_PID" 2>/dev/null || true
summary1=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 1000 --seed 93)
summary2=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 1000 --schema-id 2 --seed 92)
held() { http_get "$port" /metrics | grep -q '^vigil_schema_registry_errors_total [1-9]'; }
wait_until 60 "vigild holding the stream while the registry is down" held
grep -q 'msg="writer schema unavailable; holding the partition and retrying"' "$HARNESS_TMP/v1.log" ||
    fail "no log line for the unavailable registry"
wait_until 30 "id-1 events before the wait committed" committed_at_least 3001
during=$(committed_total)
[ "$during" -lt 5000 ] || fail "events committed without their schema"
note "$during committed while the registry was down"
registry_start --port "$REGISTRY_PORT"
# The rest is consumed once the registry answers; the last batch is not full and its delay is
# 60 s, so the SIGTERM below is what commits it (a stop commits what is in flight).
consumed_all() { http_get "$port" /metrics | grep -q '^vigil_messages_consumed_total{topic="behavior-events"} 5000$'; }
wait_until 90 "all 5000 consumed after the registry came back" consumed_all
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "vigild exited with $TERM_RC"
assert_exactly_once $((good + $(summary_field "$summary1" good) + $(summary_field "$summary2" good))) "$bad"
grep -q 'msg="writer schema available again"' "$HARNESS_TMP/v1.log" || fail "no recovery logged"
assert_features_match_rows
! grep -q "s3cret" "$HARNESS_TMP/v1.log" || fail "the registry password was logged"
note "ok: $unknown unknown-id dead letters; stream held and resumed across a registry outage"
