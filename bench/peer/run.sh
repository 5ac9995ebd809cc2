#!/usr/bin/env bash
# Python peer of vigild for the end-to-end benchmark: runs bench/peer/peer.py in a venv at
# .cache/peer-venv, created on first use from bench/peer/requirements.txt (PyPI) and reused only
# while it holds exactly the pinned versions.
#
# Usage: bash bench/peer/run.sh --brokers HOST:PORT --dsn CONNINFO --count N
#                               [--group G] [--batch 1000] [--idle-s 30] [--seed 1]
# Prints: peer events=N seconds=S events_per_s=R cpu_s=C (see peer.py's header).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO_ROOT/.cache/peer-venv"
REQS="$REPO_ROOT/bench/peer/requirements.txt"

die() {
    echo "peer/run.sh: $*" >&2
    exit 1
}

[ -f "$REQS" ] || die "$REQS missing"

venv_ok() {
    "$VENV/bin/python" - "$REQS" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    name = name.split("[")[0]
    try:
        got = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if got.split("+")[0] != want:
        sys.exit(1)
PY
}

if ! venv_ok; then
    echo "# peer/run.sh: installing bench/peer/requirements.txt into $VENV" >&2
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "cannot create $VENV (install python3-venv)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS" ||
        die "pip install of bench/peer/requirements.txt failed (is PyPI reachable?)"
    venv_ok || die "$VENV still lacks the versions pinned in bench/peer/requirements.txt"
fi

exec "$VENV/bin/python" "$REPO_ROOT/bench/peer/peer.py" "$@"
