/* Durations "90s", "30m", "1h", "7d" (see duration.h). */
#include "duration.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int duration_parse(const char *s, int64_t *ms)
{
    char *end;
    int64_t unit;

    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v <= 0 || strlen(end) != 1)
        return DURATION_BAD;
    switch (*end) {
    case 's':
        unit = 1000;
        break;
    case 'm':
        unit = 60000;
        break;
    case 'h':
        unit = 3600000;
        break;
    case 'd':
        unit = 86400000;
        break;
    default:
        return DURATION_BAD;
    }
    if (v > 366LL * 86400000 / unit)
        return DURATION_TOO_LONG;
    *ms = v * unit;
    return DURATION_OK;
}
