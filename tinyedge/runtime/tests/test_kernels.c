/* Unit tests of te_kernels.c (fixed point, CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, pools, SOFTMAX):
 * hand-computed cases and edge cases, then random cases against straightforward reference loops that
 * restate TFLM's reference kernels (every in-bounds tap, (x + in_offset) * w, no folding). */
#include <string.h>

#include "te_kernels.h"
#include "te_test.h"

#define ONE_HALF (1 << 30) /* the quantized multiplier of 0.5 */

static void test_fixed_point(void) {
    TE_CHECK_EQ(te_srdhm(1 << 30, 1 << 30), 1 << 29);
    TE_CHECK_EQ(te_srdhm(INT32_MIN, INT32_MIN), INT32_MAX); /* the one saturating product */
    TE_CHECK_EQ(te_srdhm(INT32_MIN, INT32_MAX), -INT32_MAX);
    /* Exact halves: 1.5 -> 2, -1.5 -> -1 (gemmlowp rounds halves up, not away from zero). */
    TE_CHECK_EQ(te_srdhm(3, ONE_HALF), 2);
    TE_CHECK_EQ(te_srdhm(-3, ONE_HALF), -1);
    TE_CHECK_EQ(te_srdhm(-5, ONE_HALF), -2);
    /* RoundingDivideByPOT: halves away from zero. */
    TE_CHECK_EQ(te_rdivpot(5, 1), 3);
    TE_CHECK_EQ(te_rdivpot(-5, 1), -3);
    TE_CHECK_EQ(te_rdivpot(6, 2), 2);
    TE_CHECK_EQ(te_rdivpot(-6, 2), -2);
    TE_CHECK_EQ(te_rdivpot(-5, 2), -1);
    TE_CHECK_EQ(te_rdivpot(7, 0), 7);
    TE_CHECK_EQ(te_rdivpot(INT32_MAX, 31), 1);
    TE_CHECK_EQ(te_rdivpot(INT32_MIN, 31), -1);
    /* MultiplyByQuantizedMultiplier, double rounding: 1 * 0.25 = 0.25 becomes 1 (0.5 -> 1, then 0.5 -> 1). */
    TE_CHECK_EQ(te_mul_by_qm(100, ONE_HALF, 0), 50);
    TE_CHECK_EQ(te_mul_by_qm(100, ONE_HALF, -1), 25);
    TE_CHECK_EQ(te_mul_by_qm(3, ONE_HALF, 1), 3);
    TE_CHECK_EQ(te_mul_by_qm(1, ONE_HALF, -1), 1);
    TE_CHECK_EQ(te_mul_by_qm(-1, ONE_HALF, -1), 0);
    /* The reference restatement agrees on a spread of values (it is what the random cases below use). */
    for (int i = 0; i < 20000; ++i) {
        const int32_t x = (int32_t)te_rand() >> te_rand_range(0, 24);
        const int32_t m = te_rand_range(1 << 30, INT32_MAX);
        const int shift = te_rand_range(-20, 3);
        if (te_mul_by_qm(x, m, shift) != ref_requant(x, m, shift)) {
            TE_CHECK_EQ(te_mul_by_qm(x, m, shift), ref_requant(x, m, shift));
            break;
        }
    }
}

static int32_t wsum_of(const int8_t *w, int n) {
    int32_t s = 0;
    for (int i = 0; i < n; ++i) s += w[i];
    return s;
}

/* TFLM ConvPerChannel, as written there. */
static void ref_conv(const te_conv_params *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                     const int32_t *mult, const int32_t *shift, int8_t *out) {
    for (int b = 0; b < p->batches; ++b)
        for (int oy = 0; oy < p->out_h; ++oy)
            for (int ox = 0; ox < p->out_w; ++ox)
                for (int oc = 0; oc < p->out_c; ++oc) {
                    int32_t acc = 0;
                    for (int ky = 0; ky < p->k_h; ++ky)
                        for (int kx = 0; kx < p->k_w; ++kx) {
                            const int iy = oy * p->stride_h - p->pad_h + ky * p->dil_h;
                            const int ix = ox * p->stride_w - p->pad_w + kx * p->dil_w;
                            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) continue;
                            for (int ic = 0; ic < p->in_c; ++ic) {
                                const int32_t x = in[((b * p->in_h + iy) * p->in_w + ix) * p->in_c + ic];
                                const int32_t w = filter[((oc * p->k_h + ky) * p->k_w + kx) * p->in_c + ic];
                                acc += (x + p->in_offset) * w;
                            }
                        }
                    if (bias) acc += bias[oc];
                    acc = ref_requant(acc, mult[oc], shift[oc]) + p->out_offset;
                    out[((b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] = ref_clamp(acc, p->act_min, p->act_max);
                }
}

static te_conv_params conv_params(int in_h, int in_w, int in_c, int out_c, int k, int stride, int dil, int pad) {
    te_conv_params p;
    memset(&p, 0, sizeof p);
    p.batches = 1;
    p.in_h = (int16_t)in_h;
    p.in_w = (int16_t)in_w;
    p.in_c = (int16_t)in_c;
    p.out_c = (int16_t)out_c;
    p.k_h = p.k_w = (int16_t)k;
    p.stride_h = p.stride_w = (int16_t)stride;
    p.dil_h = p.dil_w = (int16_t)dil;
    p.pad_h = p.pad_w = (int16_t)pad;
    p.out_h = (int16_t)((in_h + 2 * pad - dil * (k - 1) - 1) / stride + 1);
    p.out_w = (int16_t)((in_w + 2 * pad - dil * (k - 1) - 1) / stride + 1);
    p.depth_mult = 1;
    p.act_min = -128;
    p.act_max = 127;
    return p;
}

static void test_conv_hand(void) {
    /* 1x1: 10*3 + (-20)*4 + 5 = -45; * 0.5 = -22.5 rounds up to -22. */
    {
        te_conv_params p = conv_params(1, 1, 2, 1, 1, 1, 1, 0);
        const int8_t in[2] = {10, -20}, w[2] = {3, 4};
        const int32_t bias[1] = {5}, mult[1] = {ONE_HALF}, shift[1] = {0}, ws[1] = {7};
        int8_t out[1];
        te_conv2d_s8(&p, in, w, bias, mult, shift, ws, out);
        TE_CHECK_EQ(out[0], -22);
    }
    /* 3x3, SAME padding, input zero point -128: the padding taps count as the zero point (add nothing),
     * so with every input at -127 and all-ones weights each output counts its in-bounds taps. */
    {
        te_conv_params p = conv_params(3, 3, 1, 1, 3, 1, 1, 1);
        p.in_offset = 128;
        int8_t in[9], w[9], out[9];
        memset(in, -127, sizeof in);
        memset(w, 1, sizeof w);
        const int32_t mult[1] = {ONE_HALF}, shift[1] = {1}, ws[1] = {9}; /* 0.5 * 2 = 1 */
        te_conv2d_s8(&p, in, w, NULL, mult, shift, ws, out);
        const int8_t want[9] = {4, 6, 4, 6, 9, 6, 4, 6, 4};
        TE_CHECK_S8(out, want, 9);
    }
    /* Saturation at both int8 bounds, output zero point 127 and a ReLU6-like range. */
    {
        te_conv_params p = conv_params(1, 1, 1, 3, 1, 1, 1, 0);
        p.out_offset = 127;
        const int8_t in[1] = {127}, w[3] = {127, -127, 0};
        const int32_t bias[3] = {0, 0, -300}, mult[3] = {ONE_HALF, ONE_HALF, ONE_HALF}, shift[3] = {0, 0, 0};
        const int32_t ws[3] = {127, -127, 0};
        int8_t out[3];
        te_conv2d_s8(&p, in, w, bias, mult, shift, ws, out);
        TE_CHECK_EQ(out[0], 127);  /* 127 + 8064 */
        TE_CHECK_EQ(out[1], -128); /* 127 - 8064 */
        TE_CHECK_EQ(out[2], -23);  /* 127 - 150 */
        p.act_min = 0;
        p.act_max = 6;
        te_conv2d_s8(&p, in, w, bias, mult, shift, ws, out);
        TE_CHECK_EQ(out[0], 6);
        TE_CHECK_EQ(out[1], 0);
        TE_CHECK_EQ(out[2], 0);
    }
}

/* Random shapes through the three code paths of te_conv2d_s8: a gathered patch (<= 512 bytes), the
 * pointwise matrix product and the direct loop (larger windows), against ref_conv. */
static void test_conv_random(void) {
    static int8_t in[2 * 9 * 9 * 80], w[24 * 3 * 3 * 80], got[2 * 9 * 9 * 24], want[2 * 9 * 9 * 24];
    static int32_t bias[24], mult[24], shift[24], ws[24];
    const struct { int in_hw, in_c, out_c, k, stride, dil, pad, batches; } cases[] = {
        {5, 3, 4, 3, 1, 1, 1, 1},  {6, 1, 8, 3, 2, 1, 1, 1},  {7, 4, 5, 3, 1, 2, 2, 2}, {4, 8, 6, 1, 1, 1, 0, 2},
        {3, 520 / 8, 3, 1, 1, 1, 0, 1}, {9, 80, 5, 3, 2, 1, 1, 1}, {9, 70, 4, 3, 1, 2, 1, 2}, {5, 60, 24, 3, 1, 1, 0, 1},
    };
    for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        te_conv_params p = conv_params(cases[c].in_hw, cases[c].in_hw, cases[c].in_c, cases[c].out_c, cases[c].k,
                                       cases[c].stride, cases[c].dil, cases[c].pad);
        if (c == 4) p.in_c = 520; /* pointwise with 520 channels: past the gathered-patch size */
        p.batches = (int16_t)cases[c].batches;
        p.in_offset = te_rand_range(-127, 128);
        p.out_offset = te_rand_range(-128, 127);
        if (c % 3 == 1) {
            p.act_min = te_rand_range(-128, 0);
            p.act_max = te_rand_range(1, 127);
        }
        const int patch = p.k_h * p.k_w * p.in_c;
        const int n_in = p.batches * p.in_h * p.in_w * p.in_c, n_out = p.batches * p.out_h * p.out_w * p.out_c;
        te_rand_s8(in, n_in, -128, 127);
        te_rand_s8(w, p.out_c * patch, -127, 127);
        for (int oc = 0; oc < p.out_c; ++oc) {
            bias[oc] = te_rand_range(-20000, 20000);
            mult[oc] = te_rand_range(1 << 30, INT32_MAX);
            shift[oc] = te_rand_range(-14, -6);
            ws[oc] = wsum_of(w + oc * patch, patch);
        }
        te_conv2d_s8(&p, in, w, c == 2 ? NULL : bias, mult, shift, ws, got);
        ref_conv(&p, in, w, c == 2 ? NULL : bias, mult, shift, want);
        TE_CHECK_S8(got, want, n_out);
    }
}

/* TFLM DepthwiseConvPerChannel. */
static void ref_dwconv(const te_conv_params *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                       const int32_t *mult, const int32_t *shift, int8_t *out) {
    for (int b = 0; b < p->batches; ++b)
        for (int oy = 0; oy < p->out_h; ++oy)
            for (int ox = 0; ox < p->out_w; ++ox)
                for (int oc = 0; oc < p->out_c; ++oc) {
                    int32_t acc = 0;
                    for (int ky = 0; ky < p->k_h; ++ky)
                        for (int kx = 0; kx < p->k_w; ++kx) {
                            const int iy = oy * p->stride_h - p->pad_h + ky * p->dil_h;
                            const int ix = ox * p->stride_w - p->pad_w + kx * p->dil_w;
                            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) continue;
                            const int32_t x = in[((b * p->in_h + iy) * p->in_w + ix) * p->in_c + oc / p->depth_mult];
                            acc += (x + p->in_offset) * filter[(ky * p->k_w + kx) * p->out_c + oc];
                        }
                    if (bias) acc += bias[oc];
                    acc = ref_requant(acc, mult[oc], shift[oc]) + p->out_offset;
                    out[((b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] = ref_clamp(acc, p->act_min, p->act_max);
                }
}

static void test_dwconv(void) {
    /* Hand case: 2x2x2 input, 2x2 filter, one output pixel per channel, input zero point 1.
     * Channel 0: (0 + 2 + 4 + 6) * 1 + 1 = 13, * 0.5 * 2 = 13, - 3 = 10.
     * Channel 1: (1 + 3 + 5 + 7) * -1 = -16, * 0.5 = -8, - 3 = -11. */
    {
        te_conv_params p = conv_params(2, 2, 2, 2, 2, 1, 1, 0);
        p.in_offset = -1;
        p.out_offset = -3;
        const int8_t in[8] = {1, 2, 3, 4, 5, 6, 7, 8};    /* [y][x][c] */
        const int8_t w[8] = {1, -1, 1, -1, 1, -1, 1, -1}; /* [ky][kx][c] */
        const int32_t bias[2] = {1, 0}, mult[2] = {ONE_HALF, ONE_HALF}, shift[2] = {1, 0};
        int8_t out[2];
        te_dwconv2d_s8(&p, in, w, bias, mult, shift, out);
        TE_CHECK_EQ(out[0], 10);
        TE_CHECK_EQ(out[1], -11);
    }
    /* Random: depth multipliers 1 and 2, padding, stride, dilation, more channels than one block (32). */
    static int8_t in[2 * 8 * 8 * 40], w[5 * 5 * 80], got[2 * 8 * 8 * 80], want[2 * 8 * 8 * 80];
    static int32_t bias[80], mult[80], shift[80];
    const struct { int in_hw, in_c, dm, k, stride, dil, pad, batches; } cases[] = {
        {6, 3, 1, 3, 1, 1, 1, 1}, {8, 40, 1, 3, 2, 1, 1, 2}, {7, 5, 2, 3, 1, 2, 2, 1}, {8, 40, 2, 5, 1, 1, 2, 1},
    };
    for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        te_conv_params p = conv_params(cases[c].in_hw, cases[c].in_hw, cases[c].in_c, cases[c].in_c * cases[c].dm,
                                       cases[c].k, cases[c].stride, cases[c].dil, cases[c].pad);
        p.depth_mult = (int16_t)cases[c].dm;
        p.batches = (int16_t)cases[c].batches;
        p.in_offset = te_rand_range(-127, 128);
        p.out_offset = te_rand_range(-128, 127);
        const int n_in = p.batches * p.in_h * p.in_w * p.in_c, n_out = p.batches * p.out_h * p.out_w * p.out_c;
        te_rand_s8(in, n_in, -128, 127);
        te_rand_s8(w, p.k_h * p.k_w * p.out_c, -127, 127);
        for (int oc = 0; oc < p.out_c; ++oc) {
            bias[oc] = te_rand_range(-5000, 5000);
            mult[oc] = te_rand_range(1 << 30, INT32_MAX);
            shift[oc] = te_rand_range(-10, -4);
        }
        te_dwconv2d_s8(&p, in, w, c == 1 ? NULL : bias, mult, shift, got);
        ref_dwconv(&p, in, w, c == 1 ? NULL : bias, mult, shift, want);
        TE_CHECK_S8(got, want, n_out);
    }
}

/* TFLM FullyConnected (per-tensor or per-channel), with a filter zero point. */
static void ref_fc(const te_fc_params *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                   const int32_t *mult, const int32_t *shift, int8_t *out) {
    for (int b = 0; b < p->batches; ++b)
        for (int o = 0; o < p->out_depth; ++o) {
            int32_t acc = 0;
            for (int d = 0; d < p->in_depth; ++d)
                acc += (in[b * p->in_depth + d] + p->in_offset) * (filter[o * p->in_depth + d] + p->filter_offset);
            if (bias) acc += bias[o];
            const int c = p->per_channel ? o : 0;
            acc = ref_requant(acc, mult[c], shift[c]) + p->out_offset;
            out[b * p->out_depth + o] = ref_clamp(acc, p->act_min, p->act_max);
        }
}

static void test_fc(void) {
    /* Hand case: [1 2 3 4] . [1 1 1 1] = 10 and . [-1 0 0 1] = 3, multiplier 0.5 * 2 = 1. */
    {
        te_fc_params p = {1, 4, 2, 0, 0, 0, -128, 127, 0};
        const int8_t in[4] = {1, 2, 3, 4}, w[8] = {1, 1, 1, 1, -1, 0, 0, 1};
        const int32_t mult[1] = {ONE_HALF}, shift[1] = {1}, ws[2] = {4, 0};
        int8_t out[2];
        te_fc_s8(&p, in, w, NULL, mult, shift, ws, out);
        TE_CHECK_EQ(out[0], 10);
        TE_CHECK_EQ(out[1], 3);
        /* Input zero point 127 (offset -127) and output zero point -128: 4 * (127 - 127) = 0 -> -128. */
        const int8_t full[4] = {127, 127, 127, 127};
        p.in_offset = -127;
        p.out_offset = -128;
        te_fc_s8(&p, full, w, NULL, mult, shift, ws, out);
        TE_CHECK_EQ(out[0], -128);
        TE_CHECK_EQ(out[1], -128);
    }
    static int8_t in[3 * 70], w[33 * 70], got[3 * 33], want[3 * 33];
    static int32_t bias[33], mult[33], shift[33], ws[33];
    for (int c = 0; c < 6; ++c) {
        te_fc_params p;
        p.batches = 1 + c % 3;
        p.in_depth = te_rand_range(1, 70);
        p.out_depth = te_rand_range(1, 33);
        p.in_offset = te_rand_range(-127, 128);
        p.filter_offset = c >= 4 ? te_rand_range(-10, 10) : 0;
        p.out_offset = te_rand_range(-128, 127);
        p.act_min = c == 2 ? 0 : -128;
        p.act_max = c == 2 ? 100 : 127;
        p.per_channel = c % 2;
        te_rand_s8(in, p.batches * p.in_depth, -128, 127);
        te_rand_s8(w, p.out_depth * p.in_depth, -127, 127);
        for (int o = 0; o < p.out_depth; ++o) {
            bias[o] = te_rand_range(-20000, 20000);
            mult[o] = te_rand_range(1 << 30, INT32_MAX);
            shift[o] = te_rand_range(-12, -5);
            ws[o] = wsum_of(w + o * p.in_depth, p.in_depth);
        }
        te_fc_s8(&p, in, w, c == 3 ? NULL : bias, mult, shift, ws, got);
        ref_fc(&p, in, w, c == 3 ? NULL : bias, mult, shift, want);
        TE_CHECK_S8(got, want, p.batches * p.out_depth);
    }
}

static te_pool_params pool_params(int in_h, int in_w, int ch, int k_h, int k_w, int stride, int pad, int out_h, int out_w) {
    te_pool_params p;
    memset(&p, 0, sizeof p);
    p.batches = 1;
    p.in_h = (int16_t)in_h;
    p.in_w = (int16_t)in_w;
    p.ch = (int16_t)ch;
    p.out_h = (int16_t)out_h;
    p.out_w = (int16_t)out_w;
    p.k_h = (int16_t)k_h;
    p.k_w = (int16_t)k_w;
    p.stride_h = p.stride_w = (int16_t)stride;
    p.pad_h = p.pad_w = (int16_t)pad;
    p.act_min = -128;
    p.act_max = 127;
    return p;
}

static void test_pools(void) {
    /* 2x2 stride 2 over a 4x4 plane. */
    const int8_t plane[16] = {1, 5, -3, 0, 2, -7, 9, 4, -128, -100, 127, 3, -120, -101, 8, 126};
    int8_t out[16];
    te_pool_params p = pool_params(4, 4, 1, 2, 2, 2, 0, 2, 2);
    te_maxpool_s8(&p, plane, out);
    const int8_t want_max[4] = {5, 9, -100, 127};
    TE_CHECK_S8(out, want_max, 4);
    p.act_max = 6;
    te_maxpool_s8(&p, plane, out);
    const int8_t want_max6[4] = {5, 6, -100, 6};
    TE_CHECK_S8(out, want_max6, 4);
    /* 3x3 windows padded by 1 over 2x2: padding is skipped, not read as 0 or as -128. */
    const int8_t neg[4] = {-5, -6, -7, -8}, pos[4] = {1, 2, 3, 4}, negs[4] = {-1, -2, -3, -4};
    p = pool_params(2, 2, 1, 3, 3, 1, 1, 2, 2);
    te_maxpool_s8(&p, neg, out);
    const int8_t want_neg[4] = {-5, -5, -5, -5};
    TE_CHECK_S8(out, want_neg, 4);
    /* Average over the 4 in-bounds taps: 10 / 4 = 2.5 -> 3 and -2.5 -> -3 (halves away from zero). */
    te_avgpool_s8(&p, pos, out);
    const int8_t want_avg[4] = {3, 3, 3, 3};
    TE_CHECK_S8(out, want_avg, 4);
    te_avgpool_s8(&p, negs, out);
    const int8_t want_navg[4] = {-3, -3, -3, -3};
    TE_CHECK_S8(out, want_navg, 4);
    /* 1x2 windows: 1.5 -> 2, 3.5 -> 4, -1.5 -> -2; three channels walked together. */
    const int8_t rows[12] = {1, -1, 127, 2, -2, 127, 3, 5, -128, 4, 6, -128}; /* 1x4x3 */
    p = pool_params(1, 4, 3, 1, 2, 2, 0, 1, 2);
    te_avgpool_s8(&p, rows, out);
    const int8_t want_rows[6] = {2, -2, 127, 4, 6, -128};
    TE_CHECK_S8(out, want_rows, 6);
    /* More channels than one block of 32. */
    static int8_t big[2 * 2 * 40], got[40];
    te_rand_s8(big, 160, -128, 127);
    p = pool_params(2, 2, 40, 2, 2, 1, 0, 1, 1);
    te_maxpool_s8(&p, big, got);
    for (int c = 0; c < 40; ++c) {
        int m = big[c];
        for (int t = 1; t < 4; ++t) m = big[t * 40 + c] > m ? big[t * 40 + c] : m;
        TE_CHECK_EQ(got[c], m);
    }
}

/* Expected values from the tflite_micro interpreter (beta 1, output scale 1/256 and zero point -128). */
static void test_softmax(void) {
    int8_t out[6];
    /* input scale 1/16: multiplier 2^30, left shift 23, diff_min -248 */
    const int8_t a[6] = {0, -16, 16, 32, -128, 127};
    te_softmax_s8(1, 6, 1073741824, 23, -248, a, out);
    const int8_t want_a[6] = {-128, -128, -128, -127, -128, 127};
    TE_CHECK_S8(out, want_a, 6);
    const int8_t u4[4] = {5, 5, 5, 5}, u2[2] = {3, 3};
    te_softmax_s8(1, 4, 1073741824, 23, -248, u4, out);
    const int8_t want_u4[4] = {-64, -64, -64, -64};
    TE_CHECK_S8(out, want_u4, 4);
    te_softmax_s8(1, 2, 1073741824, 23, -248, u2, out);
    TE_CHECK_EQ(out[0], 0);
    TE_CHECK_EQ(out[1], 0);
    /* input scale 1/4: multiplier 2^30, left shift 25, diff_min -62; two rows */
    const int8_t b[12] = {10, 9, 8, 0, -20, 10, 10, 9, 8, 0, -20, 10};
    int8_t out2[12];
    te_softmax_s8(2, 6, 1073741824, 25, -62, b, out2);
    const int8_t want_b[12] = {-54, -71, -83, -122, -128, -54, -54, -71, -83, -122, -128, -54};
    TE_CHECK_S8(out2, want_b, 12);
    /* One element: probability 1 saturates at 127. */
    te_softmax_s8(1, 1, 1073741824, 23, -248, a, out);
    TE_CHECK_EQ(out[0], 127);
}

static void test_copy(void) {
    int8_t buf[6] = {1, 2, 3, 4, 5, 6}, dst[6] = {0};
    te_copy_s8(6, buf, dst);
    TE_CHECK_S8(dst, buf, 6);
    te_copy_s8(6, buf, buf); /* in place: nothing to do */
    TE_CHECK_EQ(buf[5], 6);
}

int main(void) {
    test_fixed_point();
    test_conv_hand();
    test_conv_random();
    test_dwconv();
    test_fc();
    test_pools();
    test_softmax();
    test_copy();
    return te_report("test_kernels");
}
