/* tinyedge int8 kernels on the Cortex-M DSP extension (SMLAD, SXTB16, SMMLAR). See te_kernels_dsp.h.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels_dsp.h"

#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define te_sxtb16(x) __sxtb16((int32_t)(x))
#define te_sxtab16(a, x) __sxtab16((a), (int32_t)(x))
#define te_smlad(a, b, c) __smlad((a), (b), (c))
#define te_smlabb(a, b, c) __smlabb((a), (b), (c))
#define te_smlatt(a, b, c) __smlatt((a), (b), (c))
#define te_smlabt(a, b, c) __smlabt((a), (b), (c))
#define te_smlatb(a, b, c) __smlatb((a), (b), (c))
/* (a * b + (c << 32) + 2^31) >> 32 */
static inline int32_t te_smmlar(int32_t a, int32_t b, int32_t c) {
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}
#define te_ssat8(x) __ssat((x), 8)
static inline int32_t te_sxtab16_ror8(int32_t a, uint32_t x) {
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
/* Two words at p + off (word aligned) in one LDRD */
#define TE_LDRD(lo, hi, p, off) \
    __asm__("ldrd %0, %1, [%2, %3]" : "=r"(lo), "=r"(hi) : "r"(p), "I"(off), "m"(*(const int32_t(*)[2])((p) + (off) / 4)))
/* SXTB16 of the word rotated right by 8 (bytes 1 and 3), one instruction */
static inline int32_t te_sxtb16_ror8(uint32_t x) {
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#else
/* Exact C models of the instructions, so the same kernels run (and are tested) on the host. */
static inline int32_t te_pack16(int32_t lo, int32_t hi) {
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}
static inline int32_t te_sxtb16(uint32_t x) { return te_pack16((int8_t)(x & 0xFF), (int8_t)((x >> 16) & 0xFF)); }
static inline int32_t te_sxtab16(int32_t a, uint32_t x) {
    return te_pack16((int16_t)(a & 0xFFFF) + (int8_t)(x & 0xFF), (int16_t)((uint32_t)a >> 16) + (int8_t)((x >> 16) & 0xFF));
}
static inline int32_t te_lo16(int32_t a) { return (int16_t)(a & 0xFFFF); }
static inline int32_t te_hi16(int32_t a) { return (int16_t)((uint32_t)a >> 16); }
static inline int32_t te_smlad(int32_t a, int32_t b, int32_t c) {
    return (int32_t)((uint32_t)c + (uint32_t)(te_lo16(a) * te_lo16(b)) + (uint32_t)(te_hi16(a) * te_hi16(b)));
}
static inline int32_t te_smlabb(int32_t a, int32_t b, int32_t c) {
    return (int32_t)((uint32_t)c + (uint32_t)(te_lo16(a) * te_lo16(b)));
}
static inline int32_t te_smlatt(int32_t a, int32_t b, int32_t c) {
    return (int32_t)((uint32_t)c + (uint32_t)(te_hi16(a) * te_hi16(b)));
}
static inline int32_t te_smlabt(int32_t a, int32_t b, int32_t c) {
    return (int32_t)((uint32_t)c + (uint32_t)(te_lo16(a) * te_hi16(b)));
}
static inline int32_t te_smlatb(int32_t a, int32_t b, int32_t c) {
    return (int32_t)((uint32_t)c + (uint32_t)(te_hi16(a) * te_lo16(b)));
}
static inline int32_t te_smmlar(int32_t a, int32_t b, int32_t c) {
    const uint64_t v = ((uint64_t)(uint32_t)c << 32) + (uint64_t)((int64_t)a * (int64_t)b) + 0x80000000u;
    return (int32_t)(uint32_t)(v >> 32);
}
static inline int32_t te_ssat8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }
#define te_sxtb16_ror8(x) te_sxtb16(TE_ROR8(x))
#define TE_LDRD(lo, hi, p, off) ((lo) = (p)[(off) / 4], (hi) = (p)[(off) / 4 + 1])
#define te_sxtab16_ror8(a, x) te_sxtab16((a), TE_ROR8(x))
#endif

#define TE_ROR8(x) (((uint32_t)(x) >> 8) | ((uint32_t)(x) << 24))
#define TE_INLINE static inline __attribute__((always_inline))

static inline uint32_t te_ld32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Requantize one accumulator (bias already in it). corr: the (t < 0) rounding fix-up is needed;
 * clamp: the activation range is narrower than int8 (else SSAT alone clamps). */
TE_INLINE int8_t te_requant(int32_t acc, const te_rq *q, int lsh, int corr, int clamp, int32_t amin, int32_t amax) {
    acc = (int32_t)((uint32_t)acc << lsh);
    const int32_t t = te_smmlar(acc, q->m2, acc);
    int32_t x = (int32_t)((uint32_t)q->r + ((uint32_t)t << 1));
    if (corr) x += t >> 31;
    x >>= q->s1;
    x = te_ssat8(x);
    if (clamp) {
        x = x < amin ? amin : x;
        x = x > amax ? amax : x;
    }
    return (int8_t)x;
}

/* Sign-extend 4 bytes into the int16 pair order SMLAD pairs with SXTB16(weights): (k0,k2), (k1,k3). */
TE_INLINE void te_expand4(const int8_t *src, int32_t *dst) {
    const uint32_t v = te_ld32(src);
    dst[0] = te_sxtb16(v);
    dst[1] = te_sxtb16_ror8(v);
}

/* ---------------------------------------------------------------- CONV_2D (im2col + 4-pixel GEMM) */

TE_INLINE void te_conv_body(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch, int corr, int clamp) {
    const int kpad = p->kpad, ksteps = kpad >> 2;
    int32_t *cols = (int32_t *)(void *)scratch;  /* [kstep][pixel 0..3][2 words] */
    int8_t *row = scratch + 8 * kpad;             /* one gathered int8 patch */
    const int in_c = p->in_c, out_c = p->out_c, in_w = p->in_w, in_h = p->in_h;
    const int npix = p->out_h * p->out_w;
    const int lsh = p->lsh;
    const int32_t amin = p->act_min, amax = p->act_max;
    const int patch = p->k_h * p->k_w * in_c;
    const int pointwise = p->pointwise, out_w = p->out_w, k_h = p->k_h, k_w = p->k_w, batches = p->batches;
    const int sh = p->stride_h, sw = p->stride_w, dh = p->dil_h, dw = p->dil_w, pad_h = p->pad_h, pad_w = p->pad_w;
    const int in_zp = (int)p->in_zp;
    if (!pointwise) memset(row + patch, 0, (size_t)(kpad - patch));
    for (int b = 0; b < batches; ++b) {
        const int8_t *in_b = in + (int32_t)b * in_h * in_w * in_c;
        int8_t *out_b = out + (int32_t)b * npix * out_c;
        for (int p0 = 0; p0 < npix; p0 += 4) {
            const int n = npix - p0 < 4 ? npix - p0 : 4;
            for (int j = 0; j < n; ++j) {
                const int8_t *src;
                if (pointwise) {
                    src = in_b + (int32_t)(p0 + j) * in_c;
                } else {
                    const int oy = (p0 + j) / out_w, ox = (p0 + j) % out_w;
                    const int iy0 = oy * sh - pad_h, ix0 = ox * sw - pad_w;
                    int8_t *dst = row;
                    const int run = k_w * in_c;
                    const int whole = dw == 1 && ix0 >= 0 && ix0 + k_w <= in_w;
                    for (int ky = 0; ky < k_h; ++ky) {
                        const int iy = iy0 + ky * dh;
                        if (whole && iy >= 0 && iy < in_h) {  /* one contiguous run: no per-tap calls */
                            const int8_t *s = in_b + ((int32_t)iy * in_w + ix0) * in_c;
                            if (run >= 32) {
                                memcpy(dst, s, (size_t)run);
                            } else {
                                for (int t = 0; t < run; ++t) dst[t] = s[t];
                            }
                            dst += run;
                            continue;
                        }
                        for (int kx = 0; kx < k_w; ++kx) {
                            const int ix = ix0 + kx * dw;
                            if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
                                memset(dst, in_zp, (size_t)in_c);
                            } else {
                                memcpy(dst, in_b + ((int32_t)iy * in_w + ix) * in_c, (size_t)in_c);
                            }
                            dst += in_c;
                        }
                    }
                    src = row;
                }
                int32_t *c = cols + 2 * j;
                for (int s = 0; s < ksteps; ++s, src += 4, c += 8) te_expand4(src, c);
            }
            const te_rq *q = rq;
            const int8_t *w = filter;
            int8_t *o = out_b + (int32_t)p0 * out_c;
            for (int oc = 0; oc < out_c; ++oc, ++q, w += kpad, ++o) {
                const te_rq qc = *q;  /* in registers: the int8 stores below may alias anything */
                int32_t a0 = qc.bias, a1 = a0, a2 = a0, a3 = a0;
                const int32_t *x = cols;
                const int8_t *wp = w;
                for (int s = 0; s < ksteps; ++s, wp += 4, x += 8) {  /* kernel 4 x 4: 15 instructions / 16 MACs */
                    const uint32_t wv = te_ld32(wp);
                    const int32_t w02 = te_sxtb16(wv), w13 = te_sxtb16_ror8(wv);
                    int32_t lo, hi;
                    TE_LDRD(lo, hi, x, 0);
                    a0 = te_smlad(lo, w02, a0);
                    a0 = te_smlad(hi, w13, a0);
                    TE_LDRD(lo, hi, x, 8);
                    a1 = te_smlad(lo, w02, a1);
                    a1 = te_smlad(hi, w13, a1);
                    TE_LDRD(lo, hi, x, 16);
                    a2 = te_smlad(lo, w02, a2);
                    a2 = te_smlad(hi, w13, a2);
                    TE_LDRD(lo, hi, x, 24);
                    a3 = te_smlad(lo, w02, a3);
                    a3 = te_smlad(hi, w13, a3);
                }
                if (n == 4) {
                    o[0] = te_requant(a0, &qc, lsh, corr, clamp, amin, amax);
                    o[out_c] = te_requant(a1, &qc, lsh, corr, clamp, amin, amax);
                    o[2 * out_c] = te_requant(a2, &qc, lsh, corr, clamp, amin, amax);
                    o[3 * out_c] = te_requant(a3, &qc, lsh, corr, clamp, amin, amax);
                } else {
                    o[0] = te_requant(a0, &qc, lsh, corr, clamp, amin, amax);
                    if (n > 1) o[out_c] = te_requant(a1, &qc, lsh, corr, clamp, amin, amax);
                    if (n > 2) o[2 * out_c] = te_requant(a2, &qc, lsh, corr, clamp, amin, amax);
                }
            }
        }
    }
}

/* Entry points _m0.._m3: mode bit 0 is corr, bit 1 is clamp (te_dsp_conv_params.mode). */
void te_conv2d_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                          int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 0, 0);
}

void te_conv2d_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                          int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 1, 0);
}

void te_conv2d_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                          int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 0, 1);
}

void te_conv2d_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                          int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 1, 1);
}

/* ---------------------------------------------------------------- DEPTHWISE_CONV_2D (4 channels a word) */

TE_INLINE void te_dw_body(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                          int8_t *out, int8_t *scratch, int corr, int clamp) {
    /* every field in a local: stores through int8_t pointers would otherwise force reloads */
    const int C = p->in_c, G = C >> 2, in_w = p->in_w, in_h = p->in_h, out_w = p->out_w, out_h = p->out_h;
    const int k_h = p->k_h, k_w = p->k_w, sh = p->stride_h, sw = p->stride_w, dh = p->dil_h, dw = p->dil_w;
    const int pad_h = p->pad_h, pad_w = p->pad_w, batches = p->batches;
    const int32_t rowbytes = (int32_t)out_w * C, in_pix = C, in_row = (int32_t)in_w * C;
    const int D = pad_h;              /* output rows held back until their input rows are dead */
    const int lsh = p->lsh;
    const int32_t amin = p->act_min, amax = p->act_max;
    const int32_t off2 = (int32_t)(((uint32_t)p->in_off & 0xFFFFu) | ((uint32_t)p->in_off << 16));
    const int32_t *wall = (const int32_t *)(const void *)filter;  /* [tap][group][2 words] */
    const int32_t wtap = 2 * G;
    for (int b = 0; b < batches; ++b) {
        const int8_t *in_b = in + (int32_t)b * in_h * in_row;
        int8_t *out_b = out + (int32_t)b * out_h * rowbytes;
        int slot = 0;
        for (int oy = 0; oy < out_h; ++oy) {
            int8_t *dst = scratch + slot * rowbytes;
            const int iy0 = oy * sh - pad_h;
            int ky0 = 0, ky1 = k_h;
            while (ky0 < ky1 && iy0 + ky0 * dh < 0) ++ky0;
            while (ky1 > ky0 && iy0 + (ky1 - 1) * dh >= in_h) --ky1;
            for (int ox = 0; ox < out_w; ++ox) {
                const int ix0 = ox * sw - pad_w;
                int kx0 = 0, kx1 = k_w;
                while (kx0 < kx1 && ix0 + kx0 * dw < 0) ++kx0;
                while (kx1 > kx0 && ix0 + (kx1 - 1) * dw >= in_w) --kx1;
                const int8_t *ipix = in_b + (int32_t)iy0 * in_row + (int32_t)ix0 * in_pix;
                const te_rq *q = rq;
                int8_t *o = dst + ox * C;
                for (int g = 0; g < G; ++g, q += 4, o += 4) {
                    int32_t a0 = q[0].bias, a1 = q[1].bias, a2 = q[2].bias, a3 = q[3].bias;
                    for (int ky = ky0; ky < ky1; ++ky) {
                        const int8_t *ip = ipix + (int32_t)ky * dh * in_row + (int32_t)kx0 * dw * in_pix + 4 * g;
                        const int32_t *wp = wall + ((int32_t)ky * k_w + kx0) * wtap + 2 * g;
                        for (int kx = kx0; kx < kx1; ++kx, ip += dw * in_pix, wp += wtap) {
                            const uint32_t v = te_ld32(ip);
                            const int32_t x02 = te_sxtab16(off2, v), x13 = te_sxtab16_ror8(off2, v);
                            const int32_t w02 = wp[0], w13 = wp[1];
                            a0 = te_smlabb(x02, w02, a0);
                            a2 = te_smlatt(x02, w02, a2);
                            a1 = te_smlabb(x13, w13, a1);
                            a3 = te_smlatt(x13, w13, a3);
                        }
                    }
                    o[0] = te_requant(a0, q, lsh, corr, clamp, amin, amax);
                    o[1] = te_requant(a1, q + 1, lsh, corr, clamp, amin, amax);
                    o[2] = te_requant(a2, q + 2, lsh, corr, clamp, amin, amax);
                    o[3] = te_requant(a3, q + 3, lsh, corr, clamp, amin, amax);
                }
            }
            if (oy >= D) {
                const int r = oy - D;
                memcpy(out_b + r * rowbytes, scratch + (r % (D + 1)) * rowbytes, (size_t)rowbytes);
            }
            if (++slot > D) slot = 0;
        }
        for (int r = out_h - D < 0 ? 0 : out_h - D; r < out_h; ++r) {
            memcpy(out_b + r * rowbytes, scratch + (r % (D + 1)) * rowbytes, (size_t)rowbytes);
        }
    }
}

void te_dwconv2d_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch) {
    te_dw_body(p, in, filter, rq, out, scratch, 0, 0);
}

void te_dwconv2d_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch) {
    te_dw_body(p, in, filter, rq, out, scratch, 1, 0);
}

void te_dwconv2d_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch) {
    te_dw_body(p, in, filter, rq, out, scratch, 0, 1);
}

void te_dwconv2d_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch) {
    te_dw_body(p, in, filter, rq, out, scratch, 1, 1);
}

/* ------------------------------------------------- DEPTHWISE_CONV_2D 3x3, stride 1 (one channel at a time)
 * Each channel's input plane is copied, widened to int16 with the input offset added, into a zero-bordered
 * buffer (zeros are exactly TFLM's skipped padding taps). Two neighbouring outputs of a row then take one
 * LDRD of (x0,x1),(x2,x3) and four multiplies for their six MACs: SMLAD (x0,x1).(w0,w1) + SMLABT x2.w2 and
 * SMLATB x1.w0 + SMLAD (x2,x3).(w1,w2). Output channel c only needs input channel c, which is already
 * copied, so the kernel may run in place. Filter: TFLM's own [3][3][C] int8. */

TE_INLINE int8_t te_rq0(int32_t acc, int32_t m2, int32_t r, int32_t s1, int corr, int clamp, int32_t amin,
                         int32_t amax) {
    const int32_t t = te_smmlar(acc, m2, acc);
    int32_t x = (int32_t)((uint32_t)r + ((uint32_t)t << 1));
    if (corr) x += t >> 31;
    x = te_ssat8(x >> s1);
    if (clamp) {
        x = x < amin ? amin : x;
        x = x > amax ? amax : x;
    }
    return (int8_t)x;
}

/* Three rows of one channel: outputs o[0], o[C], ... for npairs pairs, then one more when tail. With an odd
 * width every row but the last runs one pair more, whose second output (the next row's first) is rewritten
 * by the next row. The left shift is
 * folded into the weights and the bias (exact: both only multiply by 2^lsh modulo 2^32). */
TE_INLINE void te_dw3_row(const int32_t *r0, int32_t rs, int8_t *o, int C, int npairs, int tail, const int32_t *w,
                          const te_rq *q, int corr, int clamp, int32_t amin, int32_t amax) {
    const int32_t a01 = w[0], a12 = w[1], b01 = w[2], b12 = w[3], c01 = w[4], c12 = w[5];
    const int32_t bias = q->bias, m2 = q->m2, r = q->r, s1 = q->s1;
    int8_t *const oend = o + 2 * C * npairs;
    for (; o != oend; ++r0, o += 2 * C) {
        const int32_t *r1 = (const int32_t *)(const void *)((const char *)r0 + rs);
        const int32_t *r2 = (const int32_t *)(const void *)((const char *)r1 + rs);
        int32_t x01, x23, s0, t1;
        TE_LDRD(x01, x23, r0, 0);
        s0 = te_smlad(x01, a01, bias);
        t1 = te_smlatb(x01, a01, bias);
        s0 = te_smlabt(x23, a12, s0);
        t1 = te_smlad(x23, a12, t1);
        TE_LDRD(x01, x23, r1, 0);
        s0 = te_smlad(x01, b01, s0);
        t1 = te_smlatb(x01, b01, t1);
        s0 = te_smlabt(x23, b12, s0);
        t1 = te_smlad(x23, b12, t1);
        TE_LDRD(x01, x23, r2, 0);
        s0 = te_smlad(x01, c01, s0);
        t1 = te_smlatb(x01, c01, t1);
        s0 = te_smlabt(x23, c12, s0);
        t1 = te_smlad(x23, c12, t1);
        o[0] = te_rq0(s0, m2, r, s1, corr, clamp, amin, amax);
        o[C] = te_rq0(t1, m2, r, s1, corr, clamp, amin, amax);
    }
    if (tail) {
        const int32_t *r1 = (const int32_t *)(const void *)((const char *)r0 + rs);
        const int32_t *r2 = (const int32_t *)(const void *)((const char *)r1 + rs);
        int32_t x01, x23, s0;
        TE_LDRD(x01, x23, r0, 0);
        s0 = te_smlabt(x23, a12, te_smlad(x01, a01, bias));
        TE_LDRD(x01, x23, r1, 0);
        s0 = te_smlabt(x23, b12, te_smlad(x01, b01, s0));
        TE_LDRD(x01, x23, r2, 0);
        s0 = te_smlabt(x23, c12, te_smlad(x01, c01, s0));
        o[0] = te_rq0(s0, m2, r, s1, corr, clamp, amin, amax);
    }
}

TE_INLINE void te_dw3_body(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch, int corr, int clamp) {
    const int C = p->in_c, in_w = p->in_w, in_h = p->in_h, out_w = p->out_w, out_h = p->out_h;
    const int pad_h = p->pad_h, pad_w = p->pad_w, batches = p->batches;
    const int W2 = (out_w + 4) & ~1;  /* buffer row: out_w + 2 columns, even, one spare for an odd out_w */
    const int lsh = p->lsh, npairs = out_w >> 1, odd = out_w & 1;
    const int32_t amin = p->act_min, amax = p->act_max, in_off = p->in_off;
    int16_t *buf = (int16_t *)(void *)scratch;
    memset(buf, 0, (size_t)(out_h + 2) * (size_t)W2 * 2u);
    const int32_t in_pix = in_h * in_w;
    for (int b = 0; b < batches; ++b) {
        const int8_t *in_b = in + (int32_t)b * in_pix * C;
        int8_t *out_b = out + (int32_t)b * out_h * out_w * C;
        for (int c = 0; c < C; ++c) {
            {
                const int8_t *src = in_b + c;
                for (int iy = 0; iy < in_h; ++iy) {
                    int16_t *d = buf + (iy + pad_h) * W2 + pad_w;
                    for (int ix = 0; ix < in_w; ++ix, src += C) d[ix] = (int16_t)(*src + in_off);
                }
            }
            int32_t w[6];
            {
                const int8_t *f = filter + c;
                for (int k = 0; k < 3; ++k, f += 3 * C) {
                    const uint32_t f0 = (uint32_t)(int32_t)f[0] << lsh, f1 = (uint32_t)(int32_t)f[C] << lsh;
                    const uint32_t f2 = (uint32_t)(int32_t)f[2 * C] << lsh;
                    w[2 * k] = (int32_t)((f0 & 0xFFFFu) | (f1 << 16));
                    w[2 * k + 1] = (int32_t)((f1 & 0xFFFFu) | (f2 << 16));
                }
            }
            te_rq q = rq[c];
            q.bias = (int32_t)((uint32_t)q.bias << lsh);
            int8_t *o = out_b + c;
            for (int oy = 0; oy < out_h; ++oy, o += out_w * C) {
                const int last = oy == out_h - 1;
                te_dw3_row((const int32_t *)(const void *)(buf + oy * W2), W2 * 2, o, C, npairs + (odd & !last),
                           odd & last, w, &q, corr, clamp, amin, amax);
            }
        }
    }
}

void te_dwconv3x3_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_dw3_body(p, in, filter, rq, out, scratch, 0, 0);
}

void te_dwconv3x3_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_dw3_body(p, in, filter, rq, out, scratch, 1, 0);
}

void te_dwconv3x3_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_dw3_body(p, in, filter, rq, out, scratch, 0, 1);
}

void te_dwconv3x3_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_dw3_body(p, in, filter, rq, out, scratch, 1, 1);
}

/* ---------------------------------------------------------------- FULLY_CONNECTED (2 outputs a pass) */

TE_INLINE void te_fc_body(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                          int8_t *out, int corr, int clamp) {
    const int32_t depth = p->in_depth, kpad = p->kpad, nout = p->out_depth, full = depth & ~3;
    const int lsh = (int)p->lsh;
    const int32_t amin = p->act_min, amax = p->act_max;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = in + b * depth;
        int8_t *y = out + b * nout;
        int32_t o = 0;
        for (; o + 1 < nout; o += 2) {
            const int8_t *w0 = filter + o * kpad, *w1 = w0 + kpad;
            int32_t a0 = rq[o].bias, a1 = rq[o + 1].bias;
            int32_t d = 0;
            for (; d < full; d += 4) {
                const uint32_t xv = te_ld32(x + d);
                const int32_t x02 = te_sxtb16(xv), x13 = te_sxtb16_ror8(xv);
                const uint32_t u = te_ld32(w0 + d), v = te_ld32(w1 + d);
                a0 = te_smlad(x02, te_sxtb16(u), a0);
                a0 = te_smlad(x13, te_sxtb16_ror8(u), a0);
                a1 = te_smlad(x02, te_sxtb16(v), a1);
                a1 = te_smlad(x13, te_sxtb16_ror8(v), a1);
            }
            for (; d < depth; ++d) {
                a0 += (int32_t)x[d] * w0[d];
                a1 += (int32_t)x[d] * w1[d];
            }
            y[o] = te_requant(a0, rq + o, lsh, corr, clamp, amin, amax);
            y[o + 1] = te_requant(a1, rq + o + 1, lsh, corr, clamp, amin, amax);
        }
        for (; o < nout; ++o) {
            const int8_t *w0 = filter + o * kpad;
            int32_t a0 = rq[o].bias;
            for (int32_t d = 0; d < depth; ++d) a0 += (int32_t)x[d] * w0[d];
            y[o] = te_requant(a0, rq + o, lsh, corr, clamp, amin, amax);
        }
    }
}

void te_fc_s8_dsp_m0(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                      int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 0, 0);
}

void te_fc_s8_dsp_m1(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                      int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 1, 0);
}

void te_fc_s8_dsp_m2(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                      int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 0, 1);
}

void te_fc_s8_dsp_m3(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                      int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 1, 1);
}
