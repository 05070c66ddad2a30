/* tinyedge data-movement kernels (portable C99).
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels_shape.h"

#include <string.h>

void te_gather_s8(const te_gather_params *p, const int8_t *in, int8_t *out) {
    te_walk6 w;
    te_walk6_start(&w, p->base);
    for (int32_t i = 0; i < p->size; ++i) {
        out[i] = in[w.off];
        te_walk6_next(&w, p->dims, p->strides);
    }
}

void te_pad_s8(const te_pad_params *p, const int8_t *in, int8_t *out) {
    memset(out, (int)p->value, (size_t)p->out_size);
    te_walk6 w;
    te_walk6_start(&w, p->base);
    for (int32_t i = 0; i < p->in_size; ++i) {
        out[w.off] = in[i];
        te_walk6_next(&w, p->in_dims, p->out_strides);
    }
}

void te_concat_s8(const te_concat_params *p, int8_t *out, const int8_t *in0, const int8_t *in1,
                  const int8_t *in2, const int8_t *in3, const int8_t *in4, const int8_t *in5,
                  const int8_t *in6, const int8_t *in7, const int8_t *in8, const int8_t *in9) {
    const int8_t *const ins[TE_CONCAT_MAX_INPUTS] = {in0, in1, in2, in3, in4, in5, in6, in7, in8, in9};
    for (int32_t o = 0; o < p->outer; ++o) {
        for (int32_t k = 0; k < p->count; ++k) {
            const int32_t n = p->chunk[k];
            memcpy(out, ins[k] + o * n, (size_t)n);
            out += n;
        }
    }
}
