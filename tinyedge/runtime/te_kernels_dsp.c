/* tinyedge int8 CONV_2D on the Cortex-M DSP extension (SMLAD, SXTB16, SMMLAR). See te_kernels_dsp.h.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels_dsp.h"

#include <string.h>

#include "te_kernels_dsp_intrin.h"

/* ---------------------------------------------------------------- CONV_2D (im2col + 4-pixel GEMM) */

TE_INLINE void te_conv_body(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch, int mode) {
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
                    o[0] = te_requant(a0, &qc, lsh, mode, amin, amax);
                    o[out_c] = te_requant(a1, &qc, lsh, mode, amin, amax);
                    o[2 * out_c] = te_requant(a2, &qc, lsh, mode, amin, amax);
                    o[3 * out_c] = te_requant(a3, &qc, lsh, mode, amin, amax);
                } else {
                    o[0] = te_requant(a0, &qc, lsh, mode, amin, amax);
                    if (n > 1) o[out_c] = te_requant(a1, &qc, lsh, mode, amin, amax);
                    if (n > 2) o[2 * out_c] = te_requant(a2, &qc, lsh, mode, amin, amax);
                }
            }
        }
    }
}

/* Entry points, one per mode (te_kernels_dsp_intrin.h: TE_MODE_*). */
void te_conv2d_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 0);
}

void te_conv2d_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 1);
}

void te_conv2d_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 2);
}

void te_conv2d_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 3);
}

void te_conv2d_s8_dsp_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 4);
}

void te_conv2d_s8_dsp_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 5);
}

void te_conv2d_s8_dsp_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 6);
}

void te_conv2d_s8_dsp_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 7);
}

/* ---------------------------------------- CONV_2D blocked over P = 4, 5 or 6 pixels (te_conv2d_s8_dsp_pxP) */
/* The same im2col GEMM, each weight word shared by P pixels, the loop over output channels and k in assembly
 * on the M4: the columns of two pixels load with one LDM, the k loop runs two k-steps a pass (filter rows
 * padded to a multiple of 8 bytes), the accumulators of TE_PX_CHUNK channels wait in scratch and are then
 * requantized in C (te_requant, every mode). Instructions per k-step and pixel block: P = 4: 13.5 for 16
 * MACs (one LDRD for the weight words of two k-steps); P = 5: 17 for 20; P = 6: 19.5 for 24. The im2col
 * gather copies whole runs of a filter row (no call per tap). The host runs the C loop below on the exact
 * models of SMLAD/SXTB16 (te_kernels_dsp_intrin.h): the same sums, wrapping the same way. */

#define TE_PX_CHUNK 16 /* output channels a pass of the channel loop */

/* The assembly needs r7: builds that keep a frame pointer (-O0) take the C loop. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__thumb2__) && defined(__OPTIMIZE__)
#define TE_CONV_ASM 1
#else
#define TE_CONV_ASM 0
#endif

#if TE_CONV_ASM
/* One k-step for two pixels: columns (4 words) at x (post-incremented), weights r12 = (k0,k2), lr = (k1,k3). */
#define TE_PX_PAIR(x, a, b)                  \
    "ldmia " x "!, {r8-r11}\n\t"             \
    "smlad " a ", r8, r12, " a "\n\t"        \
    "smlad " a ", r9, lr, " a "\n\t"         \
    "smlad " b ", r10, r12, " b "\n\t"       \
    "smlad " b ", r11, lr, " b "\n\t"
/* The weight word of one k-step from w (post-incremented) into r12, lr. */
#define TE_PX_WEIGHTS(w)                     \
    "ldr r12, [" w "], #4\n\t"               \
    "sxtb16 lr, r12, ror #8\n\t"             \
    "sxtb16 r12, r12\n\t"
#define TE_PX_K5                              \
    TE_PX_WEIGHTS("r6")                       \
    TE_PX_PAIR("r5", "r0", "r1")              \
    TE_PX_PAIR("r5", "r2", "r3")              \
    "ldrd r8, r9, [r5], #8\n\t"               \
    "smlad r4, r8, r12, r4\n\t"               \
    "smlad r4, r9, lr, r4\n\t"
#define TE_PX_K6                              \
    TE_PX_WEIGHTS("r7")                       \
    TE_PX_PAIR("r6", "r0", "r1")              \
    TE_PX_PAIR("r6", "r2", "r3")              \
    TE_PX_PAIR("r6", "r4", "r5")
#endif

/* acc[c][j] = bias_c + sum over k-steps s < ks of cols[s][j] . w_c[s] for the nch channels from q, j < P:
 * cols = SXTB16 pairs (k0,k2), (k1,k3) per k-step and pixel, w_c = filter rows of 4 * ks bytes, ks even. */
TE_INLINE void te_conv_gemm(const int32_t *cols, const int8_t *w, const te_rq *q, int ks, int nch, int32_t *acc,
                            int P) {
#if TE_CONV_ASM
    /* State kept on the stack while all 14 registers run the k loop: [sp] acc, acc end, q, cols, cols end. */
    if (P == 4) {
        register int32_t *r0 __asm__("r0") = acc;
        register int32_t r1 __asm__("r1") = nch;
        register const te_rq *r2 __asm__("r2") = q;
        register const int32_t *r5 __asm__("r5") = cols;
        register const int8_t *r6 __asm__("r6") = w;
        register int32_t r7 __asm__("r7") = ks;
        __asm__ volatile(
            "add r1, r0, r1, lsl #4\n\t"
            "add r7, r5, r7, lsl #5\n\t"
            "push {r0, r1, r2, r5, r7}\n"
            "1:\n\t"
            "ldr r12, [sp, #8]\n\t"
            "ldr r0, [r12], #12\n\t" /* bias; next te_rq row */
            "str r12, [sp, #8]\n\t"
            "mov r1, r0\n\t"
            "mov r2, r0\n\t"
            "mov r3, r0\n\t"
            "ldrd r5, r7, [sp, #12]\n"
            "2:\n\t"
            "ldrd r12, r4, [r6], #8\n\t" /* the weight words of two k-steps */
            "sxtb16 lr, r12, ror #8\n\t"
            "sxtb16 r12, r12\n\t"
            TE_PX_PAIR("r5", "r0", "r1")
            TE_PX_PAIR("r5", "r2", "r3")
            "sxtb16 lr, r4, ror #8\n\t"
            "sxtb16 r12, r4\n\t"
            TE_PX_PAIR("r5", "r0", "r1")
            TE_PX_PAIR("r5", "r2", "r3")
            "cmp r5, r7\n\t"
            "bne 2b\n\t"
            "ldr r12, [sp]\n\t"
            "stmia r12!, {r0-r3}\n\t"
            "ldr lr, [sp, #4]\n\t"
            "str r12, [sp]\n\t"
            "cmp r12, lr\n\t"
            "bne 1b\n\t"
            "add sp, #20\n"
            : "+r"(r0), "+r"(r1), "+r"(r2), "+r"(r5), "+r"(r6), "+r"(r7)
            :
            : "r3", "r4", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
    } else if (P == 5) {
        register int32_t *r0 __asm__("r0") = acc;
        register int32_t r1 __asm__("r1") = nch;
        register const te_rq *r2 __asm__("r2") = q;
        register const int32_t *r5 __asm__("r5") = cols;
        register const int8_t *r6 __asm__("r6") = w;
        register int32_t r7 __asm__("r7") = ks;
        __asm__ volatile(
            "add r1, r1, r1, lsl #2\n\t"
            "add r1, r0, r1, lsl #2\n\t"
            "add r7, r7, r7, lsl #2\n\t"
            "add r7, r5, r7, lsl #3\n\t"
            "push {r0, r1, r2, r5, r7}\n"
            "1:\n\t"
            "ldr r12, [sp, #8]\n\t"
            "ldr r0, [r12], #12\n\t" /* bias; next te_rq row */
            "str r12, [sp, #8]\n\t"
            "mov r1, r0\n\t"
            "mov r2, r0\n\t"
            "mov r3, r0\n\t"
            "mov r4, r0\n\t"
            "ldrd r5, r7, [sp, #12]\n"
            "2:\n\t"
            TE_PX_K5
            TE_PX_K5
            "cmp r5, r7\n\t"
            "bne 2b\n\t"
            "ldr r12, [sp]\n\t"
            "stmia r12!, {r0-r4}\n\t"
            "ldr lr, [sp, #4]\n\t"
            "str r12, [sp]\n\t"
            "cmp r12, lr\n\t"
            "bne 1b\n\t"
            "add sp, #20\n"
            : "+r"(r0), "+r"(r1), "+r"(r2), "+r"(r5), "+r"(r6), "+r"(r7)
            :
            : "r3", "r4", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
    } else {
        register int32_t *r0 __asm__("r0") = acc;
        register int32_t r1 __asm__("r1") = nch;
        register const te_rq *r2 __asm__("r2") = q;
        register const int32_t *r3 __asm__("r3") = cols;
        register int32_t r4 __asm__("r4") = ks;
        register const int8_t *r7 __asm__("r7") = w;
        __asm__ volatile(
            "add r1, r1, r1, lsl #1\n\t"
            "add r1, r0, r1, lsl #3\n\t"
            "add r4, r4, r4, lsl #1\n\t"
            "add r4, r3, r4, lsl #4\n\t"
            "push {r0, r1, r2, r3, r4}\n"
            "1:\n\t"
            "ldr r12, [sp, #8]\n\t"
            "ldr r0, [r12], #12\n\t" /* bias; next te_rq row */
            "str r12, [sp, #8]\n\t"
            "mov r1, r0\n\t"
            "mov r2, r0\n\t"
            "mov r3, r0\n\t"
            "mov r4, r0\n\t"
            "mov r5, r0\n\t"
            "ldr r6, [sp, #12]\n"
            "2:\n\t"
            TE_PX_K6
            TE_PX_K6
            "ldr lr, [sp, #16]\n\t" /* no register left for the end of the columns */
            "cmp r6, lr\n\t"
            "bne 2b\n\t"
            "ldr r12, [sp]\n\t"
            "stmia r12!, {r0-r5}\n\t"
            "ldr lr, [sp, #4]\n\t"
            "str r12, [sp]\n\t"
            "cmp r12, lr\n\t"
            "bne 1b\n\t"
            "add sp, #20\n"
            : "+r"(r0), "+r"(r1), "+r"(r2), "+r"(r3), "+r"(r4), "+r"(r7)
            :
            : "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
    }
#else
    for (int c = 0; c < nch; ++c, ++q, acc += P) {
        for (int j = 0; j < P; ++j) acc[j] = q->bias;
        const int32_t *x = cols;
        for (int s = 0; s < ks; ++s, w += 4, x += 2 * P) {
            const uint32_t wv = te_ld32(w);
            const int32_t w02 = te_sxtb16(wv), w13 = te_sxtb16_ror8(wv);
            for (int j = 0; j < P; ++j) acc[j] = te_smlad(x[2 * j + 1], w13, te_smlad(x[2 * j], w02, acc[j]));
        }
    }
#endif
}

/* kfill >= 1 k-steps of 4 int8 at src into the SXTB16 pairs of one pixel's column at c (2 P words apart). */
TE_INLINE void te_px_expand(const int8_t *src, int32_t *c, int kfill, int P) {
#if TE_CONV_ASM
    int32_t n = kfill, t0, t1, t2, t3;
    __asm__ volatile(
        "subs %[n], %[n], #2\n\t"
        "blt 2f\n"
        "1:\n\t"
        "ldr %[t0], [%[s]], #4\n\t"
        "ldr %[t1], [%[s]], #4\n\t"
        "sxtb16 %[t2], %[t0]\n\t"
        "sxtb16 %[t0], %[t0], ror #8\n\t"
        "sxtb16 %[t3], %[t1]\n\t"
        "sxtb16 %[t1], %[t1], ror #8\n\t"
        "strd %[t2], %[t0], [%[c]], %[st]\n\t"
        "strd %[t3], %[t1], [%[c]], %[st]\n\t"
        "subs %[n], %[n], #2\n\t"
        "bge 1b\n"
        "2:\n\t"
        "tst %[n], #1\n\t"  /* -1 left: one more k-step; -2: none */
        "beq 3f\n\t"
        "ldr %[t0], [%[s]]\n\t"
        "sxtb16 %[t2], %[t0]\n\t"
        "sxtb16 %[t0], %[t0], ror #8\n\t"
        "strd %[t2], %[t0], [%[c]]\n"
        "3:\n"
        : [s] "+r"(src), [c] "+r"(c), [n] "+r"(n), [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3)
        : [st] "n"(8 * P)
        : "cc", "memory");
#else
    for (int s = 0; s < kfill; ++s, src += 4, c += 2 * P) te_expand4(src, c);
#endif
}

/* n int8 bytes from src to dst without a call below 64: words, the last one overlapping, or 1 to 3 bytes. */
TE_INLINE void te_copy_run(int8_t *dst, const int8_t *src, int n) {
    if (n >= 64) {
        memcpy(dst, src, (size_t)n);
    } else if (n >= 4) {
        for (int t = 0; t + 4 < n; t += 4) memcpy(dst + t, src + t, 4);
        memcpy(dst + n - 4, src + n - 4, 4);
    } else {
        if (n & 2) memcpy(dst, src, 2);
        if (n & 1) dst[n - 1] = src[n - 1];
    }
}

/* n >= 0 bytes of v4's byte (replicated in all four bytes of v4) at dst. */
__attribute__((noinline)) static void te_fill_s8(int8_t *dst, uint32_t v4, int n) {
    if (n >= 32) {
        memset(dst, (int)(v4 & 0xFF), (size_t)n);
        return;
    }
    for (; n >= 4; n -= 4, dst += 4) memcpy(dst, &v4, 4);
    if (n & 2) {  /* not a loop: GCC would make a byte loop a memset call */
        memcpy(dst, &v4, 2);
        dst += 2;
    }
    if (n & 1) *dst = (int8_t)v4;
}

/* The receptive field of output pixel pix into row ([k_h][k_w][in_c] int8, padding = the input zero point),
 * for windows that cross the input's edges or have dilation: padding everywhere, then the in-bounds taps of
 * each filter row inside the input (one run without dilation). */
static void te_conv_gather(const te_dsp_conv_params *p, const int8_t *in_b, int pix, int8_t *row) {
    const int in_c = p->in_c, in_w = p->in_w, in_h = p->in_h, k_w = p->k_w, k_h = p->k_h;
    const int dw = p->dil_w, dh = p->dil_h, run = k_w * in_c;
    const int oy = pix / p->out_w, ox = pix - oy * p->out_w;
    const int iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
    /* taps kx in [lo, hi) and filter rows ky in [top, bottom) are inside the input */
    const int lo = ix0 >= 0 ? 0 : (-ix0 + dw - 1) / dw, top = iy0 >= 0 ? 0 : (-iy0 + dh - 1) / dh;
    int hi = ix0 >= in_w ? 0 : (in_w - ix0 + dw - 1) / dw, bottom = iy0 >= in_h ? 0 : (in_h - iy0 + dh - 1) / dh;
    if (hi > k_w) hi = k_w;
    if (bottom > k_h) bottom = k_h;
    te_fill_s8(row, (uint32_t)(uint8_t)p->in_zp * 0x01010101u, k_h * run);
    if (lo >= hi) return;
    const int8_t *s = in_b + ((int32_t)(iy0 + top * dh) * in_w + ix0 + lo * dw) * in_c;
    const int32_t step = (int32_t)dh * in_w * in_c;
    int8_t *r = row + top * run + lo * in_c;
    for (int ky = top; ky < bottom; ++ky, r += run, s += step) {
        if (dw == 1) {
            te_copy_run(r, s, (hi - lo) * in_c);
        } else {
            const int8_t *t = s;
            int8_t *d = r;
            for (int kx = lo; kx < hi; ++kx, t += dw * in_c, d += in_c) te_copy_run(d, t, in_c);
        }
    }
}

/* k_h rows of run >= 4 bytes, step bytes apart from src, to dst (one out-of-line copy for every kernel). */
__attribute__((noinline)) static void te_copy_rows(int8_t *dst, const int8_t *src, int k_h, int run, int32_t step) {
    for (int ky = 0; ky < k_h; ++ky, dst += run, src += step) te_copy_run(dst, src, run);
}

/* Requantize nch channels x n pixels of accumulators acc ([channel][P]) into out ([pixel][out_c]): the
 * general case (a partial pixel block, a left shift, exact rows) in te_requant's own terms. */
TE_INLINE void te_px_requant_loop(const te_dsp_conv_params *p, const int32_t *acc, const te_rq *q, int8_t *o,
                                  int nch, int n, int mode, int P) {
    const int out_c = p->out_c, lsh = p->lsh;
    const int32_t amin = p->act_min, amax = p->act_max;
    for (int c = 0; c < nch; ++c, acc += P, ++q, ++o) {
        const te_rq qc = *q;
        for (int j = 0; j < n; ++j) o[j * out_c] = te_requant(acc[j], &qc, lsh, mode, amin, amax);
    }
}

/* The same with exact rows possible, the mode a variable: one out-of-line copy for every kernel. */
__attribute__((noinline)) static void te_px_requant_exact(const te_dsp_conv_params *p, const int32_t *acc,
                                                          const te_rq *q, int8_t *o, int nch, int n, int mode,
                                                          int P) {
    te_px_requant_loop(p, acc, q, o, nch, n, mode, P);
}

TE_INLINE void te_px_requant_any(const te_dsp_conv_params *p, const int32_t *acc, const te_rq *q, int8_t *o,
                                 int nch, int n, int mode, int P) {
    if (mode & TE_MODE_EXACT) {
        te_px_requant_exact(p, acc, q, o, nch, n, mode, P);
    } else {
        te_px_requant_loop(p, acc, q, o, nch, n, mode, P);
    }
}

TE_INLINE void te_conv_px_body(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                               const te_rq *rq, int8_t *out, int8_t *scratch, int mode, int P) {
    const int kpad = p->kpad, ks = kpad >> 2;  /* kpad: a multiple of 8 here */
    const int in_c = p->in_c, out_c = p->out_c, npix = p->out_h * p->out_w;
    const int pointwise = p->pointwise, fast = mode & ~TE_MODE_EXACT;
    const int32_t amin = p->act_min, amax = p->act_max;
    const int patch = p->k_h * p->k_w * in_c;
    const int kfill = pointwise ? in_c >> 2 : ks;  /* k-steps the columns take from the input */
    int32_t *cols = (int32_t *)(void *)scratch;    /* [k-step][pixel 0..P-1][2 words] */
    int32_t *accs = cols + 2 * P * ks;             /* [channel][pixel], TE_PX_CHUNK channels */
    int8_t *row = (int8_t *)(accs + TE_PX_CHUNK * P); /* one gathered int8 patch */
    if (!pointwise) memset(row + patch, 0, (size_t)(kpad - patch));
    /* windows inside the input (iy0 <= ylim, ix0 <= xlim) without dilation along x are k_h whole rows */
    const int run = p->k_w * in_c, rows = p->dil_w == 1 && run >= 4;
    /* filter rows of whole k-steps (in_c % 4 == 0): such windows expand straight from the input rows, no
     * copy; the k-steps past the patch stay zero (the gather's zero tail writes the same zeros) */
    const int direct = rows && (run & 3) == 0 && run >= 16, rsteps = run >> 2;
    const int ylim = p->in_h - 1 - (p->k_h - 1) * p->dil_h, xlim = p->in_w - p->k_w;
    const int32_t rstep = (int32_t)p->dil_h * p->in_w * in_c;
    if (kfill < ks) memset(cols + 2 * P * kfill, 0, (size_t)(ks - kfill) * 8 * P);  /* meets zero weights */
    const int dsteps = p->k_h * rsteps;
    if (direct && dsteps < ks) memset(cols + 2 * P * dsteps, 0, (size_t)(ks - dsteps) * 8 * P);
    for (int b = 0; b < p->batches; ++b) {
        const int8_t *in_b = in + (int32_t)b * p->in_h * p->in_w * in_c;
        int8_t *out_b = out + (int32_t)b * npix * out_c;
        for (int p0 = 0; p0 < npix; p0 += P) {
            const int n = npix - p0 < P ? npix - p0 : P;
            for (int j = 0; j < n; ++j) {
                const int8_t *src = in_b + (int32_t)(p0 + j) * in_c;
                if (!pointwise) {
                    const int oy = (p0 + j) / p->out_w, ox = p0 + j - oy * p->out_w;
                    const int iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
                    if (direct && iy0 >= 0 && iy0 <= ylim && ix0 >= 0 && ix0 <= xlim) {  /* inside: expand rows */
                        const int8_t *s = in_b + ((int32_t)iy0 * p->in_w + ix0) * in_c;
                        int32_t *c = cols + 2 * j;
                        for (int ky = 0; ky < p->k_h; ++ky, s += rstep, c += 2 * P * rsteps) {
                            te_px_expand(s, c, rsteps, P);
                        }
                        continue;
                    }
                    if (rows && iy0 >= 0 && iy0 <= ylim && ix0 >= 0 && ix0 <= xlim) {  /* inside: whole rows */
                        te_copy_rows(row, in_b + ((int32_t)iy0 * p->in_w + ix0) * in_c, p->k_h, run, rstep);
                    } else {
                        te_conv_gather(p, in_b, p0 + j, row);
                    }
                    src = row;
                }
                te_px_expand(src, cols + 2 * j, kfill, P);
            }
            for (int oc0 = 0; oc0 < out_c; oc0 += TE_PX_CHUNK) {
                const int nch = out_c - oc0 < TE_PX_CHUNK ? out_c - oc0 : TE_PX_CHUNK;
                te_conv_gemm(cols, filter + (int32_t)oc0 * kpad, rq + oc0, ks, nch, accs, P);
                int8_t *o = out_b + (int32_t)p0 * out_c + oc0;
                if (n < P || p->lsh) {
                    te_px_requant_any(p, accs, rq + oc0, o, nch, n, mode, P);
                    continue;
                }
                const int32_t *a = accs;
                const te_rq *q = rq + oc0;
                for (int c = 0; c < nch; ++c, a += P, ++q, ++o) {
                    const te_rq qc = *q;  /* in registers: the int8 stores below may alias anything */
                    if ((mode & TE_MODE_EXACT) && qc.s1 <= 0) {  /* an exact row */
                        te_px_requant_any(p, a, q, o, 1, P, mode, P);
                        continue;
                    }
                    o[0] = te_requant(a[0], &qc, 0, fast, amin, amax);
                    o[out_c] = te_requant(a[1], &qc, 0, fast, amin, amax);
                    o[2 * out_c] = te_requant(a[2], &qc, 0, fast, amin, amax);
                    o[3 * out_c] = te_requant(a[3], &qc, 0, fast, amin, amax);
                    if (P > 4) o[4 * out_c] = te_requant(a[4], &qc, 0, fast, amin, amax);
                    if (P > 5) o[5 * out_c] = te_requant(a[5], &qc, 0, fast, amin, amax);
                }
            }
        }
    }
}

/* Entry points, one per block size and mode (te_kernels_dsp_intrin.h: TE_MODE_*). */
void te_conv2d_s8_dsp_px4_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 0, 4);
}

void te_conv2d_s8_dsp_px4_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 1, 4);
}

void te_conv2d_s8_dsp_px4_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 2, 4);
}

void te_conv2d_s8_dsp_px4_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 3, 4);
}

void te_conv2d_s8_dsp_px4_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 4, 4);
}

void te_conv2d_s8_dsp_px4_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 5, 4);
}

void te_conv2d_s8_dsp_px4_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 6, 4);
}

void te_conv2d_s8_dsp_px4_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 7, 4);
}

void te_conv2d_s8_dsp_px5_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 0, 5);
}

void te_conv2d_s8_dsp_px5_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 1, 5);
}

void te_conv2d_s8_dsp_px5_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 2, 5);
}

void te_conv2d_s8_dsp_px5_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 3, 5);
}

void te_conv2d_s8_dsp_px5_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 4, 5);
}

void te_conv2d_s8_dsp_px5_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 5, 5);
}

void te_conv2d_s8_dsp_px5_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 6, 5);
}

void te_conv2d_s8_dsp_px5_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 7, 5);
}

void te_conv2d_s8_dsp_px6_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 0, 6);
}

void te_conv2d_s8_dsp_px6_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 1, 6);
}

void te_conv2d_s8_dsp_px6_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 2, 6);
}

void te_conv2d_s8_dsp_px6_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 3, 6);
}

void te_conv2d_s8_dsp_px6_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 4, 6);
}

void te_conv2d_s8_dsp_px6_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 5, 6);
}

void te_conv2d_s8_dsp_px6_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 6, 6);
}

void te_conv2d_s8_dsp_px6_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch) {
    te_conv_px_body(p, in, filter, rq, out, scratch, 7, 6);
}
