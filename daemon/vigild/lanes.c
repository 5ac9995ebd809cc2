/* The set of lanes (see lanes.h): the inputs grouped by kind into lanes, their start and stop,
 * and what the main thread reads of them (heartbeats, drained). */
#include "lanes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errbuf.h"
#include "lane.h"
#include "log.h"

struct lanes {
    lanes_shared_t sh;
    lane_t lanes[LANE_KINDS];
    size_t n_lanes;
    void (*on_ready)(void *ctx);
    void (*on_exit)(void *ctx);
    void *ctx;
    atomic_int ready, exited;
};

static const char *const lane_names[LANE_KINDS] = {
    [LANE_EVENTS] = "events",
    [LANE_NEWS] = "news",
    [LANE_LABELS] = "labels",
};

int64_t lane_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t lanes_now_ms(void)
{
    return lane_now_ns() / 1000000;
}

int lane_stopping(const lane_t *l)
{
    return atomic_load(&l->sh->stop);
}

void lane_request_stop(lane_t *l)
{
    lanes_stop(l->owner);
}

void lane_reader_beat(lane_t *l)
{
    atomic_store(&l->reader_beat_ms, lanes_now_ms());
}

int lane_backoff(lane_t *l, _Atomic int64_t *beat, int *ms)
{
    int64_t until = lanes_now_ms() + *ms;
    int max = atomic_load(&l->sh->retry_max_ms);
    *ms = *ms * 2 > max ? max : *ms * 2; /* the next wait */
    while (lanes_now_ms() < until) {
        struct timespec step = {0, 50 * 1000000L};
        atomic_store(beat, lanes_now_ms());
        int64_t deadline = atomic_load(&l->sh->stop_deadline_ms);
        if (deadline && lanes_now_ms() > deadline)
            return -1;
        nanosleep(&step, NULL);
    }
    return 0;
}

void lanes_lane_ready(lanes_t *ls)
{
    if ((size_t)atomic_fetch_add(&ls->ready, 1) + 1 == ls->n_lanes && ls->on_ready)
        ls->on_ready(ls->ctx);
}

void lanes_lane_exited(lanes_t *ls)
{
    if ((size_t)atomic_fetch_add(&ls->exited, 1) + 1 == ls->n_lanes && ls->on_exit)
        ls->on_exit(ls->ctx);
}

/* The lane an input of this record kind goes to. */
static lane_kind_t lanes_kind_of(ingest_kind_t kind)
{
    switch (kind) {
    case INGEST_KIND_EVENT:
        return LANE_EVENTS;
    case INGEST_KIND_ARTICLE:
        return LANE_NEWS;
    default:
        return LANE_LABELS;
    }
}

static int lanes_copy_options(lanes_t *ls, const lanes_options_t *o)
{
    lanes_shared_t *sh = &ls->sh;
    sh->pg_conninfo = strdup(o->pg_conninfo ? o->pg_conninfo : "");
    sh->instance_id = strdup(o->instance_id ? o->instance_id : "");
    sh->dlq_topic = strdup(o->dlq_topic ? o->dlq_topic : "");
    sh->kafka_keys = calloc(o->n_kafka + 1, sizeof(char *));
    sh->kafka_values = calloc(o->n_kafka + 1, sizeof(char *));
    sh->kafka_origins = calloc(o->n_kafka + 1, sizeof(char *));
    if (!sh->pg_conninfo || !sh->instance_id || !sh->dlq_topic || !sh->kafka_keys ||
        !sh->kafka_values || !sh->kafka_origins)
        return -1;
    sh->n_kafka = o->n_kafka;
    for (size_t i = 0; i < o->n_kafka; i++) {
        sh->kafka_keys[i] = strdup(o->kafka_keys[i]);
        sh->kafka_values[i] = strdup(o->kafka_values[i]);
        sh->kafka_origins[i] = strdup(o->kafka_origins[i]);
        if (!sh->kafka_keys[i] || !sh->kafka_values[i] || !sh->kafka_origins[i])
            return -1;
    }
    sh->shutdown_timeout_ms = o->shutdown_timeout_ms;
    sh->batches_in_flight = o->batches_in_flight > 0 ? (size_t)o->batches_in_flight : 1;
    sh->events_writers = o->events_writers > 0 ? (size_t)o->events_writers : 1;
    if (sh->events_writers > LANE_WRITERS_MAX)
        sh->events_writers = LANE_WRITERS_MAX;
    sh->rt = o->runtime;
    sh->news_batch_max = o->news_batch_max;
    if (sh->fz) {
        sh->fz_width = features_spec_width(featurize_spec(sh->fz));
        sh->max_entities = o->features_max_entities;
        sh->ttl_ms = o->features_ttl_ms;
        sh->checkpoint_interval_ms = o->features_checkpoint_interval_ms;
    }
    lanes_set_limits(ls, o->batch_max, o->batch_max_delay_ms, o->batch_linger_ms, o->retry_max_ms);
    return 0;
}

/* Puts input i into its lane. The decoder is the lane's from here on. */
static int lanes_add_input(lanes_t *ls, const lanes_input_t *in, char *err, size_t errlen)
{
    lane_t *l = &ls->lanes[lanes_kind_of(ingest_avro_kind(in->decoder))];
    lane_topic_t *t = &l->topics[l->n_topics++];

    t->decoder = in->decoder;
    if (!(t->name = strdup(in->topic))) {
        errbuf_printf(err, errlen, "lanes: out of memory");
        return -1;
    }
    if (!(t->m = metrics_topic(t->name))) {
        errbuf_printf(err, errlen, "lanes: no metrics slot for topic %s (name too long?)", t->name);
        return -1;
    }
    t->featurised = ls->sh.fz && ingest_avro_kind(in->decoder) == INGEST_KIND_EVENT;
    return 0;
}

/* The lane's writers, batches and queues: per writer batches_in_flight closed batches plus the
 * one being filled. */
static int lanes_lane_init(lanes_t *ls, lane_t *l, lane_kind_t kind, char *err, size_t errlen)
{
    l->owner = ls;
    l->sh = &ls->sh;
    l->kind = kind;
    l->name = lane_names[kind];
    l->epoch = 1; /* writers drop batches of epochs up to the last fenced one: 0 at first */
    if (!(l->m = metrics_lane(l->name))) {
        errbuf_printf(err, errlen, "lanes: no metrics slot for lane %s", l->name);
        return -1;
    }
    l->n_writers = kind == LANE_EVENTS ? ls->sh.events_writers : 1;
    l->n_pool = l->n_writers * (ls->sh.batches_in_flight + 1);
    l->pool = calloc(l->n_pool, sizeof *l->pool);
    l->free_list = calloc(l->n_pool, sizeof *l->free_list);
    if (!l->pool || !l->free_list) {
        errbuf_printf(err, errlen, "lanes: out of memory");
        return -1;
    }
    for (size_t i = 0; i < l->n_pool; i++) {
        if (lane_batch_init(&l->pool[i], &ls->sh, err, errlen) != 0)
            return -1;
        l->free_list[l->n_free++] = &l->pool[i];
    }
    if (lane_queue_init(&l->done, l->n_pool, err, errlen) != 0)
        return -1;
    for (size_t w = 0; w < l->n_writers; w++) {
        l->writers[w].lane = l;
        l->writers[w].index = w;
        if (lane_queue_init(&l->writers[w].to_write, l->n_pool, err, errlen) != 0)
            return -1;
    }
    if (ls->sh.fz && kind == LANE_EVENTS &&
        !(l->replay_features = malloc(ls->sh.fz_width * sizeof(float)))) {
        errbuf_printf(err, errlen, "lanes: out of memory");
        return -1;
    }
    if (lane_enrich_reserve(l, (size_t)atomic_load(&ls->sh.batch_max)) != 0) {
        errbuf_printf(err, errlen, "lanes: out of memory");
        return -1;
    }
    return 0;
}

/* Refuses inputs that name no topic or one topic twice (each topic has one decoder). */
static int lanes_check_inputs(const lanes_options_t *o, char *err, size_t errlen)
{
    if (o->n_inputs == 0 || o->n_inputs > LANES_INPUTS_MAX) {
        errbuf_printf(err, errlen, "lanes: %zu input topics; between 1 and %d are supported",
                      o->n_inputs, LANES_INPUTS_MAX);
        return -1;
    }
    for (size_t i = 0; i < o->n_inputs; i++) {
        if (!o->inputs[i].decoder || !o->inputs[i].topic || !o->inputs[i].topic[0]) {
            errbuf_printf(err, errlen,
                          "lanes: input %zu lacks a topic or a decoder (a bug in the caller)", i);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->inputs[j].topic, o->inputs[i].topic) == 0) {
                errbuf_printf(err, errlen,
                              "topic %s is configured for two inputs; each input needs its own",
                              o->inputs[i].topic);
                return -1;
            }
    }
    return 0;
}

lanes_t *lanes_new(const lanes_options_t *o, char *err, size_t errlen)
{
    lanes_t *ls = calloc(1, sizeof *ls);
    size_t taken = 0;

    if (!ls) {
        errbuf_printf(err, errlen, "lanes: out of memory");
        alert_rules_free(o->alert_rules);
        goto err;
    }
    ls->sh.fz = o->featurize; /* ours from here on, whatever happens next */
    ls->sh.alert_rules = o->alert_rules;
    const alert_sentiment_t *as = o->alert_rules ? alert_rules_sentiment(o->alert_rules) : NULL;
    if (as && as->on) {
        ls->sh.sentiment_rules = (sink_sentiment_rules_t){
            as->window_ms, as->history, as->z, as->min_articles, as->by_ticker, as->by_topic};
        ls->sh.sentiment = &ls->sh.sentiment_rules;
    }
    ls->on_ready = o->on_ready;
    ls->on_exit = o->on_exit;
    ls->ctx = o->ctx;
    if (lanes_check_inputs(o, err, errlen) != 0)
        goto err;
    if (lanes_copy_options(ls, o) != 0) {
        errbuf_printf(err, errlen, "lanes: out of memory");
        goto err;
    }
    for (; taken < o->n_inputs; taken++)
        if (lanes_add_input(ls, &o->inputs[taken], err, errlen) != 0) {
            taken++;
            goto err;
        }
    for (int k = 0; k < LANE_KINDS; k++) {
        if (ls->lanes[k].n_topics == 0)
            continue;
        if (lanes_lane_init(ls, &ls->lanes[k], (lane_kind_t)k, err, errlen) != 0)
            goto err;
        ls->n_lanes++;
    }
    return ls;
err:
    /* Decoders not handed to a lane yet are still ours to free. */
    for (size_t i = taken; i < o->n_inputs; i++)
        ingest_avro_free(o->inputs[i].decoder);
    if (ls)
        lanes_free(ls);
    else
        featurize_free(o->featurize);
    return NULL;
}

int lanes_start(lanes_t *ls, char *err, size_t errlen)
{
    for (int k = 0; k < LANE_KINDS; k++) {
        lane_t *l = &ls->lanes[k];
        if (l->n_topics == 0)
            continue;
        lane_reader_beat(l); /* the writers beat once they run (lane_open starts them) */
        int rc = pthread_create(&l->reader, NULL, lane_reader_main, l);
        if (rc != 0) {
            errbuf_printf(err, errlen, "cannot start the %s lane: %s", l->name, strerror(rc));
            return -1;
        }
        l->reader_started = 1;
    }
    return 0;
}

void lanes_stop(lanes_t *ls)
{
    int64_t none = 0;
    /* The bound counts from the request, so a commit stuck on a dead database gives up in
     * time. */
    atomic_compare_exchange_strong(&ls->sh.stop_deadline_ms, &none,
                                   lanes_now_ms() + ls->sh.shutdown_timeout_ms);
    atomic_store(&ls->sh.stop, 1); /* each reader notices within one poll (at most 100 ms) */
}

int lanes_join(lanes_t *ls)
{
    int failed = 0;
    for (int k = 0; k < LANE_KINDS; k++) {
        lane_t *l = &ls->lanes[k];
        if (l->reader_started) {
            pthread_join(l->reader, NULL);
            l->reader_started = 0;
        }
        failed |= l->failed;
    }
    return failed ? -1 : 0;
}

void lanes_set_limits(lanes_t *ls, int batch_max, int batch_max_delay_ms, int batch_linger_ms,
                      int retry_max_ms)
{
    atomic_store(&ls->sh.batch_max, batch_max);
    atomic_store(&ls->sh.batch_max_delay_ms, batch_max_delay_ms);
    atomic_store(&ls->sh.batch_linger_ms, batch_linger_ms);
    atomic_store(&ls->sh.retry_max_ms, retry_max_ms);
}

int lanes_drained(const lanes_t *ls)
{
    for (int k = 0; k < LANE_KINDS; k++)
        if (ls->lanes[k].n_topics && !atomic_load(&ls->lanes[k].drained))
            return 0;
    return 1;
}

int64_t lanes_heartbeat_ms(const lanes_t *ls)
{
    int64_t oldest = INT64_MAX;
    for (int k = 0; k < LANE_KINDS; k++) {
        const lane_t *l = &ls->lanes[k];
        if (!l->n_topics)
            continue;
        int64_t r = atomic_load(&l->reader_beat_ms);
        oldest = r < oldest ? r : oldest;
        for (size_t i = 0; i < l->n_writers; i++) {
            int64_t w = atomic_load(&l->writers[i].beat_ms);
            if (w) /* 0: no writer thread (not started yet, or joined) */
                oldest = w < oldest ? w : oldest;
        }
    }
    return oldest == INT64_MAX ? lanes_now_ms() : oldest;
}

lane_t *lanes_lane(lanes_t *ls, lane_kind_t kind)
{
    return ls->lanes[kind].n_topics ? &ls->lanes[kind] : NULL;
}

size_t lanes_count(const lanes_t *ls)
{
    return ls->n_lanes;
}

static void lanes_lane_free(lane_t *l)
{
    for (size_t i = 0; l->pool && i < l->n_pool; i++)
        lane_batch_free(&l->pool[i]);
    free(l->pool);
    free(l->free_list);
    for (size_t w = 0; w < l->n_writers; w++)
        lane_queue_destroy(&l->writers[w].to_write);
    lane_queue_destroy(&l->done);
    lane_enrich_free(l);
    ingest_record_clear(&l->replay_rec);
    free(l->replay_features);
    free(l->empty_state);
    for (size_t t = 0; t < l->n_topics; t++) {
        lane_topic_t *tp = &l->topics[t];
        ingest_avro_free(tp->decoder);
        free(tp->name);
        for (size_t p = 0; p < tp->n_parts; p++) {
            features_state_free(tp->parts[p].state);
            free(tp->parts[p].replay_skip);
        }
        free(tp->parts);
    }
}

void lanes_free(lanes_t *ls)
{
    if (!ls)
        return;
    lanes_stop(ls);
    lanes_join(ls);
    for (int k = 0; k < LANE_KINDS; k++)
        lanes_lane_free(&ls->lanes[k]);
    featurize_free(ls->sh.fz);
    alert_rules_free(ls->sh.alert_rules);
    for (size_t i = 0; ls->sh.kafka_keys && i < ls->sh.n_kafka; i++) {
        free(ls->sh.kafka_keys[i]);
        free(ls->sh.kafka_values ? ls->sh.kafka_values[i] : NULL);
        free(ls->sh.kafka_origins ? ls->sh.kafka_origins[i] : NULL);
    }
    free(ls->sh.kafka_keys);
    free(ls->sh.kafka_values);
    free(ls->sh.kafka_origins);
    free(ls->sh.pg_conninfo);
    free(ls->sh.instance_id);
    free(ls->sh.dlq_topic);
    free(ls);
}
