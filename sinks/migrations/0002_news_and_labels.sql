-- vigil schema, second version: news articles staged for the news model, and the labels that
-- online training joins with stored results.

-- One row per decoded NewsArticle. The model columns stay NULL until the news model runs:
-- "not scored yet", never an invented score.
CREATE TABLE vigil.news_scores (
    topic              text             NOT NULL,
    partition          integer          NOT NULL,
    kafka_offset       bigint           NOT NULL,
    kafka_timestamp    timestamptz,
    article_id         text             NOT NULL,
    published_time     timestamptz      NOT NULL,
    source             text             NOT NULL,
    language           text,
    headline           text             NOT NULL,
    body               text,
    tickers            text[]           NOT NULL DEFAULT '{}',
    sentiment          text,
    sentiment_probs    real[],
    topic_label        text,
    topic_probs        real[],
    embedding          real[],
    model_version      text,
    written_at         timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX news_scores_published_idx ON vigil.news_scores (published_time);
CREATE INDEX news_scores_article_idx ON vigil.news_scores (article_id);
-- What the news model still has to score, found without scanning the scored rows.
CREATE INDEX news_scores_unscored_idx ON vigil.news_scores (published_time)
    WHERE model_version IS NULL;

-- One row per decoded FraudLabel or NewsLabel. A subject may be labelled more than once (a
-- chargeback after an analyst's review); readers take the latest label_time.
CREATE TABLE vigil.labels (
    topic              text             NOT NULL,
    partition          integer          NOT NULL,
    kafka_offset       bigint           NOT NULL,
    kafka_timestamp    timestamptz,
    label_kind         text             NOT NULL CHECK (label_kind IN ('fraud', 'news')),
    event_id           text,            -- fraud: the BehaviorEvent (risk_scores.event_id)
    is_fraud           boolean,         -- fraud
    label_source       text,            -- fraud: chargeback, analyst, ...
    article_id         text,            -- news: the NewsArticle (news_scores.article_id)
    sentiment          text CHECK (sentiment IN ('NEGATIVE', 'NEUTRAL', 'POSITIVE')),
    topic_label        text,            -- news: one of the news model's topic names
    label_time         timestamptz      NOT NULL,
    written_at         timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT labels_fraud_shape CHECK (label_kind <> 'fraud' OR
        (event_id IS NOT NULL AND is_fraud IS NOT NULL AND article_id IS NULL AND
         sentiment IS NULL AND topic_label IS NULL)),
    CONSTRAINT labels_news_shape CHECK (label_kind <> 'news' OR
        (article_id IS NOT NULL AND (sentiment IS NOT NULL OR topic_label IS NOT NULL) AND
         event_id IS NULL AND is_fraud IS NULL AND label_source IS NULL))
);
CREATE INDEX labels_event_idx ON vigil.labels (event_id, label_time) WHERE event_id IS NOT NULL;
CREATE INDEX labels_article_idx ON vigil.labels (article_id, label_time)
    WHERE article_id IS NOT NULL;
CREATE INDEX labels_time_idx ON vigil.labels (label_time);
