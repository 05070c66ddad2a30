/* tinyedge int16x8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED on the Cortex-M DSP extension. See
 * te_kernels_dsp_s16.h. The win over te_kernels_s16.c: int16 activations come two to a word, straight into
 * SMLAD; the weights' SXTB16 serves two pixels; the bias and rounding are one constant per channel.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels_dsp_s16.h"

#include <string.h>

#include "te_kernels_dsp_intrin.h"

#define TE_S16_WIDE 1

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define te_smlald(a, b, c) __smlald((a), (b), (c))
#else
/* Exact C model of SMLALD: acc + lo(a) lo(b) + hi(a) hi(b) in 64 bits. */
static inline int64_t te_smlald(int32_t a, int32_t b, int64_t acc) {
    return acc + (int64_t)((int16_t)(a & 0xFFFF) * (int16_t)(b & 0xFFFF)) +
           (int64_t)((int16_t)((uint32_t)a >> 16) * (int16_t)((uint32_t)b >> 16));
}
#endif

static inline int32_t te_s16_lo(int32_t a) { return (int16_t)(a & 0xFFFF); }
static inline int32_t te_s16_hi(int32_t a) { return (int16_t)((uint32_t)a >> 16); }

/* TFLM's int64 MultiplyByQuantizedMultiplier of (acc + bias), truncated to int32 as TFLM does, then the
 * activation clamp (see te_rq16): the high word of acc * mul + c (modulo 2^64, one SMLAL for an int32 acc),
 * shifted right by post. */
TE_INLINE int16_t te_rq16_out(int64_t acc, const te_rq16 *q, int32_t amin, int32_t amax) {
    const uint64_t r = (uint64_t)acc * (uint64_t)(int64_t)q->mul + (uint64_t)q->c;
    int32_t y = (int32_t)(uint32_t)(r >> 32) >> q->post;
    y = y < amin ? amin : y;
    return (int16_t)(y > amax ? amax : y);
}

TE_INLINE int16_t te_rq16_out32(int32_t acc, const te_rq16 *q, int32_t amin, int32_t amax) {
    const uint64_t r = (uint64_t)((int64_t)acc * q->mul) + (uint64_t)q->c; /* |acc * mul| < 2^62 */
    int32_t y = (int32_t)(uint32_t)(r >> 32) >> q->post;
    y = y < amin ? amin : y;
    return (int16_t)(y > amax ? amax : y);
}

/* ---------------------------------------------------------------- dot products on re-ordered int8 rows */

/* Two int16 columns (c0 and c0 + kpad) against two filter rows (f0 and f0 + kpad), kpad (a multiple of 4)
 * terms each: acc = {c0.f0, c0.f1, c1.f0, c1.f1}, in int32 (SMLAD; the target pass checked that no sum can
 * overflow). The second column and row at a fixed distance: one register fewer in the loop. */
TE_INLINE void te_dot2x2_s16_32(const int16_t *c0, const int8_t *f0, int32_t kpad, int32_t *acc) {
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
    for (const int8_t *end = f0 + kpad; f0 < end; f0 += 4, c0 += 4) {
        const uint32_t u = te_ld32(f0);
        const int32_t x0 = (int32_t)te_ld32(c0), x1 = (int32_t)te_ld32(c0 + 2);
        const int32_t y0 = (int32_t)te_ld32(c0 + kpad), y1 = (int32_t)te_ld32(c0 + kpad + 2);
        const int32_t u0 = te_sxtb16(u), u1 = te_sxtb16_ror8(u);
        a00 = te_smlad(x0, u0, a00);
        a00 = te_smlad(x1, u1, a00);
        a10 = te_smlad(y0, u0, a10);
        a10 = te_smlad(y1, u1, a10);
        const uint32_t v = te_ld32(f0 + kpad);
        const int32_t v0 = te_sxtb16(v), v1 = te_sxtb16_ror8(v);
        a01 = te_smlad(x0, v0, a01);
        a01 = te_smlad(x1, v1, a01);
        a11 = te_smlad(y0, v0, a11);
        a11 = te_smlad(y1, v1, a11);
    }
    acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11;
}

/* The same in 64 bits (SMLALD), for rows whose int32 sum could overflow. */
TE_INLINE void te_dot2x2_s16_64(const int16_t *c0, const int8_t *f0, int32_t kpad, int64_t *acc) {
    int64_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
    for (const int8_t *end = f0 + kpad; f0 < end; f0 += 4, c0 += 4) {
        const uint32_t u = te_ld32(f0), v = te_ld32(f0 + kpad);
        const int32_t x0 = (int32_t)te_ld32(c0), x1 = (int32_t)te_ld32(c0 + 2);
        const int32_t y0 = (int32_t)te_ld32(c0 + kpad), y1 = (int32_t)te_ld32(c0 + kpad + 2);
        const int32_t u0 = te_sxtb16(u), u1 = te_sxtb16_ror8(u);
        a00 = te_smlald(x0, u0, a00);
        a00 = te_smlald(x1, u1, a00);
        a10 = te_smlald(y0, u0, a10);
        a10 = te_smlald(y1, u1, a10);
        const int32_t v0 = te_sxtb16(v), v1 = te_sxtb16_ror8(v);
        a01 = te_smlald(x0, v0, a01);
        a01 = te_smlald(x1, v1, a01);
        a11 = te_smlald(y0, v0, a11);
        a11 = te_smlald(y1, v1, a11);
    }
    acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11;
}

/* Where weight j of a group of 4 is stored (w0 w2 w1 w3). */
static const uint8_t te_s16_perm[4] = {0, 2, 1, 3};

/* One int16 vector x (depth terms, nothing read after it) against two re-ordered rows: acc = {x.f0, x.f1}. */
TE_INLINE void te_dot1x2_s16_32(const int16_t *x, const int8_t *f0, const int8_t *f1, int32_t depth, int32_t *acc) {
    const int32_t full = depth & ~3;
    int32_t a0 = 0, a1 = 0, d = 0;
    for (; d < full; d += 4) {
        const uint32_t u = te_ld32(f0 + d), v = te_ld32(f1 + d);
        const int32_t x0 = (int32_t)te_ld32(x + d), x1 = (int32_t)te_ld32(x + d + 2);
        a0 = te_smlad(x0, te_sxtb16(u), a0);
        a0 = te_smlad(x1, te_sxtb16_ror8(u), a0);
        a1 = te_smlad(x0, te_sxtb16(v), a1);
        a1 = te_smlad(x1, te_sxtb16_ror8(v), a1);
    }
    for (; d < depth; ++d) { /* the last, partial group */
        a0 += (int32_t)x[d] * f0[full + te_s16_perm[d - full]];
        a1 += (int32_t)x[d] * f1[full + te_s16_perm[d - full]];
    }
    acc[0] = a0, acc[1] = a1;
}

TE_INLINE void te_dot1x2_s16_64(const int16_t *x, const int8_t *f0, const int8_t *f1, int32_t depth, int64_t *acc) {
    const int32_t full = depth & ~3;
    int64_t a0 = 0, a1 = 0;
    int32_t d = 0;
    for (; d < full; d += 4) {
        const uint32_t u = te_ld32(f0 + d), v = te_ld32(f1 + d);
        const int32_t x0 = (int32_t)te_ld32(x + d), x1 = (int32_t)te_ld32(x + d + 2);
        a0 = te_smlald(x0, te_sxtb16(u), a0);
        a0 = te_smlald(x1, te_sxtb16_ror8(u), a0);
        a1 = te_smlald(x0, te_sxtb16(v), a1);
        a1 = te_smlald(x1, te_sxtb16_ror8(v), a1);
    }
    for (; d < depth; ++d) {
        a0 += (int32_t)x[d] * f0[full + te_s16_perm[d - full]];
        a1 += (int32_t)x[d] * f1[full + te_s16_perm[d - full]];
    }
    acc[0] = a0, acc[1] = a1;
}

/* ---------------------------------------------------------------- CONV_2D */

/* The int16 im2col column of output pixel (oy, ox) of one batch: the patch in filter order, zeros for
 * padding (int16x8 activations have zero point 0) and up to kpad. A filter row inside the input (no
 * dilation) is one contiguous run. */
static void te_im2col_s16(const te_dsp_conv_params *p, const int16_t *in_b, int oy, int ox, int16_t *col) {
    const int in_c = p->in_c, k_w = p->k_w;
    const int iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
    const int32_t run = (int32_t)k_w * in_c;
    const int inside_w = p->dil_w == 1 && ix0 >= 0 && ix0 + k_w <= p->in_w;
    int16_t *d = col;
    for (int ky = 0; ky < p->k_h; ++ky) {
        const int iy = iy0 + ky * p->dil_h;
        if (iy < 0 || iy >= p->in_h) {
            memset(d, 0, (size_t)run * 2);
            d += run;
        } else if (inside_w) {
            memcpy(d, in_b + ((int32_t)iy * p->in_w + ix0) * in_c, (size_t)run * 2);
            d += run;
        } else {
            for (int kx = 0; kx < k_w; ++kx, d += in_c) {
                const int ix = ix0 + kx * p->dil_w;
                if (ix < 0 || ix >= p->in_w) {
                    memset(d, 0, (size_t)in_c * 2);
                } else {
                    memcpy(d, in_b + ((int32_t)iy * p->in_w + ix) * in_c, (size_t)in_c * 2);
                }
            }
        }
    }
    for (int16_t *end = col + p->kpad; d < end; ++d) *d = 0;
}

TE_INLINE void te_conv_s16_body(const te_dsp_conv_params *p, const void *in, const int8_t *filter, const te_rq16 *rq,
                                void *out, int8_t *scratch, int mode) {
    const int16_t *x = (const int16_t *)in;
    int16_t *y = (int16_t *)out;
    const int32_t kpad = p->kpad, out_c = p->out_c, plane = (int32_t)p->out_h * p->out_w;
    const int32_t npix = (int32_t)p->batches * plane, in_plane = (int32_t)p->in_h * p->in_w * p->in_c;
    const int32_t amin = p->act_min, amax = p->act_max;
    int16_t *cols = (int16_t *)(void *)scratch;
    for (int32_t px = 0; px < npix; px += 2) {
        const int two = px + 1 < npix;
        const int16_t *c0 = cols;
        if (p->pointwise && two) {
            c0 = x + px * kpad; /* kpad == in_c: the two pixels are the two columns */
        } else if (p->pointwise) {
            memcpy(cols, x + px * kpad, (size_t)kpad * 2); /* the last pixel: the one after it is not ours */
        } else {
            for (int j = 0; j <= two; ++j) {
                const int32_t q = px + j, b = q / plane, r = q % plane;
                te_im2col_s16(p, x + b * in_plane, (int)(r / p->out_w), (int)(r % p->out_w), cols + j * kpad);
            }
        }
        /* An odd last pixel computes its column 1 from whatever the scratch holds, and stores nothing of it;
         * an odd last channel meets the zero row the target pass appends to the filter. */
        int16_t *y0 = y + px * out_c, *y1 = y0 + out_c;
        for (int32_t o = 0; o < out_c; o += 2) {
            const int pair = o + 1 < out_c;
            const int8_t *f0 = filter + o * kpad;
            const te_rq16 *q0 = rq + o, *q1 = q0 + pair;
            if (mode & TE_S16_WIDE) {
                int64_t acc[4];
                te_dot2x2_s16_64(c0, f0, kpad, acc);
                y0[o] = te_rq16_out(acc[0], q0, amin, amax);
                if (pair) y0[o + 1] = te_rq16_out(acc[1], q1, amin, amax);
                if (two) {
                    y1[o] = te_rq16_out(acc[2], q0, amin, amax);
                    if (pair) y1[o + 1] = te_rq16_out(acc[3], q1, amin, amax);
                }
            } else {
                int32_t acc[4];
                te_dot2x2_s16_32(c0, f0, kpad, acc);
                y0[o] = te_rq16_out32(acc[0], q0, amin, amax);
                if (pair) y0[o + 1] = te_rq16_out32(acc[1], q1, amin, amax);
                if (two) {
                    y1[o] = te_rq16_out32(acc[2], q0, amin, amax);
                    if (pair) y1[o + 1] = te_rq16_out32(acc[3], q1, amin, amax);
                }
            }
        }
    }
}

void te_conv2d_s16_dsp_m0(const te_dsp_conv_params *p, const void *in, const int8_t *filter, const te_rq16 *rq,
                          void *out, int8_t *scratch) {
    te_conv_s16_body(p, in, filter, rq, out, scratch, 0);
}
void te_conv2d_s16_dsp_m1(const te_dsp_conv_params *p, const void *in, const int8_t *filter, const te_rq16 *rq,
                          void *out, int8_t *scratch) {
    te_conv_s16_body(p, in, filter, rq, out, scratch, TE_S16_WIDE);
}

/* ---------------------------------------------------------------- DEPTHWISE_CONV_2D */

/* The taps k (of n, dilation dil) whose input row/column iy0 + k * dil lies in [0, size): [*k0, *k1). */
static inline void te_s16_taps(int iy0, int dil, int n, int size, int *k0, int *k1) {
    *k0 = iy0 < 0 ? (-iy0 + dil - 1) / dil : 0;
    const int room = size - iy0; /* taps k with k * dil < room */
    const int k = room <= 0 ? 0 : (room + dil - 1) / dil;
    *k1 = k < n ? k : n;
}

TE_INLINE void te_dw_s16_body(const te_dsp_conv_params *p, const void *in, const int16_t *filter,
                              const te_rq16 *rq, void *out, int mode) {
    const int16_t *x = (const int16_t *)in;
    int16_t *y = (int16_t *)out;
    const int32_t ch = p->in_c, in_w = p->in_w, row = in_w * ch;
    const int32_t amin = p->act_min, amax = p->act_max;
    const int dh = p->dil_h, dw = p->dil_w, kw = p->k_w;
    for (int b = 0; b < p->batches; ++b) {
        const int16_t *in_b = x + (int32_t)b * p->in_h * row;
        for (int oy = 0; oy < p->out_h; ++oy) {
            const int iy0 = oy * p->stride_h - p->pad_h;
            int ky0, ky1;
            te_s16_taps(iy0, dh, p->k_h, p->in_h, &ky0, &ky1);
            for (int ox = 0; ox < p->out_w; ++ox, y += ch) {
                const int ix0 = ox * p->stride_w - p->pad_w;
                int kx0, kx1;
                te_s16_taps(ix0, dw, kw, in_w, &kx0, &kx1);
                int32_t c = 0;
                for (; c + 1 < ch; c += 2) {
                    int64_t acc0 = 0, acc1 = 0;
                    int32_t a0 = 0, a1 = 0;
                    for (int ky = ky0; ky < ky1; ++ky) {
                        const int16_t *ip = in_b + (int32_t)(iy0 + ky * dh) * row + c;
                        const int16_t *wp = filter + (int32_t)ky * kw * ch + c;
                        for (int kx = kx0; kx < kx1; ++kx) {
                            const int32_t xv = (int32_t)te_ld32(ip + (int32_t)(ix0 + kx * dw) * ch);
                            const int32_t wv = (int32_t)te_ld32(wp + (int32_t)kx * ch);
                            if (mode & TE_S16_WIDE) {
                                acc0 += te_s16_lo(xv) * te_s16_lo(wv);
                                acc1 += te_s16_hi(xv) * te_s16_hi(wv);
                            } else {
                                a0 = te_smlabb(xv, wv, a0);
                                a1 = te_smlatt(xv, wv, a1);
                            }
                        }
                    }
                    if (mode & TE_S16_WIDE) {
                        y[c] = te_rq16_out(acc0, rq + c, amin, amax);
                        y[c + 1] = te_rq16_out(acc1, rq + c + 1, amin, amax);
                    } else {
                        y[c] = te_rq16_out32(a0, rq + c, amin, amax);
                        y[c + 1] = te_rq16_out32(a1, rq + c + 1, amin, amax);
                    }
                }
                if (c < ch) { /* an odd channel count's last channel */
                    int64_t acc = 0;
                    for (int ky = ky0; ky < ky1; ++ky) {
                        for (int kx = kx0; kx < kx1; ++kx) {
                            acc += (int32_t)in_b[(int32_t)(iy0 + ky * dh) * row + (int32_t)(ix0 + kx * dw) * ch + c] *
                                   (int32_t)filter[((int32_t)ky * kw + kx) * ch + c];
                        }
                    }
                    y[c] = te_rq16_out(acc, rq + c, amin, amax);
                }
            }
        }
    }
}

void te_dwconv2d_s16_dsp_m0(const te_dsp_conv_params *p, const void *in, const int16_t *filter, const te_rq16 *rq,
                            void *out) {
    te_dw_s16_body(p, in, filter, rq, out, 0);
}
void te_dwconv2d_s16_dsp_m1(const te_dsp_conv_params *p, const void *in, const int16_t *filter, const te_rq16 *rq,
                            void *out) {
    te_dw_s16_body(p, in, filter, rq, out, TE_S16_WIDE);
}

/* ---------------------------------------------------------------- FULLY_CONNECTED */

TE_INLINE void te_fc_s16_body(const te_dsp_fc_params *p, const void *in, const int8_t *filter, const te_rq16 *rq,
                              void *out, int mode) {
    const int16_t *x = (const int16_t *)in;
    int16_t *y = (int16_t *)out;
    const int32_t depth = p->in_depth, kpad = p->kpad, nout = p->out_depth;
    const int32_t amin = p->act_min, amax = p->act_max;
    for (int32_t b = 0; b < p->batches; ++b, x += depth, y += nout) {
        for (int32_t o = 0; o < nout; o += 2) {
            const int pair = o + 1 < nout;
            const int8_t *f0 = filter + o * kpad, *f1 = pair ? f0 + kpad : f0;
            if (mode & TE_S16_WIDE) {
                int64_t acc[2];
                te_dot1x2_s16_64(x, f0, f1, depth, acc);
                y[o] = te_rq16_out(acc[0], rq + o, amin, amax);
                if (pair) y[o + 1] = te_rq16_out(acc[1], rq + o + 1, amin, amax);
            } else {
                int32_t acc[2];
                te_dot1x2_s16_32(x, f0, f1, depth, acc);
                y[o] = te_rq16_out32(acc[0], rq + o, amin, amax);
                if (pair) y[o + 1] = te_rq16_out32(acc[1], rq + o + 1, amin, amax);
            }
        }
    }
}

void te_fc_s16_dsp_m0(const te_dsp_fc_params *p, const void *in, const int8_t *filter, const te_rq16 *rq, void *out) {
    te_fc_s16_body(p, in, filter, rq, out, 0);
}
void te_fc_s16_dsp_m1(const te_dsp_fc_params *p, const void *in, const int8_t *filter, const te_rq16 *rq, void *out) {
    te_fc_s16_body(p, in, filter, rq, out, TE_S16_WIDE);
}
