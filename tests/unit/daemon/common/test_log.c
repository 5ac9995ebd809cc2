/* Tests daemon/common/log.c: the line format, level filtering, quoting, truncation at 4 KiB, and
 * that lines from concurrent threads stay whole. stderr is redirected to a temp file to read them
 * back.
 */
#include "log.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char capture_path[] = "/tmp/vigil-test-log-XXXXXX";
static int saved_stderr = -1;

/* Points fd 2 at an empty temp file (O_APPEND, as journald's and shells' redirections are). */
static void capture_start(void)
{
    int fd = open(capture_path, O_WRONLY | O_TRUNC | O_APPEND);
    CHECK(fd >= 0);
    saved_stderr = dup(STDERR_FILENO);
    CHECK(saved_stderr >= 0);
    CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    close(fd);
}

/* Restores stderr and returns what was logged since capture_start (malloc'd). */
static char *capture_end(void)
{
    struct stat st;
    char *buf;
    int fd;
    ssize_t n;

    CHECK(dup2(saved_stderr, STDERR_FILENO) == STDERR_FILENO);
    close(saved_stderr);
    fd = open(capture_path, O_RDONLY);
    CHECK(fd >= 0);
    CHECK(fstat(fd, &st) == 0);
    buf = calloc(1, (size_t)st.st_size + 1);
    CHECK(buf != NULL);
    n = read(fd, buf, (size_t)st.st_size);
    CHECK(n == st.st_size);
    close(fd);
    return buf;
}

static int matches(const char *pattern, const char *s)
{
    regex_t re;
    int ok;

    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return 0;
    ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

static void test_levels(void)
{
    log_level_t l = LOG_ERROR;

    CHECK(log_get_level() == LOG_INFO); /* the default before any configuration */
    CHECK(log_level_parse("debug", &l) == 0 && l == LOG_DEBUG);
    CHECK(log_level_parse("warn", &l) == 0 && l == LOG_WARN);
    CHECK(log_level_parse("error", &l) == 0 && l == LOG_ERROR);
    CHECK(log_level_parse("info", &l) == 0 && l == LOG_INFO);
    CHECK(log_level_parse("loud", &l) == -1);
    CHECK(log_level_parse("INFO", &l) == -1);
    CHECK(log_level_parse(NULL, &l) == -1);
    CHECK_STR(log_level_name(LOG_WARN), "warn");
    CHECK_STR(log_level_name((log_level_t)42), "unknown");
}

static void test_format(void)
{
    char *out;
    time_t before = time(NULL), after;
    struct tm tm = {0};

    capture_start();
    log_info("partitions assigned", "topic=%s count=%d", "behavior", 4);
    after = time(NULL);
    out = capture_end();
    CHECK(matches("^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                  "level=info msg=\"partitions assigned\" topic=behavior count=4\n$",
                  out));
    /* The timestamp is now, in UTC. */
    CHECK(sscanf(out, "ts=%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                 &tm.tm_hour, &tm.tm_min, &tm.tm_sec) == 6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    CHECK(timegm(&tm) >= before - 1 && timegm(&tm) <= after + 1);
    free(out);

    capture_start();
    log_warn("no fields", NULL);
    log_error("empty fields", "%s", "");
    out = capture_end();
    CHECK(matches("^ts=[^ ]+ level=warn msg=\"no fields\"\nts=[^ ]+ level=error "
                  "msg=\"empty fields\"\n$",
                  out));
    free(out);
}

static void test_filtering(void)
{
    char *out;

    capture_start();
    log_set_level(LOG_INFO);
    log_debug("hidden debug", NULL);
    log_info("shown info", NULL);
    log_set_level(LOG_ERROR);
    log_info("hidden info", NULL);
    log_warn("hidden warn", NULL);
    log_error("shown error", NULL);
    log_set_level(LOG_DEBUG);
    log_debug("shown debug", NULL);
    out = capture_end();
    CHECK(strstr(out, "hidden") == NULL);
    CHECK(matches("^ts=[^ ]+ level=info msg=\"shown info\"\n"
                  "ts=[^ ]+ level=error msg=\"shown error\"\n"
                  "ts=[^ ]+ level=debug msg=\"shown debug\"\n$",
                  out));
    CHECK(log_get_level() == LOG_DEBUG);
    log_set_level(LOG_INFO);
    free(out);
}

static void test_quoting(void)
{
    char q[64];
    char *out;

    CHECK_STR(log_quote("plain text", q, sizeof(q)), "plain text");
    CHECK_STR(log_quote("a\"b\\c\nd\te\x7f", q, sizeof(q)), "a\\\"b\\\\c?d?e?");
    CHECK_STR(log_quote(NULL, q, sizeof(q)), "");
    /* UTF-8 passes through untouched. */
    CHECK_STR(log_quote("caf\xc3\xa9", q, sizeof(q)), "caf\xc3\xa9");
    /* Truncation never leaves half an escape: 3 bytes of room hold "ab", not "ab\\". */
    CHECK_STR(log_quote("ab\"cd", q, 4), "ab");
    CHECK_STR(log_quote("abcdef", q, 4), "abc");
    q[0] = 'x';
    log_quote("abc", q, 0); /* no room at all: nothing written */
    CHECK(q[0] == 'x');

    capture_start();
    log_info("say \"hi\"\nnow", "path=\"%s\"", log_quote("C:\\tmp", q, sizeof(q)));
    out = capture_end();
    CHECK(matches("^ts=[^ ]+ level=info msg=\"say \\\\\"hi\\\\\"\\?now\" path=\"C:\\\\\\\\tmp\"\n$",
                  out));
    free(out);
}

static void test_truncation(void)
{
    char big[10000];
    char *out;
    size_t len;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';

    capture_start();
    log_info(big, NULL);
    log_info("fields too long", "data=%s", big);
    out = capture_end();
    char *second = strchr(out, '\n');
    CHECK(second != NULL);
    if (!second) {
        free(out);
        return;
    }
    second++;
    len = (size_t)(second - out);
    CHECK(len == 4096);
    CHECK(memcmp(second - 4, "...\n", 4) == 0);
    CHECK(strlen(second) == 4096);
    CHECK(strncmp(second + strlen(second) - 4, "...\n", 4) == 0);
    CHECK(strstr(second, "msg=\"fields too long\" data=xxx") != NULL);
    free(out);
}

#define THREADS 4
#define LINES_PER_THREAD 500

static void *log_thread(void *arg)
{
    long id = (long)arg;
    char pad[300];

    /* Long enough that an interleaving of two writes would be visible mid-line. */
    memset(pad, 'a' + (int)id, sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (int i = 0; i < LINES_PER_THREAD; i++)
        log_info("concurrent", "thread=%ld seq=%d pad=%s", id, i, pad);
    return NULL;
}

static void test_concurrent_lines_stay_whole(void)
{
    pthread_t t[THREADS];
    char *out;
    int lines = 0;
    int bad = 0;
    char *save = NULL;

    capture_start();
    for (long i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, log_thread, (void *)i) == 0);
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    out = capture_end();
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lines++;
        if (!matches("^ts=[^ ]+ level=info msg=\"concurrent\" thread=([0-3]) seq=[0-9]+ "
                     "pad=(a+|b+|c+|d+)$",
                     line))
            bad++;
    }
    CHECK(lines == THREADS * LINES_PER_THREAD);
    CHECK(bad == 0);
    free(out);
}

static void test_errno_preserved(void)
{
    capture_start();
    errno = ENOENT;
    log_error("keeps errno", NULL);
    CHECK(errno == ENOENT);
    free(capture_end());
}

int main(void)
{
    int fd = mkstemp(capture_path);
    if (fd < 0) {
        perror("mkstemp");
        return 1;
    }
    close(fd);

    test_levels();
    test_format();
    test_filtering();
    test_quoting();
    test_truncation();
    test_concurrent_lines_stay_whole();
    test_errno_preserved();

    unlink(capture_path);
    return TEST_DONE();
}
