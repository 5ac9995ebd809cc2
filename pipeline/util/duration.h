/* Durations as users write them in vigil's small languages (feature spec windows, alert rules):
 * a positive integer and one unit, s, m, h or d ("90s", "30m", "1h", "7d"), at most 366 days. */
#ifndef VIGIL_DURATION_H
#define VIGIL_DURATION_H

#include <stdint.h>

enum { DURATION_OK = 0, DURATION_BAD = -1, DURATION_TOO_LONG = -2 };

/* s into *ms. Returns DURATION_OK, DURATION_BAD (not a count and a unit) or DURATION_TOO_LONG
 * (more than 366 days); *ms is set only on success. The caller words the error for its
 * language. */
int duration_parse(const char *s, int64_t *ms);

#endif
