# Shared by the alert tests: a LISTEN vigil_alerts client, and the check that what it received is
# exactly one notification per committed change of every alert. Source after harness.sh.

# listen_start NAME CONNINFO: a LISTEN vigil_alerts client writing $HARNESS_TMP/NAME.notify.
listen_start() {
    "$LISTEN" "$2" vigil_alerts >"$HARNESS_TMP/$1.notify" 2>"$HARNESS_TMP/$1.listen.log" &
    HARNESS_PIDS+=($!)
    LISTEN_PID=$!
    wait_until 30 "LISTEN client $1" grep -q '^listening$' "$HARNESS_TMP/$1.notify"
}
# notified_all DB NOTIFY_FILE: as many notifications arrived as DB's alerts have revisions
# (they arrive after the commit, asynchronously).
notified_all() {
    [ "$(grep -vc '^listening$' "$2")" = "$(psql -X -t -A -d "$1" -c "SELECT coalesce(sum(revision), 0) FROM vigil.alerts")" ]
}
# check_revisions DB NOTIFY_FILE: the notifications are exactly revisions 1..revision of every
# alert of DB, each payload under PostgreSQL's 8000-byte limit.
check_revisions() {
    local db=$1 notify=$2
    psql -X -t -A -F "$(printf '\t')" -d "$db" -c "SELECT alert_id, revision FROM vigil.alerts" >"$HARNESS_TMP/$db.revisions"
    python3 - "$notify" "$HARNESS_TMP/$db.revisions" <<'PY' || fail "$db: the notifications do not match the alerts' revisions"
import json, sys
seen = {}
for line in open(sys.argv[1]):
    if line.strip() == "listening":
        continue
    n = json.loads(line)
    assert len(line.encode()) < 8000, "payload of %d bytes" % len(line.encode())
    seen.setdefault(n["alert_id"], []).append(n["revision"])
table = dict(l.rstrip("\n").split("\t") for l in open(sys.argv[2]) if l.strip())  # ids may hold spaces
bad = [a for a in set(seen) | set(table)
       if sorted(seen.get(a, [])) != list(range(1, int(table.get(a, 0)) + 1))]
for a in bad[:5]:
    print("alert %s: revisions notified %s, table says %s" % (a, sorted(seen.get(a, [])), table.get(a)),
          file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

