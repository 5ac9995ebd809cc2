/* Records by index: produce_gen_record, which makes record i of any of the four kinds, the key
 * a Kafka message of it takes, and the malformed messages (in kinds a consumer always fails to
 * decode) that exercise the dead-letter path. */
#include <stdio.h>
#include <string.h>

#include "errbuf.h"
#include "produce_internal.h"

void produce_gen_record(produce_gen_t *g, ingest_kind_t kind, uint64_t i, int64_t now_ms,
                        ingest_record_t *rec)
{
    rec->kind = kind;
    switch (kind) {
    case INGEST_KIND_EVENT:
        produce_gen_event(g, i, now_ms, &rec->event);
        break;
    case INGEST_KIND_ARTICLE:
        produce_gen_article(g, i, now_ms, &rec->article);
        break;
    case INGEST_KIND_FRAUD_LABEL:
        produce_gen_fraud_label(g, i, now_ms, &rec->fraud_label);
        break;
    case INGEST_KIND_NEWS_LABEL:
        produce_gen_news_label(g, i, now_ms, &rec->news_label);
        break;
    case INGEST_KIND_COUNT:
        break;
    }
}

const char *produce_record_key(const ingest_record_t *rec)
{
    switch (rec->kind) {
    case INGEST_KIND_EVENT:
        return rec->event.user_id;
    case INGEST_KIND_ARTICLE:
        return rec->article.article_id;
    case INGEST_KIND_FRAUD_LABEL:
        return rec->fraud_label.event_id;
    case INGEST_KIND_NEWS_LABEL:
        return rec->news_label.article_id;
    case INGEST_KIND_COUNT:
        break;
    }
    return "";
}

int produce_gen_is_malformed(const produce_gen_t *g, uint64_t i, double fraction)
{
    produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_MALFORMED, i);
    /* uniform is in [0, 1): never below 0, always below 1. */
    return produce_rng_uniform(&r) < fraction;
}

long produce_gen_malformed(produce_gen_t *g, ingest_avro_t *enc, int32_t schema_id, uint64_t i,
                           const ingest_record_t *rec, void *out, size_t out_cap, char *err,
                           size_t errlen)
{
    unsigned char *p = out;
    produce_malformed_kind_t kind = (produce_malformed_kind_t)(i % PRODUCE_MALFORMED_KINDS);

    if (kind == PRODUCE_MALFORMED_EMPTY)
        return 0;
    if (out_cap < 256) {
        errbuf_printf(err, errlen,
                      "malformed message buffer of %zu bytes is too small: use 256 or more",
                      out_cap);
        return -1;
    }
    if (kind == PRODUCE_MALFORMED_RANDOM) {
        produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_NOISE, i);
        size_t n = 1 + produce_rng_below(&r, 200);
        for (size_t k = 0; k < n; k++)
            p[k] = (unsigned char)produce_rng_next(&r);
        /* 0x01 is a bad Confluent magic byte, and in plain Avro the zigzag length -1 of the
         * first string: no format can accept it. */
        p[0] = 0x01;
        return (long)n;
    }

    /* Leave room to prepend a 5-byte header below. */
    long len = ingest_avro_encode(enc, rec, schema_id, p, out_cap - 5, err, errlen);
    if (len < 0)
        return -1;
    switch (kind) {
    case PRODUCE_MALFORMED_BAD_MAGIC:
        /* In plain Avro 0x7b is the zigzag length -62 of the first field, a required string in
         * every record kind: also invalid. */
        p[0] = 0x7b;
        return len;
    case PRODUCE_MALFORMED_TRUNCATED:
        return len / 2;
    case PRODUCE_MALFORMED_UNKNOWN_SCHEMA: {
        uint32_t id = schema_id == PRODUCE_UNKNOWN_SCHEMA_ID ? PRODUCE_UNKNOWN_SCHEMA_ID - 1
                                                             : PRODUCE_UNKNOWN_SCHEMA_ID;
        /* A plain encoding never starts with 0x00 (every kind starts with a required, non-empty
         * id), so a leading 0x00
         * means the encoder already wrote a Confluent header to overwrite. */
        if (p[0] != 0x00) {
            memmove(p + 5, p, (size_t)len);
            len += 5;
            p[0] = 0x00;
        }
        p[1] = (unsigned char)(id >> 24);
        p[2] = (unsigned char)(id >> 16);
        p[3] = (unsigned char)(id >> 8);
        p[4] = (unsigned char)id;
        return len;
    }
    default:
        errbuf_printf(err, errlen, "internal error: malformed kind %d", (int)kind);
        return -1;
    }
}
