/* main.c's m-results number formatter (out_f3) against the host C library's printf("%.3f", (double)v):
 * the reference firmware prints its results with "%0.3f", so every float must come out character for
 * character the same: exact ties (0.0625 -> "0.062", 0.1875 -> "0.188"), negatives that round to zero
 * ("-0.000"), integers past 2^64, subnormals, inf.
 *
 * Built for the host by tests/test_runtime_c.py beside generated te_port.h / te_model.h / te_version.h:
 * main.c is included with its main() renamed, and the port and model functions it calls are stubs here. */
#define main te_firmware_main
#include "main.c"
#undef main

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "te_test.h"

/* ------------------------------------------------------------------ stubs of the port and the model */
static char g_out[256];
static size_t g_out_len;

void te_port_init(void) {}
int te_port_getc(void) { return '%'; }
int te_port_poll(void) { return -1; }
void te_port_putc(char c) {
    if (g_out_len + 1u < sizeof g_out) {
        g_out[g_out_len++] = c;
    }
}
void te_port_puts(const char *s) {
    while (*s) {
        te_port_putc(*s++);
    }
}
uint64_t te_timer_ticks(void) { return 0u; }
uint32_t te_timer_hz(void) { return 1000000u; }
const char *te_timer_source(void) { return "stub"; }
void te_port_timestamp_pulse(void) {}
uint32_t te_port_timestamp_pulses(void) { return 0u; }
void te_port_exit(int code) {
    (void)code;
    for (;;) {
    }
}
static int8_t g_tensor[TE_INPUT_BYTES > TE_OUTPUT_COUNT ? TE_INPUT_BYTES : TE_OUTPUT_COUNT];
int8_t *te_model_input(void) { return g_tensor; }
const int8_t *te_model_output(void) { return g_tensor; }
void te_model_invoke(void) {}
void te_model_invoke_profiled(uint64_t (*now)(void), uint32_t *ticks) {
    (void)now;
    (void)ticks;
}
int te_model_selftest(void) { return -2; }
const char *const te_layer_names[TE_NUM_LAYERS] = {0};

/* ------------------------------------------------------------------ the comparison */
static long g_compared;

static void check_value(float v) {
    char want[80];
    g_out_len = 0;
    out_f3(v);
    g_out[g_out_len] = '\0';
    snprintf(want, sizeof want, "%.3f", (double)v);
    ++g_compared;
    ++te_checks;
    if (strcmp(g_out, want) != 0) {
        ++te_failures;
        if (te_failures <= 20) {
            fprintf(stderr, "out_f3(%a): \"%s\", printf(\"%%.3f\") gives \"%s\"\n", (double)v, g_out, want);
        }
    }
}

static void check_both_signs(float v) {
    check_value(v);
    check_value(-v);
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int main(void) {
    /* The tie the issue names, and its neighbours. */
    g_out_len = 0;
    out_f3(0.0625f);
    g_out[g_out_len] = '\0';
    TE_CHECK(strcmp(g_out, "0.062") == 0);
    g_out_len = 0;
    out_f3(0.1875f);
    g_out[g_out_len] = '\0';
    TE_CHECK(strcmp(g_out, "0.188") == 0);

    /* Every k / 2^j in [0, 1] for j <= 16: all the exact ties of three decimals that a binary fraction of
     * up to 16 bits can hold (k/16, k/32, ...), and their neighbours one ulp either side. */
    for (uint32_t j = 0; j <= 16u; j++) {
        const uint32_t den = 1u << j;
        for (uint32_t k = 0; k <= den; k++) {
            const float v = (float)k / (float)den;
            check_both_signs(v);
            check_both_signs(nextafterf(v, 2.0f));
            if (v > 0.0f) {
                check_both_signs(nextafterf(v, 0.0f));
            }
        }
    }
    /* Dequantized int8 outputs (q - zp) * scale with the scales models use: 1/256 (softmax), 1/128, ... */
    const float scales[] = {0.00390625f, 0.0078125f, 0.1f, 0.0123f, 0.5f, 1.0f / 3.0f, 0.0001f, 97.25f};
    for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++) {
        for (int32_t q = -128; q <= 127; q++) {
            for (int32_t zp = -128; zp <= 127; zp += 17) {
                check_value((float)(q - zp) * scales[s]);
            }
        }
    }
    /* Decimal halves near every third decimal (x.xxx5 is never exact in binary: the nearest floats). */
    for (uint32_t i = 0; i < 200000u; i++) {
        const float v = ((float)i + 0.5f) / 1000.0f;
        check_both_signs(v);
        check_both_signs(nextafterf(v, 1e9f));
        check_both_signs(nextafterf(v, 0.0f));
    }
    /* Special values: zeros, subnormals, the integer range, powers of two up to FLT_MAX, inf. */
    check_both_signs(0.0f);
    check_both_signs(from_bits(0x00000001u));
    check_both_signs(from_bits(0x007FFFFFu));
    check_both_signs(from_bits(0x00800000u));
    check_both_signs(from_bits(0x7F7FFFFFu));
    check_both_signs(from_bits(0x7F800000u));
    check_both_signs(4294967295.0f);
    check_both_signs(4294967296.0f);
    check_both_signs(16777217.0f);
    for (int e = -149; e <= 127; e++) {
        const float p = ldexpf(1.0f, e);
        check_both_signs(p);
        check_both_signs(nextafterf(p, 0.0f));
        check_both_signs(nextafterf(p, INFINITY));
    }
    /* Random floats: every finite bit pattern is as likely, then uniform values in a few ranges. */
    for (uint32_t i = 0; i < 1000000u; i++) {
        const uint32_t u = te_rand();
        if (((u >> 23) & 0xFFu) != 0xFFu) {
            check_value(from_bits(u));
        }
    }
    for (uint32_t i = 0; i < 300000u; i++) {
        const float unit = (float)(te_rand() >> 8) / 16777216.0f;
        check_both_signs(unit);
        check_both_signs(unit * 1000.0f);
        check_both_signs(unit * 1e-3f);
    }
    printf("compared %ld floats with printf(\"%%.3f\")\n", g_compared);
    return te_report("test_format") != 0;
}
