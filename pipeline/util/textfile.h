/* A small text file read whole: rule files, config.json, specs. */
#ifndef VIGIL_TEXTFILE_H
#define VIGIL_TEXTFILE_H

#include <stddef.h>

/* The file at path, NUL-terminated, into *out (malloc'ed; the caller frees it) and its length
 * into *len (may be NULL). Read in chunks, not sized with fseek, so that a pipe works and a
 * directory fails with its errno. A file over max bytes, or one holding a NUL byte (a C string
 * would end there unseen), is refused. Returns 0, or -1 with err as "PATH: what is wrong". */
int textfile_read(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen);

#endif
