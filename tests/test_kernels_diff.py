"""Every kernel against the tflite_micro interpreter, exact equality, on randomized single-op models."""

from __future__ import annotations

import numpy as np
import pytest

from difftest import compare
from tflite_builder import ACT, PADDING, ModelBuilder, options, out_size

ACTS = list(ACT)


def _q(rng):
    return float(rng.uniform(0.01, 0.1)), int(rng.integers(-128, 128))


def _out_scale(rng, in_scale, f_scale, k):
    return float(130 * np.sqrt(k) * in_scale * f_scale * rng.uniform(0.3, 2.0))


def conv_model(seed: int, depthwise: bool = False):
    rng = np.random.default_rng(seed)
    n = 1 if depthwise or seed % 4 else 2
    h, w = int(rng.integers(3, 12)), int(rng.integers(3, 12))
    c = int(rng.integers(1, 9))
    kh, kw = int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(1, min(w, 4) + 1))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    dil = int(rng.integers(1, 3)) if seed % 3 == 0 else 1
    if (kh - 1) * dil + 1 > h or (kw - 1) * dil + 1 > w:
        dil = 1
    pad = ["SAME", "VALID"][seed % 2]
    act = ACTS[seed % len(ACTS)]
    dm = int(rng.integers(1, 3)) if depthwise else 1
    oc = c * dm if depthwise else int(rng.integers(1, 9))
    oh, ow = out_size(pad, h, kh, sh, dil), out_size(pad, w, kw, sw, dil)
    in_s, in_zp = _q(rng)
    per_channel = seed % 5 != 4
    f_scales = rng.uniform(0.002, 0.02, size=oc if per_channel else 1).astype(np.float32)
    k = kh * kw * (1 if depthwise else c)
    out_s = _out_scale(rng, in_s, float(f_scales.mean()), k)
    out_zp = int(rng.integers(-128, 128))
    fshape = (1, kh, kw, oc) if depthwise else (oc, kh, kw, c)
    filt = rng.integers(-127, 128, size=fshape, dtype=np.int8)
    bias_scale = in_s * f_scales.astype(np.float64)
    bias = rng.integers(-3000, 3000, size=oc).astype(np.int32)
    b = ModelBuilder()
    ti = b.tensor((n, h, w, c), scale=in_s, zero_point=in_zp)
    tf = b.tensor(fshape, data=filt, scale=f_scales, zero_point=0, qdim=3 if depthwise else 0)
    tb = b.tensor((oc,), "INT32", data=bias, scale=bias_scale if per_channel else bias_scale[:1], zero_point=0) if (seed % 7 or depthwise) else -1  # TFLM's depthwise crashes without a bias
    to = b.tensor((n, oh, ow, oc), scale=out_s, zero_point=out_zp)
    if depthwise:
        opts = options("DepthwiseConv2DOptions", padding=PADDING[pad], strideW=sw, strideH=sh, depthMultiplier=dm,
                       fusedActivationFunction=ACT[act], dilationWFactor=dil, dilationHFactor=dil)
        b.op("DEPTHWISE_CONV_2D", [ti, tf, tb], [to], opts, "DepthwiseConv2DOptions")
    else:
        opts = options("Conv2DOptions", padding=PADDING[pad], strideW=sw, strideH=sh, fusedActivationFunction=ACT[act],
                       dilationWFactor=dil, dilationHFactor=dil)
        b.op("CONV_2D", [ti, tf, tb], [to], opts, "Conv2DOptions")
    desc = (f"{'DEPTHWISE_CONV_2D' if depthwise else 'CONV_2D'} seed={seed} in={n}x{h}x{w}x{c} k={kh}x{kw} "
            f"stride={sh}x{sw} dil={dil} pad={pad} act={act} dm={dm} out_c={oc} per_channel={per_channel}")
    return b.build([ti], [to]), desc


def fc_model(seed: int):
    rng = np.random.default_rng(seed)
    batches = int(rng.integers(1, 4))
    depth, units = int(rng.integers(1, 40)), int(rng.integers(1, 20))
    keep = bool(seed % 2) and batches > 1
    in_s, in_zp = _q(rng)
    per_channel = seed % 3 == 0
    f_scales = rng.uniform(0.002, 0.02, size=units if per_channel else 1).astype(np.float32)
    out_s = _out_scale(rng, in_s, float(f_scales.mean()), depth)
    out_zp = int(rng.integers(-128, 128))
    act = ACTS[seed % len(ACTS)]
    b = ModelBuilder()
    ishape = (batches, depth) if seed % 4 else (batches, 1, depth)
    ti = b.tensor(ishape, scale=in_s, zero_point=in_zp)
    tw = b.tensor((units, depth), data=rng.integers(-127, 128, size=(units, depth), dtype=np.int8), scale=f_scales,
                  zero_point=0)
    tb = b.tensor((units,), "INT32", data=rng.integers(-5000, 5000, size=units).astype(np.int32),
                  scale=(in_s * f_scales.astype(np.float64)), zero_point=0) if seed % 5 else -1
    oshape = (batches, 1, units) if (keep and len(ishape) == 3) else (batches, units)
    to = b.tensor(oshape, scale=out_s, zero_point=out_zp)
    b.op("FULLY_CONNECTED", [ti, tw, tb], [to],
         options("FullyConnectedOptions", fusedActivationFunction=ACT[act], keepNumDims=keep and len(ishape) == 3),
         "FullyConnectedOptions")
    return b.build([ti], [to]), f"FULLY_CONNECTED seed={seed} in={ishape} units={units} act={act} per_channel={per_channel}"


def pool_model(seed: int, kind: str):
    rng = np.random.default_rng(seed)
    h, w, c = int(rng.integers(2, 12)), int(rng.integers(2, 12)), int(rng.integers(1, 9))
    kh, kw = int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(1, min(w, 4) + 1))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    pad = ["SAME", "VALID"][seed % 2]
    act = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"][seed % 4]
    s, zp = _q(rng)
    oh, ow = out_size(pad, h, kh, sh), out_size(pad, w, kw, sw)
    b = ModelBuilder()
    ti = b.tensor((1, h, w, c), scale=s, zero_point=zp)
    to = b.tensor((1, oh, ow, c), scale=s, zero_point=zp)
    b.op(kind, [ti], [to], options("Pool2DOptions", padding=PADDING[pad], strideW=sw, strideH=sh, filterWidth=kw,
                                  filterHeight=kh, fusedActivationFunction=ACT[act]), "Pool2DOptions")
    return b.build([ti], [to]), f"{kind} seed={seed} in=1x{h}x{w}x{c} k={kh}x{kw} stride={sh}x{sw} pad={pad} act={act}"


def softmax_model(seed: int):
    rng = np.random.default_rng(seed)
    outer, depth = int(rng.integers(1, 4)), int(rng.integers(2, 40))
    in_s = float(rng.uniform(0.01, 0.4))
    beta = float(rng.choice([1.0, 0.5, 2.0, 0.25]))
    b = ModelBuilder()
    ti = b.tensor((outer, depth), scale=in_s, zero_point=int(rng.integers(-128, 128)))
    to = b.tensor((outer, depth), scale=1 / 256, zero_point=-128)
    b.op("SOFTMAX", [ti], [to], options("SoftmaxOptions", beta=beta), "SoftmaxOptions")
    return b.build([ti], [to]), f"SOFTMAX seed={seed} shape={outer}x{depth} in_scale={in_s:.4f} beta={beta}"


def reshape_chain_model(seed: int):
    """RESHAPE (alias, no copy) between a pool and a fully connected layer, as Keras' Flatten produces."""
    rng = np.random.default_rng(seed)
    h, w, c, units = 4, 4, 3, 5
    s, zp = _q(rng)
    b = ModelBuilder()
    ti = b.tensor((1, h, w, c), scale=s, zero_point=zp)
    tp = b.tensor((1, 2, 2, c), scale=s, zero_point=zp)
    b.op("MAX_POOL_2D", [ti], [tp], options("Pool2DOptions", padding=PADDING["VALID"], strideW=2, strideH=2,
                                            filterWidth=2, filterHeight=2), "Pool2DOptions")
    tshape = b.tensor((2,), "INT32", data=np.array([1, 4 * c], dtype=np.int32))
    tr = b.tensor((1, 4 * c), scale=s, zero_point=zp)
    b.op("RESHAPE", [tp, tshape], [tr], options("ReshapeOptions", newShape=[1, 4 * c]), "ReshapeOptions")
    tw = b.tensor((units, 4 * c), data=rng.integers(-127, 128, size=(units, 4 * c), dtype=np.int8), scale=0.01)
    to = b.tensor((1, units), scale=_out_scale(rng, s, 0.01, 4 * c), zero_point=3)
    b.op("FULLY_CONNECTED", [tr, tw, -1], [to], options("FullyConnectedOptions"), "FullyConnectedOptions")
    return b.build([ti], [to]), f"MAX_POOL_2D+RESHAPE+FULLY_CONNECTED seed={seed}"


CASES = (
    [("conv", s) for s in range(16)] + [("dwconv", s) for s in range(12)] + [("fc", s) for s in range(12)]
    + [("maxpool", s) for s in range(6)] + [("avgpool", s) for s in range(6)] + [("softmax", s) for s in range(8)]
    + [("reshape", s) for s in range(2)]
)


def make(kind: str, seed: int):
    return {
        "conv": lambda: conv_model(seed),
        "dwconv": lambda: conv_model(seed, depthwise=True),
        "fc": lambda: fc_model(seed),
        "maxpool": lambda: pool_model(seed, "MAX_POOL_2D"),
        "avgpool": lambda: pool_model(seed, "AVERAGE_POOL_2D"),
        "softmax": lambda: softmax_model(seed),
        "reshape": lambda: reshape_chain_model(seed),
    }[kind]()


@pytest.mark.parametrize("kind,seed", CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_kernel_matches_tflm(kind, seed):
    model, desc = make(kind, seed)
    problem = compare(model, seed=seed, describe=desc)
    assert problem is None, problem


def test_harness_catches_one_lsb_requantization_error():
    """Mutate the requantization rounding (round-half-away -> round-half-up) and see the harness fail."""
    def mutate(files):
        src = files["src/te_kernels.c"]
        needle = "return (x >> exponent) + (remainder > threshold ? 1 : 0);"
        assert needle in src
        return {**files, "src/te_kernels.c": src.replace(needle, "return (x >> exponent) + (remainder >= threshold ? 1 : 0);")}

    failures = 0
    for seed in range(4):
        model, desc = conv_model(seed)
        if compare(model, seed=seed, describe=desc, mutate=mutate, samples=8) is not None:
            failures += 1
    assert failures > 0, "a one-LSB rounding change went unnoticed by the differential harness"


@pytest.mark.parametrize("seed", range(3))
def test_pointwise_conv_fast_path_matches_tflm(seed):
    """1x1, stride 1, no padding: the kernel's matrix-product path (as in DS-CNN's pointwise layers)."""
    rng = np.random.default_rng(100 + seed)
    h, w, c, oc = int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 70)), int(rng.integers(1, 20))
    in_s, in_zp = _q(rng)
    f_scales = rng.uniform(0.002, 0.02, size=oc).astype(np.float32)
    b = ModelBuilder()
    ti = b.tensor((1, h, w, c), scale=in_s, zero_point=in_zp)
    tf = b.tensor((oc, 1, 1, c), data=rng.integers(-127, 128, size=(oc, 1, 1, c), dtype=np.int8), scale=f_scales)
    tb = b.tensor((oc,), "INT32", data=rng.integers(-3000, 3000, size=oc).astype(np.int32), scale=in_s * f_scales)
    to = b.tensor((1, h, w, oc), scale=_out_scale(rng, in_s, float(f_scales.mean()), c), zero_point=int(rng.integers(-128, 128)))
    b.op("CONV_2D", [ti, tf, tb], [to], options("Conv2DOptions", padding=PADDING["VALID"], strideW=1, strideH=1,
                                                fusedActivationFunction=ACT[ACTS[seed % len(ACTS)]]), "Conv2DOptions")
    problem = compare(b.build([ti], [to]), seed=seed, describe=f"pointwise CONV_2D seed={seed} {h}x{w}x{c}->{oc}")
    assert problem is None, problem
