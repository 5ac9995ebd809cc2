#!/usr/bin/env bash
# The news model end to end: articles of known sentiment, produced to Kafka, come out of
# vigil.news_scores with that sentiment, a topic, their probabilities, the embedding and the
# heads' version; a SIGHUP swaps the BERT heads for the n-gram fallback heads between batches
# (every row scored, with the version of the heads that scored it); heads trained on another
# encoder are refused and the running heads keep scoring.
# Needs the encoder files (scripts/fetch_model.sh) and the shipped heads in models/.
source "$(dirname "$0")/../lib/harness.sh"
harness_init
MODEL_DIR=${VIGIL_MODEL_DIR:-$SRC_DIR/.cache/models/all-MiniLM-L6-v2}
BERT_HEADS=$SRC_DIR/models/news-heads.safetensors
NGRAM_HEADS=$SRC_DIR/models/news-heads-ngram.safetensors
[ -f "$MODEL_DIR/model.safetensors" ] || fail "$MODEL_DIR missing: run scripts/fetch_model.sh"
[ -f "$BERT_HEADS" ] && [ -f "$NGRAM_HEADS" ] || fail "shipped news heads missing under models/"
pg_start
kafka_start 1 2 news-articles

# Ten headlines of each sentiment, written for this test (line i: sentiment i / 10).
headlines=$HARNESS_TMP/headlines.txt
cat >"$headlines" <<'EOF'
Profit more than doubled to a record high and the company raised its dividend
Sales rose 25 percent, beating analyst expectations, and the outlook was raised
The company won a major new contract that will boost revenue significantly
Operating profit increased strongly thanks to higher demand and lower costs
Shares jumped after the firm reported excellent quarterly earnings growth
Net income improved sharply and the order backlog reached an all-time high
The merger is expected to increase earnings and create substantial savings
Revenue grew strongly in all regions and margins improved
The bank reported a solid rise in profit and strong capital ratios
Strong demand lifted sales, and the company expects further growth next year
The company swung to a heavy loss and cut thousands of jobs
Sales fell sharply and the company issued a profit warning
Operating profit decreased by 40 percent due to weak demand
The firm filed for bankruptcy after failing to repay its debts
Shares plunged after the company slashed its earnings forecast
Net sales dropped and losses widened in the fourth quarter
The company warned of lower profits as costs soared and orders declined
Revenue declined for the third quarter in a row and the dividend was cancelled
The plant will be closed and 500 employees will lose their jobs
Weak results pushed the stock down and the outlook was lowered
The company will publish its interim report on Thursday
The annual general meeting will be held in Helsinki in April
The company is headquartered in Espoo and has offices in five countries
The board of directors consists of six members
The shares are listed on the stock exchange under the ticker ABC
The company operates in the packaging industry
The report covers the period from January to March
The firm employs about 2,000 people worldwide
The chief executive officer is John Smith
The company's products are sold in more than 40 countries
EOF

conf=$HARNESS_TMP/vigild.conf
printf '[model]\nbackend = cpu\nthreads = 2\nencoder_dir = %s\nnews_path = %s\nnews_max_batch = 8\n' \
    "$MODEL_DIR" "$BERT_HEADS" >"$conf"
vigild_start v --config "$conf"
log=$HARNESS_TMP/v.log
wait_until 120 "partitions assigned" grep -q 'msg="partition assigned"' "$log"
v_bert=$(sed -n 's/.*msg="model runtime".* news_version=\([^ ]*\) encoder=bert.*/\1/p' "$log")
[ -n "$v_bert" ] || fail "model runtime did not log BERT heads: $(grep 'model runtime' "$log")"
# At news_priority idle (the default) on the CPU the encoder is paced by the machine's load.
grep -q 'msg="model runtime".* news_pace="loadavg"' "$log" ||
    fail "the encoder is not paced: $(grep 'model runtime' "$log")"

"$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -k news --headlines "$headlines" -n 30 --seed 5 >/dev/null 2>&1 ||
    fail "producing the articles failed"
wait_until 120 "30 articles scored" bash -c "[ \$(psql -X -t -A -c 'SELECT count(*) FROM vigil.news_scores') -ge 30 ]"

# Every row scored, with every model column consistent.
bad=$(sql "SELECT count(*) FROM vigil.news_scores WHERE model_version IS DISTINCT FROM '$v_bert'
    OR sentiment NOT IN ('negative', 'neutral', 'positive') OR topic_label IS NULL
    OR array_length(sentiment_probs, 1) <> 3 OR array_length(topic_probs, 1) <> 20
    OR array_length(embedding, 1) <> 384
    OR abs((SELECT sum(p::float8) FROM unnest(sentiment_probs) p) - 1) > 1e-4
    OR abs((SELECT sum(p::float8) FROM unnest(topic_probs) p) - 1) > 1e-4
    OR abs((SELECT sum(e::float8 * e::float8) FROM unnest(embedding) e) - 1) > 1e-4")
[ "$bad" = 0 ] || fail "$bad scored rows are inconsistent"
# Known sentiment: article n5-i has headline line i % 30.
sql "SELECT split_part(article_id, '-', 2)::int % 30 / 10 AS want, sentiment FROM vigil.news_scores" |
    awk -F'|' 'BEGIN { split("positive negative neutral", name, " ") }
        { total[$1]++; if ($2 == name[$1 + 1]) ok[$1]++ }
        END { for (c = 0; c < 3; c++) printf "%s %d/%d\n", name[c + 1], ok[c], total[c] }' >"$HARNESS_TMP/sentiment.txt"
note "sentiment right per class: $(tr '\n' ' ' <"$HARNESS_TMP/sentiment.txt")"
while read -r cls right; do
    [ "${right%/*}" -ge 8 ] || fail "only $right $cls headlines came out $cls"
done <"$HARNESS_TMP/sentiment.txt"

# Heads for another encoder (the n-gram heads relabelled would be refused by encoder kind; a BERT
# head file claiming other encoder weights is the sharper case): refused, BERT heads keep going.
python3 - "$BERT_HEADS" "$HARNESS_TMP/other.safetensors" <<'PY'
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
head = json.loads(data[8:8 + n])
head["__metadata__"]["vigil.encoder_sha256"] = "0" * 64
text = json.dumps(head, separators=(",", ":")).encode()
text += b" " * ((8 - (8 + len(text)) % 8) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + data[8 + n:])
PY
sed -i "s|^news_path = .*|news_path = $HARNESS_TMP/other.safetensors|" "$conf"
kill -HUP "$VIGILD_PID"
wait_until 20 "refusal logged" grep -q 'msg="model refused; the running model keeps scoring" model=news.*trained on encoder weights 000000000000' "$log"

# Swap to the n-gram heads, then more articles: scored by them, 512-wide embeddings.
sed -i "s|^news_path = .*|news_path = $NGRAM_HEADS|" "$conf"
kill -HUP "$VIGILD_PID"
wait_until 20 "swap logged" grep -q 'msg="model loaded" model=news' "$log"
v_ngram=$(sed -n 's/.*msg="model loaded" model=news .* version=\([^ ]*\).*/\1/p' "$log" | tail -1)
[ -n "$v_ngram" ] && [ "$v_ngram" != "$v_bert" ] || fail "n-gram heads version '$v_ngram'"
"$VIGIL" produce -b "$KAFKA_BOOTSTRAP" -k news --headlines "$headlines" -n 60 --seed 6 >/dev/null 2>&1 ||
    fail "producing the second articles failed"
wait_until 60 "90 articles scored" bash -c "[ \$(psql -X -t -A -c 'SELECT count(*) FROM vigil.news_scores') -ge 90 ]"
vigild_term "$VIGILD_PID" 30
[ "$TERM_RC" = 0 ] || fail "vigild exited with $TERM_RC"
[ "$(sql "SELECT count(*) FROM vigil.news_scores")" = 90 ] || fail "not exactly 90 articles stored"
[ "$(sql "SELECT count(*) FROM vigil.news_scores WHERE model_version IS NULL OR sentiment IS NULL")" = 0 ] ||
    fail "articles without a score after the swap"
[ "$(sql "SELECT count(*) FROM vigil.news_scores WHERE article_id LIKE 'n6-%' AND
    (model_version <> '$v_ngram' OR array_length(embedding, 1) <> 512)")" = 0 ] ||
    fail "articles after the swap not scored by the n-gram heads"
# A batch closes at model.news_max_batch articles (ingest.batch_max is the default 5000): the rows
# of one transaction share written_at (now() is the transaction's start).
read -r biggest full < <(sql "SELECT max(n), count(*) FILTER (WHERE n = 8) FROM (SELECT count(*) n
    FROM vigil.news_scores GROUP BY written_at) b" | tr '|' ' ')
[ "$biggest" -le 8 ] && [ "$full" -ge 1 ] || fail "article batches: largest $biggest, $full of exactly 8"
note "versions: $(sql "SELECT string_agg(model_version || '=' || n, ' ') FROM (SELECT model_version, count(*) n FROM vigil.news_scores GROUP BY 1) s")"
note "ok"
