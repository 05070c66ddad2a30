/* tinyedge element-wise and reduction kernels (portable C99), bit-exact with TensorFlow Lite Micro's
 * reference kernels.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels_elementwise.h"

#include "te_kernels.h"

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

void te_binary_s8(const te_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
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
