/* tinyedge int8 kernels for Cortex-M cores with the DSP extension (M4, M7, M33, M55): inner loops on
 * SMLAD/SXTB16 (arm_acle.h, no CMSIS). Bit-exact with TensorFlow Lite Micro's reference kernels.
 * On other targets (the host) the same C runs on exact C emulations of those instructions.
 * Selected per layer by tinyedge's target pass (tinyedge/codegen/target.py), which re-orders the
 * weights and folds the bias, the input zero point and the output zero point into constants.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#ifndef TE_KERNELS_DSP_H
#define TE_KERNELS_DSP_H

#include <stdint.h>

/* Per output channel requantization, folded at generation time (see target.py):
 *   acc  = bias + sum(x * w)            (bias includes input_offset * sum(w))
 *   t    = SRDHM(acc << lsh, multiplier) = SMMLAR(acc << lsh, m2, acc << lsh)
 *   out  = clamp((r + 2 t + (t < 0 ? -1 : 0)) >> s1),   r = 2^(s1 - 1) + out_zp * 2^s1 = k << (s1 - 1)
 * which is TFLM's MultiplyByQuantizedMultiplier (double rounding) plus the output zero point. A channel
 * that cannot be folded so (zero or tiny multiplier, right shift > 29, a left shift other than the layer's
 * lsh, overflowing constants) has an exact row {bias, m2, left, (out_zp - 256) * 32 + right} from TFLM's
 * own shift, marked by s1 <= 0, and in layers whose mode has bit 2 takes TFLM's generic arithmetic on the
 * raw accumulator (te_requant_exact in te_kernels_dsp_intrin.h).
 * CONV_2D and DEPTHWISE_CONV_2D rows keep k = 2 out_zp + 1 (or an exact row's left) and s1 as int16: 12
 * bytes a channel, r rebuilt where a channel's outputs start (te_rq_r). FULLY_CONNECTED rows (te_rq_fc) keep
 * r itself (or an exact row's 2^left, 0 for a zero multiplier), 16 bytes: there every output is a channel. */
typedef struct {
    int32_t bias, m2;
    int16_t k, s1;
} te_rq;

typedef struct {
    int32_t bias, m2, r, s1;
} te_rq_fc;

typedef struct {
    int16_t batches, in_h, in_w, in_c;
    int16_t out_h, out_w, out_c;
    int16_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int16_t kpad;                /* CONV_2D: kh*kw*in_c rounded up to a multiple of 8; te_dwconv3x3s2: rows a band */
    int16_t pointwise;           /* CONV_2D: 1x1, stride 1, no padding, in_c % 4 == 0 */
    int16_t lsh;                 /* left shift applied to every accumulator (0 almost always) */
    int16_t mode;                /* bit 0: negative-rounding fix-up needed; bit 1: clamp narrower than int8;
                                  * bit 2: some channels take the exact generic requantization */
    int32_t in_zp;               /* input zero point (padding value) */
    int32_t in_off;              /* -input zero point (DEPTHWISE_CONV_2D adds it, CONV_2D folds it) */
    int32_t act_min, act_max;
} te_dsp_conv_params;

typedef struct {
    int32_t batches, in_depth, out_depth, kpad;
    int32_t lsh, mode, act_min, act_max;    /* mode as in te_dsp_conv_params */
} te_dsp_fc_params;

/* Each kernel has eight entry points _m0.._m7, one per mode (see te_dsp_conv_params.mode), chosen at
 * generation time so the linker keeps only the ones a model uses.
 * CONV_2D scratch: 8 * kpad (+ kpad unless pointwise) bytes: four int16 im2col columns and one int8 patch.
 * DEPTHWISE_CONV_2D: filter as int16 pairs [tap][channel/4][(c0,c2),(c1,c3)]; scratch (pad_h + 1) output
 * rows; may run in place (out == in) when stride_h == 1 and the output has the input's shape.
 * te_dwconv3x3 (3x3, stride 1, no dilation, depth multiplier 1, any channel count): TFLM's [3][3][C] int8 filter;
 * scratch (out_h + 2) * ((out_w + 4) & ~1) int16, word aligned; may run in place (channel by channel). */
void te_conv2d_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch);

/* te_conv2d_s8_dsp_pxP: the same CONV_2D, P = 4, 5 or 6 pixels a pass, the loops over output channels and k
 * in assembly on the M4. kpad: a multiple of 8 (filter rows padded with zeros to it). Scratch
 * 2 * P * kpad + 64 * P (+ kpad unless pointwise) bytes, word aligned. */
void te_conv2d_s8_dsp_px4_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px4_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px4_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px4_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px4_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px4_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px4_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px4_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px5_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px5_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px5_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px5_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px5_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px5_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px5_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px5_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px6_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px6_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px6_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px6_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px6_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px6_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px6_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);
void te_conv2d_s8_dsp_px6_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                             int8_t *out, int8_t *scratch);

void te_dwconv2d_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv2d_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv2d_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv2d_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv2d_s8_dsp_m4(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv2d_s8_dsp_m5(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv2d_s8_dsp_m6(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv2d_s8_dsp_m7(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);

void te_dwconv3x3_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch);
void te_dwconv3x3_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch);
void te_dwconv3x3_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch);
void te_dwconv3x3_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch);
void te_dwconv3x3_s8_dsp_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch);
void te_dwconv3x3_s8_dsp_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch);
void te_dwconv3x3_s8_dsp_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch);
void te_dwconv3x3_s8_dsp_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch);

/* te_dwconv3x3s2 (3x3, stride 2, no dilation, depth multiplier 1, any channel count): TFLM's [3][3][C] int8 filter;
 * scratch (2 b + 1) * (2 out_w + 2) int16 (b = kpad output rows a band, or out_h), then 2 ((out_w + 1) / 2) int32
 * sums, word aligned; not in place. */
void te_dwconv3x3s2_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3s2_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3s2_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3s2_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3s2_s8_dsp_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3s2_s8_dsp_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3s2_s8_dsp_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3s2_s8_dsp_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);

/* te_dwconv3x3v2 (as te_dwconv3x3; kpad bit 0: the plane walked transposed, down its columns; bit 1, in_c % 4
 * == 0: four channels widened at once into four buffers): scratch (r + 2) * ((n + 4) & ~1) int16 (four times
 * with bit 1) with n, r = out_h, out_w if transposed else out_w, out_h, then 2 ((n + 1) / 2) int32 sums; may
 * run in place. */
void te_dwconv3x3v2_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3v2_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3v2_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3v2_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3v2_s8_dsp_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3v2_s8_dsp_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3v2_s8_dsp_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);
void te_dwconv3x3v2_s8_dsp_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter,
                              const te_rq *rq, int8_t *out, int8_t *scratch);

void te_fc_s8_dsp_m0(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out);
void te_fc_s8_dsp_m1(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out);
void te_fc_s8_dsp_m2(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out);
void te_fc_s8_dsp_m3(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out);
void te_fc_s8_dsp_m4(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out);
void te_fc_s8_dsp_m5(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out);
void te_fc_s8_dsp_m6(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out);
void te_fc_s8_dsp_m7(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                     int8_t *out);

/* te_fc4: four output rows a pass, two row pairs sharing weight words (layout: target.py _fc4_weights; no
 * scratch). te_fc4x: the same with the input widened once into scratch, 2 * kpad bytes, word aligned. */
void te_fc4_s8_dsp_m0(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out);
void te_fc4_s8_dsp_m1(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out);
void te_fc4_s8_dsp_m2(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out);
void te_fc4_s8_dsp_m3(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out);
void te_fc4_s8_dsp_m4(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out);
void te_fc4_s8_dsp_m5(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out);
void te_fc4_s8_dsp_m6(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out);
void te_fc4_s8_dsp_m7(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                      int8_t *out);

void te_fc4x_s8_dsp_m0(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch);
void te_fc4x_s8_dsp_m1(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch);
void te_fc4x_s8_dsp_m2(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch);
void te_fc4x_s8_dsp_m3(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch);
void te_fc4x_s8_dsp_m4(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch);
void te_fc4x_s8_dsp_m5(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch);
void te_fc4x_s8_dsp_m6(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch);
void te_fc4x_s8_dsp_m7(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq_fc *rq,
                       int8_t *out, int8_t *scratch);

/* te_dwconv1d (te_kernels_dsp_dw1d.c): DEPTHWISE_CONV_2D over a 1-D signal, a k x 1 filter on W = 1 (or 1 x k on
 * H = 1, kpad = 1), no dilation, depth multiplier 1, any stride, padding and channel count. Filter: int16
 * [channel][tap] << lsh and one zero after it; the bias has input_offset * sum(w) folded in, shifted by lsh too. Scratch: one int16 column of max(pad + in, (out - 1) * stride + 2 * pairs + 2) elements,
 * word aligned; may run in place. */
void te_dwconv1d_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv1d_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv1d_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv1d_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv1d_s8_dsp_m4(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv1d_s8_dsp_m5(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv1d_s8_dsp_m6(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);
void te_dwconv1d_s8_dsp_m7(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch);

#endif
