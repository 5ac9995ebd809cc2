/* A minimal test helper: CHECK records a failure with file:line and goes on; the program's exit
 * status says whether every check held. No framework, so tests read as plain C. */
#ifndef VIGIL_TEST_H
#define VIGIL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        test_checks++;                                                                             \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                   \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,      \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                       \
        }                                                                                          \
    } while (0)

/* CHECK with a printf-style explanation of what was seen instead. */
#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#ifdef VIGIL_SOURCE_SCHEMA_DIR
/* The directory of vigil's .avsc files: under VIGIL_SOURCE_DIR when ctest sets it, else the path
 * baked in at build (a hand-run binary). 0, or -1 when it does not fit in len. */
static inline int test_schema_dir(char *buf, size_t len)
{
    const char *src = getenv("VIGIL_SOURCE_DIR");
    int n = src && src[0] ? snprintf(buf, len, "%s/ingest/schemas", src)
                          : snprintf(buf, len, "%s", VIGIL_SOURCE_SCHEMA_DIR);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}
#endif

/* Ends main: prints a summary and returns the exit status. */
#define TEST_DONE()                                                                                \
    (fprintf(stderr, "%d checks, %d failed\n", test_checks, test_failures),                        \
     (test_failures == 0 && test_checks > 0) ? 0 : 1)

#endif
