#!/usr/bin/env bash
# ingest.dlq_topic: every dead letter, besides its row in vigil.dead_letters, is copied to a
# Kafka topic with its key and raw payload and the reason and source coordinates in headers.
# Read back with kcat, an external client.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 1 2 behavior-events behavior-events-dlq

summary=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 4000 --malformed 0.05 --seed 95)
good=$(summary_field "$summary" good)
bad=$(summary_field "$summary" malformed)
VIGIL_HTTP_LISTEN=127.0.0.1:0 vigild_start v1 --set ingest.dlq_topic=behavior-events-dlq
port=$(vigild_http_port v1)
wait_until 60 "all 4000 committed" committed_at_least 4000
published() { http_get "$port" /metrics | grep -q "^vigil_dlq_published_total $bad\$"; }
wait_until 30 "$bad dead letters published" published
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "vigild exited with $TERM_RC"
assert_exactly_once "$good" "$bad"

# One line per message: source partition and offset from the headers, and the reason.
kcat -C -b "$KAFKA_BOOTSTRAP" -t behavior-events-dlq -e -q -f '%h\n' >"$HARNESS_TMP/dlq.txt" 2>"$HARNESS_TMP/kcat.log" ||
    fail "kcat could not read the dead-letter topic: $(cat "$HARNESS_TMP/kcat.log")"
[ "$(grep -c 'vigil.reason=' "$HARNESS_TMP/dlq.txt")" = "$bad" ] ||
    fail "dead-letter topic holds $(grep -c 'vigil.reason=' "$HARNESS_TMP/dlq.txt") messages, table $bad"
# Each copy names a (partition, offset) that is in the table, and no pair twice.
sed -E 's/.*vigil.source.partition=([0-9]+),vigil.source.offset=([0-9]+).*/\1 \2/' "$HARNESS_TMP/dlq.txt" |
    sort -u >"$HARNESS_TMP/topic_pairs.txt"
sql "SELECT partition || ' ' || kafka_offset FROM vigil.dead_letters" | sort -u >"$HARNESS_TMP/table_pairs.txt"
cmp -s "$HARNESS_TMP/topic_pairs.txt" "$HARNESS_TMP/table_pairs.txt" ||
    fail "the topic's coordinates differ from the table's: $(diff "$HARNESS_TMP/topic_pairs.txt" "$HARNESS_TMP/table_pairs.txt" | head -n 5)"
note "ok: $bad dead letters in the table and on the topic"
