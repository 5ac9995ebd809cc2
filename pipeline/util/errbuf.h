/* The caller's error buffer: every function of vigil that can fail fills (err, errlen) with one
 * message saying what failed, in ingest, sinks, pipeline and daemon alike. One formatter for all
 * of them (kernels/, which builds on its own, keeps its own). */
#ifndef VIGIL_ERRBUF_H
#define VIGIL_ERRBUF_H

#include <stddef.h>

/* vsnprintf into err (errlen bytes, always terminated); nothing when err is NULL or errlen 0. */
void errbuf_printf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
