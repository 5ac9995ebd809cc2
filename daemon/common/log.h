/* Logging: one line per event, key=value, to stderr, readable by journald and grep.
 *
 *   ts=2026-11-23T12:00:00.123Z level=info msg="partitions assigned" topic=behavior count=4
 *
 * Thread-safe: each line is written with a single write(2). The level can be changed at run time
 * (SIGHUP reload). */
#ifndef VIGIL_LOG_H
#define VIGIL_LOG_H

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 } log_level_t;

void log_set_level(log_level_t level);
log_level_t log_get_level(void);
/* "debug" | "info" | "warn" | "error" -> 0, or -1 on anything else. */
int log_level_parse(const char *s, log_level_t *out);
const char *log_level_name(log_level_t level);

/* msg is quoted as msg="..."; kv_fmt (may be NULL) is printf-style, already key=value pairs.
 * Values with spaces should be quoted by the caller with %s inside "..."; log_quote helps. */
void log_write(log_level_t level, const char *msg, const char *kv_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies s into out (outlen bytes) with '"' and '\\' escaped and control characters replaced,
 * so it can be embedded in key="%s". Returns out. */
const char *log_quote(const char *s, char *out, unsigned long outlen);

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
