/* Tests SHA-256 against the FIPS 180-2 / NIST example vectors, and that the digest does not depend
 * on how a message is split into updates (every padding boundary up to 200 bytes, checked
 * against a golden chain computed with Python's hashlib). */
#include <stdint.h>
#include <string.h>

#include "sha256.h"
#include "test.h"

static void digest_hex(const void *data, size_t len, char hex[65])
{
    sha256_t s;
    uint8_t d[32];
    sha256_init(&s);
    sha256_update(&s, data, len);
    sha256_final(&s, d);
    sha256_hex(d, hex);
}

static void test_nist(void)
{
    char hex[65];
    digest_hex("", 0, hex);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    digest_hex("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    digest_hex(m448, strlen(m448), hex);
    CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 =
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklm"
        "nopqrlmnopqrsmnopqrstnopqrstu";
    digest_hex(m896, strlen(m896), hex);
    CHECK_STR(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    /* NULL with length 0 is an empty update. */
    digest_hex(NULL, 0, hex);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_million_a(void)
{
    static char a[1000];
    sha256_t s;
    uint8_t d[32];
    char hex[65];
    size_t left = 1000000, chunk = 1;
    memset(a, 'a', sizeof(a));
    sha256_init(&s);
    /* Uneven chunks (1, 8, 15, ... bytes) so block boundaries fall inside updates. */
    while (left > 0) {
        size_t take = chunk < left ? chunk : left;
        sha256_update(&s, a, take);
        left -= take;
        chunk = (chunk * 7 + 1) % 997 + 1;
    }
    CHECK(s.bytes == 1000000);
    sha256_final(&s, d);
    sha256_hex(d, hex);
    CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_splits(void)
{
    uint8_t msg[200];
    sha256_t chain;
    uint8_t d[32];
    char hex[65];
    int same = 1;
    sha256_init(&chain);
    for (size_t n = 0; n <= 200; n++) {
        sha256_t one, bytewise, halves;
        uint8_t d1[32], d2[32], d3[32];
        char h1[65];
        for (size_t i = 0; i < n; i++)
            msg[i] = (uint8_t)((i * 7 + n) % 256);
        sha256_init(&one);
        sha256_update(&one, msg, n);
        sha256_final(&one, d1);
        sha256_init(&bytewise);
        for (size_t i = 0; i < n; i++)
            sha256_update(&bytewise, msg + i, 1);
        sha256_final(&bytewise, d2);
        sha256_init(&halves);
        sha256_update(&halves, msg, n / 3);
        sha256_update(&halves, msg + n / 3, n - n / 3);
        sha256_final(&halves, d3);
        if (memcmp(d1, d2, 32) != 0 || memcmp(d1, d3, 32) != 0) {
            same = 0;
            fprintf(stderr, "length %zu: split digests differ\n", n);
        }
        sha256_hex(d1, h1);
        sha256_update(&chain, h1, 64);
    }
    CHECK(same);
    /* hashlib: sha256 of the concatenated hex digests of msg for n = 0..200. */
    sha256_final(&chain, d);
    sha256_hex(d, hex);
    CHECK_STR(hex, "de444fd33c2915b23d3772a4de9aa249a9206ee2f93688a74e332e160c085f41");
}

int main(void)
{
    test_nist();
    test_million_a();
    test_splits();
    return TEST_DONE();
}
