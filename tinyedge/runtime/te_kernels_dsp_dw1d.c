/* tinyedge int8 DEPTHWISE_CONV_2D over a 1-D signal (a k x 1 filter on a W = 1 input, or 1 x k on H = 1: the
 * temporal convolutions of keyword-spotting TCNs) on the Cortex-M DSP extension. See te_kernels_dsp.h.
 * Part of tinyedge's C runtime (tinyedge/runtime/), copied unchanged into every generated project. */
#include "te_kernels_dsp.h"

#include "te_kernels_dsp_intrin.h"

/* Stride 1, two outputs a pass from the same aligned words W_m = (x[2m], x[2m + 1]) of the channel's int16
 * column x (padding included): output 2i is sum_j SMLAD(W_{i+j}, U_j) with U_j = (w[2j], w[2j + 1]) and
 * output 2i + 1 is sum_m SMLAD(W_{i+m}, V_m) with V_m = (w[2m - 1], w[2m]) (w[-1] = w[K] = 0): every word is
 * loaded once for both. K is a compile-time constant in the unrolled cases, so U and V stay in registers. The
 * accumulators already hold acc << lsh (the weights and bias carry it), hence te_requant's shift of 0. */
TE_INLINE void te_dw1d_s1(const int16_t *x, int8_t *o, int n, int32_t C, const int16_t *w, int KU, int odd,
                          const te_rq *rq, int mode, int32_t amin, int32_t amax) {
    const te_rq q = *rq;  /* the channel's constants in registers, not reloaded per output */
    const int KV = KU + 1;  /* for an odd K the last V word is zero: one wasted SMLAD, half the unrolled copies */
    int32_t u[7], v[7];
    _Pragma("GCC unroll 6") for (int j = 0; j < KU; ++j) u[j] = (int32_t)te_ld32(w + 2 * j);
    if (odd) u[KU - 1] = (int32_t)((uint32_t)u[KU - 1] & 0xFFFFu);  /* w[K] is the next channel's w[0] */
    u[KU] = 0;
    v[0] = (int32_t)((uint32_t)u[0] << 16);
    _Pragma("GCC unroll 6") for (int m = 1; m < KV; ++m) {
        v[m] = (int32_t)(((uint32_t)u[m - 1] >> 16) | ((uint32_t)u[m] << 16));
    }
    const int8_t *end = o + (int32_t)(n & ~1) * C;
    for (; o != end; x += 2, o += 2 * C) {
        int32_t a0 = q.bias, a1 = q.bias;
        _Pragma("GCC unroll 6") for (int j = 0; j < KU; ++j) {
            a0 = te_smlad((int32_t)te_ld32(x + 2 * j), u[j], a0);
        }
        _Pragma("GCC unroll 6") for (int m = 0; m < KV; ++m) {
            a1 = te_smlad((int32_t)te_ld32(x + 2 * m), v[m], a1);
        }
        o[0] = te_requant(a0, &q, 0, mode, amin, amax);
        o[C] = te_requant(a1, &q, 0, mode, amin, amax);
    }
    if (n & 1) {
        int32_t a0 = q.bias;
        _Pragma("GCC unroll 6") for (int j = 0; j < KU; ++j) {
            a0 = te_smlad((int32_t)te_ld32(x + 2 * j), u[j], a0);
        }
        o[0] = te_requant(a0, &q, 0, mode, amin, amax);
    }
}

/* Any stride and tap count: one output a pass, one (possibly unaligned) word load and one weight load a pair,
 * an odd K's last tap in SMLABB. */
TE_INLINE void te_dw1d_any(const int16_t *x, int8_t *o, int n, int S, int32_t C, const int16_t *w, int K,
                           const te_rq *rq, int mode, int32_t amin, int32_t amax) {
    const te_rq q = *rq;
    const int pairs = K >> 1;
    for (int t = 0; t < n; ++t, x += S, o += C) {
        int32_t acc = q.bias;
        for (int j = 0; j < pairs; ++j) acc = te_smlad((int32_t)te_ld32(x + 2 * j), (int32_t)te_ld32(w + 2 * j), acc);
        if (K & 1) acc = te_smlabb((int32_t)te_ld32(x + K - 1), (int32_t)te_ld32(w + K - 1), acc);
        *o = te_requant(acc, &q, 0, mode, amin, amax);
    }
}

/* One channel's outputs, in the loop its stride and tap count have (unrolled for up to 5 tap pairs). */
TE_INLINE void te_dw1d_channel(const int16_t *x, int8_t *o, int n, int S, int32_t C, const int16_t *w, int K,
                               const te_rq *rq, int mode, int32_t amin, int32_t amax) {
    if (S == 1 && n > 1) {
        switch ((K + 1) >> 1) {
            case 1: te_dw1d_s1(x, o, n, C, w, 1, K & 1, rq, mode, amin, amax); return;
            case 2: te_dw1d_s1(x, o, n, C, w, 2, K & 1, rq, mode, amin, amax); return;
            case 3: te_dw1d_s1(x, o, n, C, w, 3, K & 1, rq, mode, amin, amax); return;
            case 4: te_dw1d_s1(x, o, n, C, w, 4, K & 1, rq, mode, amin, amax); return;
            case 5: te_dw1d_s1(x, o, n, C, w, 5, K & 1, rq, mode, amin, amax); return;
            default: break;
        }
    }
    te_dw1d_any(x, o, n, S, C, w, K, rq, mode, amin, amax);
}

/* Channel by channel: the channel's column (every C-th byte) widened once to int16 in scratch, between
 * in_zp-filled padding (the bias has input_offset * sum(w) folded in, so padding must hold the raw zero
 * point), then every output of the channel. Filter: int16 [channel][tap] << lsh, one zero after the last (word
 * loads of an odd K's last pair read one past it). kpad = 1: the signal runs along W, else along H. */
TE_INLINE void te_dw1d_body(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                            int8_t *out, int8_t *scratch, int mode) {
    const int alongw = p->kpad;
    const int L = alongw ? p->in_w : p->in_h, N = alongw ? p->out_w : p->out_h;
    const int K = alongw ? p->k_w : p->k_h, S = alongw ? p->stride_w : p->stride_h;
    const int P = alongw ? p->pad_w : p->pad_h;
    const int32_t C = p->in_c;
    const int KP = (K + 1) >> 1, batches = p->batches;
    const int32_t amin = p->act_min, amax = p->act_max;
    const int16_t zp = (int16_t)p->in_zp;
    int16_t *col = (int16_t *)(void *)scratch;
    /* elements read: the last outputs' words (the odd output's one further), and at least the widened input */
    int E = (N - 1) * S + 2 * KP + 2;
    if (E < P + L) E = P + L;
    if (N == 1 && P == 0 && K <= L) {
        /* one output a channel, every tap inside the input: straight from the int8 column, no widening */
        for (int b = 0; b < batches; ++b) {
            const int8_t *in_b = in + (int32_t)b * L * C;
            for (int32_t c = 0; c < C; ++c) {
                const int8_t *src = in_b + c;
                const int16_t *w = filter + c * K;
                int32_t acc = rq[c].bias;
                int k = 0;
                for (; k + 2 <= K; k += 2, src += 2 * C) {
                    const int32_t wk = (int32_t)te_ld32(w + k);  /* (w[k], w[k + 1]) */
                    acc = te_smlabb(src[0], wk, acc);
                    acc = te_smlabt(src[C], wk, acc);
                }
                if (k < K) acc = te_smlabb(src[0], w[k], acc);
                out[(int32_t)b * C + c] = te_requant(acc, rq + c, 0, mode, amin, amax);
            }
        }
        return;
    }
    for (int i = 0; i < P; ++i) col[i] = zp;
    for (int i = P + L; i < E; ++i) col[i] = zp;
    for (int b = 0; b < batches; ++b) {
        const int8_t *in_b = in + (int32_t)b * L * C;
        int8_t *out_b = out + (int32_t)b * N * C;
        for (int32_t c = 0; c < C; ++c) {
            const int8_t *src = in_b + c;
            int16_t *dst = col + P;
            int i = 0;
            for (; i + 4 <= L; i += 4, src += 4 * C) {
                dst[i] = src[0];
                dst[i + 1] = src[C];
                dst[i + 2] = src[2 * C];
                dst[i + 3] = src[3 * C];
            }
            for (; i < L; ++i, src += C) dst[i] = src[0];
            const int16_t *w = filter + c * K;
            int8_t *o = out_b + c;
            /* a channel with an exact row gets the generic requantization; the others skip its test */
            if ((mode & TE_MODE_EXACT) && rq[c].s1 <= 0) {
                te_dw1d_any(col, o, N, S, C, w, K, rq + c, mode, amin, amax);
            } else {
                te_dw1d_channel(col, o, N, S, C, w, K, rq + c, mode & ~TE_MODE_EXACT, amin, amax);
            }
        }
    }
}
/* Entry points, one per mode (te_kernels_dsp_intrin.h: TE_MODE_*). */
void te_dwconv1d_s8_dsp_m0(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw1d_body(p, in, filter, rq, out, scratch, 0);
}
void te_dwconv1d_s8_dsp_m1(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw1d_body(p, in, filter, rq, out, scratch, 1);
}
void te_dwconv1d_s8_dsp_m2(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw1d_body(p, in, filter, rq, out, scratch, 2);
}
void te_dwconv1d_s8_dsp_m3(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw1d_body(p, in, filter, rq, out, scratch, 3);
}
void te_dwconv1d_s8_dsp_m4(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw1d_body(p, in, filter, rq, out, scratch, 4);
}
void te_dwconv1d_s8_dsp_m5(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw1d_body(p, in, filter, rq, out, scratch, 5);
}
void te_dwconv1d_s8_dsp_m6(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw1d_body(p, in, filter, rq, out, scratch, 6);
}
void te_dwconv1d_s8_dsp_m7(const te_dsp_conv_params *p, const int8_t *in, const int16_t *filter, const te_rq *rq,
                           int8_t *out, int8_t *scratch) {
    te_dw1d_body(p, in, filter, rq, out, scratch, 7);
}
