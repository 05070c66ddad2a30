/* tinyedge data-movement kernels (TRANSPOSE, STRIDED_SLICE, PAD/PADV2, CONCATENATION): bytes are moved,
 * never requantized, exactly as TensorFlow Lite Micro's reference kernels move them. Shapes are padded
 * to 6 dimensions by the generator.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#ifndef TE_KERNELS_SHAPE_H
#define TE_KERNELS_SHAPE_H

#include <stdint.h>

#define TE_MAX_DIMS 6
#define TE_CONCAT_MAX_INPUTS 10

/* A position in a 6-D box walked in row-major order; ``off`` is the matching element offset under
 * arbitrary per-dimension strides (0 for a broadcast dimension). */
typedef struct {
    int32_t idx[TE_MAX_DIMS];
    int32_t off;
} te_walk6;

static inline void te_walk6_start(te_walk6 *w, int32_t base) {
    for (int d = 0; d < TE_MAX_DIMS; ++d) w->idx[d] = 0;
    w->off = base;
}

/* Advance one element; dims and strides are the box's extents and strides. */
static inline void te_walk6_next(te_walk6 *w, const int32_t *dims, const int32_t *strides) {
    for (int d = TE_MAX_DIMS - 1; d >= 0; --d) {
        w->off += strides[d];
        if (++w->idx[d] < dims[d]) return;
        w->off -= strides[d] * dims[d];
        w->idx[d] = 0;
    }
}

/* out[i] = in[base + offset of i under strides], i walking dims (TRANSPOSE, STRIDED_SLICE). */
typedef struct {
    int32_t dims[TE_MAX_DIMS];
    int32_t strides[TE_MAX_DIMS];
    int32_t base, size;
} te_gather_params;

/* out = value everywhere, then input element i goes to base + offset of i under out_strides (PAD). */
typedef struct {
    int32_t in_dims[TE_MAX_DIMS];
    int32_t out_strides[TE_MAX_DIMS];
    int32_t base, in_size, out_size;
    int32_t value;
} te_pad_params;

/* Output = for each of `outer` rows, chunk[0] bytes of input 0, chunk[1] of input 1, ... */
typedef struct {
    int32_t outer, count;
    int32_t chunk[TE_CONCAT_MAX_INPUTS];
} te_concat_params;

void te_gather_s8(const te_gather_params *p, const int8_t *in, int8_t *out);
void te_pad_s8(const te_pad_params *p, const int8_t *in, int8_t *out);
/* Unused trailing inputs are passed as 0. */
void te_concat_s8(const te_concat_params *p, int8_t *out, const int8_t *in0, const int8_t *in1,
                  const int8_t *in2, const int8_t *in3, const int8_t *in4, const int8_t *in5,
                  const int8_t *in6, const int8_t *in7, const int8_t *in8, const int8_t *in9);

#endif
