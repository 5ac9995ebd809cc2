/* The caller's error buffer: every pipeline function that can fail fills (err, errlen) with one
 * message saying what failed. One formatter for all of them. */
#ifndef VIGIL_ERRBUF_H
#define VIGIL_ERRBUF_H

#include <stddef.h>

/* vsnprintf into err (errlen bytes, always terminated); nothing when err is NULL or errlen 0. */
void errbuf_printf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
