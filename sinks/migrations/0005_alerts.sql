-- vigil schema, fifth version: alerts. A fraud alert is raised, and grown, by the batch
-- transaction that writes the scores which caused it (vigil.alerts_fraud_apply), so an alert
-- exists exactly when its events are committed; every committed change of an alert bumps its
-- revision and sends NOTIFY vigil_alerts in that same transaction (docs/alerts.md).

CREATE TABLE vigil.alerts (
    alert_id           text             PRIMARY KEY, -- fraud:<topic>:<partition>:<offset> of its first event
    kind               text             NOT NULL CHECK (kind IN ('fraud', 'sentiment')),
    entity             text             NOT NULL,    -- fraud: the user id
    severity           text             NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    status             text             NOT NULL DEFAULT 'open'
                                        CHECK (status IN ('open', 'acknowledged', 'resolved')),
    revision           integer          NOT NULL DEFAULT 1, -- +1 per committed change; NOTIFY carries it
    event_count        integer          NOT NULL,
    first_event_id     text             NOT NULL,
    first_event_time   timestamptz      NOT NULL,
    last_event_id      text             NOT NULL,
    last_event_time    timestamptz      NOT NULL,
    max_score          real             NOT NULL,
    event_ids          text[]           NOT NULL,    -- the first 100 events, in the order they came
    explanation        jsonb,                        -- of the highest-scoring event (docs/alerts.md)
    model_version      text,
    topic              text             NOT NULL,    -- where its first event came from
    partition          integer          NOT NULL,
    kafka_offset       bigint           NOT NULL,
    raised_at          timestamptz      NOT NULL DEFAULT now(),
    last_seen_at       timestamptz      NOT NULL DEFAULT now(), -- wall clock of its newest event: the quiet period counts from here
    updated_at         timestamptz      NOT NULL DEFAULT now(),
    acknowledged_at    timestamptz,
    acknowledged_by    text,
    resolved_at        timestamptz,
    resolved_by        text,
    resolution         text             CHECK (resolution IN ('fraud', 'legit', 'quiet', 'manual'))
);
-- The open alert of an entity, found by the batch transaction for each alert-worthy event.
CREATE INDEX alerts_open_idx ON vigil.alerts (kind, entity, last_event_time) WHERE status <> 'resolved';
CREATE INDEX alerts_updated_idx ON vigil.alerts (updated_at);

-- Labels may now come from an analyst resolving an alert (label_source 'analyst'): those have
-- no Kafka coordinates, and name the alert instead.
ALTER TABLE vigil.labels ALTER COLUMN topic DROP NOT NULL,
    ALTER COLUMN partition DROP NOT NULL,
    ALTER COLUMN kafka_offset DROP NOT NULL,
    ADD COLUMN alert_id text,
    ADD CONSTRAINT labels_origin CHECK ((topic IS NOT NULL AND partition IS NOT NULL AND
                                         kafka_offset IS NOT NULL) OR alert_id IS NOT NULL);

-- What LISTEN vigil_alerts receives: small and bounded (PostgreSQL refuses payloads of 8000
-- bytes or more). alert_id is at most 'sentiment:' or 'fraud:', a topic name (Kafka: at most
-- 249 characters), a partition and an offset; the entity is cut to 200 characters, which JSON
-- escaping makes at most 1,200 bytes. Everything else is fixed words and numbers.
CREATE FUNCTION vigil.alert_payload(a vigil.alerts) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT json_build_object('alert_id', a.alert_id, 'kind', a.kind, 'severity', a.severity,
                             'status', a.status, 'revision', a.revision,
                             'entity', left(a.entity, 200), 'events', a.event_count)::text
$$;

CREATE FUNCTION vigil.severity_rank(s text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_position(ARRAY['low', 'medium', 'high', 'critical'], s)
$$;

-- An explanation (features with their values and contributions, from vigild) completed with the
-- entity's own baseline: each feature's mean over the entity's last 100 events before `before`.
CREATE FUNCTION vigil.alert_fraud_baseline(explanation jsonb, user_id text, before timestamptz)
RETURNS jsonb
LANGUAGE sql STABLE STRICT AS $$
    WITH history AS (
        SELECT r.features FROM vigil.risk_scores r
        WHERE r.user_id = $2 AND r.event_time < $3 AND r.features IS NOT NULL
        ORDER BY r.event_time DESC LIMIT 100
    ), feats AS (
        SELECT f.value AS feature, f.i,
               (SELECT avg(h.features[(f.value->>'index')::int + 1]) FROM history h) AS mean
        FROM jsonb_array_elements(coalesce($1->'features', '[]')) WITH ORDINALITY AS f(value, i)
    )
    SELECT jsonb_set($1, '{features}',
                     coalesce(jsonb_agg(feature || jsonb_build_object('entity_mean', mean) ORDER BY i),
                              '[]'))
           || jsonb_build_object('entity_events', (SELECT count(*) FROM history))
    FROM feats
$$;

-- The fraud alert hits of one batch, in the order of their events (within a partition, offset
-- order): each grows the open alert of its entity whose newest event is at most gap_ms before
-- it (event time), or raises a new one. Then one NOTIFY per alert changed, carrying its new
-- revision. Returns the alerts changed, with whether each was raised by this batch. hits: a JSON
-- array of {entity, event_id, event_ms, score, severity, model_version, topic, part, off,
-- explanation}.
CREATE FUNCTION vigil.alerts_fraud_apply(hits jsonb, gap_ms bigint)
RETURNS TABLE (alert_id text, severity text, raised boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    h record;
    t timestamptz;
    found_id text;
    changed text[] := '{}';
    new_ids text[] := '{}';
BEGIN
    FOR h IN SELECT e.v->>'entity' AS entity, e.v->>'event_id' AS event_id,
                    (e.v->>'event_ms')::bigint AS event_ms, (e.v->>'score')::real AS score,
                    e.v->>'severity' AS severity, e.v->>'model_version' AS model_version,
                    e.v->>'topic' AS topic, (e.v->>'part')::integer AS part,
                    (e.v->>'off')::bigint AS off,
                    nullif(e.v->'explanation', 'null') AS explanation
             FROM jsonb_array_elements(hits) WITH ORDINALITY AS e(v, ord) ORDER BY e.ord LOOP
        t := timestamptz 'epoch' + h.event_ms * interval '1 millisecond';
        SELECT a.alert_id INTO found_id FROM vigil.alerts a
        WHERE a.kind = 'fraud' AND a.entity = h.entity AND a.status <> 'resolved'
          AND a.last_event_time >= t - gap_ms * interval '1 millisecond'
        ORDER BY a.last_event_time DESC LIMIT 1 FOR UPDATE;
        IF found_id IS NULL THEN
            found_id := 'fraud:' || h.topic || ':' || h.part || ':' || h.off;
            INSERT INTO vigil.alerts (alert_id, kind, entity, severity, event_count, first_event_id,
                                      first_event_time, last_event_id, last_event_time, max_score,
                                      event_ids, explanation, model_version, topic, partition,
                                      kafka_offset)
            VALUES (found_id, 'fraud', h.entity, h.severity, 1, h.event_id, t, h.event_id, t,
                    h.score, ARRAY[h.event_id],
                    vigil.alert_fraud_baseline(h.explanation, h.entity, t), h.model_version,
                    h.topic, h.part, h.off);
            new_ids := new_ids || found_id;
        ELSE
            UPDATE vigil.alerts a SET
                event_count = a.event_count + 1,
                revision = a.revision + CASE WHEN found_id = ANY (changed) THEN 0 ELSE 1 END,
                severity = CASE WHEN vigil.severity_rank(h.severity) > vigil.severity_rank(a.severity)
                                THEN h.severity ELSE a.severity END,
                first_event_id = CASE WHEN t < a.first_event_time THEN h.event_id ELSE a.first_event_id END,
                first_event_time = least(a.first_event_time, t),
                last_event_id = CASE WHEN t >= a.last_event_time THEN h.event_id ELSE a.last_event_id END,
                last_event_time = greatest(a.last_event_time, t),
                explanation = CASE WHEN h.score > a.max_score AND h.explanation IS NOT NULL
                                   THEN vigil.alert_fraud_baseline(h.explanation, h.entity, a.first_event_time)
                                   ELSE a.explanation END,
                model_version = CASE WHEN h.score > a.max_score AND h.explanation IS NOT NULL
                                     THEN h.model_version ELSE a.model_version END,
                max_score = greatest(a.max_score, h.score),
                event_ids = CASE WHEN cardinality(a.event_ids) < 100 THEN a.event_ids || h.event_id
                                 ELSE a.event_ids END,
                last_seen_at = now(),
                updated_at = now()
            WHERE a.alert_id = found_id;
        END IF;
        IF NOT found_id = ANY (changed) THEN
            changed := changed || found_id;
        END IF;
        found_id := NULL;
    END LOOP;
    PERFORM pg_notify('vigil_alerts', vigil.alert_payload(a))
    FROM vigil.alerts a WHERE a.alert_id = ANY (changed) ORDER BY a.alert_id;
    RETURN QUERY SELECT a.alert_id, a.severity, a.alert_id = ANY (new_ids)
                 FROM vigil.alerts a WHERE a.alert_id = ANY (changed);
END
$$;

-- An analyst's or an operator's change: acknowledge (open -> acknowledged) or resolve (open or
-- acknowledged -> resolved). A fraud alert resolved as 'fraud' or 'legit' labels each of its
-- listed events (vigil.labels, label_source 'analyst'): the feedback online learning trains on.
-- Returns the alert as it is now, or no row when there is no such alert or it is past that
-- step (acknowledging a resolved alert, resolving one twice).
CREATE FUNCTION vigil.alert_set_status(id text, new_status text, by_whom text, how text)
RETURNS SETOF vigil.alerts
LANGUAGE plpgsql AS $$
DECLARE
    a vigil.alerts;
BEGIN
    IF new_status = 'acknowledged' THEN
        UPDATE vigil.alerts x SET status = 'acknowledged', acknowledged_at = now(),
                                  acknowledged_by = by_whom, revision = x.revision + 1,
                                  updated_at = now()
        WHERE x.alert_id = id AND x.status = 'open' RETURNING x.* INTO a;
    ELSIF new_status = 'resolved' THEN
        UPDATE vigil.alerts x SET status = 'resolved', resolved_at = now(), resolved_by = by_whom,
                                  resolution = how, revision = x.revision + 1, updated_at = now()
        WHERE x.alert_id = id AND x.status <> 'resolved' RETURNING x.* INTO a;
        IF FOUND AND a.kind = 'fraud' AND how IN ('fraud', 'legit') THEN
            INSERT INTO vigil.labels (label_kind, event_id, is_fraud, label_source, label_time,
                                      alert_id)
            SELECT 'fraud', e, how = 'fraud', 'analyst', now(), a.alert_id
            FROM unnest(a.event_ids) AS e;
        END IF;
    ELSE
        RAISE EXCEPTION 'alert status % is not acknowledged or resolved', new_status;
    END IF;
    IF a.alert_id IS NOT NULL THEN
        PERFORM pg_notify('vigil_alerts', vigil.alert_payload(a));
        RETURN NEXT a;
    END IF;
END
$$;

-- Resolves every open or acknowledged alert of kind that has had no new event for quiet
-- (resolution 'quiet'), one NOTIFY each. Returns how many, per severity.
CREATE FUNCTION vigil.alerts_resolve_quiet(k text, quiet interval, by_whom text)
RETURNS TABLE (severity text, resolved bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    ids text[];
BEGIN
    WITH done AS (
        UPDATE vigil.alerts x SET status = 'resolved', resolved_at = now(), resolved_by = by_whom,
                                  resolution = 'quiet', revision = x.revision + 1,
                                  updated_at = now()
        WHERE x.kind = k AND x.status <> 'resolved' AND x.last_seen_at < now() - quiet
        RETURNING x.alert_id
    )
    SELECT coalesce(array_agg(d.alert_id), '{}') INTO ids FROM done d;
    PERFORM pg_notify('vigil_alerts', vigil.alert_payload(a))
    FROM vigil.alerts a WHERE a.alert_id = ANY (ids) ORDER BY a.alert_id;
    RETURN QUERY SELECT a.severity, count(*) FROM vigil.alerts a WHERE a.alert_id = ANY (ids)
                 GROUP BY a.severity;
END
$$;
