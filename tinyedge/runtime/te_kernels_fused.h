/* tinyedge fused residual blocks: conv A -> conv B, plus the shortcut (the block input itself or a conv S
 * of it), added (ADD), computed a band of output rows at a time so that neither A's nor B's nor S's whole
 * output is ever held: A's rows live in a small window, and the block's output can be written over its
 * input as the input's rows die (the generator checks that for each block and plans it so).
 * Every conv runs its own kernel (portable te_conv2d_s8 or a DSP te_conv2d_s8_dsp_m* entry point) on a
 * range of its output rows, and the ADD is te_binary_s8 on the band: each value is computed by the same
 * arithmetic as the unfused layers, so the outputs are bit-exact with them (and with TFLM).
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#ifndef TE_KERNELS_FUSED_H
#define TE_KERNELS_FUSED_H

#include <stdint.h>

#include "te_kernels.h"
#include "te_kernels_dsp.h"
#include "te_kernels_elementwise.h"

/* Any kernel entry point; a pointer to void (void) converts to and from every function pointer type. */
typedef void (*te_fused_fn)(void);

/* One convolution of a block, and the row geometry of its full input and output. */
typedef struct {
    te_fused_fn fn;                     /* te_conv2d_s8 (dsp == 0) or te_conv2d_s8_dsp_m0..m7 (dsp == 1); 0: none */
    int16_t dsp;
    int16_t in_h, out_h, k_h, stride_h, pad_h;
    int32_t in_row, out_row;            /* bytes per input row, per output row */
    union {
        te_conv_params p;               /* dsp == 0 */
        te_dsp_conv_params d;           /* dsp == 1 */
    } u;
} te_fused_conv;

typedef struct {
    te_fused_conv a, b, s;              /* s.fn == 0: the shortcut is the block input */
    te_binary_params add;               /* the whole ADD (no broadcast); size is patched per band */
    int16_t band;                       /* output rows per pass */
    int16_t sc_first;                   /* 1: the shortcut is the ADD's first operand */
    int32_t win_off, bbuf_off, sbuf_off; /* scratch layout: [conv scratch][A window][B rows][S rows] */
} te_resblock_params;

/* k*: each conv's constants in its kernel's argument order (portable: filter, bias, mult, shift, wsum;
 * DSP: filter, rq), unused ones 0. `out` may equal `in` when the generator says the block runs in place. */
void te_resblock_s8(const te_resblock_params *p, const int8_t *in, int8_t *out, int8_t *scratch,
                    const void *a0, const void *a1, const void *a2, const void *a3, const void *a4,
                    const void *b0, const void *b1, const void *b2, const void *b3, const void *b4,
                    const void *s0, const void *s1, const void *s2, const void *s3, const void *s4);

/* A placeholder for a layer a fused block computed (keeps one entry per model layer for te-profile). */
void te_fused_nop(void);

#endif
