/* tinyedge int8 FULLY_CONNECTED on the Cortex-M DSP extension (SMLAD, SXTB16, SMMLAR). See te_kernels_dsp.h.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels_dsp.h"

#include <string.h>

#include "te_kernels_dsp_intrin.h"

/* ---------------------------------------------------------------- FULLY_CONNECTED (2 outputs a pass) */

TE_INLINE void te_fc_body(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                          int8_t *out, int mode) {
    const int32_t depth = p->in_depth, kpad = p->kpad, nout = p->out_depth, full = depth & ~3;
    const int lsh = (int)p->lsh;
    const int32_t amin = p->act_min, amax = p->act_max;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *x = in + b * depth;
        int8_t *y = out + b * nout;
        int32_t o = 0;
        for (; o + 1 < nout; o += 2) {
            const int8_t *w0 = filter + o * kpad, *w1 = w0 + kpad;
            int32_t a0 = rq[o].bias, a1 = rq[o + 1].bias;
            int32_t d = 0;
            for (; d < full; d += 4) {
                const uint32_t xv = te_ld32(x + d);
                const int32_t x02 = te_sxtb16(xv), x13 = te_sxtb16_ror8(xv);
                const uint32_t u = te_ld32(w0 + d), v = te_ld32(w1 + d);
                a0 = te_smlad(x02, te_sxtb16(u), a0);
                a0 = te_smlad(x13, te_sxtb16_ror8(u), a0);
                a1 = te_smlad(x02, te_sxtb16(v), a1);
                a1 = te_smlad(x13, te_sxtb16_ror8(v), a1);
            }
            for (; d < depth; ++d) {
                a0 += (int32_t)x[d] * w0[d];
                a1 += (int32_t)x[d] * w1[d];
            }
            y[o] = te_requant(a0, rq + o, lsh, mode, amin, amax);
            y[o + 1] = te_requant(a1, rq + o + 1, lsh, mode, amin, amax);
        }
        for (; o < nout; ++o) {
            const int8_t *w0 = filter + o * kpad;
            int32_t a0 = rq[o].bias;
            for (int32_t d = 0; d < depth; ++d) a0 += (int32_t)x[d] * w0[d];
            y[o] = te_requant(a0, rq + o, lsh, mode, amin, amax);
        }
    }
}

/* Entry points, one per mode (te_kernels_dsp_intrin.h: TE_MODE_*). */
void te_fc_s8_dsp_m0(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 0);
}

void te_fc_s8_dsp_m1(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 1);
}

void te_fc_s8_dsp_m2(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 2);
}

void te_fc_s8_dsp_m3(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 3);
}

void te_fc_s8_dsp_m4(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 4);
}

void te_fc_s8_dsp_m5(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 5);
}

void te_fc_s8_dsp_m6(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 6);
}

void te_fc_s8_dsp_m7(const te_dsp_fc_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                     int8_t *out) {
    te_fc_body(p, in, filter, rq, out, 7);
}
