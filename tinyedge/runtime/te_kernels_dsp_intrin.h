/* tinyedge's DSP building blocks, shared by the te_kernels_dsp*.c files: the SMLAD/SXTB16/SMMLAR
 * intrinsics (exact C models of them on targets without the DSP extension, e.g. the host), word loads,
 * and the folded requantization of te_kernels_dsp.h. Internal: static inline only.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#ifndef TE_KERNELS_DSP_INTRIN_H
#define TE_KERNELS_DSP_INTRIN_H

#include <stdint.h>
#include <string.h>

#include "te_kernels_dsp.h"

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

/* Kernel modes (te_dsp_conv_params.mode), compile-time constants of each entry point _m0.._m7:
 * CORR: the (t < 0) rounding fix-up is needed; CLAMP: the activation range is narrower than int8 (else SSAT
 * alone clamps); EXACT: some channels take TFLM's generic requantization (see te_kernels_dsp.h). Without
 * EXACT the test of a row's s1 below compiles away: layers whose channels are all ordinary pay nothing. */
#define TE_MODE_CORR 1
#define TE_MODE_CLAMP 2
#define TE_MODE_EXACT 4

/* An exact row (s1 <= 0) holds TFLM's multiplier m (0 or in [2^30, 2^31), as QuantizeMultiplier gives for
 * positive scales) and shift (left - right, in [-31, 31]) as {bias, m2 = 2m - 2^32, 2^left (0 when m == 0),
 * s1 = (out_zp - 256) * 32 + right}. */
#define TE_RQ_EXACT_RIGHT(s1) ((int)((s1) & 31))
#define TE_RQ_EXACT_ZP(s1) (((s1) >> 5) + 256)

/* TFLM's MultiplyByQuantizedMultiplier (double rounding, te_mul_by_qm of te_kernels.c) + the output zero
 * point, clamped to [amin, amax], for the channels a fast row cannot express (zero or tiny multipliers,
 * right shifts above 29, a left shift other than the layer's, constants that would overflow). For m in
 * [2^30, 2^31) SMMLAR(x, 2m - 2^32, x) is SaturatingRoundingDoublingHighMul(x, m) for every int32 x; a zero
 * multiplier has 2^left = 0, so x = 0 and t = 0 as TFLM's. */
TE_INLINE int8_t te_requant_exact(int32_t acc, int32_t m2, int32_t pow2_left, int32_t s1, int32_t amin,
                                  int32_t amax) {
    const int32_t x = (int32_t)((uint32_t)acc * (uint32_t)pow2_left);  /* acc << left, wrapping as TFLM's */
    const int32_t t = te_smmlar(x, m2, x);
    /* RoundingDivideByPOT: half away from zero (right == 0 leaves t unchanged) */
    const int right = TE_RQ_EXACT_RIGHT(s1);
    const int32_t mask = (int32_t)((1u << right) - 1u);
    const int32_t threshold = (mask >> 1) + (t < 0);
    int32_t y = (t >> right) + ((t & mask) > threshold);
    y = (int32_t)((uint32_t)y + (uint32_t)TE_RQ_EXACT_ZP(s1));
    y = y < amin ? amin : y;
    return (int8_t)(y > amax ? amax : y);
}

/* The fast requantization of an accumulator (bias already in it) with a row's r and s1, as the mode says. */
TE_INLINE int8_t te_requant_rs(int32_t acc, int32_t m2, int32_t r, int32_t s1, int lsh, int mode, int32_t amin,
                               int32_t amax) {
    acc = (int32_t)((uint32_t)acc << lsh);
    const int32_t t = te_smmlar(acc, m2, acc);
    int32_t x = (int32_t)((uint32_t)r + ((uint32_t)t << 1));
    if (mode & TE_MODE_CORR) x += t >> 31;
    x >>= s1;
    x = te_ssat8(x);
    if (mode & TE_MODE_CLAMP) {
        x = x < amin ? amin : x;
        x = x > amax ? amax : x;
    }
    return (int8_t)x;
}

/* A compact row's r (fast rows: k << (s1 - 1)), 2^left (exact rows; 0 for a zero multiplier), either. */
TE_INLINE int32_t te_rq_fast_r(const te_rq *q) { return (int32_t)((uint32_t)(int32_t)q->k << (q->s1 - 1)); }
TE_INLINE int32_t te_rq_pow2_left(const te_rq *q) { return q->m2 ? (int32_t)(1u << q->k) : 0; }
TE_INLINE int32_t te_rq_r(const te_rq *q) { return q->s1 > 0 ? te_rq_fast_r(q) : te_rq_pow2_left(q); }

/* Requantize one accumulator (bias already in it), as the mode says. The fast row applies the layer's
 * left shift lsh; an exact row (only with TE_MODE_EXACT) takes the raw accumulator and its own shift. */
TE_INLINE int8_t te_requant(int32_t acc, const te_rq *q, int lsh, int mode, int32_t amin, int32_t amax) {
    if ((mode & TE_MODE_EXACT) && q->s1 <= 0) {
        return te_requant_exact(acc, q->m2, te_rq_pow2_left(q), q->s1, amin, amax);
    }
    return te_requant_rs(acc, q->m2, te_rq_fast_r(q), q->s1, lsh, mode, amin, amax);
}

/* te_requant for a FULLY_CONNECTED row (r kept whole). */
TE_INLINE int8_t te_requant_fc(int32_t acc, const te_rq_fc *q, int lsh, int mode, int32_t amin, int32_t amax) {
    if ((mode & TE_MODE_EXACT) && q->s1 <= 0) return te_requant_exact(acc, q->m2, q->r, q->s1, amin, amax);
    return te_requant_rs(acc, q->m2, q->r, q->s1, lsh, mode, amin, amax);
}

/* Sign-extend 4 bytes into the int16 pair order SMLAD pairs with SXTB16(weights): (k0,k2), (k1,k3). */
TE_INLINE void te_expand4(const int8_t *src, int32_t *dst) {
    const uint32_t v = te_ld32(src);
    dst[0] = te_sxtb16(v);
    dst[1] = te_sxtb16_ror8(v);
}

#endif
