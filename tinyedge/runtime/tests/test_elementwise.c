/* Unit tests of te_kernels_elementwise.c (ADD/SUB/MUL with broadcasting, MEAN, the lookup table,
 * QUANTIZE/DEQUANTIZE of float32) and te_kernels_shape.c (gather for TRANSPOSE/STRIDED_SLICE, PAD,
 * CONCATENATION): hand-computed cases, TFLM's arithmetic. */
#include <string.h>

#include "te_kernels_elementwise.h"
#include "te_kernels_shape.h"
#include "te_test.h"

/* ADD/SUB of two inputs with the output's scale: TFLM's left shift 20, input multipliers 0.5 and output
 * multiplier 2^-19 make every step exact, so the result is x + y (or x - y) in real terms. */
static te_binary_params add_params(int32_t op, int32_t size) {
    te_binary_params p;
    memset(&p, 0, sizeof p);
    p.op = op;
    p.size = size;
    p.left_shift = 20;
    p.in1_mult = p.in2_mult = p.out_mult = 1 << 30;
    p.out_shift = -18;
    p.act_min = -128;
    p.act_max = 127;
    return p;
}

static void set_dims(int32_t *d, int32_t a, int32_t b) {
    for (int i = 0; i < TE_MAX_DIMS; ++i) d[i] = 1;
    d[TE_MAX_DIMS - 2] = a;
    d[TE_MAX_DIMS - 1] = b;
}

static void set_strides(int32_t *s, int32_t a, int32_t b) {
    for (int i = 0; i < TE_MAX_DIMS; ++i) s[i] = 0;
    s[TE_MAX_DIMS - 2] = a;
    s[TE_MAX_DIMS - 1] = b;
}

static void test_binary(void) {
    int8_t out[6];
    {
        te_binary_params p = add_params(TE_BINARY_ADD, 4);
        const int8_t a[4] = {100, -100, 50, 0}, b[4] = {30, -30, -50, -128};
        te_binary_s8(&p, a, b, out);
        const int8_t want[4] = {127, -128, 0, -128}; /* 130 and -130 saturate */
        TE_CHECK_S8(out, want, 4);
        p.op = TE_BINARY_SUB;
        te_binary_s8(&p, a, b, out);
        const int8_t want_sub[4] = {70, -70, 100, 127};
        TE_CHECK_S8(out, want_sub, 4);
        /* zero points 10, -128 and 5: (x - 10) + (y + 128) + 5 */
        p.op = TE_BINARY_ADD;
        p.in1_offset = -10;
        p.in2_offset = 128;
        p.out_offset = 5;
        const int8_t c[4] = {10, 10, -20, 0}, d[4] = {-128, -100, -128, -100};
        te_binary_s8(&p, c, d, out);
        const int8_t want_zp[4] = {5, 33, -25, 23};
        TE_CHECK_S8(out, want_zp, 4);
        p.act_min = 0; /* a fused ReLU in output units */
        te_binary_s8(&p, c, d, out);
        const int8_t want_relu[4] = {5, 33, 0, 23};
        TE_CHECK_S8(out, want_relu, 4);
    }
    /* Broadcast: [2][3] + [1][3], then [2][1] + [1][3]. */
    {
        te_binary_params p = add_params(TE_BINARY_ADD, 6);
        p.broadcast = 1;
        set_dims(p.dims, 2, 3);
        set_strides(p.stride1, 3, 1);
        set_strides(p.stride2, 0, 1);
        const int8_t a[6] = {1, 2, 3, 4, 5, 6}, row[3] = {10, 20, 30}, col[2] = {100, -100};
        te_binary_s8(&p, a, row, out);
        const int8_t want[6] = {11, 22, 33, 14, 25, 36};
        TE_CHECK_S8(out, want, 6);
        set_strides(p.stride1, 1, 0);
        te_binary_s8(&p, col, row, out);
        const int8_t want_outer[6] = {110, 120, 127, -90, -80, -70};
        TE_CHECK_S8(out, want_outer, 6);
    }
    /* MUL with an output multiplier of 1/8: 3 * 1 / 8 = 0.375 becomes 1 by double rounding (1.5 -> 2,
     * then 0.5 -> 1), -0.375 becomes 0 (-1.5 -> -1, then -0.25 -> 0). */
    {
        te_binary_params p = add_params(TE_BINARY_MUL, 6);
        p.left_shift = 0;
        p.out_shift = -2;
        const int8_t a[6] = {10, -10, 3, -3, 127, -128}, b[6] = {12, 12, 1, 1, 127, 127};
        te_binary_s8(&p, a, b, out);
        const int8_t want[6] = {15, -15, 1, 0, 127, -128};
        TE_CHECK_S8(out, want, 6);
    }
}

static void test_mean(void) {
    /* Mean over the last axis of [2][4]; the multiplier 1/4 is 2^30 with shift -1. */
    te_mean_params p;
    memset(&p, 0, sizeof p);
    set_dims(p.outer_dims, 1, 2);
    set_strides(p.outer_strides, 0, 4);
    set_dims(p.red_dims, 1, 4);
    set_strides(p.red_strides, 0, 1);
    p.out_size = 2;
    p.count = 4;
    p.mult = 1 << 30;
    p.shift = -1;
    const int8_t in[8] = {1, 2, 3, 4, -1, -2, -3, -4};
    int8_t out[2];
    te_mean_s8(&p, in, out);
    TE_CHECK_EQ(out[0], 3);  /* 2.5 */
    TE_CHECK_EQ(out[1], -3); /* -2.5 */
    p.in_zp = 1;
    p.out_zp = -128;
    te_mean_s8(&p, in, out);
    TE_CHECK_EQ(out[0], -126); /* (10 - 4) / 4 = 1.5 -> 2 */
    TE_CHECK_EQ(out[1], -128); /* -3.5 -> -4, -132 saturates */
}

static void test_lut(void) {
    int8_t table[256];
    for (int i = 0; i < 256; ++i) table[i] = (int8_t)(127 - i); /* -x - 1 */
    const int8_t in[5] = {-128, -1, 0, 1, 127};
    int8_t out[5];
    te_lut_s8(5, table, in, out);
    const int8_t want[5] = {127, 0, -1, -2, -128};
    TE_CHECK_S8(out, want, 5);
    te_lut_s8(5, table, out, out); /* in place */
    TE_CHECK_S8(out, in, 5);
}

static void test_quantize(void) {
    /* scale 0.5, zero point 3: round half away from zero, then saturate (huge inputs too). */
    const float x[8] = {1.25f, -1.25f, 0.74f, 100.0f, -1000.0f, 1e30f, -1e30f, -1.0f};
    int8_t q[8];
    te_quantize_f32_s8(8, 0.5f, 3, x, q);
    const int8_t want[8] = {6, 0, 4, 127, -128, 127, -128, 1};
    TE_CHECK_S8(q, want, 8);
    const int8_t in[3] = {5, -128, 127};
    float y[3];
    te_dequantize_s8_f32(3, 0.5, 1, in, y);
    TE_CHECK(y[0] == 2.0f && y[1] == -64.5f && y[2] == 63.0f);
}

static void test_shape(void) {
    const int8_t m[6] = {0, 1, 2, 3, 4, 5}; /* [2][3] */
    int8_t out[16];
    /* TRANSPOSE [2][3] -> [3][2]: walk the output, read the input with swapped strides. */
    {
        te_gather_params p;
        set_dims(p.dims, 3, 2);
        set_strides(p.strides, 1, 3);
        p.base = 0;
        p.size = 6;
        te_gather_s8(&p, m, out);
        const int8_t want[6] = {0, 3, 1, 4, 2, 5};
        TE_CHECK_S8(out, want, 6);
    }
    /* STRIDED_SLICE [1:2, 0:3:2] of [2][3]: base 3, column stride 2. */
    {
        te_gather_params p;
        set_dims(p.dims, 1, 2);
        set_strides(p.strides, 3, 2);
        p.base = 3;
        p.size = 2;
        te_gather_s8(&p, m, out);
        TE_CHECK_EQ(out[0], 3);
        TE_CHECK_EQ(out[1], 5);
    }
    /* PAD [2][2] by one on every side to [4][4] with the zero point -128. */
    {
        const int8_t in[4] = {1, 2, 3, 4};
        te_pad_params p;
        set_dims(p.in_dims, 2, 2);
        set_strides(p.out_strides, 4, 1);
        p.base = 5;
        p.in_size = 4;
        p.out_size = 16;
        p.value = -128;
        te_pad_s8(&p, in, out);
        const int8_t want[16] = {-128, -128, -128, -128, -128, 1, 2, -128, -128, 3, 4, -128, -128, -128, -128, -128};
        TE_CHECK_S8(out, want, 16);
    }
    /* CONCATENATION on the last axis of [2][2], [2][1] and [2][3]; unused inputs are 0. */
    {
        const int8_t a[4] = {1, 2, 3, 4}, b[2] = {-1, -2}, c[6] = {10, 11, 12, 13, 14, 15};
        te_concat_params p;
        memset(&p, 0, sizeof p);
        p.outer = 2;
        p.count = 3;
        p.chunk[0] = 2;
        p.chunk[1] = 1;
        p.chunk[2] = 3;
        te_concat_s8(&p, out, a, b, c, 0, 0, 0, 0, 0, 0, 0);
        const int8_t want[12] = {1, 2, -1, 10, 11, 12, 3, 4, -2, 13, 14, 15};
        TE_CHECK_S8(out, want, 12);
    }
}

int main(void) {
    test_binary();
    test_mean();
    test_lut();
    test_quantize();
    test_shape();
    return te_report("test_elementwise");
}
