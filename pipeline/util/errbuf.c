/* See errbuf.h. */
#include "errbuf.h"

#include <stdarg.h>
#include <stdio.h>

void errbuf_printf(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    if (!out || outlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
}
