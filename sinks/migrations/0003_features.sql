-- Behavior features: the vector each event was scored with (kept for training), the feature
-- specs those vectors follow, and the per-partition entity state checkpoints that let a
-- restarted consumer rebuild its aggregates (written in the same transaction as the offsets).

ALTER TABLE vigil.risk_scores ADD COLUMN features real[];
ALTER TABLE vigil.risk_scores ADD COLUMN feature_spec text;

-- One row per feature spec ever used: its hash (risk_scores.feature_spec), the name of every
-- column of the vectors, and the spec text.
CREATE TABLE vigil.feature_specs (
    spec_hash          text             PRIMARY KEY,
    columns            text[]           NOT NULL,
    spec               text             NOT NULL,
    created_at         timestamptz      NOT NULL DEFAULT now()
);

-- The entity state of a partition as of next_offset: replaying from next_offset up to the
-- stored Kafka offset rebuilds the state the consumer had, without writing anything twice.
CREATE TABLE vigil.entity_state (
    consumer_group     text             NOT NULL,
    topic              text             NOT NULL,
    partition          integer          NOT NULL,
    next_offset        bigint           NOT NULL,
    spec_hash          text             NOT NULL,
    entities           bigint           NOT NULL,
    state              bytea            NOT NULL,
    updated_at         timestamptz      NOT NULL DEFAULT now(),
    updated_by         text,
    PRIMARY KEY (consumer_group, topic, partition)
);
