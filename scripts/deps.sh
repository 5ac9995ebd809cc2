#!/usr/bin/env bash
# Installs, through apt-get, everything vigil's build, tests and demo need, when it is missing.
# Idempotent: with everything present it changes nothing and asks for no privileges.
# Works as root, or as a user with sudo.
set -euo pipefail

packages=(
    build-essential cmake pkg-config git
    librdkafka-dev libavro-dev libpq-dev libevent-dev libssl-dev libopenblas-dev
    postgresql postgresql-client kcat
    prometheus-alertmanager  # tests: the real Alertmanager the alert delivery goes to
    util-linux procps ca-certificates
    python3 openssl  # tests: the schema registry stand-in and its TLS certificate
    python3-pip python3-venv  # model files from PyPI (scripts/fetch_model.sh); bench venvs
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" = 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "deps: missing packages (${missing[*]}) and neither root nor sudo is available;" \
         "install them with apt-get as root" >&2
    exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
