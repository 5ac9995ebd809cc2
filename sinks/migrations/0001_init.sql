-- vigil schema, first version: results of the behavior stream, dead letters, and the Kafka
-- offsets that make writes effectively once (they are updated in the same transaction as the
-- rows they account for).

CREATE SCHEMA IF NOT EXISTS vigil;

-- One row per decoded BehaviorEvent. score and model_version are NULL until the model runtime
-- lands: "not scored yet", never an invented score.
CREATE TABLE vigil.risk_scores (
    topic              text             NOT NULL,
    partition          integer          NOT NULL,
    kafka_offset       bigint           NOT NULL,
    kafka_timestamp    timestamptz,
    event_id           text             NOT NULL,
    event_type         text             NOT NULL,
    user_id            text             NOT NULL,
    account_id         text,
    device_id          text,
    ip                 text,
    amount             double precision,
    currency           text,
    merchant_id        text,
    merchant_category  text,
    country            text,
    latitude           double precision,
    longitude          double precision,
    event_time         timestamptz      NOT NULL,
    channel            text,
    score              real,
    model_version      text,
    written_at         timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX risk_scores_event_time_idx ON vigil.risk_scores (event_time);
CREATE INDEX risk_scores_user_idx ON vigil.risk_scores (user_id, event_time);

-- Messages that could not be decoded or validated, with everything needed to replay them.
CREATE TABLE vigil.dead_letters (
    id                 bigserial        PRIMARY KEY,
    topic              text             NOT NULL,
    partition          integer          NOT NULL,
    kafka_offset       bigint           NOT NULL,
    kafka_timestamp    timestamptz,
    key                bytea,
    payload            bytea,
    reason             text             NOT NULL,
    created_at         timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_created_idx ON vigil.dead_letters (created_at);

-- The next offset to consume per (group, topic, partition). NULL next_offset: assigned but
-- nothing committed yet (the consumer starts from auto.offset.reset).
CREATE TABLE vigil.kafka_offsets (
    consumer_group     text             NOT NULL,
    topic              text             NOT NULL,
    partition          integer          NOT NULL,
    next_offset        bigint,
    updated_at         timestamptz      NOT NULL DEFAULT now(),
    updated_by         text,
    PRIMARY KEY (consumer_group, topic, partition)
);
