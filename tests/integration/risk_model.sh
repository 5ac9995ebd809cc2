#!/usr/bin/env bash
# The risk model end to end: a model trained by `vigil train risk` on `vigil produce --output`
# data scores every event vigild stores, with its version on the row; a SIGHUP with a new file
# swaps the model mid-stream (no row without a version, every version one of the two whole
# models); a corrupt file is refused and the running model keeps scoring; fraud scores higher.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
pg_start
kafka_start 1 4 behavior-events

models=$HARNESS_TMP/models
mkdir -p "$models"
"$VIGIL" produce --output "$models/train.jsonl" -n 60000 --rate 2 --seed 7 >/dev/null 2>&1 ||
    fail "vigil produce --output failed"
train() { # train OUT SEED: prints the version written
    VIGIL_INGEST_SCHEMA_DIR=$SRC_DIR/ingest/schemas "$VIGIL" train risk --data "$models/train.jsonl" \
        --out "$1" --epochs 2 --seed "$2" 2>"$HARNESS_TMP/train.log" |
        sed -n 's/^wrote .* version=//p'
}
v1=$(train "$models/risk-a.safetensors" 1)
v2=$(train "$models/risk-b.safetensors" 2)
[ -n "$v1" ] && [ -n "$v2" ] && [ "$v1" != "$v2" ] || fail "training gave versions '$v1' '$v2': $(tail -3 "$HARNESS_TMP/train.log")"
note "trained $v1 and $v2"
cp "$models/risk-a.safetensors" "$models/risk.safetensors"

# A daemon told to use a model it cannot load does not start.
printf 'not a model' >"$models/broken.safetensors"
vigild_start bad --set model.risk_path="$models/broken.safetensors" --set model.backend=cpu
bad_pid=$VIGILD_PID
wait "$bad_pid" && fail "vigild started with a broken model file"
grep -q 'msg="cannot start the model runtime".*broken.safetensors' "$HARNESS_TMP/bad.log" ||
    fail "the refusal does not name the file: $(tail -2 "$HARNESS_TMP/bad.log")"

vigild_start v --set model.risk_path="$models/risk.safetensors" --set model.backend=cpu \
    --set ingest.batch_max=500
log=$HARNESS_TMP/v.log
wait_until 60 "partitions assigned" grep -q 'msg="partition assigned"' "$log"
grep -q "msg=\"model runtime\" backend=\"cpu.*version=$v1" "$log" || fail "model runtime not logged with $v1"

"$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n 3000 --seed 11 >/dev/null 2>&1
wait_until 60 "first events committed" committed_at_least 3000
[ "$(sql "SELECT count(*) FROM vigil.risk_scores WHERE model_version = '$v1' AND score BETWEEN 0 AND 1")" = 3000 ] ||
    fail "not every first event has a score from $v1: $(sql "SELECT model_version, count(*) FROM vigil.risk_scores GROUP BY 1")"
# The generator's ground truth for those events (same seed, same event ids): fraud must score
# far above the rest.
"$VIGIL" produce --output "$models/truth.jsonl" -n 3000 --seed 11 >/dev/null 2>&1
python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    print(e["event_id"] + "," + ("t" if e["is_fraud"] else "f"))
' "$models/truth.jsonl" >"$models/truth.csv"
sql "CREATE TABLE truth (event_id text PRIMARY KEY, is_fraud boolean)"
psql -X -q -v ON_ERROR_STOP=1 -c "\copy truth FROM '$models/truth.csv' WITH (FORMAT csv)"
read -r n_fraud fraud_mean legit_mean < <(sql "SELECT count(*) FILTER (WHERE t.is_fraud),
    avg(r.score) FILTER (WHERE t.is_fraud), avg(r.score) FILTER (WHERE NOT t.is_fraud)
    FROM vigil.risk_scores r JOIN truth t USING (event_id)" | tr '|' ' ')
note "first 3000 events: $n_fraud fraud, mean score $fraud_mean; the rest $legit_mean"

[ "$n_fraud" -gt 5 ] || fail "only $n_fraud fraudulent events among the first 3000"
awk -v f="$fraud_mean" -v l="$legit_mean" 'BEGIN { exit !(f > 5 * l) }' ||
    fail "fraud does not score far above the rest ($fraud_mean vs $legit_mean)"

# Hot swap mid-stream: the producer keeps sending while the file is replaced and SIGHUP'd.
producer_start -n 20000 -r 4000 --seed 12
wait_until 30 "stream flowing" committed_at_least 4000
cp "$models/risk-b.safetensors" "$models/risk.safetensors.new"
mv "$models/risk.safetensors.new" "$models/risk.safetensors"
kill -HUP "$VIGILD_PID"
wait_until 10 "swap logged" grep -q "msg=\"model loaded\" model=risk.*version=$v2" "$log"
# A corrupt file (one flipped byte in the tensors) is refused; $v2 keeps scoring.
python3 - "$models/risk-b.safetensors" "$models/risk.safetensors.new" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[-3] ^= 0x40
open(sys.argv[2], "wb").write(data)
PY
mv "$models/risk.safetensors.new" "$models/risk.safetensors"
kill -HUP "$VIGILD_PID"
wait_until 10 "refusal logged" grep -q 'msg="model refused; the running model keeps scoring" model=risk.*checksum mismatch' "$log"
producer_wait
wait_until 60 "all events committed" committed_at_least 23000
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "vigild exited with $TERM_RC"
assert_exactly_once 23000 0

[ "$(sql "SELECT count(*) FROM vigil.risk_scores WHERE model_version IS NULL OR score IS NULL")" = 0 ] ||
    fail "rows without a score or version after the swap"
others=$(sql "SELECT count(*) FROM vigil.risk_scores WHERE model_version NOT IN ('$v1', '$v2')")
[ "$others" = 0 ] || fail "$others rows carry a version that is neither $v1 nor $v2"
n2=$(sql "SELECT count(*) FROM vigil.risk_scores WHERE model_version = '$v2'")
[ "$n2" -gt 0 ] || fail "no row was scored by the swapped-in model"
# Versions follow offsets: within a partition, no $v1 row comes after a $v2 row.
late=$(sql "SELECT count(*) FROM vigil.risk_scores a JOIN (SELECT partition, min(kafka_offset) AS o
            FROM vigil.risk_scores WHERE model_version = '$v2' GROUP BY partition) b
            USING (partition) WHERE a.model_version = '$v1' AND a.kafka_offset > b.o")
[ "$late" = 0 ] || fail "$late rows scored by $v1 after $v2 took over their partition"
note "rows by version: $(sql "SELECT string_agg(model_version || '=' || n, ' ') FROM (SELECT model_version, count(*) n FROM vigil.risk_scores GROUP BY 1) s")"
note "ok"
