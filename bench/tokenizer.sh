#!/usr/bin/env bash
# Tokenizer throughput, C vs Rust, on one core: bench/bench_wordpiece (this repo) against the
# Rust `tokenizers` BertWordPieceTokenizer with the same vocab, over the texts of
# ../shared/data/{fpb,topics}/train.csv (read at bench time, written under /tmp only).
#
# Usage: bash bench/tokenizer.sh BUILD_DIR [RUNS]
# Needs the model vocab (scripts/fetch_model.sh) and PyPI for the venv on first use.
set -euo pipefail

BUILD_DIR="${1:?usage: bench/tokenizer.sh BUILD_DIR [RUNS]}"
RUNS="${2:-7}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VOCAB="${VIGIL_MODEL_DIR:-$REPO_ROOT/.cache/models/all-MiniLM-L6-v2}/vocab.txt"
DATA_DIR="${VIGIL_SHARED_DATA:-$REPO_ROOT/../shared/data}"
VENV="$REPO_ROOT/.cache/bench-venv"

die() {
    echo "tokenizer.sh: $*" >&2
    exit 1
}

[ -x "$BUILD_DIR/bench_wordpiece" ] || die "$BUILD_DIR/bench_wordpiece not found: build first"
[ -f "$VOCAB" ] || die "$VOCAB missing: run scripts/fetch_model.sh"
for f in fpb/train.csv topics/train.csv; do
    [ -f "$DATA_DIR/$f" ] || die "$DATA_DIR/$f missing (set VIGIL_SHARED_DATA to the data folder)"
done

source "$REPO_ROOT/bench/venv.sh"
bench_venv "$VENV" "$REPO_ROOT/bench/requirements-tokenizer.txt"

TEXTS="$(mktemp "${TMPDIR:-/tmp}/vigil-tokenizer-texts.XXXXXX")" || die "mktemp failed"
trap 'rm -f "$TEXTS"' EXIT
# One text per line; newlines inside a text become spaces so both sides see the same texts.
"$VENV/bin/python" - "$TEXTS" "$DATA_DIR/fpb/train.csv" "$DATA_DIR/topics/train.csv" <<'PY'
import csv, sys
out, paths = sys.argv[1], sys.argv[2:]
with open(out, "w", encoding="utf-8") as f:
    for p in paths:
        with open(p, newline="", encoding="utf-8") as src:
            for row in csv.DictReader(src):
                f.write(row["text"].replace("\r", " ").replace("\n", " ") + "\n")
PY

echo "# tokenizer bench: $(wc -l <"$TEXTS") texts, $(wc -c <"$TEXTS") bytes, $RUNS runs each, one core"
"$BUILD_DIR/bench_wordpiece" "$VOCAB" "$TEXTS" "$RUNS"

RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false "$VENV/bin/python" - "$VOCAB" "$TEXTS" "$RUNS" <<'PY'
import statistics, sys, time
from tokenizers import BertWordPieceTokenizer
vocab, path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path, "rb") as f:
    size = len(f.read())
with open(path, encoding="utf-8") as f:
    texts = f.read().split("\n")
if texts and texts[-1] == "":
    texts.pop()
tok = BertWordPieceTokenizer(vocab, lowercase=True)

def timed(fn):
    mbps, tokps = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        n = fn()
        dt = time.perf_counter() - t0
        mbps.append(size / 1e6 / dt)
        tokps.append(n / dt)
    return mbps, tokps

batch = timed(lambda: sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)))
single = timed(lambda: sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts))
for name, (mbps, tokps) in (("encode_batch", batch), ("encode", single)):
    print("# rust %s: %.2f MB/s (range %.2f..%.2f), %.0f tokens/s" % (
        name, statistics.median(mbps), min(mbps), max(mbps), statistics.median(tokps)))
best_mbps, best_tokps = max((batch, single), key=lambda r: statistics.median(r[0]))
print("BENCH tokenizer_rust_mb_per_s %.2f MB/s (range %.2f..%.2f)" % (
    statistics.median(best_mbps), min(best_mbps), max(best_mbps)))
print("BENCH tokenizer_rust_tokens_per_s %.0f tokens/s (range %.0f..%.0f)" % (
    statistics.median(best_tokps), min(best_tokps), max(best_tokps)))
PY
