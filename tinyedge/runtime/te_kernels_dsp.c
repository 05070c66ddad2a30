/* tinyedge int8 CONV_2D on the Cortex-M DSP extension (SMLAD, SXTB16, SMMLAR). See te_kernels_dsp.h.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels_dsp.h"

#include <string.h>

#include "te_kernels_dsp_intrin.h"

/* ---------------------------------------------------------------- CONV_2D (im2col + 4-pixel GEMM) */

TE_INLINE void te_conv_body(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch, int mode) {
    const int kpad = p->kpad, ksteps = kpad >> 2;
    int32_t *cols = (int32_t *)(void *)scratch;  /* [kstep][pixel 0..3][2 words] */
    int8_t *row = scratch + 8 * kpad;             /* one gathered int8 patch */
    const int in_c = p->in_c, out_c = p->out_c, in_w = p->in_w, in_h = p->in_h;
    const int npix = p->out_h * p->out_w;
    const int lsh = p->lsh;
    const int32_t amin = p->act_min, amax = p->act_max;
    const int patch = p->k_h * p->k_w * in_c;
    const int pointwise = p->pointwise, out_w = p->out_w, k_h = p->k_h, k_w = p->k_w, batches = p->batches;
    const int sh = p->stride_h, sw = p->stride_w, dh = p->dil_h, dw = p->dil_w, pad_h = p->pad_h, pad_w = p->pad_w;
    const int in_zp = (int)p->in_zp;
    if (!pointwise) memset(row + patch, 0, (size_t)(kpad - patch));
    for (int b = 0; b < batches; ++b) {
        const int8_t *in_b = in + (int32_t)b * in_h * in_w * in_c;
        int8_t *out_b = out + (int32_t)b * npix * out_c;
        for (int p0 = 0; p0 < npix; p0 += 4) {
            const int n = npix - p0 < 4 ? npix - p0 : 4;
            for (int j = 0; j < n; ++j) {
                const int8_t *src;
                if (pointwise) {
                    src = in_b + (int32_t)(p0 + j) * in_c;
                } else {
                    const int oy = (p0 + j) / out_w, ox = (p0 + j) % out_w;
                    const int iy0 = oy * sh - pad_h, ix0 = ox * sw - pad_w;
                    int8_t *dst = row;
                    const int run = k_w * in_c;
                    const int whole = dw == 1 && ix0 >= 0 && ix0 + k_w <= in_w;
                    for (int ky = 0; ky < k_h; ++ky) {
                        const int iy = iy0 + ky * dh;
                        if (whole && iy >= 0 && iy < in_h) {  /* one contiguous run: no per-tap calls */
                            const int8_t *s = in_b + ((int32_t)iy * in_w + ix0) * in_c;
                            if (run >= 32) {
                                memcpy(dst, s, (size_t)run);
                            } else {
                                for (int t = 0; t < run; ++t) dst[t] = s[t];
                            }
                            dst += run;
                            continue;
                        }
                        for (int kx = 0; kx < k_w; ++kx) {
                            const int ix = ix0 + kx * dw;
                            if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
                                memset(dst, in_zp, (size_t)in_c);
                            } else {
                                memcpy(dst, in_b + ((int32_t)iy * in_w + ix) * in_c, (size_t)in_c);
                            }
                            dst += in_c;
                        }
                    }
                    src = row;
                }
                int32_t *c = cols + 2 * j;
                for (int s = 0; s < ksteps; ++s, src += 4, c += 8) te_expand4(src, c);
            }
            const te_rq *q = rq;
            const int8_t *w = filter;
            int8_t *o = out_b + (int32_t)p0 * out_c;
            for (int oc = 0; oc < out_c; ++oc, ++q, w += kpad, ++o) {
                const te_rq qc = *q;  /* in registers: the int8 stores below may alias anything */
                int32_t a0 = qc.bias, a1 = a0, a2 = a0, a3 = a0;
                const int32_t *x = cols;
                const int8_t *wp = w;
                for (int s = 0; s < ksteps; ++s, wp += 4, x += 8) {  /* kernel 4 x 4: 15 instructions / 16 MACs */
                    const uint32_t wv = te_ld32(wp);
                    const int32_t w02 = te_sxtb16(wv), w13 = te_sxtb16_ror8(wv);
                    int32_t lo, hi;
                    TE_LDRD(lo, hi, x, 0);
                    a0 = te_smlad(lo, w02, a0);
                    a0 = te_smlad(hi, w13, a0);
                    TE_LDRD(lo, hi, x, 8);
                    a1 = te_smlad(lo, w02, a1);
                    a1 = te_smlad(hi, w13, a1);
                    TE_LDRD(lo, hi, x, 16);
                    a2 = te_smlad(lo, w02, a2);
                    a2 = te_smlad(hi, w13, a2);
                    TE_LDRD(lo, hi, x, 24);
                    a3 = te_smlad(lo, w02, a3);
                    a3 = te_smlad(hi, w13, a3);
                }
                if (n == 4) {
                    o[0] = te_requant(a0, &qc, lsh, mode, amin, amax);
                    o[out_c] = te_requant(a1, &qc, lsh, mode, amin, amax);
                    o[2 * out_c] = te_requant(a2, &qc, lsh, mode, amin, amax);
                    o[3 * out_c] = te_requant(a3, &qc, lsh, mode, amin, amax);
                } else {
                    o[0] = te_requant(a0, &qc, lsh, mode, amin, amax);
                    if (n > 1) o[out_c] = te_requant(a1, &qc, lsh, mode, amin, amax);
                    if (n > 2) o[2 * out_c] = te_requant(a2, &qc, lsh, mode, amin, amax);
                }
            }
        }
    }
}

/* Entry points, one per mode (te_kernels_dsp_intrin.h: TE_MODE_*). */
void te_conv2d_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 0);
}

void te_conv2d_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 1);
}

void te_conv2d_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 2);
}

void te_conv2d_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 3);
}

void te_conv2d_s8_dsp_m4(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 4);
}

void te_conv2d_s8_dsp_m5(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 5);
}

void te_conv2d_s8_dsp_m6(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 6);
}

void te_conv2d_s8_dsp_m7(const te_dsp_conv_params *p, const int8_t *in, const int8_t *filter, const te_rq *rq,
                         int8_t *out, int8_t *scratch) {
    te_conv_body(p, in, filter, rq, out, scratch, 7);
}
