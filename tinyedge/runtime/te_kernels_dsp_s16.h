/* tinyedge int16x8 kernels (16-bit activations, zero point 0; 8-bit symmetric weights; 64-bit biases) for
 * Cortex-M cores with the DSP extension: two int16 activations load in one word and feed SMLAD (or SMLALD, a
 * 64-bit accumulator, where an int32 one could overflow) directly. Bit-exact with TensorFlow Lite Micro's
 * reference kernels, as te_kernels_s16.c (the portable ones). Selected per layer by tinyedge's target pass
 * (tinyedge/codegen/target.py), which re-orders the weights and folds the bias and the rounding into one
 * 64-bit constant per channel. On other targets (the host) the same C runs on exact C models of the
 * instructions (te_kernels_dsp_intrin.h).
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#ifndef TE_KERNELS_DSP_S16_H
#define TE_KERNELS_DSP_S16_H

#include <stdint.h>

#include "te_kernels_dsp.h"

/* Per output channel requantization, TFLM's int64 MultiplyByQuantizedMultiplier folded at generation time.
 * TFLM computes ((acc + bias) * m16 + 2^(total - 1)) >> total, truncated to int32, with m16 its multiplier
 * rounded to 16 bits and total = 15 - shift. Here, modulo 2^64 (SMLAL):
 *   out = clamp((int32_t)((acc * mul + c) >> 32) >> post)
 * with, for total in [16, 32], mul = m16 << (32 - total), c = (bias * m16 + 2^(total - 1)) << (32 - total),
 * post = 0 (the high word of the product scaled by 2^(32 - total) is the same integer, modulo 2^32), and for
 * total in (32, 62], mul = m16, c = bias * m16 + 2^(total - 1), post = total - 32. */
typedef struct {
    int64_t c;
    int32_t mul, post;
} te_rq16;

/* Mode bit 0 (TE_S16_WIDE): accumulate in 64 bits (SMLALD); without it in 32 (SMLAD), which the target pass
 * chooses only where sum(|w|) * 32768 of every channel fits int32. Two entry points per kernel, _m0 and _m1.
 *
 * CONV_2D (te_dsp_conv_params; kpad: kh*kw*in_c rounded up to a multiple of 4): filter rows of kpad int8,
 * each group of 4 weights stored as w0 w2 w1 w3 (so SXTB16 gives the pair (w0, w1) and SXTB16 ROR 8 the pair
 * (w2, w3)), padding 0, plus a zero row when out_c is odd. pointwise (1x1, stride 1, no padding,
 * in_c % 4 == 0) reads the input pixels as they are (scratch: 4 * kpad bytes when the pixel count is odd,
 * else none); otherwise scratch holds two int16 im2col columns, 4 * kpad bytes. Two pixels and two channels
 * a pass. */
void te_conv2d_s16_dsp_m0(const te_dsp_conv_params *p, const void *in, const int8_t *filter, const te_rq16 *rq,
                          void *out, int8_t *scratch);
void te_conv2d_s16_dsp_m1(const te_dsp_conv_params *p, const void *in, const int8_t *filter, const te_rq16 *rq,
                          void *out, int8_t *scratch);

/* DEPTHWISE_CONV_2D, depth multiplier 1: filter as int16 [tap][channel] (widened once), two channels a word
 * (SMLABB / SMLATT on the input word of channels c, c + 1). */
void te_dwconv2d_s16_dsp_m0(const te_dsp_conv_params *p, const void *in, const int16_t *filter, const te_rq16 *rq,
                            void *out);
void te_dwconv2d_s16_dsp_m1(const te_dsp_conv_params *p, const void *in, const int16_t *filter, const te_rq16 *rq,
                            void *out);

/* FULLY_CONNECTED (te_dsp_fc_params): rows of kpad int8 laid out as CONV_2D's, one te_rq16 row per output
 * (per-tensor multipliers repeated), two rows a pass. */
void te_fc_s16_dsp_m0(const te_dsp_fc_params *p, const void *in, const int8_t *filter, const te_rq16 *rq, void *out);
void te_fc_s16_dsp_m1(const te_dsp_fc_params *p, const void *in, const int8_t *filter, const te_rq16 *rq, void *out);

#endif
