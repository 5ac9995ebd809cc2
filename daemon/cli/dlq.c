/* `vigil dlq list` and `vigil dlq replay` (see dlq.h).
 *
 * list prints the stored dead letters, one per line, tab-separated: id, topic, partition,
 * offset, created_at, reason.
 *
 * replay decodes each selected dead letter's raw bytes again with the decoder the configuration
 * describes now (a schema file added, a reader schema fixed): what decodes replaces its dead
 * letter in one transaction (dead letter deleted, row inserted at the same topic, partition and
 * offset), so the partition still holds each offset exactly once and a second replay, or two
 * running at once, write nothing twice. What still fails stays, and its current reason is
 * printed. With --dry-run nothing is written. */
#include "dlq.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_db.h"
#include "config.h"
#include "decoder.h"
#include "ingest_avro.h"
#include "rows.h"
#include "sink_pg.h"

#define DLQ_PAGE 500

typedef struct dlq_options {
    const char *config_path;
    const char **flags;
    size_t n_flags;
    const char *topic;
    const char *reason_like;
    long limit;
    int dry_run;
} dlq_options_t;

static void dlq_usage(FILE *out)
{
    fprintf(
        out,
        "usage: vigil dlq list   [--topic T] [--reason PATTERN] [--limit N] [config options]\n"
        "       vigil dlq replay [--topic T] [--reason PATTERN] [--limit N] [--dry-run]\n"
        "                        [config options]\n"
        "  --reason PATTERN  an SQL LIKE pattern on the reason, e.g. 'unknown schema id%%'\n"
        "  --limit N         at most N dead letters (list: default 100; replay: all)\n"
        "  config options    --config FILE, --set KEY=VALUE (as for vigild): the database,\n"
        "                    and for replay the decoder (ingest.format, ingest.schema_dir, ...)\n");
}

static int dlq_list(sink_pg_t *pg, const dlq_options_t *o)
{
    char err[1024];
    int64_t after = 0;
    long shown = 0, limit = o->limit > 0 ? o->limit : 100;

    while (shown < limit) {
        sink_dead_entry_t *e;
        size_t n;
        int page = limit - shown < DLQ_PAGE ? (int)(limit - shown) : DLQ_PAGE;
        if (sink_pg_dead_letters_list(pg, o->topic, o->reason_like, after, page, &e, &n, err,
                                      sizeof err) != SINK_PG_OK) {
            fprintf(stderr, "vigil dlq list: %s\n", err);
            return 1;
        }
        for (size_t i = 0; i < n; i++)
            printf("%lld\t%s\t%d\t%lld\t%s\t%s\n", (long long)e[i].id, e[i].topic,
                   (int)e[i].partition, (long long)e[i].offset, e[i].created_at, e[i].reason);
        if (n > 0)
            after = e[n - 1].id;
        shown += (long)n;
        sink_pg_dead_entries_free(e, n);
        if ((int)n < page)
            break;
    }
    return 0;
}

static int dlq_replay(sink_pg_t *pg, const daemon_config_t *cfg, const dlq_options_t *o)
{
    char err[1024], reason[512];
    ingest_avro_t *decs[INGEST_KIND_COUNT] = {0}; /* made on first use, per record kind */
    ingest_record_t rec = {0};
    rows_batch_t rows = {0};
    long replayed = 0, still_bad = 0, gone = 0, skipped = 0, seen = 0;
    int64_t after = 0;
    int rc = 1;

    if (rows_batch_reserve(&rows, 1) != 0) {
        fprintf(stderr, "vigil dlq replay: out of memory\n");
        return 1;
    }
    for (;;) {
        sink_dead_entry_t *e;
        size_t n;
        if (o->limit > 0 && seen >= o->limit)
            break;
        if (sink_pg_dead_letters_list(pg, o->topic, o->reason_like, after, DLQ_PAGE, &e, &n, err,
                                      sizeof err) != SINK_PG_OK) {
            fprintf(stderr, "vigil dlq replay: %s\n", err);
            goto out;
        }
        for (size_t i = 0; i < n && (o->limit <= 0 || seen < o->limit); i++, seen++) {
            /* The topic says which record kind the payload is. */
            int kind = daemon_input_kind(cfg, e[i].topic);
            if (kind < 0) {
                skipped++;
                printf("skipped\t%lld\ttopic %s is not an input of this configuration\n",
                       (long long)e[i].id, e[i].topic);
                continue;
            }
            if (!decs[kind] &&
                !(decs[kind] = daemon_decoder_new(cfg, (ingest_kind_t)kind, err, sizeof err))) {
                fprintf(stderr, "vigil dlq replay: %s\n", err);
                sink_pg_dead_entries_free(e, n);
                goto out;
            }
            /* An empty payload is refused by the decoder like any other bad message. */
            int dr = ingest_avro_decode(decs[kind], e[i].payload, e[i].payload_len, &rec, reason,
                                        sizeof reason);
            if (dr == INGEST_AVRO_ERR || dr == INGEST_AVRO_RETRY) {
                fprintf(stderr, "vigil dlq replay: cannot decode id %lld now: %s\n",
                        (long long)e[i].id, reason);
                sink_pg_dead_entries_free(e, n);
                goto out;
            }
            if (dr != INGEST_AVRO_OK) {
                still_bad++;
                printf("still bad\t%lld\t%s\n", (long long)e[i].id, reason);
                continue;
            }
            if (o->dry_run) {
                replayed++;
                printf("would replay\t%lld\t%s\t%d\t%lld\n", (long long)e[i].id, e[i].topic,
                       (int)e[i].partition, (long long)e[i].offset);
                continue;
            }
            rows_batch_reset(&rows);
            rows_batch_add(&rows, &rec, e[i].topic, e[i].partition, e[i].offset,
                           e[i].kafka_timestamp_ms);
            int wr = sink_pg_dead_letter_replace(pg, e[i].id, &rows.view, err, sizeof err);
            if (wr == SINK_PG_OK) {
                replayed++;
                printf("replayed\t%lld\t%s\t%d\t%lld\n", (long long)e[i].id, e[i].topic,
                       (int)e[i].partition, (long long)e[i].offset);
            } else if (wr == SINK_PG_FENCED) {
                gone++;
            } else if (wr == SINK_PG_REJECTED) {
                still_bad++;
                printf("still bad\t%lld\t%s\n", (long long)e[i].id, err);
            } else {
                fprintf(stderr, "vigil dlq replay: %s\n", err);
                sink_pg_dead_entries_free(e, n);
                goto out;
            }
        }
        if (n > 0)
            after = e[n - 1].id;
        sink_pg_dead_entries_free(e, n);
        if (n < DLQ_PAGE)
            break;
    }
    fprintf(stderr, "%s=%ld still_bad=%ld already_replayed=%ld skipped=%ld\n",
            o->dry_run ? "would_replay" : "replayed", replayed, still_bad, gone, skipped);
    rc = 0;
out:
    ingest_record_clear(&rec);
    rows_batch_free(&rows);
    for (int k = 0; k < INGEST_KIND_COUNT; k++)
        ingest_avro_free(decs[k]);
    return rc;
}

int dlq_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"set", required_argument, NULL, 's'},
        {"topic", required_argument, NULL, 't'},  {"reason", required_argument, NULL, 'r'},
        {"limit", required_argument, NULL, 'l'},  {"dry-run", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    dlq_options_t o = {.config_path = getenv("VIGIL_CONFIG")};
    daemon_config_t cfg;
    const char *cmd;
    char *end;
    sink_pg_t *pg = NULL;
    int opt, rc = 2;

    if (argc < 2 || (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "replay") != 0)) {
        dlq_usage(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
        return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    cmd = argv[1];
    o.flags = calloc((size_t)argc + 1, sizeof(char *));
    if (!o.flags) {
        fprintf(stderr, "vigil dlq: out of memory\n");
        return 1;
    }
    while ((opt = getopt_long(argc - 1, argv + 1, "c:s:t:r:l:nh", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            o.config_path = optarg;
            break;
        case 's':
            o.flags[o.n_flags++] = optarg;
            break;
        case 't':
            o.topic = optarg;
            break;
        case 'r':
            o.reason_like = optarg;
            break;
        case 'l':
            o.limit = strtol(optarg, &end, 10);
            if (*end || o.limit < 1) {
                fprintf(stderr, "vigil dlq: --limit must be a positive integer\n");
                goto out_flags;
            }
            break;
        case 'n':
            o.dry_run = 1;
            break;
        case 'h':
            dlq_usage(stdout);
            rc = 0;
            goto out_flags;
        default:
            dlq_usage(stderr);
            goto out_flags;
        }
    }
    if ((pg = cli_db_open("dlq", o.config_path, o.flags, o.n_flags, &cfg, &rc)) != NULL) {
        rc = strcmp(cmd, "list") == 0 ? dlq_list(pg, &o) : dlq_replay(pg, &cfg, &o);
        sink_pg_free(pg);
        daemon_config_free(&cfg);
    }
out_flags:
    free(o.flags);
    return rc;
}
