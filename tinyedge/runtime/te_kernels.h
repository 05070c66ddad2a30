/* tinyedge int8 kernels: bit-exact with TensorFlow Lite Micro's reference kernels.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#ifndef TE_KERNELS_H
#define TE_KERNELS_H

#include <stdint.h>

/* Geometry and quantization of a convolution-like op (CONV_2D, DEPTHWISE_CONV_2D). */
typedef struct {
    int16_t batches, in_h, in_w, in_c;
    int16_t out_h, out_w, out_c;
    int16_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int16_t depth_mult;          /* DEPTHWISE_CONV_2D only */
    int32_t in_offset;           /* -input zero point */
    int32_t out_offset;          /* output zero point */
    int32_t act_min, act_max;
} te_conv_params;

typedef struct {
    int16_t batches, in_h, in_w, ch, out_h, out_w;
    int16_t k_h, k_w, stride_h, stride_w, pad_h, pad_w;
    int32_t act_min, act_max;
} te_pool_params;

typedef struct {
    int32_t batches, in_depth, out_depth;
    int32_t in_offset, filter_offset, out_offset;
    int32_t act_min, act_max;
    int32_t per_channel;          /* 0: mult[0]/shift[0] apply to every output */
} te_fc_params;

/* Fixed-point helpers, exactly as gemmlowp/TFLM define them (double rounding). */
int32_t te_srdhm(int32_t a, int32_t b);
int32_t te_rdivpot(int32_t x, int exponent);
int32_t te_mul_by_qm(int32_t x, int32_t multiplier, int shift);

/* wsum[oc]: the sum of output channel oc's filter weights (a generation-time constant). */
void te_conv2d_s8(const te_conv_params *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
                  const int32_t *mult, const int32_t *shift, const int32_t *wsum, int8_t *out);
void te_dwconv2d_s8(const te_conv_params *p, const int8_t *in, const int8_t *filter,
                    const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out);
/* wsum[o]: the sum of output o's weights (a generation-time constant). */
void te_fc_s8(const te_fc_params *p, const int8_t *in, const int8_t *filter, const int32_t *bias,
              const int32_t *mult, const int32_t *shift, const int32_t *wsum, int8_t *out);
void te_maxpool_s8(const te_pool_params *p, const int8_t *in, int8_t *out);
void te_avgpool_s8(const te_pool_params *p, const int8_t *in, int8_t *out);
void te_softmax_s8(int32_t outer, int32_t depth, int32_t in_mult, int32_t in_left_shift,
                   int32_t diff_min, const int8_t *in, int8_t *out);
void te_copy_s8(int32_t n, const int8_t *in, int8_t *out);

#endif
