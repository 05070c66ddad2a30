/* tinyedge int16x8 kernels: 16-bit activations (zero point 0), 8-bit symmetric weights, 64-bit biases, as
 * TensorFlow Lite Micro's reference kernels compute them (EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_
 * WEIGHTS_INT8 models), plus the conversions between int16 and int8 / float32 (QUANTIZE, DEQUANTIZE).
 * Activations are passed as void pointers: they live in the int8_t arena at 16-byte aligned offsets.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#ifndef TE_KERNELS_S16_H
#define TE_KERNELS_S16_H

#include <stdint.h>

#include "te_kernels.h"
#include "te_kernels_elementwise.h"

/* MultiplyByQuantizedMultiplier(int64_t, ...): the multiplier rounded to 16 bits, one rounding shift. */
int32_t te_mul_by_qm64(int64_t x, int32_t multiplier, int shift);

/* CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: int64 accumulators, per-channel multipliers (the
 * zero points and offsets of the params structs are unused: int16x8 tensors have zero point 0). */
void te_conv2d_s16(const te_conv_params *p, const void *in, const int8_t *filter, const int64_t *bias,
                   const int32_t *mult, const int32_t *shift, void *out);
void te_dwconv2d_s16(const te_conv_params *p, const void *in, const int8_t *filter, const int64_t *bias,
                     const int32_t *mult, const int32_t *shift, void *out);
/* per_channel 0: mult[0]/shift[0] apply to every output. */
void te_fc_s16(const te_fc_params *p, const void *in, const int8_t *filter, const int64_t *bias,
               const int32_t *mult, const int32_t *shift, void *out);
void te_maxpool_s16(const te_pool_params *p, const void *in, void *out);
void te_avgpool_s16(const te_pool_params *p, const void *in, void *out);
/* ADD (left_shift 15), numpy broadcasting through the strides of te_binary_params. */
void te_binary_s16(const te_binary_params *p, const void *in1, const void *in2, void *out);
/* QUANTIZE float32 -> int16 (AffineQuantize) and DEQUANTIZE int16 -> float32. */
void te_quantize_f32_s16(int32_t n, float scale, int32_t zero_point, const void *in, void *out);
void te_dequantize_s16_f32(int32_t n, double scale, int32_t zero_point, const void *in, void *out);
/* QUANTIZE int8 -> int16: out[i] = table[in[i] + 128] (the generator computes Requantize per byte). */
void te_lut_s8_s16(int32_t n, const int16_t *table, const void *in, void *out);
/* QUANTIZE int16 -> int8 / int16 -> int16 (Requantize). */
void te_requant_s16_s8(int32_t n, int32_t mult, int32_t shift, int32_t in_zp, int32_t out_zp, const void *in,
                       void *out);
void te_requant_s16_s16(int32_t n, int32_t mult, int32_t shift, int32_t in_zp, int32_t out_zp, const void *in,
                        void *out);
/* LOGISTIC / TANH on int16 (input and output zero point 0, output scale 2^-15 / 2^-15): the input
 * times mult >> left_shift (mult 0: a power-of-two scale, 3 << left_shift), then linear interpolation in
 * table, sigmoid(i / 24) in unsigned Q0.16 for i = 0..255 (tanh(x) = 2 sigmoid(2x) - 1). */
void te_logistic_s16(int32_t n, int32_t mult, int32_t left_shift, const uint16_t *table, const void *in, void *out);
void te_tanh_s16(int32_t n, int32_t mult, int32_t left_shift, const uint16_t *table, const void *in, void *out);

#endif
