/* `vigil produce`'s command line: the usage text, the options and the checks of what goes with
 * what, into a produce_opts_t for produce_cmd.c. Every usage error is printed here, and makes
 * the command exit 2. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_file.h"
#include "produce.h"
#include "produce_cmd_internal.h"

/* --output defaults: the first event at 2026-01-01T00:00:00Z, 1000 events a second. */
#define PRODUCE_FILE_START_MS INT64_C(1767225600000)
#define PRODUCE_FILE_RATE 1000.0

static void produce_usage(FILE *f)
{
    fprintf(
        f,
        "usage: vigil produce -b BROKERS [options]\n"
        "       vigil produce --output FILE [options]\n"
        "Sends synthetic records (Avro) to Kafka, or writes labelled events to a file\n"
        "(docs/synthetic-data.md); prints one summary line:\n"
        "  produced=N good=N malformed=N delivered=N failed=N [fraud=N]\n"
        "\n"
        "  -b, --brokers LIST       bootstrap servers (or VIGIL_KAFKA_BOOTSTRAP_SERVERS)\n"
        "  -k, --kind KIND          events | news | fraud-labels | news-labels (default\n"
        "                           events); label i is about event or article i of the seed\n"
        "  -t, --topic NAME         topic (default behavior-events, news-articles,\n"
        "                           fraud-labels or news-labels, by kind)\n"
        "  -n, --count N            messages to send, 0 = until interrupted (default 10000)\n"
        "  -r, --rate N             events per second, 0 = as fast as possible (default 0);\n"
        "                           with --output the simulated rate (default %g)\n"
        "      --malformed F        fraction 0..1 of undecodable messages (default 0)\n"
        "      --seed N             generator seed (default 1)\n"
        "      --users N            distinct users, 1..%d (default 10000)\n"
        "      --format FMT         confluent | plain (default confluent)\n"
        "      --schema-id N        Confluent schema id, 0..2147483647 (default 1, 2, 3 or 4:\n"
        "                           the ids of ingest/schemas/<id>.avsc, by kind)\n"
        "      --schema FILE        the kind's .avsc to encode with (BehaviorEvent.avsc, ...)\n"
        "  -X KEY=VALUE             librdkafka setting, repeatable (as kcat)\n"
        "      --headlines FILE     kind news: article i's headline is line i of FILE (cycled),\n"
        "                           with no body (known texts, for tests)\n"
        "      --burst T:FROM:N     kind news: articles FROM .. FROM+N-1 are bad news about\n"
        "                           ticker T, published when sent (the others up to an hour\n"
        "                           earlier): a negative-news burst for sentiment alerts\n"
        "      --span S             kind news, with --count: article i is published at\n"
        "                           start - S + i * S / count seconds, up to 30 s earlier (a\n"
        "                           feed in order; a burst at the time of its first article);\n"
        "                           with --start-ms the feed begins there instead of S before\n"
        "                           now (a timeline that falls into the same windows each run)\n"
        "      --output-dir DIR     write each message value to DIR/NNNNNNNN.avro instead of\n"
        "                           producing (for other producers, e.g. kcat -P FILE...)\n"
        "      --output FILE        write --count events and their fraud labels to FILE\n"
        "                           (.csv, .jsonl, .ndjson or .avro) instead of producing;\n"
        "                           events only, no --malformed; adds fraud=N to the summary;\n"
        "                           event i happens at --start-ms + i * 1000 / --rate ms\n"
        "      --sim-rate N         kind events, to Kafka: event i happens at --start-ms +\n"
        "                           i * 1000 / N ms, the simulated clock of --output, instead\n"
        "                           of when it is sent (the wall clock)\n"
        "      --start-ms N         with --output or --sim-rate: event_time of event 0, epoch\n"
        "                           ms (default %" PRId64 ", 2026-01-01T00:00:00Z)\n"
        "      --truth FILE         with --output: also write the ground truth of the fraud\n"
        "                           episodes to FILE, a CSV with one row per fraudulent event:\n"
        "                           event_id,pattern,episode (one number per episode)\n"
        "  -h, --help               this text\n"
        "Exit status: 0 all delivered, 1 failure or undelivered messages, 2 usage.\n",
        PRODUCE_FILE_RATE, PRODUCE_USERS_MAX, PRODUCE_FILE_START_MS);
}

/* Digits only: strtoull would accept "-1" as a huge number and " 5" with a space. */
static int produce_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int produce_parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int produce_x_has_key(const produce_opts_t *o, const char *key)
{
    size_t klen = strlen(key);
    for (int k = 0; k < o->n_x; k++)
        if (strncmp(o->x_args[k], key, klen) == 0 && o->x_args[k][klen] == '=')
            return 1;
    return 0;
}

enum {
    OPT_MALFORMED = 256,
    OPT_SEED,
    OPT_USERS,
    OPT_FORMAT,
    OPT_SCHEMA_ID,
    OPT_SCHEMA,
    OPT_OUTPUT_DIR,
    OPT_OUTPUT,
    OPT_START_MS,
    OPT_TRUTH,
    OPT_HEADLINES,
    OPT_BURST,
    OPT_SPAN,
    OPT_SIM_RATE
};

static const struct option produce_longopts[] = {
    {"brokers", required_argument, NULL, 'b'},
    {"kind", required_argument, NULL, 'k'},
    {"topic", required_argument, NULL, 't'},
    {"count", required_argument, NULL, 'n'},
    {"rate", required_argument, NULL, 'r'},
    {"malformed", required_argument, NULL, OPT_MALFORMED},
    {"seed", required_argument, NULL, OPT_SEED},
    {"users", required_argument, NULL, OPT_USERS},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"schema-id", required_argument, NULL, OPT_SCHEMA_ID},
    {"schema", required_argument, NULL, OPT_SCHEMA},
    {"output-dir", required_argument, NULL, OPT_OUTPUT_DIR},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"start-ms", required_argument, NULL, OPT_START_MS},
    {"truth", required_argument, NULL, OPT_TRUTH},
    {"headlines", required_argument, NULL, OPT_HEADLINES},
    {"burst", required_argument, NULL, OPT_BURST},
    {"span", required_argument, NULL, OPT_SPAN},
    {"sim-rate", required_argument, NULL, OPT_SIM_RATE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* What one option did. */
typedef enum produce_arg {
    PRODUCE_ARG_OK,
    PRODUCE_ARG_HELP,     /* printed the usage on stdout */
    PRODUCE_ARG_USAGE,    /* printed a usage error */
    PRODUCE_ARG_BAD_VALUE /* arg is not a value of the option: produce_bad_value says so */
} produce_arg_t;

/* Option c, as getopt_long returned it, with its argument arg, into o; *schema_id_set and
 * *start_set say whether --schema-id and --start-ms were given. */
static produce_arg_t produce_parse_opt(produce_opts_t *o, int c, char *arg, int *schema_id_set,
                                       int *start_set)
{
    uint64_t u;

    switch (c) {
    case 'k':
        if (ingest_kind_parse(arg, &o->kind) < 0)
            return PRODUCE_ARG_BAD_VALUE;
        break;
    case 'b':
        if (arg[0] == '\0')
            return PRODUCE_ARG_BAD_VALUE;
        o->brokers = arg;
        break;
    case 't':
        if (arg[0] == '\0' || strlen(arg) > 249)
            return PRODUCE_ARG_BAD_VALUE; /* Kafka's topic name limit */
        o->topic = arg;
        break;
    case 'n':
        if (produce_parse_u64(arg, &o->count) < 0)
            return PRODUCE_ARG_BAD_VALUE;
        break;
    case 'r':
        if (produce_parse_double(arg, 0.0, 1e9, &o->rate) < 0)
            return PRODUCE_ARG_BAD_VALUE;
        o->rate_set = 1;
        break;
    case OPT_MALFORMED:
        if (produce_parse_double(arg, 0.0, 1.0, &o->malformed) < 0)
            return PRODUCE_ARG_BAD_VALUE;
        break;
    case OPT_SEED:
        if (produce_parse_u64(arg, &o->seed) < 0)
            return PRODUCE_ARG_BAD_VALUE;
        break;
    case OPT_USERS:
        if (produce_parse_u64(arg, &u) < 0 || u < 1 || u > PRODUCE_USERS_MAX)
            return PRODUCE_ARG_BAD_VALUE;
        o->users = (int)u;
        break;
    case OPT_FORMAT:
        if (ingest_format_parse(arg, &o->format) < 0)
            return PRODUCE_ARG_BAD_VALUE;
        break;
    case OPT_SCHEMA_ID:
        if (produce_parse_u64(arg, &u) < 0 || u > INT32_MAX)
            return PRODUCE_ARG_BAD_VALUE;
        o->schema_id = (int32_t)u;
        *schema_id_set = 1;
        break;
    case OPT_SCHEMA:
        if (arg[0] == '\0')
            return PRODUCE_ARG_BAD_VALUE;
        o->schema_path = arg;
        break;
    case OPT_OUTPUT_DIR:
        if (arg[0] == '\0')
            return PRODUCE_ARG_BAD_VALUE;
        o->output_dir = arg;
        break;
    case OPT_HEADLINES:
        if (arg[0] == '\0')
            return PRODUCE_ARG_BAD_VALUE;
        o->headlines = arg;
        break;
    case OPT_BURST:
        if (arg[0] == '\0')
            return PRODUCE_ARG_BAD_VALUE;
        o->burst = arg; /* parsed with the generator (produce_cmd.c) */
        break;
    case OPT_SPAN:
        if (produce_parse_u64(arg, &u) < 0 || u == 0 || u > 366ULL * 86400)
            return PRODUCE_ARG_BAD_VALUE;
        o->span_s = u;
        break;
    case OPT_SIM_RATE:
        if (produce_parse_double(arg, 0.001, 1e9, &o->sim_rate) < 0)
            return PRODUCE_ARG_BAD_VALUE;
        break;
    case OPT_OUTPUT: {
        event_file_format_t fmt;
        if (event_file_format_from_name(arg, &fmt) < 0) {
            fprintf(stderr,
                    "vigil produce: --output %s: the name must end in .csv, .jsonl, .ndjson "
                    "or .avro\n",
                    arg);
            return PRODUCE_ARG_USAGE;
        }
        o->output = arg;
        break;
    }
    case OPT_START_MS:
        /* Digits only, so epoch milliseconds from 1970 on; INT64_MAX / 2 leaves room for
         * the events after it. */
        if (produce_parse_u64(arg, &u) < 0 || u > (uint64_t)INT64_MAX / 2)
            return PRODUCE_ARG_BAD_VALUE;
        o->start_ms = (int64_t)u;
        *start_set = 1;
        break;
    case OPT_TRUTH:
        if (arg[0] == '\0')
            return PRODUCE_ARG_BAD_VALUE;
        o->truth = arg;
        break;
    case 'X': {
        const char *eq = strchr(arg, '=');
        if (!eq || eq == arg || eq[1] == '\0')
            return PRODUCE_ARG_BAD_VALUE;
        o->x_args[o->n_x++] = arg;
        break;
    }
    case 'h':
        produce_usage(stdout);
        return PRODUCE_ARG_HELP;
    default: /* getopt already said what was wrong */
        produce_usage(stderr);
        return PRODUCE_ARG_USAGE;
    }
    return PRODUCE_ARG_OK;
}

/* Names the option as the user would know it; every option but -X has a long name. */
static void produce_bad_value(int c, const char *arg)
{
    for (int k = 0; produce_longopts[k].name; k++)
        if (produce_longopts[k].val == c) {
            fprintf(stderr, "vigil produce: invalid value '%s' for --%s; see --help\n", arg,
                    produce_longopts[k].name);
            return;
        }
    fprintf(stderr, "vigil produce: invalid value '%s' for -%c (want KEY=VALUE); see --help\n", arg,
            c);
}

/* Whether count events on the simulated clock at rate (given as option) keep their event times
 * in range. Returns 0 or 2 (usage error). */
static int produce_check_sim_clock(uint64_t count, double rate, const char *option)
{
    if ((double)count * 1000.0 / rate > 4e18) {
        fprintf(stderr,
                "vigil produce: --count %" PRIu64 " at %s %g puts event times past the year 100 "
                "million; see --help\n",
                count, option, rate);
        return 2;
    }
    return 0;
}

/* What --output needs and excludes, and its default rate. Returns 0 or 2 (usage error). */
static int produce_check_output(produce_opts_t *o)
{
    const char *why = o->kind != INGEST_KIND_EVENT ? "writes events only (no --kind)"
                      : o->output_dir              ? "and --output-dir exclude each other"
                      : o->malformed > 0           ? "writes no malformed events"
                      : o->count == 0              ? "needs --count N of at least 1"
                      : o->rate_set && o->rate == 0
                          ? "needs a --rate above 0 (it sets the events' spacing)"
                          : NULL;
    if (why) {
        fprintf(stderr, "vigil produce: --output %s; see --help\n", why);
        return 2;
    }
    if (!o->rate_set)
        o->rate = PRODUCE_FILE_RATE;
    return produce_check_sim_clock(o->count, o->rate, "--rate");
}

/* Defaults that depend on other options, then what goes with what. Returns 0 or 2. */
static int produce_check_args(int argc, char **argv, produce_opts_t *o, int schema_id_set,
                              int start_set)
{
    if (!o->topic) {
        static const char *const topics[INGEST_KIND_COUNT] = {"behavior-events", "news-articles",
                                                              "fraud-labels", "news-labels"};
        o->topic = topics[o->kind];
    }
    if (!schema_id_set)
        o->schema_id = (int32_t)o->kind + 1; /* ingest/schemas/1.avsc .. 4.avsc */
    if (optind < argc) {
        fprintf(stderr, "vigil produce: unexpected argument '%s'\n", argv[optind]);
        produce_usage(stderr);
        return 2;
    }
    if (!o->brokers) {
        const char *env = getenv("VIGIL_KAFKA_BOOTSTRAP_SERVERS");
        if (env && env[0] != '\0')
            o->brokers = env;
    }
    if (o->output && o->sim_rate > 0) {
        fprintf(stderr, "vigil produce: --sim-rate is for Kafka; with --output, --rate sets the "
                        "simulated clock; see --help\n");
        return 2;
    }
    if (o->output)
        return produce_check_output(o);
    o->start_set = start_set;
    if (o->sim_rate > 0 && o->kind != INGEST_KIND_EVENT) {
        fprintf(stderr, "vigil produce: --sim-rate goes with kind events; see --help\n");
        return 2;
    }
    if ((start_set && !o->span_s && o->sim_rate == 0) || o->truth) {
        fprintf(stderr, "vigil produce: %s goes with --output%s; see --help\n",
                o->truth ? "--truth" : "--start-ms", o->truth ? "" : ", --sim-rate or --span");
        return 2;
    }
    if (o->sim_rate > 0 && produce_check_sim_clock(o->count, o->sim_rate, "--sim-rate") != 0)
        return 2;
    if (!o->brokers && !o->output_dir && !produce_x_has_key(o, "bootstrap.servers") &&
        !produce_x_has_key(o, "test.mock.num.brokers")) {
        fprintf(stderr, "vigil produce: no brokers: pass -b HOST:PORT or set "
                        "VIGIL_KAFKA_BOOTSTRAP_SERVERS\n");
        return 2;
    }
    return 0;
}

int produce_cmd_parse_args(int argc, char **argv, produce_opts_t *o)
{
    int schema_id_set = 0, start_set = 0;
    int c;

    o->kind = INGEST_KIND_EVENT;
    o->topic = NULL;
    o->count = 10000;
    o->seed = 1;
    o->users = 10000;
    o->format = INGEST_FORMAT_CONFLUENT;
    o->start_ms = PRODUCE_FILE_START_MS;
    o->x_args = calloc((size_t)argc + 1, sizeof *o->x_args);
    if (!o->x_args) {
        fprintf(stderr, "vigil produce: out of memory parsing arguments\n");
        return 2;
    }

    /* 0 re-initialises getopt, so produce_main can run more than once in a process (tests). */
    optind = 0;
    while ((c = getopt_long(argc, argv, "b:k:t:n:r:X:h", produce_longopts, NULL)) != -1) {
        switch (produce_parse_opt(o, c, optarg, &schema_id_set, &start_set)) {
        case PRODUCE_ARG_OK:
            break;
        case PRODUCE_ARG_HELP:
            return 1;
        case PRODUCE_ARG_USAGE:
            return 2;
        case PRODUCE_ARG_BAD_VALUE:
            produce_bad_value(c, optarg);
            return 2;
        }
    }
    return produce_check_args(argc, argv, o, schema_id_set, start_set);
}
