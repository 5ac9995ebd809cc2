#!/usr/bin/env bash
# make demo: a throwaway PostgreSQL, vigild with its embedded Kafka, 20,000 synthetic events of
# which 2% are malformed, an hour of news with a burst of bad news about one ticker, and a look
# at what landed: scores, features, news, the fraud and sentiment alerts with their explanations. Everything is stopped and removed at the end
# unless KEEP=1 is set, in which case it says how to reach and stop what it left running.
set -euo pipefail
BUILD=${1:-build}
SRC=$(cd "$(dirname "$0")/.." && pwd)
export VIGIL_BUILD_DIR=$SRC/$BUILD
source "$SRC/tests/lib/harness.sh"
KEEP=${KEEP:-0}
N=${N:-20000}

harness_init
if [ "$KEEP" = 1 ]; then
    # Keep the cluster and the daemon: disarm the cleanup.
    trap - EXIT
fi
echo "== starting a throwaway PostgreSQL in $HARNESS_TMP"
pg_start

echo "== starting vigild with its embedded Kafka (librdkafka mock cluster, 3 brokers, 8 partitions)"
# The shipped models (docs/models.md): the risk MLP, and the news heads on the MiniLM encoder
# that `make demo` fetched.
MODEL_DIR=${VIGIL_MODEL_DIR:-$SRC/.cache/models/all-MiniLM-L6-v2}
# The built-in fraud rules, and sentiment on one-minute windows against the half hour before (at
# z 6: a ticker has one or two articles a minute here, and a Poisson count that small reaches
# z 5 now and then over the 700-odd windows of the hour).
# The built-in ones compare 15 minutes with the day before: a demo has no day of news.
cat >"$HARNESS_TMP/demo.rules" <<'RULES'
rule critical score>=0.97
rule high score>=0.90
rule medium score>=0.80
sentiment window=1m history=30 z=6 min_articles=5 keys=ticker,topic
RULES
VIGIL_ALERTS_RULES=$HARNESS_TMP/demo.rules VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO VIGIL_INGEST_SCHEMA_DIR=$SRC/ingest/schemas \
    VIGIL_HTTP_LISTEN=127.0.0.1:0 VIGIL_MODEL_RISK_PATH=$SRC/models/risk.safetensors \
    VIGIL_MODEL_NEWS_PATH=$SRC/models/news-heads.safetensors VIGIL_MODEL_ENCODER_DIR=$MODEL_DIR \
    VIGIL_MODEL_BACKEND=cpu "$VIGILD" --embedded-kafka \
    >"$HARNESS_TMP/vigild.out" 2>"$HARNESS_TMP/vigild.log" &
pid=$!
HARNESS_PIDS+=($pid)
wait_until 30 "the embedded Kafka" grep -q '^embedded kafka bootstrap=' "$HARNESS_TMP/vigild.out"
bootstrap=$(sed -nE 's/^embedded kafka bootstrap=([^ ]+).*/\1/p' "$HARNESS_TMP/vigild.out")
port=$(vigild_http_port vigild)
echo "   bootstrap=$bootstrap http=127.0.0.1:$port"

echo "== producing $N BehaviorEvents (2% malformed) with vigil produce"
summary=$("$VIGIL" produce -b "$bootstrap" -n "$N" --malformed 0.02 --seed 42 2>/dev/null)
echo "   $summary"
echo "== producing 1000 news articles published over the last hour, 30 of them in one minute bad"
echo "   news about NVDA, then 1000 fraud labels and 500 news labels"
echo "   news: $("$VIGIL" produce -b "$bootstrap" --kind news -n 1000 --span 3600 --burst NVDA:600:30 --seed 42 2>/dev/null)"
for spec in fraud-labels:1000 news-labels:500; do
    echo "   ${spec%:*}: $("$VIGIL" produce -b "$bootstrap" --kind "${spec%:*}" -n "${spec#*:}" --seed 42 2>/dev/null)"
done
wait_until 300 "vigild to commit all $((N + 2500)) messages" committed_at_least "$((N + 2500))"

echo
echo "== what landed in PostgreSQL"
psql -X -q -P pager=off -c "SELECT 'vigil.risk_scores' AS table, count(*) AS rows FROM vigil.risk_scores
    UNION ALL SELECT 'vigil.news_scores', count(*) FROM vigil.news_scores
    UNION ALL SELECT 'vigil.labels', count(*) FROM vigil.labels
    UNION ALL SELECT 'vigil.dead_letters', count(*) FROM vigil.dead_letters
    UNION ALL SELECT 'vigil.kafka_offsets', count(*) FROM vigil.kafka_offsets"
psql -X -q -P pager=off -c "SELECT partition, kafka_offset, event_id, event_type, user_id, amount, currency,
    country, event_time, round(score::numeric, 4) AS score, model_version FROM vigil.risk_scores
    ORDER BY kafka_offset, partition LIMIT 5"
echo "== the riskiest events (the risk model, models/risk.safetensors)"
psql -X -q -P pager=off -c "SELECT event_id, event_type, user_id, amount, currency, country, merchant_category,
    round(score::numeric, 4) AS score FROM vigil.risk_scores ORDER BY score DESC NULLS LAST LIMIT 8"
echo "== one event's features, by name (vigil.feature_specs names the columns)"
psql -X -q -P pager=off -c "SELECT c.name, r.features[c.i] AS value
    FROM (SELECT * FROM vigil.risk_scores WHERE features IS NOT NULL ORDER BY kafka_offset DESC,
          partition LIMIT 1) r
    JOIN vigil.feature_specs s ON s.spec_hash = r.feature_spec,
    unnest(s.columns) WITH ORDINALITY AS c(name, i)
    WHERE c.name NOT LIKE '%#%' OR r.features[c.i] <> 0"
psql -X -q -P pager=off -c "SELECT topic, partition, next_offset, entities,
    pg_size_pretty(length(state)::bigint) AS state FROM vigil.entity_state ORDER BY 1, 2 LIMIT 4"
psql -X -q -P pager=off -c "SELECT article_id, language, left(headline, 50) AS headline, tickers, sentiment,
    topic_label, model_version FROM vigil.news_scores ORDER BY kafka_offset, partition LIMIT 5"
psql -X -q -P pager=off -c "SELECT label_kind, count(*), count(*) FILTER (WHERE is_fraud) AS fraud,
    count(sentiment) AS with_sentiment, count(topic_label) AS with_topic FROM vigil.labels GROUP BY 1"
psql -X -q -P pager=off -c "SELECT regexp_replace(reason, ':.*', '') AS kind, count(*),
    min(reason) AS example FROM vigil.dead_letters GROUP BY 1 ORDER BY count(*) DESC"
psql -X -q -P pager=off -c "SELECT topic, sum(next_offset) AS next_offsets, count(*) AS partitions
    FROM vigil.kafka_offsets GROUP BY topic ORDER BY topic"
echo "== alerts (docs/alerts.md): vigil alerts list"
VIGIL_POSTGRES_CONNINFO=$TEST_CONNINFO "$VIGIL" alerts list --limit 8 | cut -c 1-150 | sed 's/^/   /'
psql -X -q -P pager=off -c "SELECT kind, severity, count(*) AS alerts, sum(event_count) AS events
    FROM vigil.alerts GROUP BY 1, 2 ORDER BY 1, vigil.severity_rank(severity) DESC"
# The strongest alert of a user with earlier events: a first-ever event has no baseline to show.
top=$(psql -X -q -t -A -c "SELECT alert_id FROM vigil.alerts WHERE kind = 'fraud'
    ORDER BY coalesce((explanation->>'entity_events')::int, 0) > 0 DESC, max_score DESC,
    event_count DESC LIMIT 1")
echo "== why: the explanation of the strongest fraud alert of a user with history (vigil alerts show $top)"
psql -X -q -P pager=off -c "SELECT f->>'name' AS feature, round((f->>'value')::numeric, 3) AS value,
    round((f->>'entity_mean')::numeric, 3) AS user_mean, round((f->>'contribution')::numeric, 3) AS contribution
    FROM vigil.alerts, jsonb_array_elements(explanation->'features') f WHERE alert_id = '$top'"
echo "== the sentiment alerts: the NVDA burst, and what drove it"
psql -X -q -P pager=off -c "SELECT alert_id, severity, event_count AS articles,
    explanation->>'signal' AS signal, explanation->>'z_volume' AS z_volume,
    explanation->>'z_negative' AS z_negative, explanation->'baseline'->>'mean_articles' AS baseline_mean
    FROM vigil.alerts WHERE kind = 'sentiment' ORDER BY alert_id"
echo "== metrics (http://127.0.0.1:$port/metrics)"
http_get "$port" /metrics | grep -E '^vigil_(messages_(consumed|decoded|dead_lettered)|rows_written|batches_[a-z]*)_total[{ ]|^vigil_alerts_raised_total.* [1-9]' | sed 's/^/   /'

echo
if [ "$KEEP" = 1 ]; then
    cat <<MSG
== left running (KEEP=1)
   PostgreSQL: psql "$TEST_CONNINFO"
   Kafka:      $bootstrap   (e.g. kcat -b $bootstrap -L)
   vigild:     pid $pid, http://127.0.0.1:$port/metrics, log $HARNESS_TMP/vigild.log
   stop:       kill $pid; runuser -u nobody -- $PG_BIN/pg_ctl -D $PGDATA stop; rm -rf $HARNESS_TMP
MSG
    exit 0
fi
kill -TERM "$pid"
wait "$pid" || echo "vigild exited with status $?"
cat <<MSG
== done; everything stopped and removed.
Where to look next:
   README.md                 running vigild against your own Kafka and PostgreSQL
   docs/configuration.md     every setting; [kafka] keys go straight to librdkafka
   docs/architecture.md      how events flow and why each lands exactly once
   make test                 the test suite on real servers;  make bench  the throughput figure
   KEEP=1 make demo          leave the demo running to poke at it
MSG
