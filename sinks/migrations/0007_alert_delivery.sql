-- vigil schema, seventh version: delivering alerts to the sinks after the commit (a Kafka
-- topic, Prometheus Alertmanager). What each sink has been given is stored here, so that a
-- restart re-sends from the table what was not yet delivered (docs/alerts.md, "Delivery").

CREATE TABLE vigil.alert_deliveries (
    sink               text             NOT NULL, -- 'kafka', 'alertmanager'
    alert_id           text             NOT NULL REFERENCES vigil.alerts ON DELETE CASCADE,
    revision           integer          NOT NULL, -- the revision the sink last took
    delivered_at       timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (sink, alert_id)
);
