/* The float formatting of feature vectors (sink_pg_format_float): every value must read back
 * bit for bit, as PostgreSQL's float4 input (strtof) reads it, or training would not see what
 * serving computed. Random bit patterns cover every exponent, subnormals included. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sink_pg.h"
#include "test.h"

static int round_trips(float v)
{
    char s[32];
    int n = sink_pg_format_float(v, s);
    float back = strtof(s, NULL);
    if (n <= 0 || (size_t)n != strlen(s))
        return 0;
    if (isnan(v))
        return strcmp(s, "NaN") == 0;
    return memcmp(&back, &v, sizeof v) == 0 || (v == 0.0f && back == 0.0f);
}

int main(void)
{
    char s[32];
    uint32_t x = 2463534242u;
    int bad = 0;

    for (int i = 0; i < 2000000; i++) {
        float v;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        memcpy(&v, &x, sizeof v);
        if (!round_trips(v) && bad++ < 5) {
            sink_pg_format_float(v, s);
            fprintf(stderr, "%.9g (bits %08x) formatted as %s\n", (double)v, x, s);
        }
    }
    CHECK_MSG(bad == 0, "%d of 2000000 random floats did not round-trip", bad);
    /* Edges: decades, integers, the largest and smallest floats. */
    float edges[] = {1.0f,          10.0f, 0.1f,         1e9f,        999999999.0f,    1e-45f,
                     3.4028235e38f, -0.5f, 123456789.0f, 0.30000001f, 1.17549435e-38f, -2.5e-7f,
                     99999.99f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        CHECK_MSG(round_trips(edges[i]), "%.9g", (double)edges[i]);
    sink_pg_format_float(42.0f, s);
    CHECK_STR(s, "42");
    sink_pg_format_float(-0.25f, s);
    CHECK_STR(s, "-2.5e-1");
    sink_pg_format_float(INFINITY, s);
    CHECK_STR(s, "Infinity");
    sink_pg_format_float(NAN, s);
    CHECK_STR(s, "NaN");
    return TEST_DONE();
}
