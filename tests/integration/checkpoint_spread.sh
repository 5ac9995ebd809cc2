#!/usr/bin/env bash
# Entity state checkpoints of partitions that come due together are spread over consecutive
# transactions, one per batch, instead of all riding in one (which held that batch, and the
# latency of its events, for the whole snapshot): under steady load with a 1 s interval, no
# transaction has written the checkpoint of more than one partition at the end. Checkpoints must
# still keep up: every partition was checkpointed again after its first.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 1 4 behavior-events

# The embedded Kafka holds an empty fetch for fetch.wait.max.ms (bench/e2e.sh explains): 10 ms
# lets batches follow the events as they would with a real broker.
VIGIL_HTTP_LISTEN=127.0.0.1:0 vigild_start v1 --set features.checkpoint_interval_ms=1000 \
    --set kafka.fetch.wait.max.ms=10
port=$(vigild_http_port v1)
producer_start -n 16000 -r 2000 --seed 7
producer_wait
wait_until 60 "all 16000 events committed" committed_at_least 16000
checkpoints=$(http_get "$port" /metrics | awk '$1 == "vigil_entity_checkpoints_total" {print $2}')
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "vigild exited with $TERM_RC"
assert_exactly_once 16000 0
shared=$(sql "SELECT count(*) FROM (SELECT xmin::text FROM vigil.entity_state
              GROUP BY 1 HAVING count(*) > 1) s")
[ "$shared" = 0 ] || fail "$shared transactions wrote the checkpoints of several partitions"
# 4 first checkpoints, then each partition about once a second (paced: one every 250 ms) for 8 s.
[ "$checkpoints" -ge 12 ] || fail "only $checkpoints checkpoints in 8 s at a 1 s interval"
note "ok: $checkpoints checkpoints, each partition's last in a transaction of its own"
