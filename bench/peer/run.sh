#!/usr/bin/env bash
# Python peer of vigild for the end-to-end benchmark: runs bench/peer/peer.py in a venv at
# .cache/peer-venv, created on first use from bench/peer/requirements.txt (PyPI) and reused only
# while it holds exactly the pinned versions.
#
# Usage: bash bench/peer/run.sh --brokers HOST:PORT --dsn CONNINFO --count N
#                               [--group G] [--batch 5000] [--idle-s 30]
#                               [--model models/risk.safetensors]
# Writes peer.risk_scores and peer.kafka_offsets (the shape of vigild's tables) in that database.
# Prints: peer events=N seconds=S events_per_s=R cpu_s=C batch=B (see peer.py's header).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO_ROOT/.cache/peer-venv"
REQS="$REPO_ROOT/bench/peer/requirements.txt"

source "$REPO_ROOT/bench/venv.sh"
bench_venv "$VENV" "$REQS"

exec "$VENV/bin/python" "$REPO_ROOT/bench/peer/peer.py" "$@"
