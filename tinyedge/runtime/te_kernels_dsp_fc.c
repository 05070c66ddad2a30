/* tinyedge int8 FULLY_CONNECTED on the Cortex-M DSP extension (SMLAD, SXTB16, SMMLAR). See te_kernels_dsp.h.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels_dsp.h"

#include <string.h>

#include "te_kernels_dsp_intrin.h"

/* ---------------------------------------------------------------- FULLY_CONNECTED (2 outputs a pass) */

TE_INLINE void te_fc_body(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                          int8_t *out, int mode) {
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
            y[o] = te_requant_fc(a0, rq + o, lsh, mode, amin, amax);
            y[o + 1] = te_requant_fc(a1, rq + o + 1, lsh, mode, amin, amax);
        }
        for (; o < nout; ++o) {
            const int8_t *w0 = filter + o * kpad;
            int32_t a0 = rq[o].bias;
            for (int32_t d = 0; d < depth; ++d) a0 += (int32_t)x[d] * w0[d];
            y[o] = te_requant_fc(a0, rq + o, lsh, mode, amin, amax);
        }
    }
}

/* ------------------------------------------------- FULLY_CONNECTED, 4 rows a pass, 3 instructions per 4 MACs
 * A row pair (r, s) shares its weight words: bytes [e_r(k) w_s(k) e_r(k+2) w_s(k+2)] with e = w + 128 (unsigned).
 * Each 16-bit lane is then exactly 256 w_s + e_r, so with the input pair P = (x_k, x_k+2) one SMLAD of the raw
 * word gives 256 x.w_s + x.e_r and one of UXTB16(word) gives x.e_r: three instructions for four MACs, where
 * unpacking both rows with SXTB16 takes four. Over the row: A = 256 S_s + E_r, B = E_r, E_r = S_r + 128 sum(x);
 * so S_r = B - 128 sum(x) and S_s = (A - B) >> 8, exact modulo 2^32 while |S_s| < 2^23 (target.py checks the
 * rows' weights). Layout (target.py, _fc4_weights): blocks of 4 rows, each group of 4 inputs holding the words
 * of pair 0 for (x0,x2), (x1,x3), then pair 1's; a remaining pair the same with 2 words; a last single row as
 * plain int8 (SXTB16). Rows padded to whole words with zero bytes (so padding adds nothing).
 * te_fc4 widens each group of inputs once per block of 4 rows; te_fc4x widens the whole input once into
 * scratch (int16 pairs, 8 bytes a group) and saves two instructions a group and block. */

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define te_uxtb16(x) __uxtb16((int32_t)(x))
#else
static inline int32_t te_uxtb16(uint32_t x) { return (int32_t)(x & 0x00FF00FFu); }
#endif

static inline int32_t te_add32(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }

/* sum of depth int8 inputs: lanes of int16 partial sums, flushed before they can overflow */
static int32_t te_fc_xsum(const int8_t *x, int32_t depth) {
    int32_t total = 0, d = 0;
    const int32_t full = depth & ~3;
    while (d < full) {
        const int32_t stop = full - d > 1024 ? d + 1024 : full;  /* 256 words: |lane| <= 128 * 256 */
        int32_t a = 0, b = 0;
        for (; d < stop; d += 4) {
            const uint32_t v = te_ld32(x + d);
            a = te_sxtab16(a, v);
            b = te_sxtab16_ror8(b, v);
        }
        total += (int16_t)(a & 0xFFFF) + (int16_t)((uint32_t)a >> 16);
        total += (int16_t)(b & 0xFFFF) + (int16_t)((uint32_t)b >> 16);
    }
    for (; d < depth; ++d) total += x[d];
    return total;
}

/* te_fc4x: the inputs as int16 pairs (x0,x2),(x1,x3) per group (the last zero padded); returns their sum. */
static int32_t te_fc4_expand(const int8_t *x, int32_t depth, int32_t *xe) {
    const int32_t ng = depth >> 2, rem = depth & 3;
    for (int32_t g = 0; g < ng; ++g) te_expand4(x + 4 * g, xe + 2 * g);
    if (rem) {
        int8_t last[4] = {0, 0, 0, 0};
        memcpy(last, x + 4 * ng, (size_t)rem);
        te_expand4(last, xe + 2 * ng);
    }
    return te_fc_xsum(x, depth);
}

/* One group against one pair's two words (w02 for P0 = (x0,x2), w13 for P1 = (x1,x3)): A += raw, B += low bytes */
#define TE_FC4_PAIR(A, B, P0, P1, w02, w13)          \
    do {                                              \
        (A) = te_smlad((P0), (int32_t)(w02), (A));    \
        (B) = te_smlad((P0), te_uxtb16(w02), (B));    \
        (A) = te_smlad((P1), (int32_t)(w13), (A));    \
        (B) = te_smlad((P1), te_uxtb16(w13), (B));    \
    } while (0)

/* The A/B sums a[] of npairs (1 or 2) row pairs over ng groups, inputs raw (x) or widened (xe, when not NULL). */
static void te_fc4_sums(const int8_t *x, const int32_t *xe, const uint32_t *w, int32_t ng, int npairs, int32_t *a) {
    int32_t a0 = a[0], b0 = a[1], a1 = npairs > 1 ? a[2] : 0, b1 = npairs > 1 ? a[3] : 0;
    for (int32_t g = 0; g < ng; ++g) {
        int32_t p0, p1;
        if (xe) {
            p0 = xe[2 * g], p1 = xe[2 * g + 1];
        } else {
            const uint32_t xv = te_ld32(x + 4 * g);
            p0 = te_sxtb16(xv), p1 = te_sxtb16_ror8(xv);
        }
        TE_FC4_PAIR(a0, b0, p0, p1, w[0], w[1]);
        if (npairs > 1) {
            TE_FC4_PAIR(a1, b1, p0, p1, w[2], w[3]);
            w += 4;
        } else {
            w += 2;
        }
    }
    a[0] = a0, a[1] = b0;
    if (npairs > 1) a[2] = a1, a[3] = b1;
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__thumb2__)
/* te_fc4_sums of a block of 4 rows by hand, 4 groups (64 MACs) an iteration: 66 instructions (te_fc4) or 58
 * (te_fc4x), then single groups. GCC neither keeps the 13 live values in registers nor loads a group's 4
 * weight words with one LDM (22 instructions a group, not 16). (x, w, ng >= 1 groups, a): r0 x, r1 w,
 * r2 end of x's whole iterations, lr end of x, r12 (x0,x2), r3 (x1,x3), r4-r7 the sums A0 B0 A1 B1,
 * r8-r11 the weight words. */
void te_fc4_quad_asm(const int8_t *x, const uint32_t *w, int32_t ng, int32_t *a);
void te_fc4x_quad_asm(const int32_t *xe, const uint32_t *w, int32_t ng, int32_t *a);
#define TE_FC4_ASM_PAIR(wa, wb, A, B)                         \
    "smlad " A ", r12, " wa ", " A "\n\t"                    \
    "uxtb16 " wa ", " wa "\n\t"                               \
    "smlad " B ", r12, " wa ", " B "\n\t"                    \
    "smlad " A ", r3, " wb ", " A "\n\t"                     \
    "uxtb16 " wb ", " wb "\n\t"                               \
    "smlad " B ", r3, " wb ", " B "\n\t"
#define TE_FC4_ASM_RAW                                        \
    "ldr r3, [r0], #4\n\t"                                    \
    "ldmia r1!, {r8, r9, r10, r11}\n\t"                       \
    "sxtb16 r12, r3\n\t"                                      \
    "sxtb16 r3, r3, ror #8\n\t"                               \
    TE_FC4_ASM_PAIR("r8", "r9", "r4", "r5")                   \
    TE_FC4_ASM_PAIR("r10", "r11", "r6", "r7")
#define TE_FC4_ASM_EXP                                        \
    "ldrd r12, r3, [r0], #8\n\t"                              \
    "ldmia r1!, {r8, r9, r10, r11}\n\t"                       \
    TE_FC4_ASM_PAIR("r8", "r9", "r4", "r5")                   \
    TE_FC4_ASM_PAIR("r10", "r11", "r6", "r7")
#define TE_FC4_ASM_FUNC(name, xbytes, GROUP)                  \
    "\t.syntax unified\n\t"                                   \
    ".thumb\n\t"                                              \
    ".section .text." name ",\"ax\",%progbits\n\t"            \
    ".align 2\n\t"                                            \
    ".global " name "\n\t"                                    \
    ".type " name ", %function\n\t"                           \
    ".thumb_func\n"                                           \
    name ":\n\t"                                              \
    "push {r3, r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"     \
    "ldmia r3, {r4, r5, r6, r7}\n\t"                          \
    "add lr, r0, r2, lsl #" xbytes "\n\t"                     \
    "bic r2, r2, #3\n\t"                                      \
    "add r2, r0, r2, lsl #" xbytes "\n\t"                     \
    "cmp r0, r2\n\t"                                          \
    "beq 2f\n"                                                \
    "1:\n\t"                                                  \
    GROUP GROUP GROUP GROUP                                   \
    "cmp r0, r2\n\t"                                          \
    "bne 1b\n"                                                \
    "2:\n\t"                                                  \
    "cmp r0, lr\n\t"                                          \
    "beq 4f\n"                                                \
    "3:\n\t"                                                  \
    GROUP                                                     \
    "cmp r0, lr\n\t"                                          \
    "bne 3b\n"                                                \
    "4:\n\t"                                                  \
    "pop {r3}\n\t"                                            \
    "stmia r3, {r4, r5, r6, r7}\n\t"                          \
    "pop {r4, r5, r6, r7, r8, r9, r10, r11, pc}\n\t"          \
    ".size " name ", .-" name "\n\t"                          \
    ".text\n"
__asm__(TE_FC4_ASM_FUNC("te_fc4_quad_asm", "2", TE_FC4_ASM_RAW));
__asm__(TE_FC4_ASM_FUNC("te_fc4x_quad_asm", "3", TE_FC4_ASM_EXP));
#define TE_FC4_ASM 1
#else
#define TE_FC4_ASM 0
#endif

/* A last single row, plain int8 weights (SXTB16 pairs them with (x0,x2), (x1,x3)); ng groups from x or xe. */
static int32_t te_fc4_row(const int8_t *x, const int32_t *xe, uint32_t tail, const uint32_t *w, int32_t ng,
                          int32_t G, int32_t acc) {
    for (int32_t g = 0; g < G; ++g) {
        int32_t p0, p1;
        if (xe) {
            p0 = xe[2 * g], p1 = xe[2 * g + 1];
        } else {
            const uint32_t v = g < ng ? te_ld32(x + 4 * g) : tail;
            p0 = te_sxtb16(v), p1 = te_sxtb16_ror8(v);
        }
        acc = te_smlad(p0, te_sxtb16(w[g]), acc);
        acc = te_smlad(p1, te_sxtb16_ror8(w[g]), acc);
    }
    return acc;
}

/* A pair's accumulators (bias included) from its A/B sums: r row B, s row bias + (A - B) / 256, the difference
 * taken modulo 2^32 (exactly 256 S_s). */
#define TE_FC4_R(a, b) (b)
#define TE_FC4_S(a, b, bias) te_add32((int32_t)((uint32_t)(a) - (uint32_t)(b)) >> 8, (bias))

/* te_fc4x (scratch: 8 bytes per group of 4 inputs, word aligned) and te_fc4 (scratch NULL: one code for both, so
 * a model using both links it once) */
TE_INLINE void te_fc4_body(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                           int8_t *out, int32_t *scratch, int mode) {
    const int32_t depth = p->in_depth, nout = p->out_depth, G = (depth + 3) >> 2;
    const int32_t ng = scratch ? G : depth >> 2;  /* groups read from x or scratch; G > ng: a tail group */
    const int lsh = (int)p->lsh;
    const int32_t amin = p->act_min, amax = p->act_max;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = in + b * depth;
        uint32_t tail = 0;  /* te_fc4: the last partial group of inputs, zero padded (its weights are zero there) */
        int32_t xs;
        if (scratch) {
            xs = te_fc4_expand(x, depth, scratch);
        } else {
            memcpy(&tail, x + 4 * ng, (size_t)(depth & 3));
            xs = te_fc_xsum(x, depth);
        }
        const int32_t start = (int32_t)((uint32_t)xs * (uint32_t)-128);  /* E_r - 128 sum(x) = S_r */
        int8_t *y = out + b * nout;
        const uint32_t *w = (const uint32_t *)(const void *)filter;
        const te_rq_fc *q = rq;
        int8_t *yend = y + (nout & ~3);
        for (; y != yend; y += 4, q += 4, w += 4 * G) {
            const int32_t s0 = te_add32(start, q[0].bias), s2 = te_add32(start, q[2].bias);
            int32_t a[4] = {s0, s0, s2, s2};
#if TE_FC4_ASM
            if (ng) {
                if (scratch) {
                    te_fc4x_quad_asm(scratch, w, ng, a);
                } else {
                    te_fc4_quad_asm(x, w, ng, a);
                }
            }
#else
            te_fc4_sums(x, scratch, w, ng, 2, a);
#endif
            if (G > ng) te_fc4_sums((const int8_t *)&tail, 0, w + 4 * ng, 1, 2, a);
            y[0] = te_requant_fc(a[1], q, lsh, mode, amin, amax);
            y[1] = te_requant_fc(TE_FC4_S(a[0], a[1], q[1].bias), q + 1, lsh, mode, amin, amax);
            y[2] = te_requant_fc(a[3], q + 2, lsh, mode, amin, amax);
            y[3] = te_requant_fc(TE_FC4_S(a[2], a[3], q[3].bias), q + 3, lsh, mode, amin, amax);
        }
        if (nout & 2) {
            const int32_t s0 = te_add32(start, q[0].bias);
            int32_t a[2] = {s0, s0};
            te_fc4_sums(x, scratch, w, ng, 1, a);
            if (G > ng) te_fc4_sums((const int8_t *)&tail, 0, w + 2 * ng, 1, 1, a);
            y[0] = te_requant_fc(a[1], q, lsh, mode, amin, amax);
            y[1] = te_requant_fc(TE_FC4_S(a[0], a[1], q[1].bias), q + 1, lsh, mode, amin, amax);
            y += 2, q += 2, w += 2 * G;
        }
        if (nout & 1) y[0] = te_requant_fc(te_fc4_row(x, scratch, tail, w, ng, G, q->bias), q, lsh, mode, amin, amax);
    }
}

void te_fc4_s8_dsp_m0(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out) {
    te_fc4x_s8_dsp_m0(p, in, filter, rq, out, 0);
}

void te_fc4_s8_dsp_m1(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out) {
    te_fc4x_s8_dsp_m1(p, in, filter, rq, out, 0);
}

void te_fc4_s8_dsp_m2(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out) {
    te_fc4x_s8_dsp_m2(p, in, filter, rq, out, 0);
}

void te_fc4_s8_dsp_m3(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out) {
    te_fc4x_s8_dsp_m3(p, in, filter, rq, out, 0);
}

void te_fc4_s8_dsp_m4(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out) {
    te_fc4x_s8_dsp_m4(p, in, filter, rq, out, 0);
}

void te_fc4_s8_dsp_m5(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out) {
    te_fc4x_s8_dsp_m5(p, in, filter, rq, out, 0);
}

void te_fc4_s8_dsp_m6(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out) {
    te_fc4x_s8_dsp_m6(p, in, filter, rq, out, 0);
}

void te_fc4_s8_dsp_m7(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out) {
    te_fc4x_s8_dsp_m7(p, in, filter, rq, out, 0);
}

/* Entry points, one per mode (te_kernels_dsp_intrin.h: TE_MODE_*). */
void te_fc_s8_dsp_m0(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 0);
}

void te_fc_s8_dsp_m1(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 1);
}

void te_fc_s8_dsp_m2(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 2);
}

void te_fc_s8_dsp_m3(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 3);
}

void te_fc_s8_dsp_m4(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 4);
}

void te_fc_s8_dsp_m5(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 5);
}

void te_fc_s8_dsp_m6(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 6);
}

void te_fc_s8_dsp_m7(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 7);
}

void te_fc4x_s8_dsp_m0(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch) {
    te_fc4_body(p, in, filter, rq, out, (int32_t *)(void *)scratch, 0);
}

void te_fc4x_s8_dsp_m1(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch) {
    te_fc4_body(p, in, filter, rq, out, (int32_t *)(void *)scratch, 1);
}

void te_fc4x_s8_dsp_m2(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch) {
    te_fc4_body(p, in, filter, rq, out, (int32_t *)(void *)scratch, 2);
}

void te_fc4x_s8_dsp_m3(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch) {
    te_fc4_body(p, in, filter, rq, out, (int32_t *)(void *)scratch, 3);
}

void te_fc4x_s8_dsp_m4(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch) {
    te_fc4_body(p, in, filter, rq, out, (int32_t *)(void *)scratch, 4);
}

void te_fc4x_s8_dsp_m5(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch) {
    te_fc4_body(p, in, filter, rq, out, (int32_t *)(void *)scratch, 5);
}

void te_fc4x_s8_dsp_m6(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch) {
    te_fc4_body(p, in, filter, rq, out, (int32_t *)(void *)scratch, 6);
}

void te_fc4x_s8_dsp_m7(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch) {
    te_fc4_body(p, in, filter, rq, out, (int32_t *)(void *)scratch, 7);
}
