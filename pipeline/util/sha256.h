/* FIPS 180-4 SHA-256, streaming: checks the sha256 of model files (weights, vocab) as they are
 * read, without holding a whole file in memory. */
#ifndef VIGIL_SHA256_H
#define VIGIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sha256 {
    uint32_t h[8];
    uint64_t bytes; /* message length so far */
    uint8_t block[64];
    size_t fill; /* bytes waiting in block */
} sha256_t;

void sha256_init(sha256_t *s);
/* Adds len bytes; any split of a message into updates gives the same digest. */
void sha256_update(sha256_t *s, const void *data, size_t len);
/* Pads, writes the digest and leaves s needing sha256_init before another message. */
void sha256_final(sha256_t *s, uint8_t digest[32]);
/* digest as 64 lower-case hex digits and a NUL into hex (65 bytes). */
void sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
