/* Whole small text files (see textfile.h). */
#include "textfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

int textfile_read(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, got;

    if (!f) {
        errbuf_printf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (!(buf = malloc(max + 1))) {
        errbuf_printf(err, errlen, "%s: out of memory", path);
        goto err;
    }
    while (n <= max && (got = fread(buf + n, 1, max + 1 - n, f)) > 0)
        n += got;
    if (ferror(f)) {
        errbuf_printf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto err;
    }
    if (n > max) {
        errbuf_printf(err, errlen, "%s: larger than %zu bytes", path, max);
        goto err;
    }
    if (memchr(buf, '\0', n)) {
        errbuf_printf(err, errlen, "%s: contains a NUL byte: not a text file", path);
        goto err;
    }
    buf[n] = '\0';
    fclose(f);
    *out = buf;
    if (len)
        *len = n;
    return 0;
err:
    free(buf);
    fclose(f);
    return -1;
}
