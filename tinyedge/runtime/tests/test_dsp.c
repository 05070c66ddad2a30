/* te_kernels_dsp.c against te_kernels.c on random data. On the host the DSP kernels run on the exact C
 * models of SMLAD/SXTB16/SMMLAR/SSAT in te_kernels_dsp.c itself; the constants are folded here the way
 * tinyedge/codegen/target.py folds them (requant_constants): bias + in_offset * sum(w), m2 = 2m - 2^32,
 * r = 2^s + (zp << (s + 1)), s1 = s + 1, and mode = corr | clamp << 1 | exact << 2, where exact channels
 * keep TFLM's own multiplier and shift: {bias, m2, 2^left, (zp - 256) * 32 + right}. CONV_2D and
 * DEPTHWISE_CONV_2D take those as te_rq (k = 2 zp + 1 for r, left for 2^left), FULLY_CONNECTED as te_rq_fc.
 * Every mode of every kernel runs. */
#include <string.h>

#include "te_kernels.h"
#include "te_kernels_dsp.h"
#include "te_kernels_dsp_intrin.h"
#include "te_test.h"

typedef void (*conv_fn)(const te_dsp_conv_params *, const int8_t *, const int8_t *, const te_rq *, int8_t *, int8_t *);
typedef void (*dw_fn)(const te_dsp_conv_params *, const int8_t *, const int16_t *, const te_rq *, int8_t *, int8_t *);
typedef void (*fc_fn)(const te_dsp_fc_params *, const int8_t *, const int8_t *, const te_rq_fc *, int8_t *);

static const conv_fn conv_modes[8] = {te_conv2d_s8_dsp_m0, te_conv2d_s8_dsp_m1, te_conv2d_s8_dsp_m2,
                                      te_conv2d_s8_dsp_m3, te_conv2d_s8_dsp_m4, te_conv2d_s8_dsp_m5,
                                      te_conv2d_s8_dsp_m6, te_conv2d_s8_dsp_m7};
static const dw_fn dw_modes[8] = {te_dwconv2d_s8_dsp_m0, te_dwconv2d_s8_dsp_m1, te_dwconv2d_s8_dsp_m2,
                                  te_dwconv2d_s8_dsp_m3, te_dwconv2d_s8_dsp_m4, te_dwconv2d_s8_dsp_m5,
                                  te_dwconv2d_s8_dsp_m6, te_dwconv2d_s8_dsp_m7};
static const conv_fn dw3_modes[8] = {te_dwconv3x3_s8_dsp_m0, te_dwconv3x3_s8_dsp_m1, te_dwconv3x3_s8_dsp_m2,
                                     te_dwconv3x3_s8_dsp_m3, te_dwconv3x3_s8_dsp_m4, te_dwconv3x3_s8_dsp_m5,
                                     te_dwconv3x3_s8_dsp_m6, te_dwconv3x3_s8_dsp_m7};
static const fc_fn fc_modes[8] = {te_fc_s8_dsp_m0, te_fc_s8_dsp_m1, te_fc_s8_dsp_m2, te_fc_s8_dsp_m3,
                                  te_fc_s8_dsp_m4, te_fc_s8_dsp_m5, te_fc_s8_dsp_m6, te_fc_s8_dsp_m7};

#define MAXC 48
static int32_t bias[MAXC], mult[MAXC], shift[MAXC], wsum[MAXC];
static te_rq rq[MAXC];       /* CONV_2D and DEPTHWISE_CONV_2D rows */
static te_rq_fc rq_fc[MAXC]; /* FULLY_CONNECTED rows: the same channels with r kept whole */
static int8_t in[2 * 10 * 10 * 32], filter[MAXC * 3 * 3 * 32], wpad[MAXC * 3 * 3 * 32 + 4];
static int16_t wdw[5 * 5 * MAXC];
static int8_t got[2 * 10 * 10 * MAXC], want[2 * 10 * 10 * MAXC];
static int32_t scratch[8192]; /* word aligned */

/* Output zero point and activation range that make `mode` the one target.py picks. */
static void pick_range(int mode, int32_t *zp, int32_t *amin, int32_t *amax) {
    const int corr = mode & 1, clamp = (mode >> 1) & 1;
    *zp = corr || clamp ? te_rand_range(-100, 100) : -128;
    *amin = clamp ? (corr ? -128 : *zp) : -128; /* corr is needed exactly when amin < zp */
    *amax = clamp ? (corr ? te_rand_range(*zp + 1, 126) : 127) : 127;
}

/* With TE_MODE_EXACT every third channel takes the exact row; the others stay fast. */
static int is_exact(int c, int mode) { return (mode & TE_MODE_EXACT) && c % 3 == 1; }

/* target.py's exact row for TFLM's multiplier and shift (left shift `left` already in the accumulator):
 * compact (left itself) and FULLY_CONNECTED (2^left, 0 for a zero multiplier). */
static void exact_row(int c, int32_t b, int32_t m, int32_t s, int32_t zp, int left) {
    const int l = s - left > 0 ? s - left : 0, right = s > 0 ? 0 : -s;
    const int32_t m2 = (int32_t)((uint32_t)m * 2u), s1 = (zp - 256) * 32 + right;
    const te_rq q = {b, m2, (int16_t)l, (int16_t)s1};
    const te_rq_fc w = {b, m2, m ? (int32_t)(1u << l) : 0, s1};
    rq[c] = q;
    rq_fc[c] = w;
}

/* Random per-channel multipliers in [2^30, 2^31) and right shifts, then the DSP rows from folded biases. */
static void make_rq(int n, const int32_t *folded, int32_t zp, int mode) {
    for (int c = 0; c < n; ++c) {
        const int s = -shift[c];
        if (is_exact(c, mode)) {
            exact_row(c, folded[c], mult[c], shift[c], zp, 0);
            continue;
        }
        rq[c].bias = rq_fc[c].bias = folded[c];
        rq[c].m2 = rq_fc[c].m2 = (int32_t)((uint32_t)mult[c] * 2u);
        rq[c].k = (int16_t)(2 * zp + 1);
        rq[c].s1 = (int16_t)(s + 1);
        rq_fc[c].r = (int32_t)((1u << s) + (uint32_t)zp * (1u << (s + 1)));
        rq_fc[c].s1 = s + 1;
    }
}

/* Exact channels get what the fast row cannot express: a zero multiplier (a dead channel), a right shift
 * of 31 with a bias large enough to round either way, a left shift of 1-3 (scale > 1), or an ordinary one. */
static void rand_quant(int n, int mode) {
    for (int c = 0; c < n; ++c) {
        bias[c] = te_rand_range(-3000, 3000);
        mult[c] = te_rand_range(1 << 30, INT32_MAX);
        shift[c] = te_rand_range(-12, -5);
        if (!is_exact(c, mode)) continue;
        switch ((c / 3) % 4) {
        case 0: mult[c] = 0; shift[c] = 0; break;
        case 1: shift[c] = -31; bias[c] = te_rand_range(-2000000000, 2000000000); break;
        case 2: shift[c] = te_rand_range(1, 3); bias[c] = te_rand_range(-300, 300); break;
        default: break;
        }
    }
}

static te_conv_params rand_geometry(int in_hw, int in_c, int out_c, int k, int stride, int dil, int pad) {
    te_conv_params p;
    memset(&p, 0, sizeof p);
    p.batches = (int16_t)te_rand_range(1, 2);
    p.in_h = p.in_w = (int16_t)in_hw;
    p.in_c = (int16_t)in_c;
    p.out_c = (int16_t)out_c;
    p.k_h = p.k_w = (int16_t)k;
    p.stride_h = p.stride_w = (int16_t)stride;
    p.dil_h = p.dil_w = (int16_t)dil;
    p.pad_h = p.pad_w = (int16_t)pad;
    p.out_h = p.out_w = (int16_t)((in_hw + 2 * pad - dil * (k - 1) - 1) / stride + 1);
    p.depth_mult = 1;
    p.in_offset = te_rand_range(-127, 128);
    return p;
}

static te_dsp_conv_params dsp_geometry(const te_conv_params *p, int mode) {
    te_dsp_conv_params d;
    memset(&d, 0, sizeof d);
    d.batches = p->batches;
    d.in_h = p->in_h;
    d.in_w = p->in_w;
    d.in_c = p->in_c;
    d.out_h = p->out_h;
    d.out_w = p->out_w;
    d.out_c = p->out_c;
    d.k_h = p->k_h;
    d.k_w = p->k_w;
    d.stride_h = p->stride_h;
    d.stride_w = p->stride_w;
    d.dil_h = p->dil_h;
    d.dil_w = p->dil_w;
    d.pad_h = p->pad_h;
    d.pad_w = p->pad_w;
    d.mode = (int16_t)mode;
    d.in_zp = -p->in_offset;
    d.in_off = p->in_offset;
    d.act_min = p->act_min;
    d.act_max = p->act_max;
    return d;
}

static int n_out(const te_conv_params *p) { return p->batches * p->out_h * p->out_w * p->out_c; }

static void test_conv(int mode, int in_hw, int in_c, int out_c, int k, int stride, int dil, int pad) {
    te_conv_params p = rand_geometry(in_hw, in_c, out_c, k, stride, dil, pad);
    pick_range(mode, &p.out_offset, &p.act_min, &p.act_max);
    const int patch = k * k * in_c, kpad = (patch + 3) / 4 * 4;
    te_rand_s8(in, p.batches * in_hw * in_hw * in_c, -128, 127);
    te_rand_s8(filter, out_c * patch, -127, 127);
    rand_quant(out_c, mode);
    int32_t folded[MAXC];
    memset(wpad, 0, sizeof wpad);
    for (int oc = 0; oc < out_c; ++oc) {
        wsum[oc] = 0;
        for (int i = 0; i < patch; ++i) wsum[oc] += filter[oc * patch + i];
        memcpy(wpad + oc * kpad, filter + oc * patch, (size_t)patch);
        folded[oc] = bias[oc] + p.in_offset * wsum[oc];
    }
    make_rq(out_c, folded, p.out_offset, mode);
    te_dsp_conv_params d = dsp_geometry(&p, mode);
    d.kpad = (int16_t)kpad;
    d.pointwise = k == 1 && stride == 1 && pad == 0 && in_c % 4 == 0;
    te_conv2d_s8(&p, in, filter, bias, mult, shift, wsum, want);
    conv_modes[mode](&d, in, wpad, rq, got, (int8_t *)scratch);
    TE_CHECK_S8(got, want, n_out(&p));
}

static void test_dw(int mode, int in_hw, int c, int k, int stride, int dil, int pad) {
    te_conv_params p = rand_geometry(in_hw, c, c, k, stride, dil, pad);
    pick_range(mode, &p.out_offset, &p.act_min, &p.act_max);
    te_rand_s8(in, p.batches * in_hw * in_hw * c, -128, 127);
    te_rand_s8(filter, k * k * c, -127, 127);
    rand_quant(c, mode);
    make_rq(c, bias, p.out_offset, mode);
    /* int16 pairs per tap and group of 4 channels: (c0, c2), (c1, c3) */
    static const int order[4] = {0, 2, 1, 3};
    for (int t = 0; t < k * k; ++t)
        for (int g = 0; g < c / 4; ++g)
            for (int j = 0; j < 4; ++j) wdw[(t * (c / 4) + g) * 4 + j] = filter[t * c + 4 * g + order[j]];
    te_dsp_conv_params d = dsp_geometry(&p, mode);
    te_dwconv2d_s8(&p, in, filter, bias, mult, shift, want);
    dw_modes[mode](&d, in, wdw, rq, got, (int8_t *)scratch);
    TE_CHECK_S8(got, want, n_out(&p));
}

static void test_dw3(int mode, int in_hw, int c, int pad) {
    te_conv_params p = rand_geometry(in_hw, c, c, 3, 1, 1, pad);
    pick_range(mode, &p.out_offset, &p.act_min, &p.act_max);
    te_rand_s8(in, p.batches * in_hw * in_hw * c, -128, 127);
    te_rand_s8(filter, 9 * c, -127, 127);
    rand_quant(c, mode);
    make_rq(c, bias, p.out_offset, mode);
    te_dsp_conv_params d = dsp_geometry(&p, mode);
    te_dwconv2d_s8(&p, in, filter, bias, mult, shift, want);
    dw3_modes[mode](&d, in, filter, rq, got, (int8_t *)scratch);
    TE_CHECK_S8(got, want, n_out(&p));
}

static void test_fc(int mode, int batches, int depth, int nout) {
    te_fc_params p;
    memset(&p, 0, sizeof p);
    p.batches = batches;
    p.in_depth = depth;
    p.out_depth = nout;
    p.in_offset = te_rand_range(-127, 128);
    p.per_channel = 1;
    pick_range(mode, &p.out_offset, &p.act_min, &p.act_max);
    const int kpad = (depth + 3) / 4 * 4;
    te_rand_s8(in, batches * depth, -128, 127);
    te_rand_s8(filter, nout * depth, -127, 127);
    rand_quant(nout, mode);
    int32_t folded[MAXC];
    memset(wpad, 0, sizeof wpad);
    for (int o = 0; o < nout; ++o) {
        wsum[o] = 0;
        for (int i = 0; i < depth; ++i) wsum[o] += filter[o * depth + i];
        memcpy(wpad + o * kpad, filter + o * depth, (size_t)depth);
        folded[o] = bias[o] + p.in_offset * wsum[o];
    }
    make_rq(nout, folded, p.out_offset, mode);
    te_dsp_fc_params d = {batches, depth, nout, kpad, 0, mode, p.act_min, p.act_max};
    te_fc_s8(&p, in, filter, bias, mult, shift, wsum, want);
    fc_modes[mode](&d, in, wpad, rq_fc, got);
    TE_CHECK_S8(got, want, batches * nout);
}

/* te_requant's exact rows against the independent reference of te_test.h, over the whole int32 range of
 * accumulators and every shift TFLM can give, with a fast-row left shift that the exact path must ignore. */
static void test_requant_exact(void) {
    static const int32_t edge[] = {0, 1, -1, INT32_MAX, INT32_MIN, 1 << 30, -(1 << 30), 3 << 29, 1 << 29};
    for (int i = 0; i < 200000; ++i) {
        const int32_t acc = i < 9 * 64 ? edge[i % 9] : (int32_t)te_rand();
        const int32_t mult = i % 7 == 0 ? 0 : (i % 11 == 0 ? INT32_MAX : te_rand_range(1 << 30, INT32_MAX));
        const int32_t shift = te_rand_range(-31, 31), zp = te_rand_range(-128, 127);
        const int32_t amin = te_rand_range(-128, 127), amax = te_rand_range(amin, 127);
        const int64_t v = (int64_t)ref_requant(acc, mult, shift) + zp;
        if (v > INT32_MAX || v < INT32_MIN) continue;  /* TFLM's int32 addition would overflow */
        exact_row(0, 0, mult, shift, zp, 0);
        const int8_t want = ref_clamp((int32_t)v, amin, amax);
        TE_CHECK_EQ(te_requant(acc, &rq[0], i & 3, TE_MODE_EXACT, amin, amax), want);
        TE_CHECK_EQ(te_requant(acc, &rq[0], 0, TE_MODE_EXACT | TE_MODE_CORR | TE_MODE_CLAMP, amin, amax), want);
        TE_CHECK_EQ(te_requant_fc(acc, &rq_fc[0], i & 3, TE_MODE_EXACT, amin, amax), want);
    }
}

/* te_dwconv3x3 with a layer left shift of 1 (folded into its int16 weights): exact rows store 2^(shift - 1)
 * (target.py's lsh_in_acc), here for a dead channel and left shifts 2 and 3. */
static void test_dw3_lsh(int mode) {
    const int c = 7;
    te_conv_params p = rand_geometry(6, c, c, 3, 1, 1, 1);
    pick_range(mode, &p.out_offset, &p.act_min, &p.act_max);
    te_rand_s8(in, p.batches * 6 * 6 * c, -128, 127);
    te_rand_s8(filter, 9 * c, -2, 2);
    for (int ch = 0; ch < c; ++ch) {
        bias[ch] = te_rand_range(-200, 200);
        mult[ch] = te_rand_range(1 << 30, INT32_MAX);
        shift[ch] = 1;
        if (is_exact(ch, mode)) {
            shift[ch] = ch == 1 ? 0 : 1 + ch / 3;
            if (ch == 1) mult[ch] = 0;
        }
        rq[ch].bias = bias[ch];
        rq[ch].m2 = (int32_t)((uint32_t)mult[ch] * 2u);
        rq[ch].k = (int16_t)(1 + p.out_offset * 2);
        rq[ch].s1 = 1;
        if (is_exact(ch, mode)) exact_row(ch, bias[ch], mult[ch], shift[ch], p.out_offset, 1);
    }
    te_dsp_conv_params d = dsp_geometry(&p, mode);
    d.lsh = 1;
    te_dwconv2d_s8(&p, in, filter, bias, mult, shift, want);
    dw3_modes[mode](&d, in, filter, rq, got, (int8_t *)scratch);
    TE_CHECK_S8(got, want, n_out(&p));
}

/* te_conv2d_s8_dsp_pxN (filter rows padded to 8 bytes) against te_conv2d_s8, every mode and block size. */
typedef void (*px_fn)(const te_dsp_conv_params *, const int8_t *, const int8_t *, const te_rq *, int8_t *, int8_t *);
static const px_fn px_kernels[3][8] = {
    {te_conv2d_s8_dsp_px4_m0, te_conv2d_s8_dsp_px4_m1, te_conv2d_s8_dsp_px4_m2, te_conv2d_s8_dsp_px4_m3,
     te_conv2d_s8_dsp_px4_m4, te_conv2d_s8_dsp_px4_m5, te_conv2d_s8_dsp_px4_m6, te_conv2d_s8_dsp_px4_m7},
    {te_conv2d_s8_dsp_px5_m0, te_conv2d_s8_dsp_px5_m1, te_conv2d_s8_dsp_px5_m2, te_conv2d_s8_dsp_px5_m3,
     te_conv2d_s8_dsp_px5_m4, te_conv2d_s8_dsp_px5_m5, te_conv2d_s8_dsp_px5_m6, te_conv2d_s8_dsp_px5_m7},
    {te_conv2d_s8_dsp_px6_m0, te_conv2d_s8_dsp_px6_m1, te_conv2d_s8_dsp_px6_m2, te_conv2d_s8_dsp_px6_m3,
     te_conv2d_s8_dsp_px6_m4, te_conv2d_s8_dsp_px6_m5, te_conv2d_s8_dsp_px6_m6, te_conv2d_s8_dsp_px6_m7}};

static void test_conv_px(int mode, int in_hw, int in_c, int out_c, int k, int stride, int dil, int pad) {
    te_conv_params p = rand_geometry(in_hw, in_c, out_c, k, stride, dil, pad);
    pick_range(mode, &p.out_offset, &p.act_min, &p.act_max);
    const int patch = k * k * in_c, kpad = (patch + 7) / 8 * 8;
    te_rand_s8(in, p.batches * in_hw * in_hw * in_c, -128, 127);
    te_rand_s8(filter, out_c * patch, -127, 127);
    rand_quant(out_c, mode);
    int32_t folded[MAXC];
    memset(wpad, 0, sizeof wpad);
    for (int oc = 0; oc < out_c; ++oc) {
        wsum[oc] = 0;
        for (int i = 0; i < patch; ++i) wsum[oc] += filter[oc * patch + i];
        memcpy(wpad + oc * kpad, filter + oc * patch, (size_t)patch);
        folded[oc] = bias[oc] + p.in_offset * wsum[oc];
    }
    make_rq(out_c, folded, p.out_offset, mode);
    te_dsp_conv_params d = dsp_geometry(&p, mode);
    d.kpad = (int16_t)kpad;
    d.pointwise = k == 1 && stride == 1 && pad == 0 && in_c % 4 == 0;
    te_conv2d_s8(&p, in, filter, bias, mult, shift, wsum, want);
    for (int b = 0; b < 3; ++b) {
        memset(got, 0x55, sizeof got);
        px_kernels[b][mode](&d, in, wpad, rq, got, (int8_t *)scratch);
        TE_CHECK_S8(got, want, n_out(&p));
    }
}

/* te_dwconv3x3s2 (kpad: output rows a band, the last band shorter; 0: the whole plane) and te_dwconv3x3v2
 * (kpad bit 0: walked transposed; bit 1: four channels widened at once) against te_dwconv2d_s8, every mode: odd and even widths (an odd row's extra sum
 * reads past its row), SAME and VALID, dead, tiny and left-shifted channels on exact rows. */
static const conv_fn dw3s2_modes[8] = {te_dwconv3x3s2_s8_dsp_m0, te_dwconv3x3s2_s8_dsp_m1, te_dwconv3x3s2_s8_dsp_m2,
                                       te_dwconv3x3s2_s8_dsp_m3, te_dwconv3x3s2_s8_dsp_m4, te_dwconv3x3s2_s8_dsp_m5,
                                       te_dwconv3x3s2_s8_dsp_m6, te_dwconv3x3s2_s8_dsp_m7};
static const conv_fn dw3v2_modes[8] = {te_dwconv3x3v2_s8_dsp_m0, te_dwconv3x3v2_s8_dsp_m1, te_dwconv3x3v2_s8_dsp_m2,
                                       te_dwconv3x3v2_s8_dsp_m3, te_dwconv3x3v2_s8_dsp_m4, te_dwconv3x3v2_s8_dsp_m5,
                                       te_dwconv3x3v2_s8_dsp_m6, te_dwconv3x3v2_s8_dsp_m7};

static void test_dw3_plane(int mode, int in_hw, int c, int pad, int stride, int kpad) {
    te_conv_params p = rand_geometry(in_hw, c, c, 3, stride, 1, pad);
    pick_range(mode, &p.out_offset, &p.act_min, &p.act_max);
    te_rand_s8(in, p.batches * in_hw * in_hw * c, -128, 127);
    te_rand_s8(filter, 9 * c, -127, 127);
    rand_quant(c, mode);
    make_rq(c, bias, p.out_offset, mode);
    te_dsp_conv_params d = dsp_geometry(&p, mode);
    d.kpad = (int16_t)kpad;
    te_dwconv2d_s8(&p, in, filter, bias, mult, shift, want);
    memset(got, 0x55, sizeof got);
    memset(scratch, 0xA5, sizeof scratch);  /* the buffers' padding must not depend on what was there */
    (stride == 2 ? dw3s2_modes : dw3v2_modes)[mode](&d, in, filter, rq, got, (int8_t *)scratch);
    TE_CHECK_S8(got, want, n_out(&p));
}

int main(void) {
    test_requant_exact();
    for (int mode = 0; mode < 8; ++mode) {
        test_dw3_lsh(mode);
        test_conv(mode, 7, 3, 5, 3, 1, 1, 1);   /* im2col with padding, odd patch (27 -> kpad 28) */
        test_conv(mode, 9, 8, 6, 3, 2, 2, 2);   /* stride and dilation */
        test_conv(mode, 5, 16, 9, 1, 1, 1, 0);  /* pointwise; 25 pixels: a partial group of 4 */
        test_conv(mode, 6, 32, 4, 3, 1, 1, 0);  /* whole-row runs of 96 bytes (memcpy) */
        test_dw(mode, 8, 12, 3, 2, 1, 1);
        test_dw(mode, 7, 8, 5, 1, 1, 2);
        test_dw(mode, 9, 4, 3, 1, 2, 2);
        test_dw3(mode, 6, 5, 1);                /* even width, any channel count */
        test_dw3(mode, 7, 3, 1);                /* odd width */
        test_dw3(mode, 5, 16, 0);               /* VALID */
        test_fc(mode, 1, 64, 10);
        test_fc(mode, 2, 37, 7);                /* tail of the depth and an odd output count */
        test_conv_px(mode, 7, 3, 5, 3, 1, 1, 1);   /* edges, patch 27 -> kpad 32 */
        test_conv_px(mode, 9, 8, 6, 3, 2, 2, 2);   /* stride and dilation */
        test_conv_px(mode, 5, 12, 19, 1, 1, 1, 0); /* pointwise, in_c % 8 == 4, partial channel chunk */
        test_conv_px(mode, 6, 32, 4, 3, 1, 1, 0);  /* whole rows of 96 bytes */
        test_conv_px(mode, 8, 5, 17, 2, 1, 1, 0);  /* rows of 10 bytes, 49 pixels: partial blocks */
        test_conv_px(mode, 9, 4, 7, 5, 1, 1, 2);   /* rows expanded in place, one zero k-step past the patch */
        test_conv_px(mode, 10, 16, 9, 3, 2, 1, 1); /* rows expanded in place, stride 2, edges gathered */
        test_dw3_plane(mode, 9, 5, 1, 2, 0);       /* stride 2, odd width (5), whole plane */
        test_dw3_plane(mode, 10, 8, 0, 2, 3);      /* VALID, 4 x 4 in bands of 3 and 1 */
        test_dw3_plane(mode, 8, 3, 1, 2, 1);       /* one output row a band, a padding row in the last */
        test_dw3_plane(mode, 8, 6, 1, 1, 0);       /* stride 1 v2, row by row, even width */
        test_dw3_plane(mode, 7, 5, 1, 1, 1);       /* stride 1 v2, transposed, odd */
        test_dw3_plane(mode, 5, 16, 0, 1, 0);      /* stride 1 v2, VALID, odd (3) */
        test_dw3_plane(mode, 7, 12, 1, 1, 2);      /* stride 1 v2, four channels widened at once, odd */
        test_dw3_plane(mode, 6, 8, 0, 1, 3);       /* the same transposed, VALID, even */
    }
    return te_report("test_dsp");
}
