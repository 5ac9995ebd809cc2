/* Logging: formats one key=value line per event and hands it to stderr in a single write(2), so
 * lines from different threads never interleave and journald sees one record per line. Lines are
 * capped at LOG_LINE_MAX bytes (the pipe atomicity limit) and cut with "..." rather than
 * allocating, so logging still works when memory is short. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* PIPE_BUF on Linux: a write of at most this many bytes to a pipe is atomic. */
#define LOG_LINE_MAX 4096

static _Atomic int log_level = LOG_INFO;

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level_t level)
{
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

log_level_t log_get_level(void)
{
    return (log_level_t)atomic_load_explicit(&log_level, memory_order_relaxed);
}

int log_level_parse(const char *s, log_level_t *out)
{
    if (!s)
        return -1;
    for (int i = LOG_DEBUG; i <= LOG_ERROR; i++) {
        if (strcmp(s, log_level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(log_level_t level)
{
    if ((int)level < LOG_DEBUG || (int)level > LOG_ERROR)
        return "unknown";
    return log_level_names[level];
}

const char *log_quote(const char *s, char *out, unsigned long outlen)
{
    size_t o = 0;

    if (outlen == 0)
        return out;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        int escape = (*p == '"' || *p == '\\');
        size_t need = escape ? 2 : 1;

        /* Stop before an escape would be split, so the result is always well-formed. */
        if (o + need > outlen - 1)
            break;
        if (escape)
            out[o++] = '\\';
        out[o++] = (*p < 0x20 || *p == 0x7f) ? '?' : (char)*p;
    }
    out[o] = '\0';
    return out;
}

/* Appends printf output at line[*pos]; returns -1 when it did not fit (the text is then cut). */
static int log_append(char *line, size_t *pos, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int log_append(char *line, size_t *pos, size_t cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*pos >= cap)
        return -1;
    va_start(ap, fmt);
    n = vsnprintf(line + *pos, cap - *pos, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n >= cap - *pos) {
        *pos = cap - 1; /* vsnprintf wrote cap - pos - 1 bytes and a NUL */
        return -1;
    }
    *pos += (size_t)n;
    return 0;
}

/* Writes the whole line; a short write only happens on a full disk or a non-pipe fd, where
 * finishing it beats losing the tail. */
static void log_write_fd(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a failing stderr */
        }
        buf += n;
        len -= (size_t)n;
    }
}

void log_write(log_level_t level, const char *msg, const char *kv_fmt, ...)
{
    char line[LOG_LINE_MAX];
    char quoted[LOG_LINE_MAX];
    size_t cap = sizeof(line) - 1; /* one byte kept for the '\n' */
    size_t pos = 0;
    int cut = 0;
    struct timespec now;
    struct tm tm;
    int saved_errno = errno; /* callers often log right before reporting errno */

    if ((int)level < (int)log_get_level())
        return;

    if (clock_gettime(CLOCK_REALTIME, &now) != 0 || !gmtime_r(&now.tv_sec, &tm)) {
        memset(&tm, 0, sizeof(tm));
        now.tv_nsec = 0;
    }
    if (log_append(line, &pos, cap, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"%s\"",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   now.tv_nsec / 1000000L, log_level_name(level),
                   log_quote(msg, quoted, sizeof(quoted))) != 0)
        cut = 1;
    if (!cut && kv_fmt && kv_fmt[0] != '\0') {
        va_list ap;
        int n = -1;

        /* Formatted one byte further on, so the separating space is added only when the fields
         * are not empty. */
        if (pos + 1 < cap) {
            va_start(ap, kv_fmt);
            n = vsnprintf(line + pos + 1, cap - pos - 1, kv_fmt, ap);
            va_end(ap);
        }
        if (n < 0) {
            cut = 1;
        } else if (n > 0) {
            line[pos] = ' ';
            if ((size_t)n >= cap - pos - 1) {
                pos = cap - 1;
                cut = 1;
            } else {
                pos += 1 + (size_t)n;
            }
        }
    }
    if (cut) {
        /* The reader must see that the line was cut, not mistake it for the whole event. */
        if (pos > cap - 3)
            pos = cap - 3;
        memcpy(line + pos, "...", 3);
        pos += 3;
    }
    line[pos++] = '\n';
    log_write_fd(STDERR_FILENO, line, pos);
    errno = saved_errno;
}
