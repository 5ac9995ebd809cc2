/* Decoded BehaviorEvents to the feature engine's input (see featurize.h). */
#include "featurize.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

#define FZ_FIELDS_MAX 512

struct featurize {
    features_spec_t *spec;
    size_t n_fields, n_extra;
    char hash[17];
    char *text;
};

static char *fz_read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *text = NULL;
    long size;

    if (!f) {
        errbuf_printf(err, errlen, "cannot open feature spec %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        size > (1 << 20)) {
        errbuf_printf(err, errlen, "cannot read feature spec %s (unreadable or over 1 MiB)", path);
    } else if (!(text = malloc((size_t)size + 1))) {
        errbuf_printf(err, errlen, "cannot read feature spec %s: out of memory", path);
    } else if (fread(text, 1, (size_t)size, f) != (size_t)size) {
        errbuf_printf(err, errlen, "cannot read feature spec %s: %s", path, strerror(errno));
        free(text);
        text = NULL;
    } else {
        text[size] = '\0';
    }
    fclose(f);
    return text;
}

/* The line of the first byte that is not well-formed UTF-8, or 0 when all are. Column names come
 * from the spec and PostgreSQL's text columns take only UTF-8. */
static int fz_utf8_bad_line(const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    int line = 1;
    while (*p) {
        int n = *p < 0x80             ? 0
                : (*p & 0xe0) == 0xc0 ? 1
                : (*p & 0xf0) == 0xe0 ? 2
                : (*p & 0xf8) == 0xf0 ? 3
                                      : -1;
        if (n < 0 || (n == 1 && *p < 0xc2) || (n == 3 && *p > 0xf4))
            return line;
        if (*p == '\n')
            line++;
        for (int i = 1; i <= n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return line;
        p += n + 1;
    }
    return 0;
}

featurize_t *featurize_new(const ingest_avro_t *dec, const char *spec_path, char *err,
                           size_t errlen)
{
    features_field_t fields[FZ_FIELDS_MAX];
    featurize_t *fz = calloc(1, sizeof(*fz));
    size_t n_extra = ingest_avro_extra_count(dec);

    if (!fz) {
        errbuf_printf(err, errlen, "feature spec: out of memory");
        return NULL;
    }
    if (FEATURES_BF_COUNT + n_extra > FZ_FIELDS_MAX) {
        errbuf_printf(err, errlen,
                      "the BehaviorEvent reader schema has %zu extra fields; at most %d", n_extra,
                      FZ_FIELDS_MAX - FEATURES_BF_COUNT);
        goto err;
    }
    memcpy(fields, features_behavior_fields, sizeof(features_behavior_fields));
    for (size_t i = 0; i < n_extra; i++)
        fields[FEATURES_BF_COUNT + i] = (features_field_t){
            ingest_avro_extra_name(dec, i), ingest_avro_extra_type(dec, i) == INGEST_EXTRA_NUMBER
                                                ? FEATURES_FIELD_NUMBER
                                                : FEATURES_FIELD_STRING};
    fz->n_extra = n_extra;
    fz->n_fields = FEATURES_BF_COUNT + n_extra;
    fz->text = spec_path && spec_path[0] ? fz_read_file(spec_path, err, errlen)
                                         : strdup(features_default_spec);
    if (!fz->text) {
        if (!spec_path || !spec_path[0])
            errbuf_printf(err, errlen, "feature spec: out of memory");
        goto err;
    }
    int bad = fz_utf8_bad_line(fz->text);
    if (bad) {
        errbuf_printf(err, errlen, "%s:%d: not valid UTF-8", spec_path, bad);
        goto err;
    }
    fz->spec = features_spec_new(fz->text, spec_path && spec_path[0] ? spec_path : "built-in spec",
                                 fields, fz->n_fields, err, errlen);
    if (!fz->spec)
        goto err;
    snprintf(fz->hash, sizeof fz->hash, "%016" PRIx64, features_spec_hash(fz->spec));
    return fz;
err:
    featurize_free(fz);
    return NULL;
}

void featurize_free(featurize_t *fz)
{
    if (!fz)
        return;
    features_spec_free(fz->spec);
    free(fz->text);
    free(fz);
}

const features_spec_t *featurize_spec(const featurize_t *fz)
{
    return fz->spec;
}

const char *featurize_spec_hash(const featurize_t *fz)
{
    return fz->hash;
}

const char *featurize_spec_text(const featurize_t *fz)
{
    return fz->text;
}

size_t featurize_fields(const featurize_t *fz)
{
    return fz->n_fields;
}

void featurize_view(const featurize_t *fz, const ingest_event_t *ev, double *num, const char **str,
                    features_event_t *out)
{
    for (size_t i = 0; i < FEATURES_BF_COUNT; i++) {
        num[i] = NAN;
        str[i] = NULL;
    }
    str[FEATURES_BF_EVENT_ID] = ev->event_id;
    str[FEATURES_BF_EVENT_TYPE] = ev->event_type;
    str[FEATURES_BF_USER_ID] = ev->user_id;
    str[FEATURES_BF_ACCOUNT_ID] = ev->account_id;
    str[FEATURES_BF_DEVICE_ID] = ev->device_id;
    str[FEATURES_BF_IP] = ev->ip;
    num[FEATURES_BF_AMOUNT] = ev->has_amount ? ev->amount : NAN;
    str[FEATURES_BF_CURRENCY] = ev->currency;
    str[FEATURES_BF_MERCHANT_ID] = ev->merchant_id;
    str[FEATURES_BF_MERCHANT_CATEGORY] = ev->merchant_category;
    str[FEATURES_BF_COUNTRY] = ev->country;
    num[FEATURES_BF_LATITUDE] = ev->has_geo ? ev->latitude : NAN;
    num[FEATURES_BF_LONGITUDE] = ev->has_geo ? ev->longitude : NAN;
    str[FEATURES_BF_CHANNEL] = ev->channel;
    /* The decoder fills the extras of every event its schema has them for; be safe anyway. */
    for (size_t i = 0; i < fz->n_extra; i++) {
        int have = i < ev->n_extra;
        num[FEATURES_BF_COUNT + i] = have && ev->extra_num ? ev->extra_num[i] : NAN;
        str[FEATURES_BF_COUNT + i] = have && ev->extra_str ? ev->extra_str[i] : NULL;
    }
    *out = (features_event_t){ev->event_time_ms, num, str};
}

int featurize_event(const featurize_t *fz, features_state_t *st, const ingest_event_t *ev,
                    float *out)
{
    double num[FZ_FIELDS_MAX];
    const char *str[FZ_FIELDS_MAX];
    features_event_t fe;

    featurize_view(fz, ev, num, str, &fe);
    return features_compute(fz->spec, st, &fe, out);
}
