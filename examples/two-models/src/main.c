/* A user's firmware with two tinyedge models: a keyword spotter (kws) and an anomaly detector (ad).
 *
 * The "sensor" is a deterministic pseudo-random generator (xorshift32, seed SENSOR_SEED) that fills each
 * model's int8 input in turn: KWS first, then AD, for FRAMES frames. Each frame prints both models'
 * outputs as hex lines on the UART, so a test can recompute them with the TFLM interpreter:
 *
 *   kws selftest 0
 *   ad selftest 0
 *   frame 0 kws 8a0f...
 *   frame 0 ad 7f80...
 *   done 0
 *
 * Both models come from `tinyedge export` (--name kws, --name ad): every symbol is prefixed with the
 * name, so they link into one image. Nothing here is tinyedge's: the BSP (bsp.h) is this board's. */
#include <stddef.h>
#include <stdint.h>

#include "ad.h"
#include "bsp.h"
#include "kws.h"

#define FRAMES 3
#define SENSOR_SEED 0x2545F491u

static uint32_t sensor_state = SENSOR_SEED;

/* One sensor sample: the top byte of the next xorshift32 value. */
static int8_t sensor_sample(void)
{
    uint32_t x = sensor_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    sensor_state = x;
    return (int8_t)(x >> 24);
}

static void put_num(int v)
{
    char buf[12];
    int i = (int)sizeof buf - 1;
    unsigned int u = v < 0 ? 0u - (unsigned int)v : (unsigned int)v;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + u % 10u);
        u /= 10u;
    } while (u != 0u);
    if (v < 0) {
        buf[--i] = '-';
    }
    bsp_puts(&buf[i]);
}

static void put_hex(const void *data, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)data;
    char pair[3] = {0, 0, 0};
    for (size_t i = 0; i < n; ++i) {
        pair[0] = digits[p[i] >> 4];
        pair[1] = digits[p[i] & 0xFu];
        bsp_puts(pair);
    }
}

static void report(const char *what, int value)
{
    bsp_puts(what);
    put_num(value);
    bsp_puts("\n");
}

/* An arena either lives inside the library (static) or is ours to give: the export says which. */
#if KWS_ARENA_CALLER
static uint8_t kws_arena[KWS_ARENA_BYTES] __attribute__((aligned(KWS_ARENA_ALIGN)));
#define KWS_ARENA kws_arena, sizeof kws_arena
#else
#define KWS_ARENA NULL, 0
#endif
#if AD_ARENA_CALLER
static uint8_t ad_arena[AD_ARENA_BYTES] __attribute__((aligned(AD_ARENA_ALIGN)));
#define AD_ARENA ad_arena, sizeof ad_arena
#else
#define AD_ARENA NULL, 0
#endif

int main(void)
{
    bsp_init();
    int failed = 0;
    int rc = kws_init(KWS_ARENA);
    if (rc != 0) {
        report("kws init ", rc);
        return 2;
    }
    rc = ad_init(AD_ARENA);
    if (rc != 0) {
        report("ad init ", rc);
        return 2;
    }
    /* At boot, before any sensor data is trusted: each model against its golden output. */
    rc = kws_selftest();
    report("kws selftest ", rc);
    failed |= rc != 0;
    rc = ad_selftest();
    report("ad selftest ", rc);
    failed |= rc != 0;

    for (int frame = 0; frame < FRAMES; ++frame) {
        int8_t *x = kws_input();
        for (size_t i = 0; i < KWS_INPUT_BYTES; ++i) {
            x[i] = sensor_sample();
        }
        kws_invoke();
        bsp_puts("frame ");
        put_num(frame);
        bsp_puts(" kws ");
        put_hex(kws_output(), KWS_OUTPUT_BYTES);
        bsp_puts("\n");

        x = ad_input();
        for (size_t i = 0; i < AD_INPUT_BYTES; ++i) {
            x[i] = sensor_sample();
        }
        ad_invoke();
        bsp_puts("frame ");
        put_num(frame);
        bsp_puts(" ad ");
        put_hex(ad_output(), AD_OUTPUT_BYTES);
        bsp_puts("\n");
    }
    report("done ", failed);
    return failed;
}
