#!/usr/bin/env bash
# Encoder throughput of sentence-transformers on PyTorch (all-MiniLM-L6-v2), the reference the C
# encoder is benchmarked against. It runs bench/encoder_torch.py in a venv at .cache/torch-venv,
# which it creates on first use from bench/requirements-encoder.txt (PyPI; torch with its CUDA
# wheels is several GB).
#
# Usage: bash bench/encoder_torch.sh --model DIR --sentences FILE --threads N --batch B [--batch B2 ...]
#                                    [--tokens 64] [--seconds 5] [--device cpu|cuda]
#   e.g. bash bench/encoder_torch.sh --model .cache/models/all-MiniLM-L6-v2 \
#            --sentences tests/fixtures/encoder/sentences.txt --threads 1 --batch 1 16 64
# Arguments are passed through to encoder_torch.py (see its header for the method). The venv is
# also the one scripts/make_encoder_fixture.py runs in.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.cache/torch-venv"
REQS="$REPO_ROOT/bench/requirements-encoder.txt"

source "$REPO_ROOT/bench/venv.sh"
bench_venv "$VENV" "$REQS"

exec "$VENV/bin/python" "$REPO_ROOT/bench/encoder_torch.py" "$@"
