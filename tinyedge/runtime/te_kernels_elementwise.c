/* tinyedge element-wise and reduction kernels (portable C99), bit-exact with TensorFlow Lite Micro's
 * reference kernels.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels_elementwise.h"

#include "te_kernels.h"

/* The fast int8 ADD below runs where the DSP extension does (SMMLAR); TE_ADD_FAST builds it on other targets
 * with the exact C models of te_kernels_dsp_intrin.h, so the host tests can compare it with the portable path. */
#if (defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP) || defined(TE_ADD_FAST)
#define TE_ADD_FAST_ON 1
#include "te_kernels_dsp_intrin.h"
#endif

static inline int8_t te_ew_clamp(int32_t v, int32_t lo, int32_t hi) {
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

static inline int8_t te_binary_one(const te_binary_params *p, int32_t a, int32_t b) {
    const int32_t x = a + p->in1_offset;
    const int32_t y = b + p->in2_offset;
    int32_t r;
    if (p->op == TE_BINARY_MUL) {
        r = te_mul_by_qm(x * y, p->out_mult, p->out_shift) + p->out_offset;
    } else {
        /* MultiplyByQuantizedMultiplierSmallerThanOneExp == te_mul_by_qm with a shift <= 0 */
        const int32_t sx = te_mul_by_qm(x * (1 << p->left_shift), p->in1_mult, p->in1_shift);
        const int32_t sy = te_mul_by_qm(y * (1 << p->left_shift), p->in2_mult, p->in2_shift);
        r = te_mul_by_qm(p->op == TE_BINARY_ADD ? sx + sy : sx - sy, p->out_mult, p->out_shift) + p->out_offset;
    }
    return te_ew_clamp(r, p->act_min, p->act_max);
}

#ifdef TE_ADD_FAST_ON
/* TFLM's int8 ADD (AddFunc) without broadcast, every per-element constant hoisted. Each rescale is
 * MultiplyByQuantizedMultiplierSmallerThanOneExp(x, m, -right): SaturatingRoundingDoublingHighMul(x, m) is
 * SMMLAR(x, 2m - 2^32, x) for m in [2^30, 2^31), and RoundingDivideByPOT(t, right) (half away from zero) is
 * (2t + 2^right + (t < 0)) >> (right + 1); the output zero point is folded into that 2^right. */
TE_INLINE int32_t te_add_rescale(int32_t x, int32_t m2, int32_t bias, int32_t sh) {
    const int32_t t = te_smmlar(x, m2, x);
    return (int32_t)((uint32_t)bias + ((uint32_t)t << 1) + (uint32_t)(t >> 31)) >> sh;
}

/* 1 when it computed the ADD, 0 when the portable path must (a parameter outside the ranges below).
 * TFLM's ADD gives the input with the larger scale the multiplier 0.5 exactly (2^30, shift 0): its rescale
 * of (v + offset) << 20 is exactly (v + offset) << 19, no multiply. With the other input's multiplier in
 * [2^30, 2^31) and right shift <= 30, the output's right shift <= 22 and |zero points| <= 128 no int32
 * overflows: the other input's |x|, |t| <= 2^28 and 2t + 2^right < 2^31; |sum| <= 2^28 + 2^27, and the
 * output's 2t + 2^right + zp 2^(right + 1) stays below 2^30 + 2^29 + 2^28 + 2^22 + 1. */
static int te_add_s8_fast(const te_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    if (p->op != TE_BINARY_ADD || p->broadcast || p->left_shift != 20) return 0;
    int32_t k_off = p->in1_offset, g_off = p->in2_offset, g_mult = p->in2_mult, g_shift = p->in2_shift;
    if (p->in1_mult != (1 << 30) || p->in1_shift != 0) { /* swap the inputs: the sum is the same */
        if (p->in2_mult != (1 << 30) || p->in2_shift != 0) return 0;
        const int8_t *t = in1;
        in1 = in2;
        in2 = t;
        k_off = g_off;
        g_off = p->in1_offset;
        g_mult = p->in1_mult;
        g_shift = p->in1_shift;
    }
    const int32_t gr = -g_shift, ro = -p->out_shift, zo = p->out_offset;
    if (g_mult < (1 << 30) || p->out_mult < (1 << 30) || (uint32_t)gr > 30u || (uint32_t)ro > 22u ||
        (uint32_t)(k_off + 128) > 256u || (uint32_t)(g_off + 128) > 256u || (uint32_t)(zo + 128) > 255u)
        return 0;
    const int32_t koff = (int32_t)((uint32_t)k_off << 19), goff = (int32_t)((uint32_t)g_off << 20);
    const int32_t gm = (int32_t)((uint32_t)g_mult << 1), gb = (int32_t)(1u << gr), gs = gr + 1;
    const int32_t om = (int32_t)((uint32_t)p->out_mult << 1), os = ro + 1;
    const int32_t ob = (int32_t)((1u << ro) + ((uint32_t)zo << os));
    const int32_t lo = p->act_min, hi = p->act_max;
    uint8_t *o = (uint8_t *)out;
    for (const int8_t *const end = in1 + p->size; in1 != end;) {
        const int32_t y = (int32_t)((uint32_t)*in2++ << 20) + goff;
        const int32_t sum = te_add_rescale(y, gm, gb, gs) + (int32_t)((uint32_t)*in1++ << 19) + koff;
        int32_t v = te_add_rescale(sum, om, ob, os);
        v = v > hi ? hi : v;
        v = v < lo ? lo : v;
        *o++ = (uint8_t)v; /* the low byte (an int8_t store makes GCC keep a sign-extended copy of lo) */
    }
    return 1;
}
#endif

void te_binary_s8(const te_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
#ifdef TE_ADD_FAST_ON
    if (te_add_s8_fast(p, in1, in2, out)) return;
#endif
    if (!p->broadcast) {
        for (int32_t i = 0; i < p->size; ++i) out[i] = te_binary_one(p, in1[i], in2[i]);
        return;
    }
    te_walk6 w1, w2;
    te_walk6_start(&w1, 0);
    te_walk6_start(&w2, 0);
    for (int32_t i = 0; i < p->size; ++i) {
        out[i] = te_binary_one(p, in1[w1.off], in2[w2.off]);
        te_walk6_next(&w1, p->dims, p->stride1);
        te_walk6_next(&w2, p->dims, p->stride2);
    }
}

void te_mean_s8(const te_mean_params *p, const int8_t *in, int8_t *out) {
    te_walk6 wo;
    te_walk6_start(&wo, 0);
    for (int32_t o = 0; o < p->out_size; ++o) {
        te_walk6 wr;
        te_walk6_start(&wr, wo.off);
        int32_t sum = 0; /* wraps like TFLM's int32 temp_sum */
        for (int32_t r = 0; r < p->count; ++r) {
            sum = (int32_t)((uint32_t)sum + (uint32_t)(int32_t)in[wr.off]);
            te_walk6_next(&wr, p->red_dims, p->red_strides);
        }
        const int32_t shifted = (int32_t)(uint32_t)((int64_t)sum - (int64_t)p->in_zp * p->count);
        out[o] = te_ew_clamp(te_mul_by_qm(shifted, p->mult, p->shift) + p->out_zp, -128, 127);
        te_walk6_next(&wo, p->outer_dims, p->outer_strides);
    }
}

void te_lut_s8(int32_t n, const int8_t *table, const int8_t *in, int8_t *out) {
    for (int32_t i = 0; i < n; ++i) out[i] = table[(int32_t)in[i] + 128];
}

/* TfLiteRound for float: round half away from zero (exact; no libm needed). */
static float te_roundf(float x) {
    if (!(x > -8388608.0f && x < 8388608.0f)) return x; /* |x| >= 2^23 is integral already */
    float t = (float)(int32_t)x;
    const float d = x - t;
    if (d >= 0.5f) t += 1.0f;
    else if (d <= -0.5f) t -= 1.0f;
    return t;
}

void te_quantize_f32_s8(int32_t n, float scale, int32_t zero_point, const void *in, int8_t *out) {
    const float *x = (const float *)in;
    for (int32_t i = 0; i < n; ++i) {
        const float r = te_roundf(x[i] / scale);
        if (!(r < 256.0f)) {
            out[i] = 127;
        } else if (r <= -256.0f) {
            out[i] = -128;
        } else {
            out[i] = te_ew_clamp((int32_t)r + zero_point, -128, 127);
        }
    }
}

void te_dequantize_s8_f32(int32_t n, double scale, int32_t zero_point, const int8_t *in, void *out) {
    float *y = (float *)out;
    for (int32_t i = 0; i < n; ++i) y[i] = (float)(scale * (double)((int32_t)in[i] - zero_point));
}
