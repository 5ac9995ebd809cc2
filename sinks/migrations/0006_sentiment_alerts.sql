-- vigil schema, sixth version: market-sentiment alerts. Per ticker and per predicted topic, the
-- articles of each window of publication time are counted (with how many the news model scored
-- and how many it called negative) by the batch transaction that writes them, so the baseline is
-- committed with the offsets: a restart or a rebalance replays nothing into it and a committed
-- alert is never raised twice. vigil.alerts_sentiment_apply raises or grows an alert when a
-- window's volume or negative share rises beyond the baseline of the windows before it
-- (docs/alerts.md).

CREATE TABLE vigil.sentiment_windows (
    key_kind           text             NOT NULL CHECK (key_kind IN ('ticker', 'topic')),
    key                text             NOT NULL,
    window_ms          bigint           NOT NULL, -- the width: another width is another series
    window_start       timestamptz      NOT NULL,
    articles           integer          NOT NULL,
    scored             integer          NOT NULL, -- of them, with a sentiment from the news model
    negative           integer          NOT NULL, -- of those, called negative
    PRIMARY KEY (key_kind, key, window_ms, window_start)
);

-- The articles of one batch, as vigild lists them: a JSON array of {id, ms (published), tickers,
-- topic_label, negative (true, false, or null: not scored), topic, part, off}. Tickers of more
-- than 32 characters and topics of more than 100 are not keys (the alert id, in every NOTIFY
-- payload, holds the key: it must stay far below PostgreSQL's 8000 bytes). For every
-- (key, window) they touch, in key order (two batches touching the same keys lock them in the
-- same order): the counts grow, then the window is compared with the `history` windows before
-- it. z_volume = (articles - mean) / max(sd, sqrt(mean), 1) over those windows (empty ones count
-- 0; the floor keeps a quiet key's first busy window from dividing by nothing); z_negative =
-- (negative - scored * p) / sqrt(scored * p * (1 - p)), p the baseline's negative share with one
-- negative and one other added (never 0 or 1), counted only once min_articles of the window's
-- articles are negative (against a baseline share near 0, one negative article is already
-- "six sigma"). A window alerts when it has min_articles articles,
-- its key has been seen since at least `history` windows before it (a baseline to compare with),
-- and either z reaches z_min: severity high from twice z_min, medium below. It grows the key's
-- unresolved alert whose last alerting window is this one or the one before, or raises
-- 'sentiment:<kind>:<key>:<window start ms>'; a window inside an alert's span grows it whatever
-- its z. One NOTIFY per alert changed. Returns the alerts changed, with whether each was raised
-- by this batch.
CREATE FUNCTION vigil.alerts_sentiment_apply(arts jsonb, width_ms bigint, history integer,
                                             z_min real, min_articles integer, by_ticker boolean,
                                             by_topic boolean)
RETURNS TABLE (alert_id text, severity text, raised boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    w record;
    cur vigil.sentiment_windows;
    width interval := width_ms * interval '1 millisecond';
    hist_n bigint; hist_sum bigint; hist_sq bigint; hist_scored bigint; hist_neg bigint;
    first_start timestamptz;
    mean double precision; sd double precision; p double precision;
    z_vol double precision; z_neg double precision; z double precision;
    hit boolean;
    found vigil.alerts;
    id text;
    sev text;
    why jsonb;
    changed text[] := '{}';
    new_ids text[] := '{}';
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS sentiment_batch (
        key_kind text, key text, window_start timestamptz, article_id text, published timestamptz,
        negative boolean, topic text, part integer, off bigint
    ) ON COMMIT DROP;
    TRUNCATE sentiment_batch;
    INSERT INTO sentiment_batch
    SELECT DISTINCT ON (k.kind, k.key, a.v->>'id')
           k.kind, k.key,
           timestamptz 'epoch' + ((a.v->>'ms')::bigint / width_ms * width_ms) * interval '1 millisecond',
           a.v->>'id', timestamptz 'epoch' + (a.v->>'ms')::bigint * interval '1 millisecond',
           (a.v->>'negative')::boolean, a.v->>'topic', (a.v->>'part')::integer, (a.v->>'off')::bigint
    FROM jsonb_array_elements(arts) AS a(v)
    CROSS JOIN LATERAL (
        SELECT 'ticker' AS kind, t AS key FROM jsonb_array_elements_text(a.v->'tickers') AS t
        WHERE by_ticker AND t <> '' AND length(t) <= 32
        UNION ALL
        SELECT 'topic', a.v->>'topic_label'
        WHERE by_topic AND coalesce(a.v->>'topic_label', '') <> '' AND length(a.v->>'topic_label') <= 100
    ) AS k
    ORDER BY k.kind, k.key, a.v->>'id';

    INSERT INTO vigil.sentiment_windows AS s (key_kind, key, window_ms, window_start, articles,
                                              scored, negative)
    SELECT b.key_kind, b.key, width_ms, b.window_start, count(*), count(b.negative),
           count(*) FILTER (WHERE b.negative)
    FROM sentiment_batch b GROUP BY b.key_kind, b.key, b.window_start
    ORDER BY b.key_kind, b.key, b.window_start
    ON CONFLICT (key_kind, key, window_ms, window_start) DO UPDATE
    SET articles = s.articles + excluded.articles, scored = s.scored + excluded.scored,
        negative = s.negative + excluded.negative;

    FOR w IN SELECT DISTINCT b.key_kind, b.key, b.window_start FROM sentiment_batch b
             ORDER BY b.key_kind, b.key, b.window_start LOOP
        SELECT * INTO cur FROM vigil.sentiment_windows s
        WHERE s.key_kind = w.key_kind AND s.key = w.key AND s.window_ms = width_ms
          AND s.window_start = w.window_start;
        SELECT count(*), coalesce(sum(s.articles), 0), coalesce(sum(s.articles::bigint * s.articles), 0),
               coalesce(sum(s.scored), 0), coalesce(sum(s.negative), 0)
        INTO hist_n, hist_sum, hist_sq, hist_scored, hist_neg
        FROM vigil.sentiment_windows s
        WHERE s.key_kind = w.key_kind AND s.key = w.key AND s.window_ms = width_ms
          AND s.window_start >= w.window_start - history * width AND s.window_start < w.window_start;
        SELECT min(s.window_start) INTO first_start FROM vigil.sentiment_windows s
        WHERE s.key_kind = w.key_kind AND s.key = w.key AND s.window_ms = width_ms;
        mean := hist_sum::double precision / history;
        sd := greatest(sqrt(greatest(hist_sq::double precision / history - mean * mean, 0)),
                       sqrt(mean), 1);
        z_vol := (cur.articles - mean) / sd;
        p := (hist_neg + 1)::double precision / (hist_scored + 2);
        z_neg := CASE WHEN cur.negative >= min_articles
                      THEN (cur.negative - cur.scored * p) / sqrt(cur.scored * p * (1 - p)) END;
        z := greatest(z_vol, coalesce(z_neg, z_vol));
        hit := cur.articles >= min_articles AND first_start <= w.window_start - history * width
               AND z >= z_min;
        why := jsonb_build_object(
            'key_kind', w.key_kind, 'key', w.key, 'window_ms', width_ms,
            'window_start', w.window_start, 'articles', cur.articles, 'scored', cur.scored,
            'negative', cur.negative,
            'signal', CASE WHEN z_neg IS NOT NULL AND z_neg > z_vol THEN 'negative_share' ELSE 'volume' END,
            'z_volume', round(z_vol::numeric, 3), 'z_negative', round(z_neg::numeric, 3),
            'baseline', jsonb_build_object('windows', history, 'with_articles', hist_n,
                                           'mean_articles', round(mean::numeric, 3),
                                           'sd_articles', round(sd::numeric, 3),
                                           'negative_share', round(p::numeric, 3)));

        SELECT a.* INTO found FROM vigil.alerts a
        WHERE a.kind = 'sentiment' AND a.entity = w.key_kind || ':' || w.key
          AND a.status <> 'resolved'
          AND (a.explanation->>'from')::timestamptz <= w.window_start
          AND (a.explanation->>'to')::timestamptz >= w.window_start - width
        ORDER BY a.last_event_time DESC LIMIT 1 FOR UPDATE;
        IF found.alert_id IS NULL AND NOT hit THEN
            CONTINUE;
        END IF;
        IF found.alert_id IS NOT NULL AND NOT hit
           AND (found.explanation->>'to')::timestamptz < w.window_start THEN
            CONTINUE; -- the window after an alert's last one, quiet again: the burst is over
        END IF;
        sev := CASE WHEN hit AND z >= 2 * z_min THEN 'high' ELSE 'medium' END;
        IF found.alert_id IS NULL THEN
            id := 'sentiment:' || w.key_kind || ':' || w.key || ':' ||
                  (extract(epoch FROM w.window_start) * 1000)::bigint;
            IF EXISTS (SELECT 1 FROM vigil.alerts a WHERE a.alert_id = id) THEN
                CONTINUE; -- this window's alert was resolved: it does not come back
            END IF;
            -- Every article of the key in the window so far, this batch's and earlier ones.
            INSERT INTO vigil.alerts (alert_id, kind, entity, severity, event_count, first_event_id,
                                      first_event_time, last_event_id, last_event_time, max_score,
                                      event_ids, explanation, topic, partition, kafka_offset)
            SELECT id, 'sentiment', w.key_kind || ':' || w.key, sev, cur.articles,
                   (array_agg(n.article_id ORDER BY n.published_time, n.article_id))[1],
                   min(n.published_time),
                   (array_agg(n.article_id ORDER BY n.published_time DESC, n.article_id DESC))[1],
                   max(n.published_time), z,
                   (array_agg(n.article_id ORDER BY n.published_time, n.article_id))[1:100],
                   why || jsonb_build_object('from', w.window_start, 'to', w.window_start),
                   (array_agg(n.topic ORDER BY n.published_time, n.article_id))[1],
                   (array_agg(n.partition ORDER BY n.published_time, n.article_id))[1],
                   (array_agg(n.kafka_offset ORDER BY n.published_time, n.article_id))[1]
            FROM vigil.news_scores n
            WHERE n.published_time >= w.window_start AND n.published_time < w.window_start + width
              AND CASE WHEN w.key_kind = 'ticker' THEN w.key = ANY (n.tickers)
                       ELSE n.topic_label = w.key END
            HAVING count(*) > 0;
            new_ids := new_ids || id;
        ELSE
            id := found.alert_id;
            UPDATE vigil.alerts a SET
                event_count = (SELECT sum(s.articles) FROM vigil.sentiment_windows s
                               WHERE s.key_kind = w.key_kind AND s.key = w.key AND s.window_ms = width_ms
                                 AND s.window_start >= (a.explanation->>'from')::timestamptz
                                 AND s.window_start <= greatest((a.explanation->>'to')::timestamptz,
                                                                w.window_start)),
                revision = a.revision + CASE WHEN id = ANY (changed) THEN 0 ELSE 1 END,
                severity = CASE WHEN vigil.severity_rank(sev) > vigil.severity_rank(a.severity)
                                THEN sev ELSE a.severity END,
                first_event_id = CASE WHEN (b.first_t, b.first_id) < (a.first_event_time, a.first_event_id)
                                      THEN b.first_id ELSE a.first_event_id END,
                first_event_time = least(a.first_event_time, b.first_t),
                last_event_id = CASE WHEN (b.last_t, b.last_id) > (a.last_event_time, a.last_event_id)
                                     THEN b.last_id ELSE a.last_event_id END,
                last_event_time = greatest(a.last_event_time, b.last_t),
                max_score = greatest(a.max_score, z),
                event_ids = (a.event_ids || b.ids)[1:100],
                explanation = CASE WHEN hit AND z > a.max_score THEN why ELSE a.explanation END
                              || jsonb_build_object('from', a.explanation->'from',
                                                    'to', greatest((a.explanation->>'to')::timestamptz,
                                                                   w.window_start)),
                last_seen_at = now(),
                updated_at = now()
            FROM (SELECT (array_agg(x.article_id ORDER BY x.published, x.article_id))[1] AS first_id,
                         min(x.published) AS first_t,
                         (array_agg(x.article_id ORDER BY x.published DESC, x.article_id DESC))[1] AS last_id,
                         max(x.published) AS last_t,
                         array_agg(x.article_id ORDER BY x.published, x.article_id) AS ids
                  FROM sentiment_batch x
                  WHERE x.key_kind = w.key_kind AND x.key = w.key
                    AND x.window_start = w.window_start) AS b
            WHERE a.alert_id = id;
        END IF;
        IF NOT id = ANY (changed) THEN
            changed := changed || id;
        END IF;
        found := NULL;
    END LOOP;
    PERFORM pg_notify('vigil_alerts', vigil.alert_payload(a))
    FROM vigil.alerts a WHERE a.alert_id = ANY (changed) ORDER BY a.alert_id;
    RETURN QUERY SELECT a.alert_id, a.severity, a.alert_id = ANY (new_ids)
                 FROM vigil.alerts a WHERE a.alert_id = ANY (changed);
END
$$;
