/* tinyedge element-wise and reduction kernels: ADD, SUB, MUL (broadcasting), MEAN, table lookups for
 * the int8 -> int8 functions of one byte (LOGISTIC, TANH, RELU, RELU6, LEAKY_RELU, HARD_SWISH, int8
 * QUANTIZE; the tables are computed by the generator exactly as TFLM computes each value), and the
 * float32 <-> int8 conversions at a model's boundary (QUANTIZE, DEQUANTIZE).
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#ifndef TE_KERNELS_ELEMENTWISE_H
#define TE_KERNELS_ELEMENTWISE_H

#include <stdint.h>

#include "te_kernels_shape.h"

#define TE_BINARY_ADD 0
#define TE_BINARY_SUB 1
#define TE_BINARY_MUL 2

/* One int8 ADD/SUB/MUL with TFLM's quantization parameters (AddFunc, BroadcastQuantSubSlow, MulElementwise). */
typedef struct {
    int32_t op;                        /* TE_BINARY_* */
    int32_t size;                      /* output elements */
    int32_t broadcast;                 /* 0: both inputs have the output's shape */
    int32_t dims[TE_MAX_DIMS];         /* output shape */
    int32_t stride1[TE_MAX_DIMS];      /* input element strides, 0 on broadcast dimensions */
    int32_t stride2[TE_MAX_DIMS];
    int32_t in1_offset, in2_offset;    /* -zero points */
    int32_t out_offset, left_shift;
    int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
    int32_t act_min, act_max;
} te_binary_params;

/* MEAN: each output averages the `red_dims` box at its `outer_dims` position. */
typedef struct {
    int32_t outer_dims[TE_MAX_DIMS];
    int32_t outer_strides[TE_MAX_DIMS];
    int32_t red_dims[TE_MAX_DIMS];
    int32_t red_strides[TE_MAX_DIMS];
    int32_t out_size, count;
    int32_t in_zp, out_zp, mult, shift; /* the multiplier has 1/count folded in */
} te_mean_params;

/* With the DSP extension (or TE_ADD_FAST), an ADD without broadcast whose parameters are TFLM's takes a fast
 * path (the same outputs, ~28 instead of ~123 Cortex-M4 instructions per element). Without broadcast, out may
 * be in1 or in2. */
void te_binary_s8(const te_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void te_mean_s8(const te_mean_params *p, const int8_t *in, int8_t *out);
/* out[i] = table[in[i] + 128] */
void te_lut_s8(int32_t n, const int8_t *table, const int8_t *in, int8_t *out);
/* in: n float32 values (TFLM AffineQuantize: round half away from zero of in / scale, + zero point) */
void te_quantize_f32_s8(int32_t n, float scale, int32_t zero_point, const void *in, int8_t *out);
/* out: n float32 values, (float)(scale * (in - zero_point)) computed in double as TFLM does */
void te_dequantize_s8_f32(int32_t n, double scale, int32_t zero_point, const int8_t *in, void *out);

#endif
