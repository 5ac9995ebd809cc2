/* Internals of `vigil produce`, shared by produce_cmd.c (the run: Kafka, --output-dir, --output
 * files) and produce_cmd_args.c (the command line) only. */
#ifndef VIGIL_PRODUCE_CMD_INTERNAL_H
#define VIGIL_PRODUCE_CMD_INTERNAL_H

#include <stdint.h>

#include "ingest_avro.h"
#include "ingest_record.h"

/* The command line, parsed. */
typedef struct produce_opts {
    const char *brokers; /* NULL when -X supplies them */
    ingest_kind_t kind;
    const char *topic; /* NULL: the kind's default */
    uint64_t count;    /* 0: until interrupted */
    double rate;       /* events per second; 0: as fast as possible */
    double malformed;
    uint64_t seed;
    int users;
    ingest_format_t format;
    int32_t schema_id;
    const char *schema_path;
    const char *output_dir; /* write one file per message instead of producing */
    const char *output;     /* write events and labels to this event file instead */
    const char *headlines;  /* news: headlines from this file, one per line */
    const char *burst;      /* news: TICKER:FROM:COUNT, a negative-news burst */
    uint64_t span_s;        /* news: published in order over this many seconds; 0: not */
    int64_t start_ms;       /* --output, --sim-rate: event_time of event 0; --span: when the feed
                             * starts */
    int start_set;          /* --start-ms was given */
    const char *truth;      /* --output: also the fraud episodes' ground truth, to this CSV */
    int rate_set;           /* --rate was given */
    double sim_rate;        /* to Kafka: event i happens at start_ms + i * 1000 / sim_rate ms;
                             * 0: when it is sent (the wall clock) */
    const char **x_args;    /* owned array of argv pointers, "key=value" */
    int n_x;
} produce_opts_t;

/* The simulated clock of --output and --sim-rate: event i happens at start_ms + i * 1000 / rate
 * ms (rate > 0). */
static inline int64_t produce_sim_time_ms(int64_t start_ms, double rate, uint64_t i)
{
    return start_ms + (int64_t)((double)i * 1000.0 / rate);
}

/* Parses `vigil produce` options (argv[0] is the subcommand name) into o, which the caller has
 * zeroed and frees o->x_args of whatever this returns. Returns 0, 1 after --help, or 2 after
 * printing a usage error. */
int produce_cmd_parse_args(int argc, char **argv, produce_opts_t *o);

#endif
