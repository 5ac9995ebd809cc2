-- vigil schema, eighth version: vigil.alerts_fraud_apply as a few set-based statements instead
-- of a loop over the hits. The loop of 0005 ran a lookup, an insert or an update and, for a new
-- or higher-scoring alert, vigil.alert_fraud_baseline once per alert-worthy event. At 14,024
-- hits in 500,000 events that was 9.4 s of the writers' time, 6.1 s of it in the baseline, whose
-- query itself took 1.85 s: the rest went into setting that SQL function up again on each of its
-- 11,759 calls from PL/pgSQL (docs/alerts.md). The result is the
-- loop's, alert for alert and column for column (tests/unit/sinks/test_sink_pg_fraud_apply_pg.c
-- runs both over random batches and compares them).
--
-- How the loop's order becomes sets. A hit grows the open alert of its entity whose newest event
-- is at most gap_ms before it, else raises a new one. The open alert with the newest event always
-- holds the newest event time seen so far for that entity, so a hit starts a new alert exactly
-- when its time is more than gap_ms after the newest of (the entity's open alert's last event,
-- the entity's earlier hits in this batch). Counting those starts in hit order numbers each
-- hit's alert: 0 is the open alert (grown), 1, 2, ... are raised by this batch. Each alert's
-- new columns are then aggregates over its hits, taken the way the loop took them: the first
-- event is the earliest (on a tie, the earlier hit), the last the latest (on a tie, the later
-- hit), and the explanation is that of the last hit that raised the alert or, carrying an
-- explanation, scored above every score before it; its baseline is computed once, over the
-- entity's events before the alert's first event as it stood at that hit.
CREATE OR REPLACE FUNCTION vigil.alerts_fraud_apply(hits jsonb, gap_ms bigint)
RETURNS TABLE (alert_id text, severity text, raised boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    gap interval := gap_ms * interval '1 millisecond';
    changed text[];
    new_ids text[];
BEGIN
    WITH h AS (
        SELECT e.ord, e.v->>'entity' AS entity, e.v->>'event_id' AS event_id,
               timestamptz 'epoch' + (e.v->>'event_ms')::bigint * interval '1 millisecond' AS t,
               (e.v->>'score')::real AS score, e.v->>'severity' AS severity,
               e.v->>'model_version' AS model_version, e.v->>'topic' AS topic,
               (e.v->>'part')::integer AS part, (e.v->>'off')::bigint AS off,
               nullif(e.v->'explanation', 'null') AS explanation
        FROM jsonb_array_elements(hits) WITH ORDINALITY AS e(v, ord)
    ), open_alert AS ( -- per entity, the open alert a hit may grow, locked as the loop locked it
        SELECT o.* FROM (SELECT DISTINCT h.entity FROM h) e
        CROSS JOIN LATERAL (
            SELECT a.alert_id, a.entity, a.first_event_time AS o_first, a.last_event_time AS o_last,
                   a.max_score AS o_max
            FROM vigil.alerts a
            WHERE a.kind = 'fraud' AND a.entity = e.entity AND a.status <> 'resolved'
            ORDER BY a.last_event_time DESC LIMIT 1 FOR UPDATE) o
    ), seen AS ( -- each hit with what came before it for its entity
        SELECT h.*, o.alert_id AS open_id, o.o_first, o.o_max,
               greatest(o.o_last, max(h.t) OVER before) AS newest_before
        FROM h LEFT JOIN open_alert o ON o.entity = h.entity
        WINDOW before AS (PARTITION BY h.entity ORDER BY h.ord
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
    ), numbered AS ( -- n: which alert of its entity the hit goes to (0: the open one)
        SELECT s.*, sum((s.newest_before IS NULL OR s.newest_before < s.t - gap)::int)
                        OVER (PARTITION BY s.entity ORDER BY s.ord) AS n
        FROM seen s
    ), ranked AS ( -- each hit with what came before it in its alert
        SELECT x.*,
               greatest(CASE WHEN x.n = 0 THEN x.o_max END, max(x.score) OVER alert_before)
                   AS max_before,
               least(CASE WHEN x.n = 0 THEN x.o_first END, min(x.t) OVER alert_before)
                   AS first_before
        FROM numbered x
        WINDOW alert_before AS (PARTITION BY x.entity, x.n ORDER BY x.ord
                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
    ), g AS ( -- one row per alert changed
        SELECT r.entity, r.n, count(*)::integer AS events,
               (array_agg(r.severity ORDER BY vigil.severity_rank(r.severity) DESC, r.ord))[1]
                   AS severity,
               min(r.t) AS first_t, (array_agg(r.event_id ORDER BY r.t, r.ord))[1] AS first_id,
               max(r.t) AS last_t,
               (array_agg(r.event_id ORDER BY r.t DESC, r.ord DESC))[1] AS last_id,
               max(r.score) AS max_score, array_agg(r.event_id ORDER BY r.ord) AS ids,
               min(r.ord) AS first_ord,
               (array_agg(r.ord ORDER BY r.ord DESC)
                   FILTER (WHERE (r.n > 0 AND r.max_before IS NULL) OR
                                 (r.explanation IS NOT NULL AND r.score > r.max_before)))[1]
                   AS explained_ord
        FROM ranked r GROUP BY r.entity, r.n
    ), ge AS ( -- with its id (the open alert's, or its first hit's coordinates) and the
               -- explanation's hit
        SELECT g.*, r.topic, r.part, r.off, e.model_version AS e_model,
               CASE WHEN g.n = 0 THEN r.open_id
                    ELSE 'fraud:' || r.topic || ':' || r.part || ':' || r.off END AS id,
               vigil.alert_fraud_baseline(e.explanation, g.entity, coalesce(e.first_before, e.t))
                   AS explanation,
               e.ord IS NOT NULL AS explained
        FROM g JOIN ranked r ON r.ord = g.first_ord
        LEFT JOIN ranked e ON e.ord = g.explained_ord
    ), raised AS (
        INSERT INTO vigil.alerts (alert_id, kind, entity, severity, event_count, first_event_id,
                                  first_event_time, last_event_id, last_event_time, max_score,
                                  event_ids, explanation, model_version, topic, partition,
                                  kafka_offset)
        SELECT ge.id, 'fraud', ge.entity, ge.severity, ge.events, ge.first_id, ge.first_t,
               ge.last_id, ge.last_t, ge.max_score, ge.ids[1:100], ge.explanation, ge.e_model,
               ge.topic, ge.part, ge.off
        FROM ge WHERE ge.n > 0
        RETURNING alert_id
    ), grown AS (
        UPDATE vigil.alerts a SET
            event_count = a.event_count + ge.events,
            revision = a.revision + 1,
            severity = CASE WHEN vigil.severity_rank(ge.severity) > vigil.severity_rank(a.severity)
                            THEN ge.severity ELSE a.severity END,
            first_event_id = CASE WHEN ge.first_t < a.first_event_time THEN ge.first_id
                                  ELSE a.first_event_id END,
            first_event_time = least(a.first_event_time, ge.first_t),
            last_event_id = CASE WHEN ge.last_t >= a.last_event_time THEN ge.last_id
                                 ELSE a.last_event_id END,
            last_event_time = greatest(a.last_event_time, ge.last_t),
            explanation = CASE WHEN ge.explained THEN ge.explanation ELSE a.explanation END,
            model_version = CASE WHEN ge.explained THEN ge.e_model ELSE a.model_version END,
            max_score = greatest(a.max_score, ge.max_score),
            event_ids = CASE WHEN cardinality(a.event_ids) < 100
                             THEN (a.event_ids || ge.ids)[1:100] ELSE a.event_ids END,
            last_seen_at = now(),
            updated_at = now()
        FROM ge WHERE ge.n = 0 AND a.alert_id = ge.id
        RETURNING a.alert_id
    )
    SELECT coalesce((SELECT array_agg(alert_id) FROM raised), '{}'),
           coalesce((SELECT array_agg(alert_id) FROM grown), '{}')
    INTO new_ids, changed;
    changed := changed || new_ids;
    PERFORM pg_notify('vigil_alerts', vigil.alert_payload(a))
    FROM vigil.alerts a WHERE a.alert_id = ANY (changed) ORDER BY a.alert_id;
    RETURN QUERY SELECT a.alert_id, a.severity, a.alert_id = ANY (new_ids)
                 FROM vigil.alerts a WHERE a.alert_id = ANY (changed);
END
$$;
