#!/usr/bin/env bash
# The schema registry client against tests/tools/registry.py, case by case: a schema over HTTP
# and over HTTPS (verified against the test CA, refused with another CA or without it), basic
# auth accepted and refused, 40403 as "not found", 500s retried then given up, a dead server.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
FETCH=$BUILD_DIR/tests/registry_fetch
reg=$HARNESS_TMP/registry
mkdir -p "$reg"
# The é (UTF-8 in the file) travels as \u00e9 in the registry's JSON (Python escapes non-ASCII):
# the client must give back the file's text exactly.
printf '{"type": "record", "name": "T", "fields": [{"name": "s", "type": "string", "doc": "quote \\" and \303\251 \360\237\230\200"}]}' >"$reg/7.avsc"
for n in a b; do
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$HARNESS_TMP/$n.key" -out "$HARNESS_TMP/$n.pem" \
        -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 ||
        fail "openssl could not make a test certificate"
done

start() { # start NAME ARGS...: a registry whose port is in $NAME_port
    local name=$1
    shift
    python3 "$SRC_DIR/tests/tools/registry.py" --dir "$reg" --port-file "$HARNESS_TMP/$name.port" "$@" \
        >"$HARNESS_TMP/$name.log" 2>&1 &
    HARNESS_PIDS+=($!)
    wait_until 30 "registry $name" test -s "$HARNESS_TMP/$name.port"
    eval "${name}_port=$(cat "$HARNESS_TMP/$name.port")"
}
expect() { # expect PREFIX ARGS...: registry_fetch's answer starts with PREFIX
    local want=$1 got
    shift
    got=$("$FETCH" "$@") || fail "registry_fetch $* failed to run"
    case "$got" in "$want"*) note "ok: ${got:0:110}" ;; *) fail "registry_fetch $*: got '$got', want '$want...'" ;; esac
}

start plain
start flaky --fail-first 2
start broken --fail-first 100
start tls --tls-cert "$HARNESS_TMP/a.pem" --tls-key "$HARNESS_TMP/a.key" --user u --password 'p@ss'

expect "ok $(cat "$reg/7.avsc")" \
    "http://127.0.0.1:$plain_port" 7
expect 'not_found registry: Schema 8 not found' "http://127.0.0.1:$plain_port" 8
# A 404 that is not the registry's "schema not found" (40403) is a misconfigured URL, not an
# unknown id: the message must not become a dead letter for it.
expect 'unavailable schema registry 127.0.0.1:'"$plain_port"'/wrong/schemas/ids/7: unexpected HTTP 404' \
    "http://127.0.0.1:$plain_port/wrong" 7
expect 'ok {"type": "record"' "http://127.0.0.1:$flaky_port/" 7      # two 500s, then the schema
[ "$(grep -c ' 500$' "$HARNESS_TMP/flaky.log")" = 2 ] || fail "flaky registry did not see two failures"
expect 'unavailable schema registry 127.0.0.1:'"$broken_port"': HTTP 500: Error in the backend data store' \
    "http://127.0.0.1:$broken_port" 7
[ "$(grep -c ' 500$' "$HARNESS_TMP/broken.log")" = 3 ] || fail "expected 1 try + 2 retries"
expect 'ok {"type": "record"' "https://127.0.0.1:$tls_port" 7 u 'p@ss' "$HARNESS_TMP/a.pem"
expect 'unavailable schema registry 127.0.0.1:'"$tls_port"' refused the credentials (HTTP 401: Unauthorized)' \
    "https://127.0.0.1:$tls_port" 7 u wrong "$HARNESS_TMP/a.pem"
expect 'unavailable schema registry 127.0.0.1:'"$tls_port"': no HTTP answer (TLS handshake failed: ' \
    "https://127.0.0.1:$tls_port" 7 u 'p@ss' "$HARNESS_TMP/b.pem"          # another CA: refused
expect 'unavailable schema registry 127.0.0.1:'"$tls_port"': no HTTP answer (TLS handshake failed: ' \
    "https://127.0.0.1:$tls_port" 7 u 'p@ss'                               # system CAs: refused
# Only the two good-CA requests ever reached the server.
[ "$(grep -c '^GET' "$HARNESS_TMP/tls.log")" = 2 ] || fail "requests got through an unverified TLS session"
dead=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect 'unavailable schema registry 127.0.0.1:'"$dead"': no HTTP answer (connection refused' \
    "http://127.0.0.1:$dead" 7
"$FETCH" "ftp://127.0.0.1/" 7 2>/dev/null && fail "an ftp:// URL was accepted"
note "ok"
