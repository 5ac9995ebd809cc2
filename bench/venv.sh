# Sourced by the benchmark scripts that run a Python reference (tokenizer.sh, encoder_torch.sh,
# peer/run.sh): bench_venv VENV REQS makes sure the venv at VENV holds exactly the versions pinned
# in REQS (name==version lines, # comments), creating or updating it from PyPI when it does not.
# Exits the calling script with a message when that fails.

# 0 when VENV's python has every pinned version (a local "+cpu"-style suffix is ignored).
bench_venv_ok() {
    "$1/bin/python" - "$2" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    try:
        got = version(name.split("[")[0])
    except PackageNotFoundError:
        sys.exit(1)
    if got.split("+")[0] != want:
        sys.exit(1)
PY
}

bench_venv() {
    local venv=$1 reqs=$2
    if [ ! -f "$reqs" ]; then
        echo "bench_venv: $reqs missing" >&2
        exit 1
    fi
    bench_venv_ok "$venv" "$reqs" && return 0
    echo "# installing $reqs into $venv (first use)" >&2
    if [ ! -x "$venv/bin/python" ] && ! python3 -m venv "$venv"; then
        echo "bench_venv: cannot create $venv (install python3-venv)" >&2
        exit 1
    fi
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs"; then
        echo "bench_venv: pip install -r $reqs failed (is PyPI reachable? enough disk?)" >&2
        exit 1
    fi
    if ! bench_venv_ok "$venv" "$reqs"; then
        echo "bench_venv: $venv still lacks the versions pinned in $reqs" >&2
        exit 1
    fi
}
