#!/usr/bin/env bash
# Entity state checkpoints stay off the batch path: each is written in a transaction of its own
# on the checkpoint writer's connection, after the batch it follows has committed (a snapshot of
# megabytes inside a batch's transaction held that batch and its events' latency), and partitions
# that come due together are paced over the interval. Under steady load with a 1 s interval: no
# checkpoint shares a transaction with result rows, checkpoints keep coming, every vector is its
# event's, and a restart resumes from the checkpoints so written.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 1 4 behavior-events

# The embedded Kafka holds an empty fetch for fetch.wait.max.ms (bench/e2e.sh explains): 10 ms
# lets batches follow the events as they would with a real broker.
opts=(--set features.checkpoint_interval_ms=1000 --set kafka.fetch.wait.max.ms=10)
# run NAME COUNT SEED TOTAL METRIC: a vigild that writes COUNT more events offered at 2,000/s
# (TOTAL committed in all) and stops; sets VALUE to METRIC as it stood before the stop.
run() {
    VIGIL_HTTP_LISTEN=127.0.0.1:0 vigild_start "$1" "${opts[@]}"
    local port
    port=$(vigild_http_port "$1")
    # The 8 s of load below are vigild's to checkpoint in only once it holds the partitions.
    wait_until 60 "behavior-events' 4 partitions assigned" topic_assigned "$port" behavior-events 4
    producer_start -n "$2" -r 2000 --seed "$3"
    producer_wait
    wait_until 60 "$4 events committed" committed_at_least "$4"
    VALUE=$(http_get "$port" /metrics | awk -v m="$5" '$1 == m {print $2}')
    vigild_term "$VIGILD_PID" 30
    [ "$TERM_RC" = 0 ] || fail "$1 exited with $TERM_RC"
    assert_exactly_once "$4" 0
    assert_features_match_rows
}

run v1 16000 7 16000 vigil_entity_checkpoints_total
checkpoints=$VALUE
shared=$(sql "SELECT count(*) FROM vigil.entity_state e
              WHERE e.xmin::text IN (SELECT DISTINCT r.xmin::text FROM vigil.risk_scores r)")
[ "$shared" = 0 ] || fail "$shared checkpoints were written in a transaction with result rows"
parts=$(sql "SELECT count(*) FROM vigil.entity_state WHERE topic = 'behavior-events'")
[ "$parts" = 4 ] || fail "$parts of 4 partitions have a checkpoint"
# 4 first checkpoints, then each partition about once a second (paced: one every 250 ms) for 8 s.
[ "$checkpoints" -ge 12 ] || fail "only $checkpoints checkpoints in 8 s at a 1 s interval"

# A restart resumes from those checkpoints: it replays at most what came after them.
run v2 2000 8 18000 vigil_features_replayed_total
replayed=$VALUE
[ "$replayed" -lt 16000 ] || fail "replayed $replayed events: the restart did not use the checkpoints"
note "ok: $checkpoints checkpoints, none in a batch's transaction; restart replayed $replayed"
