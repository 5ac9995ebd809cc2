#!/usr/bin/env bash
# Remakes the model files that ship in models/ with the project's own commands:
#   models/risk.safetensors  from `vigil produce --output` data (docs/synthetic-data.md)
# The news heads (models/news-heads.safetensors) are made by `vigil train news`; see
# docs/models.md (it needs ../shared/data and the encoder from scripts/fetch_model.sh).
#
# Usage: scripts/train_default_models.sh BUILD_DIR
set -euo pipefail
BUILD_DIR="${1:?usage: scripts/train_default_models.sh BUILD_DIR}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/vigil-train.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# 600,000 events at 3 per second: about 55.6 hours of simulated time, so the model sees every
# hour of the day more than once and the 24 h windows full. Trained on 200,000 (18.5 hours) it
# had never seen 18:31-24:00 nor a full 24 h window, and it raised three times as many false
# alerts (docs/alert-quality.md).
"$BUILD_DIR/vigil" produce --output "$TMP/events.jsonl" -n 600000 --rate 3 --seed 7
VIGIL_INGEST_SCHEMA_DIR="$REPO_ROOT/ingest/schemas" "$BUILD_DIR/vigil" train risk \
    --data "$TMP/events.jsonl" --out "$REPO_ROOT/models/risk.safetensors" --epochs 6 --seed 1
