#!/usr/bin/env bash
# Sentiment alerts end to end (docs/alerts.md): a steady news stream about a dozen tickers, with a
# burst of bad news about one of them in the middle (`vigil produce --span --burst`). The news lane
# counts each ticker's and each predicted topic's articles per minute in the batch transactions;
# the burst raises an alert naming its articles, the steady stream none. Killed with -9 again and
# again during the burst, a second run ends with the same alerts (ids, counts, first and last
# articles) as the uninterrupted one, and its LISTEN client sees each committed change once.
source "$(dirname "$0")/../lib/harness.sh"
source "$(dirname "$0")/../lib/alerts.sh"
harness_init
NGRAM_HEADS=$SRC_DIR/models/news-heads-ngram.safetensors
[ -f "$NGRAM_HEADS" ] || fail "shipped news heads missing under models/"
LISTEN=$BUILD_DIR/tests/pg_listen
pg_start
kafka_start 1 4 news-articles

# A feed in order: 4000 articles published over the hour before the run (--span), about five
# a minute for each ticker, and in the middle 40 about AAPL published within four seconds. The
# feed starts on a whole minute (--start-ms), so its articles fall into the same one-minute
# windows in every run: starting wherever the clock stood, a low-rate topic's window now and
# then held 6 articles against a mean of 0.97 (z 5.03) and the steady stream raised an alert.
start_ms=$(( ($(date +%s) - 3600) / 60 * 60000 ))
news=$("$VIGIL" produce -b "$KAFKA_BOOTSTRAP" --kind news -n 4000 --seed 7 --span 3600 \
    --start-ms "$start_ms" --burst AAPL:2400:40)
good=$(summary_field "$news" good)
burst_ids="ARRAY(SELECT 'n7-' || i FROM generate_series(2400, 2439) AS i)"
printf 'sentiment window=1m history=30 z=5 min_articles=5 keys=ticker,topic\n' >"$HARNESS_TMP/news.rules"
common=(--set model.news_path="$NGRAM_HEADS" --set model.backend=cpu
        --set alerts.rules="$HARNESS_TMP/news.rules" --set ingest.batch_max=50
        --set ingest.batch_max_delay_ms=20)

# check_news DB: the burst's alert names every article of the burst; no alert lacks them (the
# steady stream raises none).
check_news() {
    local db=$1 acme stray strays
    acme=$(psql -X -t -A -d "$db" -c "SELECT count(*) FROM vigil.alerts
        WHERE kind = 'sentiment' AND entity = 'ticker:AAPL' AND event_ids @> $burst_ids")
    [ "$acme" = 1 ] || fail "$db: $acme alerts for ticker AAPL name all 40 articles of the burst:
$(psql -X -t -A -d "$db" -c "SELECT alert_id, event_count FROM vigil.alerts")"
    strays="FROM vigil.alerts
        WHERE cardinality(ARRAY(SELECT unnest(event_ids) INTERSECT SELECT unnest($burst_ids))) < 5"
    stray=$(psql -X -t -A -d "$db" -c "SELECT count(*) $strays")
    [ "$stray" = 0 ] || fail "$db: $stray alerts from the steady stream:
$(psql -X -t -A -d "$db" -c "SELECT alert_id, event_count, explanation $strays LIMIT 3")"
}

# Run A: uninterrupted, its own database and consumer group.
psql -X -q -d postgres -c "CREATE DATABASE vigil_a" >/dev/null
base_conninfo=$TEST_CONNINFO
TEST_CONNINFO="$base_conninfo dbname=vigil_a"
export PGDATABASE=vigil_a
VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO "$VIGIL" migrate >/dev/null || fail "vigil migrate failed"
VIGIL_HTTP_LISTEN=127.0.0.1:0 vigild_start a "${common[@]}" --set kafka.group.id=run-a
port=$(vigild_http_port a)
wait_until 240 "run A committed everything" committed_at_least "$good"
metrics=$(http_get "$port" /metrics)
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "run A exited with $TERM_RC"
check_news vigil_a
n_a=$(sql "SELECT count(*) FROM vigil.alerts")
raised=$(echo "$metrics" | awk '$1 ~ /^vigil_alerts_raised_total\{kind="sentiment"/ {s += $2} END {print s + 0}')
[ "$raised" = "$n_a" ] || fail "vigil_alerts_raised_total says $raised sentiment alerts, the table holds $n_a"
note "run A: $(sql "SELECT string_agg(alert_id || ' ' || severity || ' ' || event_count, ', ') FROM vigil.alerts")"

# Run B: killed with -9 three times, the second and third inside the burst.
TEST_CONNINFO=$base_conninfo
export PGDATABASE=vigil
VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO "$VIGIL" migrate >/dev/null || fail "vigil migrate failed"
listen_start b "$TEST_CONNINFO"
listen_b=$LISTEN_PID
burst_part() { [ "$(sql "SELECT count(*) FROM vigil.news_scores WHERE article_id = ANY ($burst_ids)")" -ge "$1" ]; }
round=0
for until in "committed_at_least 1000" "burst_part 10" "burst_part 25"; do
    round=$((round + 1))
    vigild_start "b$round" "${common[@]}" --set kafka.group.id=run-b
    wait_until 180 "run B, round $round: $until" $until
    kill -9 "$VIGILD_PID"
    wait "$VIGILD_PID" 2>/dev/null || true
    at_kill=$(committed_total)
    [ "$at_kill" -lt "$good" ] || fail "everything was committed by round $round: nothing was in flight"
    note "round $round: killed at $at_kill committed, $(sql "SELECT count(*) FROM vigil.alerts") alerts"
done
vigild_start b4 "${common[@]}" --set kafka.group.id=run-b
wait_until 240 "run B committed everything" committed_at_least "$good"
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "the last run of B exited with $TERM_RC"
[ "$(count_duplicates news_scores)" = 0 ] || fail "an article was written twice"
check_news vigil

# The same alerts as run A's, and the same windows behind them.
cols="alert_id, event_count, first_event_id, last_event_id"
psql -X -q -d vigil_a -c "\\copy (SELECT $cols FROM vigil.alerts) TO '$HARNESS_TMP/a.tsv'"
sql "CREATE TABLE alerts_a AS SELECT $cols FROM vigil.alerts WITH NO DATA" >/dev/null
psql -X -q -c "\\copy alerts_a FROM '$HARNESS_TMP/a.tsv'"
differ=$(sql "SELECT count(*) FROM vigil.alerts b FULL JOIN alerts_a a USING (alert_id)
              WHERE a.alert_id IS NULL OR b.alert_id IS NULL OR a.event_count <> b.event_count
                 OR a.first_event_id <> b.first_event_id OR a.last_event_id <> b.last_event_id")
[ "$differ" = 0 ] || fail "$differ alerts differ from the uninterrupted run's"
psql -X -q -d vigil_a -c "\\copy (SELECT key_kind, key, window_start, articles, negative FROM vigil.sentiment_windows) TO '$HARNESS_TMP/w.tsv'"
sql "CREATE TABLE windows_a (key_kind text, key text, window_start timestamptz, articles int, negative int)"
psql -X -q -c "\\copy windows_a FROM '$HARNESS_TMP/w.tsv'"
wdiff=$(sql "SELECT count(*) FROM (SELECT key_kind, key, window_start, articles, negative FROM vigil.sentiment_windows
             EXCEPT SELECT * FROM windows_a) d")
[ "$wdiff" = 0 ] && [ "$(sql "SELECT count(*) FROM vigil.sentiment_windows")" = "$(sql "SELECT count(*) FROM windows_a")" ] ||
    fail "$wdiff sentiment windows differ from the uninterrupted run's"
wait_until 30 "run B's notifications" notified_all vigil "$HARNESS_TMP/b.notify"
kill -TERM "$listen_b"
wait "$listen_b" || fail "the LISTEN client of run B failed: $(cat "$HARNESS_TMP/b.listen.log")"
check_revisions vigil "$HARNESS_TMP/b.notify"
# How soon: the AAPL alert's size when it was raised (its first notification), against the
# articles of its window that were steady news.
raised_at=$(python3 -c 'import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        n = json.loads(line)
        if n["entity"] == "ticker:AAPL" and n["revision"] == 1:
            print(n["events"])' "$HARNESS_TMP/b.notify")
steady=$(sql "SELECT count(*) FROM vigil.news_scores n, vigil.alerts a
              WHERE a.entity = 'ticker:AAPL' AND 'AAPL' = ANY (n.tickers)
                AND n.published_time >= (a.explanation->>'from')::timestamptz
                AND n.published_time < (a.explanation->>'to')::timestamptz + interval '1 minute'
                AND NOT n.article_id = ANY ($burst_ids)")
[ -n "$raised_at" ] && [ "$raised_at" -le $((40 + steady)) ] ||
    fail "the AAPL alert was raised with '$raised_at' articles, more than its window holds"
note "the AAPL alert was raised with $raised_at articles in its window, of which $steady steady news at most"
note "ok"
