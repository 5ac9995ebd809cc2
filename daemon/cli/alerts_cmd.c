/* `vigil alerts list|show|ack|resolve` (see alerts_cmd.h).
 *
 * list prints one alert per line, tab-separated: alert_id, kind, severity, status, entity,
 * events, max_score, first_event_time, last_event_time. show prints one alert as `key: value`
 * lines, its explanation as PostgreSQL stored it (JSON). ack and resolve change an alert through
 * vigil.alert_set_status, which NOTIFYs listeners in the same transaction; resolve --as fraud or
 * --as legit also labels the alert's events for online learning (label_source analyst). */
#include "alerts_cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_db.h"
#include "config.h"
#include "sink_pg.h"

typedef struct alerts_options {
    const char *config_path;
    const char **flags;
    size_t n_flags;
    const char *status, *kind, *as, *by;
    long limit;
} alerts_options_t;

static void alerts_usage(FILE *out)
{
    fprintf(
        out,
        "usage: vigil alerts list [--status open|acknowledged|resolved] [--kind fraud|sentiment]\n"
        "                         [--limit N] [config options]\n"
        "       vigil alerts show ID [config options]\n"
        "       vigil alerts ack ID [--by NAME] [config options]\n"
        "       vigil alerts resolve ID [--as fraud|legit] [--by NAME] [config options]\n"
        "  --as     the analyst's verdict: labels the alert's events (vigil.labels)\n"
        "  --by     who acts (default: the login name)\n"
        "  config options  --config FILE, --set KEY=VALUE (as for vigild): the database\n");
}

static const char *alerts_or_dash(const char *s)
{
    return s ? s : "-";
}

static void alerts_print_line(const sink_alert_t *a)
{
    printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a->alert_id, a->kind, a->severity, a->status,
           a->entity, a->event_count, a->max_score, a->first_event_time, a->last_event_time);
}

static void alerts_print_full(const sink_alert_t *a)
{
    const struct {
        const char *key, *value;
    } f[] = {
        {"alert_id", a->alert_id},
        {"kind", a->kind},
        {"entity", a->entity},
        {"severity", a->severity},
        {"status", a->status},
        {"revision", a->revision},
        {"events", a->event_count},
        {"first_event", a->first_event_id},
        {"first_event_time", a->first_event_time},
        {"last_event", a->last_event_id},
        {"last_event_time", a->last_event_time},
        {"max_score", a->max_score},
        {"event_ids", a->event_ids},
        {"model_version", a->model_version},
        {"raised_at", a->raised_at},
        {"updated_at", a->updated_at},
        {"acknowledged_at", a->acknowledged_at},
        {"acknowledged_by", a->acknowledged_by},
        {"resolved_at", a->resolved_at},
        {"resolved_by", a->resolved_by},
        {"resolution", a->resolution},
        {"explanation", a->explanation},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        printf("%s: %s\n", f[i].key, alerts_or_dash(f[i].value));
}

/* Runs cmd ("list", "show", "ack", "resolve") with id (NULL for list). */
static int alerts_run(sink_pg_t *pg, const char *cmd, const char *id, const alerts_options_t *o)
{
    char err[1024];
    sink_alert_t *a = NULL;
    size_t n = 0;
    int rc;

    if (strcmp(cmd, "list") == 0 || strcmp(cmd, "show") == 0) {
        int show = cmd[0] == 's';
        rc = sink_pg_alerts_list(pg, show ? NULL : o->status, show ? NULL : o->kind, id,
                                 show ? 1 : (int)(o->limit > 0 ? o->limit : 100), &a, &n, err,
                                 sizeof err);
        if (rc != SINK_PG_OK) {
            fprintf(stderr, "vigil alerts %s: %s\n", cmd, err);
            return 1;
        }
        if (show && n == 0)
            fprintf(stderr, "vigil alerts show: no alert %s\n", id);
        for (size_t i = 0; i < n; i++)
            show ? alerts_print_full(&a[i]) : alerts_print_line(&a[i]);
        sink_pg_alerts_free(a, n);
        return show && n == 0 ? 1 : 0;
    }
    const char *status = strcmp(cmd, "ack") == 0 ? "acknowledged" : "resolved";
    const char *how = status[0] == 'r' ? (o->as ? o->as : "manual") : NULL;
    rc = sink_pg_alert_set_status(pg, id, status, o->by, how, &a, err, sizeof err);
    if (rc != SINK_PG_OK) {
        fprintf(stderr, "vigil alerts %s: %s\n", cmd, err);
        return 1;
    }
    printf("%s %s (revision %s)%s%s\n", a->alert_id, a->status, a->revision, how ? ": " : "",
           how ? how : "");
    sink_pg_alerts_free(a, 1);
    return 0;
}

/* Checks an option's value against the words it may be. */
static int alerts_word(const char *opt, const char *v, const char *const *words)
{
    for (size_t i = 0; words[i]; i++)
        if (strcmp(v, words[i]) == 0)
            return 0;
    fprintf(stderr, "vigil alerts: --%s %s is not one of:", opt, v);
    for (size_t i = 0; words[i]; i++)
        fprintf(stderr, " %s", words[i]);
    fprintf(stderr, "\n");
    return -1;
}

int alerts_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"status", required_argument, NULL, 'S'},
        {"kind", required_argument, NULL, 'k'},
        {"limit", required_argument, NULL, 'l'},
        {"as", required_argument, NULL, 'a'},
        {"by", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const statuses[] = {"open", "acknowledged", "resolved", NULL};
    static const char *const kinds[] = {"fraud", "sentiment", NULL};
    static const char *const verdicts[] = {"fraud", "legit", NULL};
    alerts_options_t o = {.config_path = getenv("VIGIL_CONFIG")};
    daemon_config_t cfg;
    char *end;
    const char *cmd, *id = NULL;
    int opt, rc = 2;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        alerts_usage(argc >= 2 ? stdout : stderr);
        return argc >= 2 ? 0 : 2;
    }
    cmd = argv[1];
    int needs_id = strcmp(cmd, "list") != 0;
    if (needs_id && strcmp(cmd, "show") != 0 && strcmp(cmd, "ack") != 0 &&
        strcmp(cmd, "resolve") != 0) {
        fprintf(stderr, "vigil alerts: unknown command '%s'\n", cmd);
        alerts_usage(stderr);
        return 2;
    }
    o.flags = calloc((size_t)argc + 1, sizeof(char *));
    if (!o.flags) {
        fprintf(stderr, "vigil alerts: out of memory\n");
        return 1;
    }
    while ((opt = getopt_long(argc - 1, argv + 1, "c:s:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            o.config_path = optarg;
            break;
        case 's':
            o.flags[o.n_flags++] = optarg;
            break;
        case 'S':
            if (alerts_word("status", optarg, statuses) != 0)
                goto out_flags;
            o.status = optarg;
            break;
        case 'k':
            if (alerts_word("kind", optarg, kinds) != 0)
                goto out_flags;
            o.kind = optarg;
            break;
        case 'a':
            if (alerts_word("as", optarg, verdicts) != 0)
                goto out_flags;
            o.as = optarg;
            break;
        case 'b':
            o.by = optarg;
            break;
        case 'l':
            o.limit = strtol(optarg, &end, 10);
            if (*end || o.limit < 1 || o.limit > 1000000) {
                fprintf(stderr, "vigil alerts: --limit must be an integer from 1 to 1000000\n");
                goto out_flags;
            }
            break;
        case 'h':
            alerts_usage(stdout);
            rc = 0;
            goto out_flags;
        default:
            alerts_usage(stderr);
            goto out_flags;
        }
    }
    /* getopt ran over argv + 1: its optind counts from the command word. */
    if (needs_id && optind + 1 < argc)
        id = argv[1 + optind++];
    if ((needs_id && !id) || optind + 1 < argc) {
        fprintf(stderr,
                needs_id && !id ? "vigil alerts %s: which alert? (an alert_id)\n"
                                : "vigil alerts %s: unexpected argument\n",
                cmd);
        goto out_flags;
    }
    if (!o.by)
        o.by = getlogin();
    if (!o.by)
        o.by = getenv("USER") ? getenv("USER") : "vigil";
    sink_pg_t *pg = cli_db_open("alerts", o.config_path, o.flags, o.n_flags, &cfg, &rc);
    if (pg) {
        rc = alerts_run(pg, cmd, id, &o);
        sink_pg_free(pg);
        daemon_config_free(&cfg);
    }
out_flags:
    free(o.flags);
    return rc;
}
