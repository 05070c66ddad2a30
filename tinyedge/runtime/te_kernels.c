/* tinyedge int8 kernels (portable C99). Each one computes exactly what TensorFlow Lite Micro's
 * reference kernel computes, including gemmlowp's double-rounding requantization, so outputs
 * are bit-identical to the tflite_micro interpreter.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels.h"

#include <string.h>

#define TE_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TE_MAX(a, b) ((a) > (b) ? (a) : (b))

/* SaturatingRoundingDoublingHighMul: (a*b*2 + 2^31 rounding) >> 32, saturating INT32_MIN^2. */
int32_t te_srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
    /* C99 division truncates toward zero, as gemmlowp requires. */
    return (int32_t)((ab + nudge) / (1LL << 31));
}

/* RoundingDivideByPOT: round-half-away-from-zero division by 2^exponent. */
int32_t te_rdivpot(int32_t x, int exponent) {
    if (exponent == 0) return x;
    const int32_t mask = (int32_t)((1LL << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* MultiplyByQuantizedMultiplier (TFLM default, double rounding). */
int32_t te_mul_by_qm(int32_t x, int32_t multiplier, int shift) {
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return te_rdivpot(te_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

static inline int8_t te_clamp_s8(int32_t v, int32_t lo, int32_t hi) {
    return (int8_t)TE_MIN(TE_MAX(v, lo), hi);
}

#define TE_PATCH_MAX 512 /* bytes of one pixel's window gathered on the stack; larger windows go direct */

/* sum((x + off) w) = sum(x w) + off sum(w), exact mod 2^32. sum(w) over a whole filter (wsum) is a
 * generation-time constant, so interior pixels run a pure int8 dot product (which compilers vectorise);
 * only pixels whose window hangs over the padding sum their in-bounds weights. */
void te_conv2d_s8(const te_conv_params *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                  const int32_t *mult, const int32_t *shift, const int32_t *wsum, int8_t *out) {
    const int in_c = p->in_c, out_c = p->out_c;
    const int32_t in_offset = p->in_offset;
    const int32_t patch_len = (int32_t)p->k_h * p->k_w * in_c;
    if (patch_len <= TE_PATCH_MAX) {
        /* Gather each pixel's window once (im2col for one pixel), writing the input zero point where the
         * window hangs over the padding: (zp + in_offset) * w = 0 there, exactly as TFLM skips those taps,
         * so every output channel is one dot product over the patch plus in_offset * wsum. */
        int8_t patch[TE_PATCH_MAX];
        const int8_t zero_point = (int8_t)(-in_offset);
        for (int b = 0; b < p->batches; ++b) {
            const int8_t *in_b = in + (int32_t)b * p->in_h * p->in_w * in_c;
            for (int oy = 0; oy < p->out_h; ++oy) {
                const int iy0 = oy * p->stride_h - p->pad_h;
                for (int ox = 0; ox < p->out_w; ++ox) {
                    const int ix0 = ox * p->stride_w - p->pad_w;
                    int8_t *dst = patch;
                    for (int ky = 0; ky < p->k_h; ++ky) {
                        const int iy = iy0 + ky * p->dil_h;
                        for (int kx = 0; kx < p->k_w; ++kx, dst += in_c) {
                            const int ix = ix0 + kx * p->dil_w;
                            const int outside = iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w;
                            if (in_c == 1) { /* single-channel inputs (e.g. MFCC, images): no call per byte */
                                *dst = outside ? zero_point : in_b[(int32_t)iy * p->in_w + ix];
                            } else if (outside) {
                                memset(dst, zero_point, (size_t)in_c);
                            } else {
                                memcpy(dst, in_b + ((int32_t)iy * p->in_w + ix) * in_c, (size_t)in_c);
                            }
                        }
                    }
                    for (int oc = 0; oc < out_c; ++oc) {
                        const int8_t *f = filter + (int32_t)oc * patch_len;
                        int32_t acc = 0;
                        for (int32_t i = 0; i < patch_len; ++i) acc += (int32_t)patch[i] * (int32_t)f[i];
                        acc = (int32_t)((uint32_t)acc + (uint32_t)wsum[oc] * (uint32_t)in_offset);
                        if (bias) acc += bias[oc];
                        acc = te_mul_by_qm(acc, mult[oc], shift[oc]) + p->out_offset;
                        *out++ = te_clamp_s8(acc, p->act_min, p->act_max);
                    }
                }
            }
        }
        return;
    }
    const int32_t k_span_h = (p->k_h - 1) * p->dil_h, k_span_w = (p->k_w - 1) * p->dil_w;
    if (p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0 && p->pad_w == 0) {
        /* Pointwise (1x1) convolution is a matrix product: no window, no padding, every pixel interior. */
        const int32_t pixels = (int32_t)p->batches * p->out_h * p->out_w;
        for (int32_t px = 0; px < pixels; ++px) {
            const int8_t *x = in + px * in_c;
            for (int oc = 0; oc < out_c; ++oc) {
                const int8_t *w = filter + (int32_t)oc * in_c;
                int32_t acc = 0;
                for (int ic = 0; ic < in_c; ++ic) acc += (int32_t)x[ic] * (int32_t)w[ic];
                acc = (int32_t)((uint32_t)acc + (uint32_t)wsum[oc] * (uint32_t)in_offset);
                if (bias) acc += bias[oc];
                acc = te_mul_by_qm(acc, mult[oc], shift[oc]) + p->out_offset;
                *out++ = te_clamp_s8(acc, p->act_min, p->act_max);
            }
        }
        return;
    }
    for (int b = 0; b < p->batches; ++b) {
        const int8_t *in_b = in + (int32_t)b * p->in_h * p->in_w * in_c;
        for (int oy = 0; oy < p->out_h; ++oy) {
            const int iy0 = oy * p->stride_h - p->pad_h;
            for (int ox = 0; ox < p->out_w; ++ox) {
                const int ix0 = ox * p->stride_w - p->pad_w;
                const int interior = iy0 >= 0 && iy0 + k_span_h < p->in_h && ix0 >= 0 && ix0 + k_span_w < p->in_w;
                /* With no dilation along x, the in-bounds taps of one filter row are one contiguous run
                 * of (kx1 - kx0) * in_c bytes in both the input row and the filter row. */
                const int kx0 = p->dil_w == 1 ? TE_MAX(0, -ix0) : 0;
                const int kx1 = p->dil_w == 1 ? TE_MIN(p->k_w, p->in_w - ix0) : p->k_w;
                for (int oc = 0; oc < out_c; ++oc) {
                    const int8_t *f = filter + (int32_t)oc * p->k_h * p->k_w * in_c;
                    int32_t acc = 0, ws = interior ? wsum[oc] : 0;
                    for (int ky = 0; ky < p->k_h; ++ky) {
                        const int iy = iy0 + ky * p->dil_h;
                        if (iy < 0 || iy >= p->in_h) continue;
                        const int8_t *row = in_b + (int32_t)iy * p->in_w * in_c;
                        const int8_t *frow = f + (int32_t)ky * p->k_w * in_c;
                        if (p->dil_w == 1) {
                            const int8_t *ip = row + (int32_t)(ix0 + kx0) * in_c;
                            const int8_t *fp = frow + (int32_t)kx0 * in_c;
                            const int32_t len = (int32_t)(kx1 - kx0) * in_c;
                            for (int32_t i = 0; i < len; ++i) acc += (int32_t)ip[i] * (int32_t)fp[i];
                            if (!interior) {
                                for (int32_t i = 0; i < len; ++i) ws += fp[i];
                            }
                            continue;
                        }
                        for (int kx = 0; kx < p->k_w; ++kx) {
                            const int ix = ix0 + kx * p->dil_w;
                            if (ix < 0 || ix >= p->in_w) continue;
                            const int8_t *ip = row + (int32_t)ix * in_c;
                            const int8_t *fp = frow + (int32_t)kx * in_c;
                            for (int ic = 0; ic < in_c; ++ic) acc += (int32_t)ip[ic] * (int32_t)fp[ic];
                            if (!interior) {
                                for (int ic = 0; ic < in_c; ++ic) ws += fp[ic];
                            }
                        }
                    }
                    acc = (int32_t)((uint32_t)acc + (uint32_t)ws * (uint32_t)in_offset);
                    if (bias) acc += bias[oc];
                    acc = te_mul_by_qm(acc, mult[oc], shift[oc]) + p->out_offset;
                    *out++ = te_clamp_s8(acc, p->act_min, p->act_max);
                }
            }
        }
    }
}

/* Channels are accumulated in blocks: every tap then reads a contiguous run of input and filter
 * bytes (channels are innermost in NHWC and in the [1,kh,kw,out_c] filter), which compilers vectorise
 * on the host and which costs far fewer loads and loop tests than one channel at a time on Cortex-M. */
#define TE_DW_BLOCK 32

void te_dwconv2d_s8(const te_conv_params *p, const int8_t *in, const int8_t *filter,
                    const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out) {
    const int in_c = p->in_c, out_c = p->out_c, dm = p->depth_mult;
    const int32_t in_offset = p->in_offset;
    int32_t acc[TE_DW_BLOCK];
    for (int b = 0; b < p->batches; ++b) {
        const int8_t *in_b = in + (int32_t)b * p->in_h * p->in_w * in_c;
        for (int oy = 0; oy < p->out_h; ++oy) {
            const int iy0 = oy * p->stride_h - p->pad_h;
            for (int ox = 0; ox < p->out_w; ++ox) {
                const int ix0 = ox * p->stride_w - p->pad_w;
                for (int oc0 = 0; oc0 < out_c; oc0 += TE_DW_BLOCK) {
                    const int n = TE_MIN(TE_DW_BLOCK, out_c - oc0);
                    for (int i = 0; i < n; ++i) acc[i] = 0;
                    for (int ky = 0; ky < p->k_h; ++ky) {
                        const int iy = iy0 + ky * p->dil_h;
                        if (iy < 0 || iy >= p->in_h) continue;
                        for (int kx = 0; kx < p->k_w; ++kx) {
                            const int ix = ix0 + kx * p->dil_w;
                            if (ix < 0 || ix >= p->in_w) continue;
                            const int8_t *ip = in_b + ((int32_t)iy * p->in_w + ix) * in_c;
                            const int8_t *fp = filter + ((int32_t)ky * p->k_w + kx) * out_c + oc0;
                            if (dm == 1) {
                                const int8_t *xp = ip + oc0;
                                for (int i = 0; i < n; ++i) acc[i] += ((int32_t)xp[i] + in_offset) * (int32_t)fp[i];
                            } else {
                                for (int i = 0; i < n; ++i) {
                                    acc[i] += ((int32_t)ip[(oc0 + i) / dm] + in_offset) * (int32_t)fp[i];
                                }
                            }
                        }
                    }
                    int8_t *op = out + ((int32_t)(b * p->out_h + oy) * p->out_w + ox) * out_c + oc0;
                    for (int i = 0; i < n; ++i) {
                        const int oc = oc0 + i;
                        int32_t v = acc[i] + (bias ? bias[oc] : 0);
                        v = te_mul_by_qm(v, mult[oc], shift[oc]) + p->out_offset;
                        op[i] = te_clamp_s8(v, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}

/* sum((x + a)(w + b)) = sum(x w) + a sum(w) + b sum(x) + n a b, exact mod 2^32; int8 weights are
 * symmetric (b = 0), so with the generation-time wsum the inner loop is a pure int8 dot product. */
void te_fc_s8(const te_fc_params *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
              const int32_t *mult, const int32_t *shift, const int32_t *wsum, int8_t *out) {
    const int32_t depth = p->in_depth;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = in + b * depth;
        uint32_t xsum = 0;
        if (p->filter_offset != 0) {
            for (int32_t d = 0; d < depth; ++d) xsum += (uint32_t)(int32_t)x[d];
        }
        for (int32_t o = 0; o < p->out_depth; ++o) {
            const int8_t *w = filter + o * depth;
            int32_t dot = 0;
            for (int32_t d = 0; d < depth; ++d) dot += (int32_t)x[d] * (int32_t)w[d];
            uint32_t acc = (uint32_t)dot + (uint32_t)p->in_offset * (uint32_t)wsum[o];
            acc += (uint32_t)p->filter_offset * xsum +
                   (uint32_t)depth * (uint32_t)p->in_offset * (uint32_t)p->filter_offset;
            int32_t v = (int32_t)acc;
            if (bias) v += bias[o];
            const int32_t c = p->per_channel ? o : 0;
            v = te_mul_by_qm(v, mult[c], shift[c]) + p->out_offset;
            out[b * p->out_depth + o] = te_clamp_s8(v, p->act_min, p->act_max);
        }
    }
}

/* Pools walk the window's taps outside and a block of channels inside, so each tap reads a contiguous
 * run of channels (NHWC) instead of recomputing a strided address per element. */
void te_maxpool_s8(const te_pool_params *p, const int8_t *in, int8_t *out) {
    const int ch = p->ch;
    int32_t mx[TE_DW_BLOCK];
    for (int b = 0; b < p->batches; ++b) {
        const int8_t *in_b = in + (int32_t)b * p->in_h * p->in_w * ch;
        for (int oy = 0; oy < p->out_h; ++oy) {
            const int iy0 = oy * p->stride_h - p->pad_h;
            const int ky0 = TE_MAX(0, -iy0), ky1 = TE_MIN(p->k_h, p->in_h - iy0);
            for (int ox = 0; ox < p->out_w; ++ox) {
                const int ix0 = ox * p->stride_w - p->pad_w;
                const int kx0 = TE_MAX(0, -ix0), kx1 = TE_MIN(p->k_w, p->in_w - ix0);
                for (int c0 = 0; c0 < ch; c0 += TE_DW_BLOCK) {
                    const int n = TE_MIN(TE_DW_BLOCK, ch - c0);
                    for (int i = 0; i < n; ++i) mx[i] = -128;
                    for (int ky = ky0; ky < ky1; ++ky) {
                        for (int kx = kx0; kx < kx1; ++kx) {
                            const int8_t *ip = in_b + ((int32_t)(iy0 + ky) * p->in_w + ix0 + kx) * ch + c0;
                            for (int i = 0; i < n; ++i) mx[i] = TE_MAX(mx[i], (int32_t)ip[i]);
                        }
                    }
                    for (int i = 0; i < n; ++i) *out++ = te_clamp_s8(mx[i], p->act_min, p->act_max);
                }
            }
        }
    }
}

void te_avgpool_s8(const te_pool_params *p, const int8_t *in, int8_t *out) {
    const int ch = p->ch;
    int32_t acc[TE_DW_BLOCK];
    for (int b = 0; b < p->batches; ++b) {
        const int8_t *in_b = in + (int32_t)b * p->in_h * p->in_w * ch;
        for (int oy = 0; oy < p->out_h; ++oy) {
            const int iy0 = oy * p->stride_h - p->pad_h;
            const int ky0 = TE_MAX(0, -iy0), ky1 = TE_MIN(p->k_h, p->in_h - iy0);
            for (int ox = 0; ox < p->out_w; ++ox) {
                const int ix0 = ox * p->stride_w - p->pad_w;
                const int kx0 = TE_MAX(0, -ix0), kx1 = TE_MIN(p->k_w, p->in_w - ix0);
                const int32_t count = (int32_t)(ky1 - ky0) * (kx1 - kx0);
                for (int c0 = 0; c0 < ch; c0 += TE_DW_BLOCK) {
                    const int n = TE_MIN(TE_DW_BLOCK, ch - c0);
                    for (int i = 0; i < n; ++i) acc[i] = 0;
                    for (int ky = ky0; ky < ky1; ++ky) {
                        for (int kx = kx0; kx < kx1; ++kx) {
                            const int8_t *ip = in_b + ((int32_t)(iy0 + ky) * p->in_w + ix0 + kx) * ch + c0;
                            for (int i = 0; i < n; ++i) acc[i] += ip[i];
                        }
                    }
                    for (int i = 0; i < n; ++i) {
                        int32_t v = acc[i];
                        if (count == 0) {
                            v = 0;
                        } else {
                            /* Round half away from zero, as TFLM does. */
                            v = v > 0 ? (v + count / 2) / count : (v - count / 2) / count;
                        }
                        *out++ = te_clamp_s8(v, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}

/* ---- gemmlowp fixed-point pieces used by SOFTMAX ---- */

/* SaturatingRoundingMultiplyByPOT with a positive exponent (saturating left shift). */
static int32_t te_sat_shl(int32_t x, int exponent) {
    const int32_t threshold = (int32_t)((1LL << (31 - exponent)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(x) for x in [-1/4, 0), Q0.31 in and out. */
static int32_t te_exp_quarter(int32_t a) {
    const int32_t constant_term = 1895147668;   /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = a + (1 << 28);           /* a + 1/8 */
    const int32_t x2 = te_srdhm(x, x);
    const int32_t x3 = te_srdhm(x2, x);
    const int32_t x4 = te_srdhm(x2, x2);
    const int32_t x4_over_4 = te_rdivpot(x4, 2);
    const int32_t poly = te_rdivpot(te_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + te_srdhm(constant_term, x + poly);
}

/* exp(a) for a <= 0 given in Q5.26; result Q0.31 (gemmlowp exp_on_negative_values). */
static int32_t te_exp_on_negative_values_q5(int32_t a) {
    const int frac_bits = 26;
    const int32_t one_quarter = 1 << (frac_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_q_minus_q = (a & mask) - one_quarter;
    int32_t result = te_exp_quarter(te_sat_shl(a_mod_q_minus_q, 5));
    const int32_t remainder = a_mod_q_minus_q - a;
    static const int32_t mults[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    for (int e = -2; e <= 4; ++e) {
        if (remainder & (1 << (frac_bits + e))) result = te_srdhm(result, mults[e + 2]);
    }
    if (a == 0) result = INT32_MAX;
    return result;
}

static int te_clz32(uint32_t x) {
    if (x == 0) return 32;
    int n = 0;
    while (!(x & 0x80000000u)) { x <<= 1; ++n; }
    return n;
}

/* 1 / (1 + x) for x in [0, 1) in Q0.31 (gemmlowp one_over_one_plus_x_for_x_in_0_1). */
static int32_t te_one_over_one_plus_x(int32_t a) {
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t c48_17 = 1515870810, cneg32_17 = -1010580540; /* Q2.29 */
    int32_t x = c48_17 + te_srdhm(half_denominator, cneg32_17);
    for (int i = 0; i < 3; ++i) {
        const int32_t hdx = te_srdhm(half_denominator, x);
        const int32_t one_minus = (1 << 29) - hdx;
        x = x + te_sat_shl(te_srdhm(x, one_minus), 2);
    }
    /* ExactMulByPot<-1> relabels Q2.29 as Q1.30 (raw unchanged); Rescale<0> then shifts left by 1. */
    return te_sat_shl(x, 1);
}

void te_softmax_s8(int32_t outer, int32_t depth, int32_t in_mult, int32_t in_left_shift,
                   int32_t diff_min, const int8_t *in, int8_t *out) {
    for (int32_t i = 0; i < outer; ++i) {
        const int8_t *x = in + i * depth;
        int8_t *y = out + i * depth;
        int32_t mx = -128;
        for (int32_t c = 0; c < depth; ++c) mx = TE_MAX(mx, (int32_t)x[c]);
        int32_t sum_of_exps = 0; /* Q12.19 */
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - mx;
            if (diff >= diff_min) {
                const int32_t scaled = te_srdhm((int32_t)((uint32_t)diff << in_left_shift), in_mult);
                sum_of_exps += te_rdivpot(te_exp_on_negative_values_q5(scaled), 12);
            }
        }
        const int headroom_plus_one = te_clz32((uint32_t)sum_of_exps);
        const int num_bits_over_unit = 12 - headroom_plus_one;
        const int32_t shifted_sum_minus_one =
            (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31));
        const int32_t shifted_scale = te_one_over_one_plus_x(shifted_sum_minus_one);
        const int exponent = num_bits_over_unit + 31 - 8;
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - mx;
            if (diff >= diff_min) {
                const int32_t scaled = te_srdhm((int32_t)((uint32_t)diff << in_left_shift), in_mult);
                const int32_t e = te_exp_on_negative_values_q5(scaled);
                const int32_t unsat = te_rdivpot(te_srdhm(shifted_scale, e), exponent);
                y[c] = te_clamp_s8(unsat - 128, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
}

void te_copy_s8(int32_t n, const int8_t *in, int8_t *out) {
    if (in != out) memmove(out, in, (size_t)n);
}
