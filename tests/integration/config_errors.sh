#!/usr/bin/env bash
# Configuration errors: exit status 2 and a message that names the file, line and key (or the
# environment variable or flag) and the problem. No servers needed.
source "$(dirname "$0")/../lib/harness.sh"
harness_init

# expect_config_error WHAT PATTERN COMMAND...: exit 2 and stderr matching PATTERN.
expect_config_error() {
    local what=$1 pattern=$2 rc=0
    shift 2
    "$@" >"$HARNESS_TMP/out" 2>"$HARNESS_TMP/err" || rc=$?
    [ "$rc" = 2 ] || fail "$what: exit status $rc, expected 2 (stderr: $(cat "$HARNESS_TMP/err"))"
    grep -Eq "$pattern" "$HARNESS_TMP/err" || fail "$what: stderr does not match /$pattern/: $(cat "$HARNESS_TMP/err")"
    note "$what: $(head -n 1 "$HARNESS_TMP/err")"
}

conf=$HARNESS_TMP/vigild.conf
cat >"$conf" <<CONF
# a comment
[kafka]
bootstrap.servers = 127.0.0.1:9
[ingest]
topic = behavior-events
batchmax = 10
CONF
expect_config_error "unknown key" "vigild.conf:6.*unknown key.*ingest.batchmax" "$VIGILD" --config "$conf"

sed -i 's/^batchmax = 10/batch_max = lots/' "$conf"
expect_config_error "bad value" "vigild.conf:6.*ingest.batch_max.*lots" "$VIGILD" --config "$conf"

sed -i 's/^batch_max = lots/batch_max = 0/' "$conf"
expect_config_error "out of bounds" "vigild.conf:6.*ingest.batch_max.*minimum" "$VIGILD" --config "$conf"

expect_config_error "unreadable file" "cannot read.*no-such.conf" "$VIGILD" --config "$HARNESS_TMP/no-such.conf"

sed -i 's/^batch_max = 0/batch_max = 100/' "$conf"
echo "this line is nonsense" >>"$conf"
expect_config_error "syntax" "vigild.conf:7" "$VIGILD" --config "$conf"
sed -i '$d' "$conf"

printf '[kafka]\nno.such.kafka.property = 1\n' >>"$conf"
expect_config_error "librdkafka rejects a key" "vigild.conf:8.*kafka.no.such.kafka.property" "$VIGILD" --config "$conf"
sed -i '$d' "$conf"

expect_config_error "bad environment value" "VIGIL_LOG_LEVEL.*loud" env VIGIL_LOG_LEVEL=loud "$VIGILD" --config "$conf"
expect_config_error "unknown environment variable" "VIGIL_NO_SUCH_KEY" env VIGIL_NO_SUCH_KEY=1 "$VIGILD" --config "$conf"
expect_config_error "bad flag" "http.listen" "$VIGILD" --config "$conf" --set http.listen=nowhere
expect_config_error "no Kafka configured" "bootstrap.servers" "$VIGILD" --set log.level=info

# And the good file passes --check-config with exit 0.
"$VIGILD" --config "$conf" --check-config >/dev/null || fail "a valid configuration was rejected"
note "ok"
