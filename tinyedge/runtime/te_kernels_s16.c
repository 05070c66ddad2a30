/* tinyedge int16x8 kernels (portable C99), bit-exact with TensorFlow Lite Micro's reference kernels for
 * 16-bit activations and 8-bit weights: products of int16 inputs and int8 weights summed in int64 with an
 * int64 bias, then TFLM's int64 MultiplyByQuantizedMultiplier (a 16-bit multiplier, one rounding shift).
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels_s16.h"

#define TE_S16_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TE_S16_MAX(a, b) ((a) > (b) ? (a) : (b))

static inline int16_t te_clamp_s16(int32_t v, int32_t lo, int32_t hi) {
    return (int16_t)(v < lo ? lo : (v > hi ? hi : v));
}

int32_t te_mul_by_qm64(int64_t x, int32_t multiplier, int shift) {
    const int32_t reduced = multiplier < 0x7FFF0000 ? ((multiplier + (1 << 15)) >> 16) : 0x7FFF;
    const int total = 15 - shift;
    const int64_t r = x * (int64_t)reduced + ((int64_t)1 << (total - 1));
    return (int32_t)(r >> total); /* truncated to int32 as TFLM does (scaling keeps it in range) */
}

void te_conv2d_s16(const te_conv_params *p, const void *in, const int8_t *filter, const int64_t *bias,
                   const int32_t *mult, const int32_t *shift, void *out) {
    const int16_t *x = (const int16_t *)in;
    int16_t *y = (int16_t *)out;
    const int in_c = p->in_c, out_c = p->out_c;
    const int32_t fstride = (int32_t)p->k_h * p->k_w * in_c;
    for (int b = 0; b < p->batches; ++b) {
        const int16_t *in_b = x + (int32_t)b * p->in_h * p->in_w * in_c;
        for (int oy = 0; oy < p->out_h; ++oy) {
            const int iy0 = oy * p->stride_h - p->pad_h;
            for (int ox = 0; ox < p->out_w; ++ox) {
                const int ix0 = ox * p->stride_w - p->pad_w;
                for (int oc = 0; oc < out_c; ++oc) {
                    const int8_t *f = filter + (int32_t)oc * fstride;
                    int64_t acc = 0;
                    for (int ky = 0; ky < p->k_h; ++ky) {
                        const int iy = iy0 + ky * p->dil_h;
                        if (iy < 0 || iy >= p->in_h) continue;
                        for (int kx = 0; kx < p->k_w; ++kx) {
                            const int ix = ix0 + kx * p->dil_w;
                            if (ix < 0 || ix >= p->in_w) continue;
                            const int16_t *ip = in_b + ((int32_t)iy * p->in_w + ix) * in_c;
                            const int8_t *fp = f + ((int32_t)ky * p->k_w + kx) * in_c;
                            for (int ic = 0; ic < in_c; ++ic) acc += (int32_t)ip[ic] * (int32_t)fp[ic];
                        }
                    }
                    if (bias) acc += bias[oc];
                    *y++ = te_clamp_s16(te_mul_by_qm64(acc, mult[oc], shift[oc]), p->act_min, p->act_max);
                }
            }
        }
    }
}

void te_dwconv2d_s16(const te_conv_params *p, const void *in, const int8_t *filter, const int64_t *bias,
                     const int32_t *mult, const int32_t *shift, void *out) {
    const int16_t *x = (const int16_t *)in;
    int16_t *y = (int16_t *)out;
    const int in_c = p->in_c, out_c = p->out_c, dm = p->depth_mult;
    for (int b = 0; b < p->batches; ++b) {
        const int16_t *in_b = x + (int32_t)b * p->in_h * p->in_w * in_c;
        for (int oy = 0; oy < p->out_h; ++oy) {
            const int iy0 = oy * p->stride_h - p->pad_h;
            for (int ox = 0; ox < p->out_w; ++ox) {
                const int ix0 = ox * p->stride_w - p->pad_w;
                for (int oc = 0; oc < out_c; ++oc) {
                    const int ic = oc / dm;
                    int64_t acc = 0;
                    for (int ky = 0; ky < p->k_h; ++ky) {
                        const int iy = iy0 + ky * p->dil_h;
                        if (iy < 0 || iy >= p->in_h) continue;
                        for (int kx = 0; kx < p->k_w; ++kx) {
                            const int ix = ix0 + kx * p->dil_w;
                            if (ix < 0 || ix >= p->in_w) continue;
                            acc += (int32_t)in_b[((int32_t)iy * p->in_w + ix) * in_c + ic] *
                                   (int32_t)filter[((int32_t)ky * p->k_w + kx) * out_c + oc];
                        }
                    }
                    if (bias) acc += bias[oc];
                    *y++ = te_clamp_s16(te_mul_by_qm64(acc, mult[oc], shift[oc]), p->act_min, p->act_max);
                }
            }
        }
    }
}

void te_fc_s16(const te_fc_params *p, const void *in, const int8_t *filter, const int64_t *bias,
               const int32_t *mult, const int32_t *shift, void *out) {
    const int16_t *x = (const int16_t *)in;
    int16_t *y = (int16_t *)out;
    const int32_t depth = p->in_depth;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int16_t *xb = x + b * depth;
        for (int32_t o = 0; o < p->out_depth; ++o) {
            const int8_t *w = filter + o * depth;
            int64_t acc = 0;
            for (int32_t d = 0; d < depth; ++d) acc += ((int32_t)w[d] + p->filter_offset) * (int32_t)xb[d];
            if (bias) acc += bias[o];
            const int k = p->per_channel ? (int)o : 0;
            *y++ = te_clamp_s16(te_mul_by_qm64(acc, mult[k], shift[k]), p->act_min, p->act_max);
        }
    }
}

static void te_pool_s16(const te_pool_params *p, const void *in, void *out, int average) {
    const int16_t *x = (const int16_t *)in;
    int16_t *y = (int16_t *)out;
    const int ch = p->ch;
    for (int b = 0; b < p->batches; ++b) {
        const int16_t *in_b = x + (int32_t)b * p->in_h * p->in_w * ch;
        for (int oy = 0; oy < p->out_h; ++oy) {
            const int iy0 = oy * p->stride_h - p->pad_h;
            const int ky0 = TE_S16_MAX(0, -iy0), ky1 = TE_S16_MIN(p->k_h, p->in_h - iy0);
            for (int ox = 0; ox < p->out_w; ++ox) {
                const int ix0 = ox * p->stride_w - p->pad_w;
                const int kx0 = TE_S16_MAX(0, -ix0), kx1 = TE_S16_MIN(p->k_w, p->in_w - ix0);
                const int32_t count = (int32_t)(ky1 - ky0) * (kx1 - kx0);
                for (int c = 0; c < ch; ++c) {
                    int32_t acc = average ? 0 : -32768;
                    for (int ky = ky0; ky < ky1; ++ky) {
                        for (int kx = kx0; kx < kx1; ++kx) {
                            const int32_t v = in_b[((int32_t)(iy0 + ky) * p->in_w + ix0 + kx) * ch + c];
                            acc = average ? acc + v : TE_S16_MAX(acc, v);
                        }
                    }
                    if (average) {
                        /* Round half away from zero, as TFLM does; an empty window gives 0. */
                        acc = count == 0 ? 0 : (acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count);
                    }
                    *y++ = te_clamp_s16(acc, p->act_min, p->act_max);
                }
            }
        }
    }
}

void te_maxpool_s16(const te_pool_params *p, const void *in, void *out) { te_pool_s16(p, in, out, 0); }

void te_avgpool_s16(const te_pool_params *p, const void *in, void *out) { te_pool_s16(p, in, out, 1); }

static inline int16_t te_add_one_s16(const te_binary_params *p, int32_t a, int32_t b) {
    /* AddElementwise: (v + offset) << 15 through the input multipliers (MultiplyByQuantizedMultiplier-
     * SmallerThanOneExp, i.e. te_mul_by_qm with a shift <= 0), summed, through the output multiplier. */
    const int32_t sx = te_mul_by_qm((a + p->in1_offset) * (1 << p->left_shift), p->in1_mult, p->in1_shift);
    const int32_t sy = te_mul_by_qm((b + p->in2_offset) * (1 << p->left_shift), p->in2_mult, p->in2_shift);
    const int32_t r = te_mul_by_qm(sx + sy, p->out_mult, p->out_shift) + p->out_offset;
    return te_clamp_s16(r, p->act_min, p->act_max);
}

void te_binary_s16(const te_binary_params *p, const void *in1, const void *in2, void *out) {
    const int16_t *a = (const int16_t *)in1;
    const int16_t *b = (const int16_t *)in2;
    int16_t *y = (int16_t *)out;
    if (!p->broadcast) {
        for (int32_t i = 0; i < p->size; ++i) y[i] = te_add_one_s16(p, a[i], b[i]);
        return;
    }
    te_walk6 w1, w2;
    te_walk6_start(&w1, 0);
    te_walk6_start(&w2, 0);
    for (int32_t i = 0; i < p->size; ++i) {
        y[i] = te_add_one_s16(p, a[w1.off], b[w2.off]);
        te_walk6_next(&w1, p->dims, p->stride1);
        te_walk6_next(&w2, p->dims, p->stride2);
    }
}

/* TfLiteRound for float: round half away from zero (exact; no libm needed). */
static float te_s16_roundf(float x) {
    if (!(x > -8388608.0f && x < 8388608.0f)) return x; /* |x| >= 2^23 is integral already */
    float t = (float)(int32_t)x;
    const float d = x - t;
    if (d >= 0.5f) t += 1.0f;
    else if (d <= -0.5f) t -= 1.0f;
    return t;
}

void te_quantize_f32_s16(int32_t n, float scale, int32_t zero_point, const void *in, void *out) {
    const float *x = (const float *)in;
    int16_t *y = (int16_t *)out;
    for (int32_t i = 0; i < n; ++i) {
        const float r = te_s16_roundf(x[i] / scale);
        /* beyond +-65536 the zero point cannot bring the value back into range: saturate before the
         * int32 conversion, which would overflow for huge values */
        if (!(r < 65536.0f)) {
            y[i] = 32767;
        } else if (r <= -65536.0f) {
            y[i] = -32768;
        } else {
            y[i] = te_clamp_s16((int32_t)r + zero_point, -32768, 32767);
        }
    }
}

void te_dequantize_s16_f32(int32_t n, double scale, int32_t zero_point, const void *in, void *out) {
    const int16_t *x = (const int16_t *)in;
    float *y = (float *)out;
    for (int32_t i = 0; i < n; ++i) y[i] = (float)(scale * (double)((int32_t)x[i] - zero_point));
}

void te_lut_s8_s16(int32_t n, const int16_t *table, const void *in, void *out) {
    const int8_t *x = (const int8_t *)in;
    int16_t *y = (int16_t *)out;
    for (int32_t i = 0; i < n; ++i) y[i] = table[(int32_t)x[i] + 128];
}

void te_requant_s16_s8(int32_t n, int32_t mult, int32_t shift, int32_t in_zp, int32_t out_zp, const void *in,
                       void *out) {
    const int16_t *x = (const int16_t *)in;
    int8_t *y = (int8_t *)out;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t v = te_mul_by_qm((int32_t)x[i] - in_zp, mult, (int)shift) + out_zp;
        y[i] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
}

void te_requant_s16_s16(int32_t n, int32_t mult, int32_t shift, int32_t in_zp, int32_t out_zp, const void *in,
                        void *out) {
    const int16_t *x = (const int16_t *)in;
    int16_t *y = (int16_t *)out;
    for (int32_t i = 0; i < n; ++i) {
        y[i] = te_clamp_s16(te_mul_by_qm((int32_t)x[i] - in_zp, mult, (int)shift) + out_zp, -32768, 32767);
    }
}

static inline void te_sigmoid_scale(int32_t *mult, int32_t *left_shift) {
    if (*mult == 0) { /* power-of-two input scale */
        *mult = 3 << *left_shift;
        *left_shift = 0;
    }
}

void te_logistic_s16(int32_t n, int32_t mult, int32_t left_shift, const uint16_t *table, const void *in, void *out) {
    const int16_t *x = (const int16_t *)in;
    int16_t *y = (int16_t *)out;
    te_sigmoid_scale(&mult, &left_shift);
    const int32_t round = left_shift > 0 ? 1 << (left_shift - 1) : 0;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t v = ((int32_t)x[i] * mult + round) >> left_shift;
        const uint32_t a = (uint32_t)(v < 0 ? -v : v);
        const uint32_t h = a >> 9; /* 2^7 for the input format, 1/4 for the table's wider range */
        uint32_t r;
        if (h >= 255) {
            r = (uint32_t)0x7FFF << 10;
        } else {
            const uint32_t ua = table[h], ub = table[h + 1];
            r = (ua << 9) + (a & 0x1FF) * (ub - ua); /* the table rises: ub >= ua */
        }
        r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
        y[i] = (int16_t)(uint16_t)(r >> 10);
    }
}

void te_tanh_s16(int32_t n, int32_t mult, int32_t left_shift, const uint16_t *table, const void *in, void *out) {
    const int16_t *x = (const int16_t *)in;
    int16_t *y = (int16_t *)out;
    te_sigmoid_scale(&mult, &left_shift);
    const int32_t round = left_shift > 0 ? 1 << (left_shift - 1) : 0;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t v = ((int32_t)x[i] * mult + round) >> left_shift;
        const uint32_t a = (uint32_t)(v < 0 ? -v : v);
        const uint32_t h = a >> 8;
        int32_t r;
        if (h >= 255) {
            r = 0xFFFF << 8;
        } else {
            const uint32_t ua = table[h], ub = table[h + 1];
            r = (int32_t)((ua << 8) + (a & 0xFF) * (ub - ua));
        }
        r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
        y[i] = (int16_t)(r >> 8);
    }
}

/* Linear interpolation in a 513-entry table: the top 9 bits of v + 32768 index it, the low 7 bits weigh
 * the slope to the next entry, rounded (TFLM's int16 LUTLookup). */
static inline int32_t te_lut513_s16(int32_t v, const int16_t *lut) {
    const int32_t index = 256 + (v >> 7);
    const int32_t base = lut[index];
    const int32_t slope = (int16_t)(lut[index + 1] - base);
    return (int16_t)(base + ((slope * (v & 0x7F) + 64) >> 7));
}

static inline int te_clz32_s16(uint32_t x) {
    int n = 0;
    if (x == 0) return 32;
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

void te_softmax_s16(int32_t outer, int32_t depth, int32_t in_mult, int32_t in_shift, const int16_t *exp_lut,
                    const int16_t *recip_lut, const void *in, void *out) {
    const int16_t *x = (const int16_t *)in;
    int16_t *y = (int16_t *)out;
    for (int32_t i = 0; i < outer; ++i, x += depth, y += depth) {
        int32_t mx = -32768;
        for (int32_t c = 0; c < depth; ++c) mx = TE_S16_MAX(mx, (int32_t)x[c]);
        /* The row's exponentials (Q0.15) wait in the output; x[c] is read before y[c] is written, so this
         * holds even in place. Their sum is Q16.15. */
        int32_t sum = 0;
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t scaled = te_mul_by_qm((int32_t)x[c] - mx, in_mult, (int)in_shift) + 32767;
            const int32_t e = te_lut513_s16(te_clamp_s16(scaled, -32768, 32767), exp_lut);
            y[c] = (int16_t)e;
            sum += e;
        }
        /* sum normalised to [1, 2) in Q1.15 (sum >= exp(0) > 0), minus 1, re-centred on the table's
         * [-32768, 32767]: 1 / sum as a Q0.15 scale with headroom_plus_one - 1 bits of exponent. */
        const int headroom_plus_one = te_clz32_s16((uint32_t)sum);
        const int32_t shifted = (int32_t)((((int64_t)sum << (headroom_plus_one - 1)) + (1 << 13)) >> 14);
        const int32_t recip = te_lut513_s16(te_clamp_s16(shifted - ((1 << 15) + (1 << 16)), -32768, 32767),
                                            recip_lut);
        const int right_shift = 31 - headroom_plus_one;
        const int64_t round = (int64_t)1 << (right_shift - 1);
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t r = (int32_t)(((int64_t)y[c] * recip + round) >> right_shift);
            y[c] = te_clamp_s16(r, 0, 32767);
        }
    }
}
