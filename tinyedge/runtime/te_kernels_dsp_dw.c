/* tinyedge int8 DEPTHWISE_CONV_2D on the Cortex-M DSP extension (SMLAD, SXTB16, SMMLAR). See te_kernels_dsp.h.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels_dsp.h"

#include <string.h>

#include "te_kernels_dsp_intrin.h"

/* ---------------------------------------------------------------- DEPTHWISE_CONV_2D (4 channels a word) */

TE_INLINE void te_dw_body(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                          int8_t *out, int8_t *scratch, int mode) {
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
                    o[0] = te_requant(a0, q, lsh, mode, amin, amax);
                    o[1] = te_requant(a1, q + 1, lsh, mode, amin, amax);
                    o[2] = te_requant(a2, q + 2, lsh, mode, amin, amax);
                    o[3] = te_requant(a3, q + 3, lsh, mode, amin, amax);
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

/* Entry points, one per mode (te_kernels_dsp_intrin.h: TE_MODE_*). */
void te_dwconv2d_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw_body(p, in, filter, rq, out, scratch, 0);
}

void te_dwconv2d_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw_body(p, in, filter, rq, out, scratch, 1);
}

void te_dwconv2d_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw_body(p, in, filter, rq, out, scratch, 2);
}

void te_dwconv2d_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw_body(p, in, filter, rq, out, scratch, 3);
}

void te_dwconv2d_s8_dsp_m4(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw_body(p, in, filter, rq, out, scratch, 4);
}

void te_dwconv2d_s8_dsp_m5(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw_body(p, in, filter, rq, out, scratch, 5);
}

void te_dwconv2d_s8_dsp_m6(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw_body(p, in, filter, rq, out, scratch, 6);
}

void te_dwconv2d_s8_dsp_m7(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw_body(p, in, filter, rq, out, scratch, 7);
}

/* ------------------------------------------------- DEPTHWISE_CONV_2D 3x3, stride 1 (one channel at a time)
 * Each channel's input plane is copied, widened to int16 with the input offset added, into a zero-bordered
 * buffer (zeros are exactly TFLM's skipped padding taps). Two neighbouring outputs of a row then take one
 * LDRD of (x0,x1),(x2,x3) and four multiplies for their six MACs: SMLAD (x0,x1).(w0,w1) + SMLABT x2.w2 and
 * SMLATB x1.w0 + SMLAD (x2,x3).(w1,w2). Output channel c only needs input channel c, which is already
 * copied, so the kernel may run in place. Filter: TFLM's own [3][3][C] int8. */

/* te_requant for an accumulator that already carries the left shift (this kernel folds it into the weights).
 * An exact row's 2^left is 2^(shift - lsh) here (target.py: lsh_in_acc), so it takes acc as it is. */
TE_INLINE int8_t te_rq0(int32_t acc, int32_t m2, int32_t r, int32_t s1, int mode, int32_t amin,
                         int32_t amax) {
    if ((mode & TE_MODE_EXACT) && s1 <= 0) return te_requant_exact(acc, m2, r, s1, amin, amax);
    const int32_t t = te_smmlar(acc, m2, acc);
    int32_t x = (int32_t)((uint32_t)r + ((uint32_t)t << 1));
    if (mode & TE_MODE_CORR) x += t >> 31;
    x = te_ssat8(x >> s1);
    if (mode & TE_MODE_CLAMP) {
        x = x < amin ? amin : x;
        x = x > amax ? amax : x;
    }
    return (int8_t)x;
}

/* n sums acc[i] (bias not in them, added modulo 2^32 as SMLAD would) of one channel requantized to o[i * step]
 * by te_rq0: the loops of the plane kernels once their sums are made. An exact row (only with TE_MODE_EXACT)
 * takes one out-of-line loop shared by every mode; the others test nothing per output. */
TE_INLINE void te_dw_rq_fast(const int32_t *acc, int n, int8_t *o, int32_t step, const te_rq *q, int mode,
                             int32_t amin, int32_t amax) {
    const int32_t bias = q->bias, m2 = q->m2, r = te_rq_fast_r(q), s1 = q->s1;
    const int m = mode & ~TE_MODE_EXACT;
    const int32_t *const end = acc + (n & ~1);
    for (; acc != end; acc += 2, o += 2 * step) {  /* two a pass: one LDRD, one pointer step */
        int32_t a0, a1;
        TE_LDRD(a0, a1, acc, 0);
        o[0] = te_rq0((int32_t)((uint32_t)a0 + (uint32_t)bias), m2, r, s1, m, amin, amax);
        o[step] = te_rq0((int32_t)((uint32_t)a1 + (uint32_t)bias), m2, r, s1, m, amin, amax);
    }
    if (n & 1) *o = te_rq0((int32_t)((uint32_t)*acc + (uint32_t)bias), m2, r, s1, m, amin, amax);
}

/* n int8 inputs src[i * si] widened (input offset added: off2 holds it in both halves) to int16 d[i], two a
 * word by SXTAB16, four a pass (d unaligned when the padding column count is odd: the M4 stores it). */
TE_INLINE void te_dw_widen(int16_t *d, const int8_t *src, int32_t si, int n, int32_t off2) {
    int i = 0;
    for (; i + 3 < n; i += 4, src += 4 * si) {
        const int32_t v0 = te_sxtab16(off2, (uint32_t)(uint8_t)src[0] | ((uint32_t)(uint8_t)src[si] << 16));
        const int32_t v1 = te_sxtab16(off2, (uint32_t)(uint8_t)src[2 * si] | ((uint32_t)(uint8_t)src[3 * si] << 16));
        memcpy(d + i, &v0, 4);
        memcpy(d + i + 2, &v1, 4);
    }
    for (; i < n; ++i, src += si) d[i] = (int16_t)te_sxtab16(off2, (uint8_t)src[0]);
}

__attribute__((noinline)) static void te_dw_rq_exact(const int32_t *acc, int n, int8_t *o, int32_t step,
                                                     const te_rq *q, int32_t amin, int32_t amax) {
    for (int i = 0; i < n; ++i, o += step) {
        *o = te_requant_exact((int32_t)((uint32_t)acc[i] + (uint32_t)q->bias), q->m2, te_rq_pow2_left(q), q->s1, amin,
                              amax);
    }
}

TE_INLINE void te_dw_rq_run(const int32_t *acc, int n, int8_t *o, int32_t step, const te_rq *q, int mode,
                            int32_t amin, int32_t amax) {
    if ((mode & TE_MODE_EXACT) && q->s1 <= 0) {
        te_dw_rq_exact(acc, n, o, step, q, amin, amax);
    } else {
        te_dw_rq_fast(acc, n, o, step, q, mode, amin, amax);
    }
}

/* Three rows of one channel: outputs o[0], o[C], ... for npairs pairs, then one more when tail. With an odd
 * width every row but the last runs one pair more, whose second output (the next row's first) is rewritten
 * by the next row. The left shift is
 * folded into the weights and the bias (exact: both only multiply by 2^lsh modulo 2^32). */
TE_INLINE void te_dw3_row(const int32_t *r0, int32_t rs, int8_t *o, int C, int npairs, int tail, const int32_t *w,
                          const te_rq *q, int mode, int32_t amin, int32_t amax) {
    const int32_t a01 = w[0], a12 = w[1], b01 = w[2], b12 = w[3], c01 = w[4], c12 = w[5];
    const int32_t bias = q->bias, m2 = q->m2, r = te_rq_r(q), s1 = q->s1;
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
        o[0] = te_rq0(s0, m2, r, s1, mode, amin, amax);
        o[C] = te_rq0(t1, m2, r, s1, mode, amin, amax);
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
        o[0] = te_rq0(s0, m2, r, s1, mode, amin, amax);
    }
}

TE_INLINE void te_dw3_body(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch, int mode) {
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
                           odd & last, w, &q, mode, amin, amax);
            }
        }
    }
}

/* Entry points, one per mode (te_kernels_dsp_intrin.h: TE_MODE_*). */
void te_dwconv3x3_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch) {
    te_dw3_body(p, in, filter, rq, out, scratch, 0);
}

void te_dwconv3x3_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch) {
    te_dw3_body(p, in, filter, rq, out, scratch, 1);
}

void te_dwconv3x3_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch) {
    te_dw3_body(p, in, filter, rq, out, scratch, 2);
}

void te_dwconv3x3_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch) {
    te_dw3_body(p, in, filter, rq, out, scratch, 3);
}

void te_dwconv3x3_s8_dsp_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch) {
    te_dw3_body(p, in, filter, rq, out, scratch, 4);
}

void te_dwconv3x3_s8_dsp_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch) {
    te_dw3_body(p, in, filter, rq, out, scratch, 5);
}

void te_dwconv3x3_s8_dsp_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch) {
    te_dw3_body(p, in, filter, rq, out, scratch, 6);
}

void te_dwconv3x3_s8_dsp_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch) {
    te_dw3_body(p, in, filter, rq, out, scratch, 7);
}

/* The assembly loops (te_dw3s2_macs, te_dw3v2_macs) need r7: builds that keep a frame pointer (-O0) take the C loop. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__thumb2__) && defined(__OPTIMIZE__)
#define TE_DW3V2_ASM 1
#else
#define TE_DW3V2_ASM 0
#endif

/* ------------------------------------------------- DEPTHWISE_CONV_2D 3x3, stride 2 (one channel at a time)
 * As te_dwconv3x3: each channel's input widened (input offset added, two pixels a word by SXTAB16) into a
 * zero-bordered int16 buffer of 2 out_w + 2 columns, a band of `kpad` output rows (2 kpad + 1 input rows) at a
 * time, so the scratch stays small on large planes (each band re-widens the one input row it shares with the
 * next). Output ox of a row reads the words (x[2ox], x[2ox+1]) and (x[2ox+2], x[2ox+3]) of its three buffer
 * rows: SMLAD (x0,x1).(w0,w1) + SMLABB x2.w2, two multiplies for three MACs, the second word being the next
 * output's first. A row's sums (bias left out) are made first, two outputs a pass of an assembly loop with the
 * weights in registers, into the int32 words after the buffer, then requantized (te_dw_rq_run).
 * Filter: TFLM's own [3][3][C] int8. */

/* The sums without bias of outputs 0..2 ceil(n / 2) - 1 of buffer row r0 (rows rs bytes apart) into acc; an
 * odd n's extra output reads one word past the row (inside the scratch) and is not used. w: the packed words
 * {a01, b01, c01, a2 | b2 << 16, c2} (filter rows a, b, c; taps 0 and 1 a pair, tap 2 alone). */
TE_INLINE void te_dw3s2_macs(const int32_t *r0, int32_t rs, int32_t *acc, int n, const int32_t *w) {
#if TE_DW3V2_ASM
    register const int32_t *a0 __asm__("r0") = r0;
    register int32_t a1 __asm__("r1") = rs;
    register int32_t *a2 __asm__("r2") = acc;
    register int32_t *a3 __asm__("r3") = acc + 2 * ((n + 1) >> 1);
    register const int32_t *a7 __asm__("r7") = w;
    __asm__ volatile(
        "ldm r7, {r4-r6, r8, r9}\n"
        "1:\n\t"
        "ldm r0, {r10-r12}\n\t"
        "smuad r7, r10, r4\n\t"
        "smlabb r7, r11, r8, r7\n\t"
        "smuad lr, r11, r4\n\t"
        "smlabb lr, r12, r8, lr\n\t"
        "add r10, r0, r1\n\t"
        "ldm r10, {r10-r12}\n\t"
        "smlad r7, r10, r5, r7\n\t"
        "smlabt r7, r11, r8, r7\n\t"
        "smlad lr, r11, r5, lr\n\t"
        "smlabt lr, r12, r8, lr\n\t"
        "add r10, r0, r1, lsl #1\n\t"
        "ldm r10, {r10-r12}\n\t"
        "smlad r7, r10, r6, r7\n\t"
        "smlabb r7, r11, r9, r7\n\t"
        "smlad lr, r11, r6, lr\n\t"
        "smlabb lr, r12, r9, lr\n\t"
        "adds r0, #8\n\t"
        "strd r7, lr, [r2], #8\n\t"
        "cmp r2, r3\n\t"
        "bne 1b\n"
        : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+r"(a7)
        :
        : "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
#else
    const int32_t a01 = w[0], b01 = w[1], c01 = w[2], ab2 = w[3], c2 = w[4];
    const int32_t *r1 = (const int32_t *)(const void *)((const char *)r0 + rs);
    const int32_t *r2 = (const int32_t *)(const void *)((const char *)r1 + rs);
    for (int i = 0; i < 2 * ((n + 1) >> 1); ++i) {
        int32_t a = te_smlabb(r0[i + 1], ab2, te_smlad(r0[i], a01, 0));
        a = te_smlabt(r1[i + 1], ab2, te_smlad(r1[i], b01, a));
        acc[i] = te_smlabb(r2[i + 1], c2, te_smlad(r2[i], c01, a));
    }
#endif
}

TE_INLINE void te_dw3s2_body(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch, int mode) {
    const int C = p->in_c, in_w = p->in_w, in_h = p->in_h, out_w = p->out_w, out_h = p->out_h;
    const int pad_h = p->pad_h, pad_w = p->pad_w, batches = p->batches;
    const int W2 = 2 * out_w + 2;  /* the columns the outputs read, even width */
    /* output rows per band (kpad): the buffer holds the band's 2 band + 1 input rows, not the whole plane */
    const int band = p->kpad > 0 && p->kpad < out_h ? p->kpad : out_h;
    const int lsh = p->lsh;
    const int32_t amin = p->act_min, amax = p->act_max;
    const int32_t off2 = (int32_t)(((uint32_t)p->in_off & 0xFFFFu) | ((uint32_t)p->in_off << 16));
    /* input columns inside the buffer (VALID padding may leave the last ones unread) */
    const int cols = in_w + pad_w > W2 ? W2 - pad_w : in_w;
    int16_t *buf = (int16_t *)(void *)scratch;
    int32_t *acc = (int32_t *)(void *)(buf + (2 * band + 1) * W2);  /* a row's sums: 2 ceil(out_w / 2) words */
    memset(buf, 0, (size_t)(2 * band + 1) * (size_t)W2 * 2u);  /* the padding columns stay zero */
    const int32_t in_pix = in_h * in_w, in_row = (int32_t)in_w * C;
    for (int b = 0; b < batches; ++b) {
        const int8_t *in_b = in + (int32_t)b * in_pix * C;
        int8_t *out_b = out + (int32_t)b * out_h * out_w * C;
        for (int c = 0; c < C; ++c) {
            int32_t w[5];
            {
                const int8_t *f = filter + c;
                uint32_t t2[3];
                for (int k = 0; k < 3; ++k, f += 3 * C) {
                    const uint32_t f0 = (uint32_t)(int32_t)f[0] << lsh, f1 = (uint32_t)(int32_t)f[C] << lsh;
                    w[k] = (int32_t)((f0 & 0xFFFFu) | (f1 << 16));
                    t2[k] = ((uint32_t)(int32_t)f[2 * C] << lsh) & 0xFFFFu;
                }
                w[3] = (int32_t)(t2[0] | (t2[1] << 16));
                w[4] = (int32_t)t2[2];
            }
            const te_rq q = {(int32_t)((uint32_t)rq[c].bias << lsh), rq[c].m2, rq[c].k, rq[c].s1};
            for (int oy0 = 0; oy0 < out_h; oy0 += band) {
                const int nb = out_h - oy0 < band ? out_h - oy0 : band;
                for (int j = 0; j < 2 * nb + 1; ++j) {  /* buffer row j: padded row 2 oy0 + j */
                    const int iy = 2 * oy0 + j - pad_h;
                    int16_t *d = buf + j * W2 + pad_w;
                    if (iy < 0 || iy >= in_h) {
                        for (int ix = 0; ix < cols; ++ix) d[ix] = 0;  /* TFLM skips padding taps: zero */
                        continue;
                    }
                    te_dw_widen(d, in_b + (int32_t)iy * in_row + c, C, cols, off2);
                }
                int8_t *o = out_b + (int32_t)oy0 * out_w * C + c;
                for (int k = 0; k < nb; ++k, o += out_w * C) {
                    te_dw3s2_macs((const int32_t *)(const void *)(buf + 2 * k * W2), W2 * 2, acc, out_w, w);
                    te_dw_rq_run(acc, out_w, o, C, &q, mode, amin, amax);
                }
            }
        }
    }
}

/* Entry points, one per mode (te_kernels_dsp_intrin.h: TE_MODE_*). */
void te_dwconv3x3s2_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3s2_body(p, in, filter, rq, out, scratch, 0);
}

void te_dwconv3x3s2_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3s2_body(p, in, filter, rq, out, scratch, 1);
}

void te_dwconv3x3s2_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3s2_body(p, in, filter, rq, out, scratch, 2);
}

void te_dwconv3x3s2_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3s2_body(p, in, filter, rq, out, scratch, 3);
}

void te_dwconv3x3s2_s8_dsp_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3s2_body(p, in, filter, rq, out, scratch, 4);
}

void te_dwconv3x3s2_s8_dsp_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3s2_body(p, in, filter, rq, out, scratch, 5);
}

void te_dwconv3x3s2_s8_dsp_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3s2_body(p, in, filter, rq, out, scratch, 6);
}

void te_dwconv3x3s2_s8_dsp_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3s2_body(p, in, filter, rq, out, scratch, 7);
}

/* ---------------------------------------- DEPTHWISE_CONV_2D 3x3, stride 1, v2 (long rows, pixel pairs widened)
 * te_dwconv3x3 with two changes for narrow planes (KWS: 25 x 5 outputs): when kpad != 0 (target.py: a plane
 * taller than wide) the channel is widened transposed (buffer rows are input columns, the filter read transposed), so the pair
 * loop runs along the long side and the per-row set-up is paid out_w times instead of out_h; the widening
 * packs two pixels into one word store; and a row's sums are made first (an assembly loop with the six weight
 * words in registers, bias left out) into 2 (nc + 1) / 2 words after the buffer, then requantized (bias added
 * modulo 2^32 as SMLAD would) by te_rq0 one by one: the same sums as te_dwconv3x3, exact as it. */

/* The sums without bias of n >= 1 output pairs of one buffer row r0 (rows rs bytes apart) into acc[2n]: per
 * pair three LDRD, twelve multiplies and one STRD, all six weight words in registers (C spills them). */
TE_INLINE void te_dw3v2_macs(const int32_t *r0, int32_t rs, int32_t *acc, int n, const int32_t *w) {
#if TE_DW3V2_ASM
    register const int32_t *a0 __asm__("r0") = r0;
    register int32_t a1 __asm__("r1") = rs - 4;  /* r0 is already past the pair when rows 1 and 2 are read */
    register int32_t *a2 __asm__("r2") = acc;
    register int32_t *a3 __asm__("r3") = acc + 2 * n;
    register const int32_t *a7 __asm__("r7") = w;
    __asm__ volatile(
        "ldm r7, {r4-r6, r8-r10}\n"
        "1:\n\t"
        "ldrd r12, lr, [r0], #4\n\t"
        "smuad r11, r12, r4\n\t"
        "smultb r7, r12, r4\n\t"
        "smlabt r11, lr, r5, r11\n\t"
        "smlad r7, lr, r5, r7\n\t"
        "add r12, r0, r1\n\t"
        "ldrd r12, lr, [r12]\n\t"
        "smlad r11, r12, r6, r11\n\t"
        "smlatb r7, r12, r6, r7\n\t"
        "smlabt r11, lr, r8, r11\n\t"
        "smlad r7, lr, r8, r7\n\t"
        "add r12, r0, r1, lsl #1\n\t"
        "ldrd r12, lr, [r12, #4]\n\t"
        "smlad r11, r12, r9, r11\n\t"
        "smlatb r7, r12, r9, r7\n\t"
        "smlabt r11, lr, r10, r11\n\t"
        "smlad r7, lr, r10, r7\n\t"
        "strd r11, r7, [r2], #8\n\t"
        "cmp r2, r3\n\t"
        "bne 1b\n"
        : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+r"(a7)
        :
        : "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
#else
    const int32_t a01 = w[0], a12 = w[1], b01 = w[2], b12 = w[3], c01 = w[4], c12 = w[5];
    for (int i = 0; i < n; ++i, ++r0, acc += 2) {
        const int32_t *r1 = (const int32_t *)(const void *)((const char *)r0 + rs);
        const int32_t *r2 = (const int32_t *)(const void *)((const char *)r1 + rs);
        int32_t x01 = r0[0], x23 = r0[1];
        int32_t s0 = te_smlabt(x23, a12, te_smlad(x01, a01, 0)), t1 = te_smlad(x23, a12, te_smlatb(x01, a01, 0));
        x01 = r1[0], x23 = r1[1];
        s0 = te_smlabt(x23, b12, te_smlad(x01, b01, s0)), t1 = te_smlad(x23, b12, te_smlatb(x01, b01, t1));
        x01 = r2[0], x23 = r2[1];
        s0 = te_smlabt(x23, c12, te_smlad(x01, c01, s0)), t1 = te_smlad(x23, c12, te_smlatb(x01, c01, t1));
        acc[0] = s0, acc[1] = t1;
    }
#endif
}

/* Four channels' planes widened at once (kpad bit 1, in_c % 4 == 0): one word load takes a pixel's four
 * channels, SXTAB16 and SXTAB16 ROR 8 widen them (input offset added) as (c0, c2), (c1, c3), and two pixels'
 * halves packed make one word store into each of the four buffers (pb int16 apart): a quarter of the
 * per-row set-up, and fewer instructions a pixel. ir rows of ic pixels, si / so bytes apart, from src. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
/* (a & 0xFFFF) | (b << 16) and (a & 0xFFFF0000) | (b >> 16) in one PKHBT / PKHTB (GCC makes two or three) */
static inline uint32_t te_pkhbt16(uint32_t a, uint32_t b) {
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline uint32_t te_pkhtb16(uint32_t a, uint32_t b) {
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
#else
static inline uint32_t te_pkhbt16(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
static inline uint32_t te_pkhtb16(uint32_t a, uint32_t b) { return (a & 0xFFFF0000u) | (b >> 16); }
#endif

TE_INLINE void te_dw_widen4(int16_t *d, int32_t pb, const int8_t *src, int32_t si, int32_t so, int ir, int ic,
                            int W2, int32_t off2) {
    for (int j = 0; j < ir; ++j, d += W2, src += so) {
        const int8_t *s = src;
        int i = 0;
        for (; i + 1 < ic; i += 2, s += 2 * si) {
            const uint32_t v0 = te_ld32(s), v1 = te_ld32(s + si);
            const uint32_t e0 = (uint32_t)te_sxtab16(off2, v0), e1 = (uint32_t)te_sxtab16(off2, v1);
            const uint32_t o0 = (uint32_t)te_sxtab16_ror8(off2, v0), o1 = (uint32_t)te_sxtab16_ror8(off2, v1);
            const uint32_t w0 = te_pkhbt16(e0, e1), w2 = te_pkhtb16(e1, e0);
            const uint32_t w1 = te_pkhbt16(o0, o1), w3 = te_pkhtb16(o1, o0);
            memcpy(d + i, &w0, 4);
            memcpy(d + pb + i, &w1, 4);
            memcpy(d + 2 * pb + i, &w2, 4);
            memcpy(d + 3 * pb + i, &w3, 4);
        }
        if (i < ic) {
            const uint32_t v = te_ld32(s), e = (uint32_t)te_sxtab16(off2, v), o = (uint32_t)te_sxtab16_ror8(off2, v);
            d[i] = (int16_t)e;
            d[pb + i] = (int16_t)o;
            d[2 * pb + i] = (int16_t)(e >> 16);
            d[3 * pb + i] = (int16_t)(o >> 16);
        }
    }
}

TE_INLINE void te_dw3v2_body(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch, int mode) {
    const int C = p->in_c, in_w = p->in_w, in_h = p->in_h, out_w = p->out_w, out_h = p->out_h;
    const int batches = p->batches, tr = p->kpad & 1;  /* transposed: buffer rows run down the columns */
    const int four = (p->kpad & 2) != 0;                /* four channels widened at once (te_dw_widen4) */
    /* the plane as the kernel walks it: nr buffer rows (outer) of nc outputs (inner) */
    const int nc = tr ? out_h : out_w, nr = tr ? out_w : out_h;
    const int ic = tr ? in_h : in_w, ir = tr ? in_w : in_h;
    const int pc = tr ? p->pad_h : p->pad_w, pr = tr ? p->pad_w : p->pad_h;
    const int32_t si = tr ? (int32_t)in_w * C : C, so = tr ? C : (int32_t)in_w * C;   /* input strides */
    const int32_t oi = tr ? (int32_t)out_w * C : C, oo = tr ? C : (int32_t)out_w * C;  /* output strides */
    const int32_t fi = tr ? 3 * C : C, fo = tr ? C : 3 * C;                            /* filter strides */
    const int W2 = (nc + 4) & ~1;  /* buffer row: nc + 2 columns, even, one spare for an odd nc */
    const int lsh = p->lsh, npairs = nc >> 1, odd = nc & 1;
    const int32_t amin = p->act_min, amax = p->act_max;
    const int32_t off2 = (int32_t)(((uint32_t)p->in_off & 0xFFFFu) | ((uint32_t)p->in_off << 16));
    const int32_t pb = (int32_t)(nr + 2) * W2;  /* one channel's buffer, int16 */
    int16_t *const bufs = (int16_t *)(void *)scratch;
    memset(bufs, 0, (size_t)(four ? 4 : 1) * (size_t)pb * 2u);
    int32_t *acc = (int32_t *)(void *)(bufs + (four ? 4 : 1) * pb);  /* a row's sums: 2 (npairs + odd) words */
    const int32_t in_pix = in_h * in_w;
    for (int b = 0; b < batches; ++b) {
        const int8_t *in_b = in + (int32_t)b * in_pix * C;
        int8_t *out_b = out + (int32_t)b * out_h * out_w * C;
        for (int c = 0; c < C; ++c) {
            const int16_t *buf = bufs;
            if (four) {  /* in place too: channels c + 1 .. c + 3 are widened before channel c is written */
                if ((c & 3) == 0) te_dw_widen4(bufs + pr * W2 + pc, pb, in_b + c, si, so, ir, ic, W2, off2);
                buf += (c & 3) * pb;
            } else {
                for (int j = 0; j < ir; ++j) {
                    te_dw_widen(bufs + (j + pr) * W2 + pc, in_b + (int32_t)j * so + c, si, ic, off2);
                }
            }
            int32_t w[6];
            {
                const int8_t *f = filter + c;
                for (int k = 0; k < 3; ++k, f += fo) {
                    const uint32_t f0 = (uint32_t)(int32_t)f[0] << lsh, f1 = (uint32_t)(int32_t)f[fi] << lsh;
                    const uint32_t f2 = (uint32_t)(int32_t)f[2 * fi] << lsh;
                    w[2 * k] = (int32_t)((f0 & 0xFFFFu) | (f1 << 16));
                    w[2 * k + 1] = (int32_t)((f1 & 0xFFFFu) | (f2 << 16));
                }
            }
            te_rq q = rq[c];
            q.bias = (int32_t)((uint32_t)q.bias << lsh);
            int8_t *o = out_b + c;
            for (int y = 0; y < nr; ++y, o += oo) {
                /* the sums of a row first (an odd nc's last pair reads the spare column), then te_rq0 for each */
                te_dw3v2_macs((const int32_t *)(const void *)(buf + y * W2), W2 * 2, acc, npairs + odd, w);
                te_dw_rq_run(acc, nc, o, oi, &q, mode, amin, amax);
            }
        }
    }
}

/* Entry points, one per mode (te_kernels_dsp_intrin.h: TE_MODE_*). */
void te_dwconv3x3v2_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3v2_body(p, in, filter, rq, out, scratch, 0);
}

void te_dwconv3x3v2_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3v2_body(p, in, filter, rq, out, scratch, 1);
}

void te_dwconv3x3v2_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3v2_body(p, in, filter, rq, out, scratch, 2);
}

void te_dwconv3x3v2_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3v2_body(p, in, filter, rq, out, scratch, 3);
}

void te_dwconv3x3v2_s8_dsp_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3v2_body(p, in, filter, rq, out, scratch, 4);
}

void te_dwconv3x3v2_s8_dsp_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3v2_body(p, in, filter, rq, out, scratch, 5);
}

void te_dwconv3x3v2_s8_dsp_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3v2_body(p, in, filter, rq, out, scratch, 6);
}

void te_dwconv3x3v2_s8_dsp_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch) {
    te_dw3v2_body(p, in, filter, rq, out, scratch, 7);
}
