#!/usr/bin/env bash
# make bench: the benchmark every later issue extends. Prints one `BENCH <name> <value> <unit>`
# line per figure (for scripts) and a readable table. Benchmarks measure; they assert nothing.
#
# Figure 0, decode_behavior: BehaviorEvents decoded per second on one core (bench_decode);
# features_*: featurisation on one core and entity state memory (bench_features); tokenizer_*:
# WordPiece MB/s against the Rust tokenizers library (bench/tokenizer.sh); kernels_*: tensor ops
# against the measured sgemm and copy ceilings (kernels/bench_kernels.c); risk_mlp_* and encoder_*:
# the models against PyTorch (bench/bench_models.c, bench/encoder_torch.sh).
# Figure 1, e2e_skeleton: end-to-end events/s from Kafka to committed PostgreSQL rows, with a
# throwaway PostgreSQL (fsync off, unix socket) and the embedded Kafka in its own process. N
# events are produced first; the clock runs from vigild's first committed batch to its last, so
# process start-up and the group join are not counted. Median of RUNS runs, with min and max.
set -euo pipefail
BUILD=${1:-build}
SRC=$(cd "$(dirname "$0")/.." && pwd)
export VIGIL_BUILD_DIR=$SRC/$BUILD
source "$SRC/tests/lib/harness.sh"
N=${N:-200000}
RUNS=${RUNS:-3}

stored_total() { sql "SELECT coalesce(sum(next_offset), 0) FROM vigil.kafka_offsets"; }
now_s() { date +%s.%N; }

# Figure 0, decode alone on one core (no servers): bench/bench_decode.c.
"$BUILD_DIR/bench_decode" "$SRC/ingest/schemas"
# Featurisation on one core with 1,000,000 live users, and state bytes per entity measured.
"$BUILD_DIR/bench_features"
# Tensor ops against the machine's measured sgemm and copy ceilings: the CPU backend on one and on
# two threads, and the CUDA backend when this machine has a usable device.
"$BUILD_DIR/kernels/bench_kernels" 1 cpu
"$BUILD_DIR/kernels/bench_kernels" 2 cpu
"$BUILD_DIR/kernels/bench_kernels" 1 cuda || echo "# kernels: CUDA backend not benchmarked (reason above)"
# Tokenizer MB/s, C against the Rust tokenizers library, side by side (bench/tokenizer.sh).
bash "$SRC/bench/tokenizer.sh" "$BUILD_DIR"
# Models: the risk MLP's events/s and the encoder's articles/s at batch 1, 16, 64 (64 tokens),
# vigil (bench/bench_models.c) and sentence-transformers on PyTorch (bench/encoder_torch.sh) side
# by side, same thread counts.
MODEL_DIR=${VIGIL_MODEL_DIR:-$SRC/.cache/models/all-MiniLM-L6-v2}
# Idle OpenMP threads sleep instead of spinning: with 2 threads, spinning ones took the cores from
# OpenBLAS's (docs/benchmarks.md). As the systemd unit sets it for vigild.
export OMP_WAIT_POLICY=passive
for t in 1 2; do
    "$BUILD_DIR/bench_models" "$t" cpu "$MODEL_DIR"
    bash "$SRC/bench/encoder_torch.sh" --model "$MODEL_DIR" \
        --sentences "$SRC/tests/fixtures/encoder/sentences.txt" --threads "$t" --batch 1 16 64 ||
        echo "# encoder: PyTorch side not benchmarked (reason above)"
done
"$BUILD_DIR/bench_models" 1 cuda "$MODEL_DIR" || echo "# models: CUDA backend not benchmarked (reason above)"

harness_init
pg_start
rates=() cpus=()
for run in $(seq 1 "$RUNS"); do
    # A fresh database and topic per run so runs do not see each other's data.
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS vigil" -c "CREATE DATABASE vigil" >/dev/null
    for p in "${HARNESS_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    HARNESS_PIDS=()
    rm -f "$HARNESS_TMP/bootstrap"
    kafka_start 3 8 behavior-events
    "$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -n "$N" --seed "$run" >/dev/null 2>&1
    vigild_start "bench$run" --set log.level=warn
    wait_until 60 "first batch" bash -c "[ \$(psql -X -t -A -c 'SELECT coalesce(sum(next_offset),0) FROM vigil.kafka_offsets' 2>/dev/null || echo 0) -gt 0 ]"
    t0=$(now_s)
    first=$(stored_total)
    until [ "$(stored_total)" -ge "$N" ]; do sleep 0.05; done
    t1=$(now_s)
    # utime + stime of vigild in clock ticks, fields 14 and 15 of /proc/PID/stat.
    ticks=$(awk '{print $14 + $15}' "/proc/$VIGILD_PID/stat")
    vigild_term "$VIGILD_PID" 60
    rate=$(awk -v n="$N" -v f="$first" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (n - f) / (b - a) }')
    cpu=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$N" 'BEGIN { printf "%.2f", t / hz / n * 1e6 }')
    rates+=("$rate")
    cpus+=("$cpu")
    echo "# run $run: $rate events/s, $cpu CPU s per million events" >&2
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
minmax() { printf '%s\n' "$@" | sort -n | awk 'NR==1{min=$1} {max=$1} END {print min "-" max}'; }
echo "BENCH e2e_skeleton_events_per_s $(median "${rates[@]}") events/s"
echo "BENCH e2e_skeleton_cpu_s_per_million $(median "${cpus[@]}") s"
echo
echo "| figure | median | range (of $RUNS runs) |"
echo "|---|---|---|"
echo "| end-to-end Kafka -> PostgreSQL, $N BehaviorEvents | $(median "${rates[@]}") events/s | $(minmax "${rates[@]}") |"
echo "| vigild CPU per million events | $(median "${cpus[@]}") s | $(minmax "${cpus[@]}") |"
