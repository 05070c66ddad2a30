/* tinyedge fused residual blocks (see te_kernels_fused.h).
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels_fused.h"

#include <string.h>

typedef void (*te_conv_fn)(const te_conv_params *, const int8_t *, const int8_t *, const int32_t *,
                           const int32_t *, const int32_t *, const int32_t *, int8_t *);
typedef void (*te_dsp_conv_fn)(const te_dsp_conv_params *, const int8_t *, const int8_t *, const te_rq *,
                               int8_t *, int8_t *);

/* Output rows [o0, o1) of conv c into out; `in` points at input row `base` (rows before it are gone, only
 * the rows these outputs read are touched). The kernel sees a convolution of just those input rows, with
 * the padding above them that the full one has there: every output value is computed exactly as before. */
static void te_fused_rows(const te_fused_conv *c, int o0, int o1, const int8_t *in, int base, int8_t *out,
                          int8_t *scratch, const void *const *k) {
    const int first = o0 * c->stride_h - c->pad_h;
    const int lo = first > 0 ? first : 0;
    int hi = (o1 - 1) * c->stride_h - c->pad_h + c->k_h;
    if (hi > c->in_h) hi = c->in_h;
    const int8_t *src = in + (int32_t)(lo - base) * c->in_row;
    if (c->dsp) {
        te_dsp_conv_params q = c->u.d;
        q.in_h = (int16_t)(hi - lo);
        q.pad_h = (int16_t)(lo - first);
        q.out_h = (int16_t)(o1 - o0);
        ((te_dsp_conv_fn)c->fn)(&q, src, (const int8_t *)k[0], (const te_rq *)k[1], out, scratch);
    } else {
        te_conv_params q = c->u.p;
        q.in_h = (int16_t)(hi - lo);
        q.pad_h = (int16_t)(lo - first);
        q.out_h = (int16_t)(o1 - o0);
        ((te_conv_fn)c->fn)(&q, src, (const int8_t *)k[0], (const int32_t *)k[1], (const int32_t *)k[2],
                            (const int32_t *)k[3], (const int32_t *)k[4], out);
    }
}

void te_resblock_s8(const te_resblock_params *p, const int8_t *in, int8_t *out, int8_t *scratch,
                    const void *a0, const void *a1, const void *a2, const void *a3, const void *a4,
                    const void *b0, const void *b1, const void *b2, const void *b3, const void *b4,
                    const void *s0, const void *s1, const void *s2, const void *s3, const void *s4) {
    const void *const ka[5] = {a0, a1, a2, a3, a4};
    const void *const kb[5] = {b0, b1, b2, b3, b4};
    const void *const ks[5] = {s0, s1, s2, s3, s4};
    const te_fused_conv *A = &p->a, *B = &p->b, *S = &p->s;
    int8_t *win = scratch + p->win_off, *bbuf = scratch + p->bbuf_off, *sbuf = scratch + p->sbuf_off;
    const int32_t arow = A->out_row, orow = B->out_row;
    te_binary_params add = p->add;
    int wlo = 0, whi = 0; /* rows of A's output in the window */
    for (int r0 = 0; r0 < B->out_h; r0 += p->band) {
        const int r1 = r0 + p->band < B->out_h ? r0 + p->band : B->out_h;
        int lo = r0 * B->stride_h - B->pad_h;
        int hi = (r1 - 1) * B->stride_h - B->pad_h + B->k_h;
        if (lo < 0) lo = 0;
        if (hi > A->out_h) hi = A->out_h;
        if (lo > wlo) { /* drop the rows no later output reads */
            if (whi > lo) {
                memmove(win, win + (int32_t)(lo - wlo) * arow, (size_t)((int32_t)(whi - lo) * arow));
            } else {
                whi = lo;
            }
            wlo = lo;
        }
        if (hi > whi) {
            te_fused_rows(A, whi, hi, in, 0, win + (int32_t)(whi - wlo) * arow, scratch, ka);
            whi = hi;
        }
        te_fused_rows(B, r0, r1, win, wlo, bbuf, scratch, kb);
        const int8_t *sc = in + (int32_t)r0 * orow;
        if (S->fn) {
            te_fused_rows(S, r0, r1, in, 0, sbuf, scratch, ks);
            sc = sbuf;
        }
        add.size = (int32_t)(r1 - r0) * orow; /* int8: one element per byte */
        int8_t *o = out + (int32_t)r0 * orow;
        if (p->sc_first) {
            te_binary_s8(&add, sc, bbuf, o);
        } else {
            te_binary_s8(&add, bbuf, sc, o);
        }
    }
}

void te_fused_nop(void) {}
