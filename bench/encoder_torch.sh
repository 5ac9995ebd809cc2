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

die() {
    echo "encoder_torch.sh: $*" >&2
    exit 1
}

[ -f "$REQS" ] || die "$REQS missing"

# Reuse the venv only if it has exactly the pinned versions.
venv_ok() {
    "$VENV/bin/python" - "$REQS" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    try:
        got = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if got.split("+")[0] != want:
        sys.exit(1)
PY
}

if ! venv_ok; then
    echo "# encoder_torch.sh: installing bench/requirements-encoder.txt into $VENV (first use: a few GB)" >&2
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "cannot create $VENV (install python3-venv)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS" ||
        die "pip install of bench/requirements-encoder.txt failed (is PyPI reachable? enough disk for torch?)"
    venv_ok || die "$VENV still lacks the versions pinned in bench/requirements-encoder.txt"
fi

exec "$VENV/bin/python" "$REPO_ROOT/bench/encoder_torch.py" "$@"
