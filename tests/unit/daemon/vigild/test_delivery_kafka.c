/* The alerts topic's records: what delivery_kafka_encode writes is read back by Avro C with
 * ingest/schemas/Alert.avsc, field by field (the Confluent header with the schema id, optional
 * fields present and absent, a negative and a large long); a record larger than the buffer is
 * refused; 5.avsc, the id the records name by default, is Alert.avsc. */
#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery_kafka.h"
#include "test.h"

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static const char *field_string(avro_value_t *rec, const char *name)
{
    avro_value_t v, branch;
    const char *s = NULL;
    size_t len;
    if (avro_value_get_by_name(rec, name, &v, NULL) != 0)
        return "(no field)";
    if (avro_value_get_type(&v) == AVRO_UNION) {
        if (avro_value_get_current_branch(&v, &branch) != 0)
            return "(no branch)";
        if (avro_value_get_type(&branch) == AVRO_NULL)
            return "(null)";
        v = branch;
    }
    return avro_value_get_string(&v, &s, &len) == 0 ? s : "(not a string)";
}

static int64_t field_long(avro_value_t *rec, const char *name)
{
    avro_value_t v;
    int64_t l = -1;
    int32_t i = -1;
    if (avro_value_get_by_name(rec, name, &v, NULL) != 0)
        return -1;
    if (avro_value_get_type(&v) == AVRO_INT32)
        return avro_value_get_int(&v, &i) == 0 ? i : -1;
    return avro_value_get_long(&v, &l) == 0 ? l : -1;
}

/* Decodes a record of len bytes (after its 5-byte header) with schema s, checking it against a. */
static void check_decoded(avro_schema_t s, const unsigned char *buf, size_t len, int explained)
{
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t rec;
    avro_generic_value_new(iface, &rec);
    avro_reader_t r = avro_reader_memory((const char *)buf + 5, (int64_t)(len - 5));
    CHECK_MSG(avro_value_read(r, &rec) == 0, "%s", avro_strerror());
    CHECK_STR(field_string(&rec, "alert_id"), "sentiment:topic:M&A | Investments:1796230080000");
    CHECK(field_long(&rec, "revision") == 3);
    CHECK_STR(field_string(&rec, "kind"), "sentiment");
    CHECK_STR(field_string(&rec, "entity"), "topic:M&A | Investments");
    CHECK_STR(field_string(&rec, "severity"), "high");
    CHECK_STR(field_string(&rec, "status"), "resolved");
    CHECK(field_long(&rec, "event_count") == 47);
    CHECK_STR(field_string(&rec, "first_event_id"), "n7-2400");
    CHECK(field_long(&rec, "first_event_time") == 1796230080123LL);
    CHECK_STR(field_string(&rec, "last_event_id"), "n7-2439");
    CHECK(field_long(&rec, "last_event_time") == -5);
    avro_value_t ms;
    double score = 0;
    CHECK(avro_value_get_by_name(&rec, "max_score", &ms, NULL) == 0 &&
          avro_value_get_double(&ms, &score) == 0 && score == 12.25);
    CHECK_STR(field_string(&rec, "explanation"), explained ? "{\"signal\": \"volume\"}" : "(null)");
    CHECK(field_long(&rec, "updated_time") == 1796230999999LL);
    CHECK_STR(field_string(&rec, "resolution"), explained ? "quiet" : "(null)");
    /* Nothing left over: the encoder wrote exactly the schema's fields. */
    char extra;
    CHECK(avro_read(r, &extra, 1) != 0);
    avro_reader_free(r);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
}

int main(void)
{
    const char *src = getenv("VIGIL_SOURCE_DIR");
    char path[1024], path5[1024];
    snprintf(path, sizeof path, "%s/ingest/schemas/Alert.avsc", src ? src : ".");
    snprintf(path5, sizeof path5, "%s/ingest/schemas/5.avsc", src ? src : ".");
    char *json = read_file(path), *json5 = read_file(path5);
    CHECK_MSG(json && json5, "cannot read %s or %s", path, path5);
    if (!json || !json5)
        return TEST_DONE();
    CHECK_MSG(strcmp(json, json5) == 0, "5.avsc is not Alert.avsc");
    avro_schema_t s;
    CHECK_MSG(avro_schema_from_json_length(json, strlen(json), &s) == 0, "%s", avro_strerror());

    sink_alert_t a = {0};
    a.alert_id = "sentiment:topic:M&A | Investments:1796230080000";
    a.revision = "3";
    a.kind = "sentiment";
    a.entity = "topic:M&A | Investments";
    a.severity = "high";
    a.status = "resolved";
    a.event_count = "47";
    a.first_event_id = "n7-2400";
    a.first_event_time = "1796230080123";
    a.last_event_id = "n7-2439";
    a.last_event_time = "-5";
    a.max_score = "12.25";
    a.explanation = "{\"signal\": \"volume\"}";
    a.updated_at = "1796230999999";
    a.resolution = "quiet";

    unsigned char buf[4096];
    size_t len = delivery_kafka_encode(&a, 5, buf, sizeof buf);
    CHECK(len > 5 && buf[0] == 0 && buf[1] == 0 && buf[2] == 0 && buf[3] == 0 && buf[4] == 5);
    check_decoded(s, buf, len, 1);
    a.explanation = NULL;
    a.resolution = NULL;
    len = delivery_kafka_encode(&a, 5, buf, sizeof buf);
    check_decoded(s, buf, len, 0);
    CHECK(delivery_kafka_encode(&a, 5, buf, 40) == 0); /* does not fit: refused whole */
    avro_schema_decref(s);
    free(json);
    free(json5);
    return TEST_DONE();
}
