"""int16x8 (16-bit activations, 8-bit weights, 64-bit biases) against the tflite_micro interpreter: exact
equality on randomized single-op models (seeded shapes, strides, paddings, scales, fused activations), a
chain of every int16 kernel with float32 I/O, and mixed int8 / int16 models (int8 I/O, QUANTIZE to int16
and back) on the host and in QEMU. Models are written with ``tflite_builder`` (no TensorFlow)."""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from difftest import qemu_outputs
from tflite_builder import ACT, PADDING, ModelBuilder, options, out_size
from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.host import build_host
from tinyedge.errors import UnsupportedModelError
from tinyedge.firmware import generate as generate_module
from tinyedge.link import connect
from tinyedge.model import read_model_bytes
from tinyedge.model.lower.int16 import int16_lut, softmax_luts
from tinyedge.model.memplan import plan_memory
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm
from tinyedge.proc import run
from tinyedge.runners import deploy

_NP = {"INT8": np.int8, "INT16": np.int16, "FLOAT32": np.float32}
ACTS = list(ACT)


# ---------------------------------------------------------------- harness

def inputs16(g, rng: np.random.Generator, samples: int) -> np.ndarray:
    """Rows for the model input: the full integer range (int8/int16), or floats that cover the int16 range of
    the QUANTIZE after a float32 input (with exact .5 ties)."""
    x = g.input
    if x.dtype == "FLOAT32":
        q = next(g.tensor(op.outputs[0]) for op in g.operators if g.inputs[0] in op.inputs)
        s, zp = q.q()
        real = (rng.uniform(-40000, 40000, size=(samples, x.size)) - zp) * s
        real[0] = (np.arange(x.size) % 41 - 20 + 0.5) * s
        return real.astype(np.float32)
    info = np.iinfo(_NP[x.dtype])
    return rng.integers(info.min, info.max + 1, size=(samples, x.size)).astype(_NP[x.dtype])


def host_vs_tflm(model: bytes, *, samples: int = 6, seed: int = 0,
                 x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(generated C outputs on the host, TFLM outputs), one row per sample (of ``x`` when given)."""
    g = read_model_bytes(model, name="int16")
    files = render_model(build_program(g)).files
    if x is None:
        x = inputs16(g, np.random.default_rng(seed), samples)
    samples = len(x)
    expected = run_tflm(model, x.reshape((samples,) + tuple(g.input.shape))).reshape(samples, -1)
    with tempfile.TemporaryDirectory(prefix="te-int16-") as d:
        exe = build_host(files, Path(d))
        proc = run([exe], capture=True, stdin_bytes=x.tobytes(), what="host model run")
    got = np.frombuffer(proc.stdout, dtype=_NP[g.output.dtype]).reshape(samples, -1)
    return got, expected


def check16(model: bytes, desc: str, *, seed: int = 0, samples: int = 6, busy: bool = True) -> None:
    got, expected = host_vs_tflm(model, samples=samples, seed=seed)
    assert got.dtype == expected.dtype, desc
    same = got.view(np.uint8) == expected.view(np.uint8)
    if not same.all():
        s, e = np.argwhere(got != expected)[0]
        pytest.fail(f"{desc}: sample {s} element {e}: generated C gave {got[s, e]}, TFLM gave {expected[s, e]} "
                    f"({int((got != expected).sum())} of {got.size} differ)")
    if busy and expected.dtype == np.int16:  # the data exercised the arithmetic, not just the clamps
        saturated = np.isin(expected, (-32768, 32767)).mean()
        assert saturated < 0.6 and len(np.unique(expected)) > min(4, expected.size // 2), \
            f"{desc}: the test data is degenerate ({saturated:.0%} saturated)"


# ---------------------------------------------------------------- models

def _act(seed: int) -> str:
    return ACTS[seed % len(ACTS)]


def _out_scale(in_s: float, w_s: float, depth: int, rng: np.random.Generator) -> float:
    """An output scale that puts the accumulator's typical spread at a few thousand int16 steps."""
    spread = np.sqrt(depth) * 18900.0 * 73.0  # std of uniform int16 times std of uniform int8
    return float(in_s * w_s * spread / rng.uniform(2000, 9000))


def _act_in_scale(in_s: float, act: str, w_s: float, depth: int) -> float:
    """For RELU6 / RELU_N1_TO_1, an input scale whose accumulators spread over about half the capped range
    (so the cap, the zero and the values between all occur); other activations keep ``in_s``."""
    cap = {"RELU6": 6.0, "RELU_N1_TO_1": 1.0}.get(act)
    return in_s if cap is None else cap / 2 / (w_s * np.sqrt(depth) * 18900.0 * 73.0)


def fc_s16(seed: int):
    rng = np.random.default_rng(seed)
    batches, n_in, n_out = int(rng.integers(1, 4)), int(rng.integers(1, 60)), int(rng.integers(1, 24))
    per_channel = seed % 3 == 1
    bias = seed % 4 != 3
    si = float(rng.uniform(1e-4, 2e-3))
    ws = rng.uniform(0.002, 0.02, size=n_out) if per_channel else float(rng.uniform(0.002, 0.02))
    act = _act(seed)
    si = _act_in_scale(si, act, float(np.mean(ws)), n_in)
    b = ModelBuilder()
    x = b.tensor((batches, n_in), "INT16", scale=si, zero_point=0)
    w = b.tensor((n_out, n_in), "INT8", scale=ws, zero_point=0,
                 data=rng.integers(-127, 128, size=(n_out, n_in)))
    ins = [x, w]
    if bias:
        bs = si * np.atleast_1d(ws)
        ins.append(b.tensor((n_out,), "INT64", scale=bs, zero_point=0, data=rng.integers(-2**24, 2**24, size=n_out)))
    y = b.tensor((batches, n_out), "INT16", scale=_out_scale(si, float(np.mean(ws)), n_in, rng), zero_point=0)
    b.op("FULLY_CONNECTED", ins, [y], options("FullyConnectedOptions", fusedActivationFunction=ACT[act]),
         "FullyConnectedOptions")
    return b.build([x], [y]), (f"FULLY_CONNECTED int16 seed={seed} {batches}x{n_in}->{n_out} per_channel={per_channel} "
                               f"bias={bias} act={act}")


def conv_s16(seed: int, depthwise: bool = False):
    rng = np.random.default_rng(1000 + seed)
    h, w_, ic = int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 7))
    dm = int(rng.integers(1, 3)) if depthwise else 1
    oc = ic * dm if depthwise else int(rng.integers(1, 9))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    dh, dw = (2, 1) if seed % 5 == 4 else (1, 1)
    pad = "SAME" if seed % 2 == 0 else "VALID"
    if pad == "VALID":
        h, w_ = max(h, (kh - 1) * dh + 1), max(w_, (kw - 1) * dw + 1)
    oh, ow = out_size(pad, h, kh, sh, dh), out_size(pad, w_, kw, sw, dw)
    si = float(rng.uniform(1e-4, 2e-3))
    ws = rng.uniform(0.002, 0.02, size=oc).astype(np.float32)
    act = _act(seed)
    si = _act_in_scale(si, act, float(ws.mean()), kh * kw * (1 if depthwise else ic))
    b = ModelBuilder()
    x = b.tensor((1, h, w_, ic), "INT16", scale=si, zero_point=0)
    fshape = (1, kh, kw, oc) if depthwise else (oc, kh, kw, ic)
    f = b.tensor(fshape, "INT8", scale=ws, zero_point=0, qdim=3 if depthwise else 0,
                 data=rng.integers(-127, 128, size=fshape))
    ins = [x, f]
    if seed % 4 != 3:
        ins.append(b.tensor((oc,), "INT64", scale=si * ws, zero_point=0, data=rng.integers(-2**22, 2**22, size=oc)))
    depth = kh * kw * (1 if depthwise else ic)
    y = b.tensor((1, oh, ow, oc), "INT16", scale=_out_scale(si, float(ws.mean()), depth, rng), zero_point=0)
    if depthwise:
        opts = options("DepthwiseConv2DOptions", padding=PADDING[pad], strideH=sh, strideW=sw, depthMultiplier=dm,
                       dilationHFactor=dh, dilationWFactor=dw, fusedActivationFunction=ACT[act])
        b.op("DEPTHWISE_CONV_2D", ins, [y], opts, "DepthwiseConv2DOptions")
    else:
        opts = options("Conv2DOptions", padding=PADDING[pad], strideH=sh, strideW=sw, dilationHFactor=dh,
                       dilationWFactor=dw, fusedActivationFunction=ACT[act])
        b.op("CONV_2D", ins, [y], opts, "Conv2DOptions")
    kind = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
    return b.build([x], [y]), (f"{kind} int16 seed={seed} in={[h, w_, ic]} k={[kh, kw]} s={[sh, sw]} d={[dh, dw]} "
                               f"{pad} oc={oc} bias={len(ins) == 3} act={act}")


def pool_s16(seed: int, kind: str):
    rng = np.random.default_rng(2000 + seed)
    h, w_, c = int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 6))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    pad = "SAME" if seed % 2 == 0 else "VALID"
    if pad == "VALID":
        h, w_ = max(h, kh), max(w_, kw)
    oh, ow = out_size(pad, h, kh, sh), out_size(pad, w_, kw, sw)
    s = float(rng.uniform(1e-4, 1e-3))
    b = ModelBuilder()
    x = b.tensor((1, h, w_, c), "INT16", scale=s, zero_point=0)
    y = b.tensor((1, oh, ow, c), "INT16", scale=s, zero_point=0)
    act = _act(seed)
    b.op(kind, [x], [y], options("Pool2DOptions", padding=PADDING[pad], strideH=sh, strideW=sw, filterHeight=kh,
                                 filterWidth=kw, fusedActivationFunction=ACT[act]), "Pool2DOptions")
    return b.build([x], [y]), f"{kind} int16 seed={seed} in={[h, w_, c]} k={[kh, kw]} s={[sh, sw]} {pad} act={act}"


def add_s16(seed: int):
    """ADD of the input and a requantized copy (same shape), or of the input and a broadcast constant."""
    rng = np.random.default_rng(3000 + seed)
    rank = int(rng.integers(1, 5))
    shape = [int(rng.integers(1, 5)) for _ in range(rank)]
    s1, s2 = float(rng.uniform(1e-4, 1e-3)), float(rng.uniform(1e-4, 1e-3))
    act = _act(seed)
    cap = {"RELU6": 6.0, "RELU_N1_TO_1": 1.0}.get(act)
    if cap is not None:  # inputs spanning about the capped range, so the cap is not all the output holds
        s1, s2 = s1 * cap / 16.0, s2 * cap / 16.0
    so = (s1 + s2) * float(rng.uniform(0.6, 1.5))
    b = ModelBuilder()
    x = b.tensor(shape, "INT16", scale=s1, zero_point=0)
    mode = seed % 3
    if mode == 0:
        other = b.tensor(shape, "INT16", scale=s2, zero_point=0)
        b.op("QUANTIZE", [x], [other])
        desc = "requantized copy"
    else:
        cshape = [1 if rng.random() < 0.5 else d for d in shape][int(rng.integers(0, rank)):] or [1]
        other = b.tensor(cshape, "INT16", scale=s2, zero_point=0,
                         data=rng.integers(-32768, 32768, size=cshape))
        desc = f"constant {cshape}"
    y = b.tensor(shape, "INT16", scale=so, zero_point=0)
    ins = [other, x] if mode == 2 else [x, other]
    b.op("ADD", ins, [y], options("AddOptions", fusedActivationFunction=ACT[act]), "AddOptions")
    return b.build([x], [y]), f"ADD int16 seed={seed} shape={shape} with {desc} act={act} swapped={mode == 2}"


def quantize_s16(seed: int):
    """QUANTIZE float32 -> int16, int8 -> int16, int16 -> int8 or int16 -> int16 (random zero points on the
    other side), and DEQUANTIZE int16 -> float32."""
    rng = np.random.default_rng(4000 + seed)
    shape = [int(rng.integers(1, 6)) for _ in range(int(rng.integers(1, 4)))]
    kind = ["f32>s16", "s8>s16", "s16>s8", "s16>s16", "s16>f32"][seed % 5]
    src, dst = kind.split(">")
    dtypes = {"f32": "FLOAT32", "s8": "INT8", "s16": "INT16"}

    def quant(dt: str, scale: float) -> dict:
        if dt == "f32":
            return {}
        zp = int(rng.integers(-100, 100)) if dt == "s8" else int(rng.integers(-300, 300)) * (seed % 2)
        return {"scale": scale, "zero_point": zp}

    s_in = float(rng.uniform(1e-4, 1e-3)) if src == "s16" else float(rng.uniform(0.005, 0.05))
    ratio = float(rng.choice([rng.uniform(0.3, 3.0), rng.uniform(50, 300), rng.uniform(1 / 300, 1 / 50)]))
    s_out = s_in / ratio if src != "f32" else float(rng.uniform(1e-4, 1e-3))
    if dst == "s8":
        s_out = s_in * float(rng.uniform(100, 400))
    b = ModelBuilder()
    x = b.tensor(shape, dtypes[src], **quant(src, s_in))
    y = b.tensor(shape, dtypes[dst], **quant(dst, s_out))
    b.op("DEQUANTIZE" if dst == "f32" else "QUANTIZE", [x], [y])
    return b.build([x], [y]), f"{kind} seed={seed} shape={shape} scales {s_in:.3g} -> {s_out:.3g}"


MAKERS = {
    "FULLY_CONNECTED": fc_s16,
    "CONV_2D": conv_s16,
    "DEPTHWISE_CONV_2D": lambda s: conv_s16(s, True),
    "MAX_POOL_2D": lambda s: pool_s16(s, "MAX_POOL_2D"),
    "AVERAGE_POOL_2D": lambda s: pool_s16(s, "AVERAGE_POOL_2D"),
    "ADD": add_s16,
    "QUANTIZE": quantize_s16,
}
SEEDS = {"QUANTIZE": 10, "CONV_2D": 10, "DEPTHWISE_CONV_2D": 8, "FULLY_CONNECTED": 8}
CASES = [(k, s) for k in MAKERS for s in range(SEEDS.get(k, 6))]


@pytest.mark.slow
@pytest.mark.parametrize("kind,seed", CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_int16_op_matches_tflm(kind, seed):
    model, desc = MAKERS[kind](seed)
    check16(model, desc, seed=seed, busy=kind != "QUANTIZE")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["LOGISTIC", "TANH"])
def test_int16_logistic_tanh_match_tflm_on_every_input(kind):
    """Every one of the 65,536 int16 inputs, at power-of-two input scales (TFLM's fast path) and others."""
    scales = [2.0**-12, 2.0**-11, 1e-4, 3.3e-4, 1.7e-3, 4.1e-5, 7e-3]
    every = np.arange(-32768, 32768, dtype=np.int16).reshape(1, -1)
    for s in scales:
        b = ModelBuilder()
        x = b.tensor((65536,), "INT16", scale=s, zero_point=0)
        y = b.tensor((65536,), "INT16", scale=2.0**-15, zero_point=0)
        b.op(kind, [x], [y])
        got, expected = host_vs_tflm(b.build([x], [y]), x=every)
        bad = np.flatnonzero(got != expected)
        assert not len(bad), (f"{kind} int16 input scale {s:g}: {len(bad)} of 65536 differ, first at input "
                              f"{int(every[0, bad[0]])}: C {int(got[0, bad[0]])}, TFLM {int(expected[0, bad[0]])}")


# ---------------------------------------------------------------- SOFTMAX

def softmax_s16_model(shape, in_scale: float, beta: float, out_scale: float = 2.0**-15) -> bytes:
    b = ModelBuilder()
    x = b.tensor(shape, "INT16", scale=in_scale, zero_point=0)
    y = b.tensor(shape, "INT16", scale=out_scale, zero_point=0)
    b.op("SOFTMAX", [x], [y], options("SoftmaxOptions", beta=beta), "SoftmaxOptions")
    return b.build([x], [y])


def softmax_rows(rng: np.random.Generator, rows: int, depth: int, real_step: float) -> np.ndarray:
    """Rows whose differences to their maximum span exp's table (about 12 real units: the tail past -10
    underflows), all-equal rows, rows over the whole int16 range (mostly underflow), narrow rows (+-1.5)
    and rows of two levels (ties at the maximum); ``real_step`` = input scale * beta."""
    out = np.empty((rows, depth))
    for r in range(rows):
        top = int(rng.integers(-32768, 32768))
        kind = int(rng.integers(0, 5))
        if kind == 0:
            v = top - rng.uniform(0, 12.0 / real_step, size=depth)
        elif kind == 1:
            v = np.full(depth, top)
        elif kind == 2:
            v = rng.integers(-32768, 32768, size=depth)
        elif kind == 3:
            v = top + rng.uniform(-1.5 / real_step, 1.5 / real_step, size=depth)
        else:
            v = np.where(rng.random(depth) < 0.5, top, top - rng.uniform(0, 6.0 / real_step))
        out[r] = v
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


def softmax_case(seed: int) -> tuple[bytes, np.ndarray, str, int]:
    """A random SOFTMAX int16 model (rows of 1..100 values under up to 3 leading dimensions, log-uniform
    input scale, beta 1 or random) and its inputs."""
    rng = np.random.default_rng(7000 + seed)
    depth = [1, 100][seed] if seed < 2 else int(rng.integers(2, 101))
    lead = [int(rng.integers(1, 4)) for _ in range(int(rng.integers(0, 4)))]
    shape = lead + [depth]
    scale = float(np.exp(rng.uniform(np.log(1e-5), np.log(1e-2))))
    beta = 1.0 if seed % 3 == 0 else float(rng.uniform(0.05, 4.0))
    out_scale = 2.0**-15 * (1 + 0.0009 * (seed % 2))  # TFLM accepts 1/32768 within 0.1%
    rows = int(np.prod(lead)) if lead else 1
    x = np.stack([softmax_rows(rng, rows, depth, scale * beta).reshape(-1) for _ in range(8)])
    return (softmax_s16_model(shape, scale, beta, out_scale), x,
            f"SOFTMAX int16 seed={seed} shape={shape} scale={scale:.3g} beta={beta:.3g}", depth)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_int16_softmax_matches_tflm(seed):
    model, x, desc, depth = softmax_case(seed)
    got, expected = host_vs_tflm(model, x=x)
    bad = np.argwhere(got != expected)
    assert not len(bad), (f"{desc}: sample {bad[0][0]} element {bad[0][1]}: C {got[tuple(bad[0])]}, TFLM "
                          f"{expected[tuple(bad[0])]} ({len(bad)} of {got.size} differ)")
    assert depth == 1 or len(np.unique(expected)) > min(3, expected.size // 2), f"{desc}: degenerate outputs"


@pytest.mark.slow
def test_int16_softmax_matches_tflm_on_every_exp_table_input():
    """Rows (max, max - d) for every d in 0..65535 at scale * beta = 10 / 65535: every index and offset of
    the exp table, and the reciprocal table over sums from 1 to 2."""
    d = np.arange(65536)
    x = np.stack([np.full(65536, 32767), 32767 - d], axis=1).astype(np.int16).reshape(1, -1)
    for beta in (1.0, 0.37):
        model = softmax_s16_model((65536, 2), 10.0 / 65535 / beta, beta)
        got, expected = host_vs_tflm(model, x=x)
        bad = np.flatnonzero(got != expected)
        assert not len(bad), (f"SOFTMAX int16 beta={beta}: {len(bad)} of {got.size} differ, first at row "
                              f"{bad[0] // 2}: C {int(got[0, bad[0]])}, TFLM {int(expected[0, bad[0]])}")


@pytest.mark.unit
def test_int16_softmax_tables_match_the_c_library():
    """The tables tinyedge derives in Python (float32 steps, exp in double rounded to float32) equal those
    computed with the C library's expf, which the interpreter's Prepare calls."""
    libm = ctypes.util.find_library("m")
    if libm is None:
        pytest.skip("no C math library")
    expf = ctypes.CDLL(libm).expf
    expf.restype, expf.argtypes = ctypes.c_float, [ctypes.c_float]
    exp_lut, recip_lut = softmax_luts()
    assert exp_lut.shape == recip_lut.shape == (513,)
    assert np.array_equal(exp_lut, int16_lut(lambda v: np.float32(expf(float(v))), -10.0, 0.0))
    # 1 / (1 + x): 32768 saturates to 32767 at x = 0, 16384 at x = 1; exp: 32767 at 0, exp(-10) * 32768 = 1.5
    assert (int(recip_lut[0]), int(recip_lut[-1]), int(exp_lut[-1])) == (32767, 16384, 32767)
    assert 1 <= int(exp_lut[0]) <= 2 and np.all(np.diff(exp_lut.astype(int)) >= 0)


# ---------------------------------------------------------------- chains and mixed precision

def mixed_model(seed: int, conv: bool = True, float_in: bool = False):
    """int8 in -> QUANTIZE int8->int16 -> [CONV_2D -> DEPTHWISE -> TANH -> ADD (residual) -> MAX_POOL ->
    AVERAGE_POOL -> LOGISTIC -> RESHAPE ->] FULLY_CONNECTED -> QUANTIZE int16->int8 -> int8 out, everything
    between the QUANTIZEs in int16: the mixed-precision case."""
    rng = np.random.default_rng(5000 + seed)
    b = ModelBuilder()
    h, w_, c = 6, 6, 3
    s8 = float(rng.uniform(0.01, 0.05))
    x8 = b.tensor((1, h, w_, c), "FLOAT32" if float_in else "INT8",
                  **({} if float_in else {"scale": s8, "zero_point": int(rng.integers(-20, 20))}))
    s16 = s8 * 128 / 32768 * float(rng.uniform(1.0, 2.0))
    x16 = b.tensor((1, h, w_, c), "INT16", scale=s16, zero_point=0)
    b.op("QUANTIZE", [x8], [x16])  # float32 -> int16 or int8 -> int16
    last, ls, feat = x16, s16, h * w_ * c
    if conv:
        ws = rng.uniform(0.005, 0.02, size=8).astype(np.float32)
        f = b.tensor((8, 3, 3, c), "INT8", scale=ws, zero_point=0, data=rng.integers(-127, 128, size=(8, 3, 3, c)))
        bias = b.tensor((8,), "INT64", scale=ls * ws, zero_point=0, data=rng.integers(-2**20, 2**20, size=8))
        so = _out_scale(ls, float(ws.mean()), 9 * c, rng)
        t1 = b.tensor((1, h, w_, 8), "INT16", scale=so, zero_point=0)
        b.op("CONV_2D", [last, f, bias], [t1], options("Conv2DOptions", padding=PADDING["SAME"], strideH=1, strideW=1,
                                                        fusedActivationFunction=ACT["RELU"]), "Conv2DOptions")
        wd = rng.uniform(0.005, 0.02, size=8).astype(np.float32)
        fd = b.tensor((1, 3, 3, 8), "INT8", scale=wd, zero_point=0, qdim=3,
                      data=rng.integers(-127, 128, size=(1, 3, 3, 8)))
        bd = b.tensor((8,), "INT64", scale=so * wd, zero_point=0, data=rng.integers(-2**18, 2**18, size=8))
        so2 = so * float(wd.mean()) * 9 * 40
        t2 = b.tensor((1, h, w_, 8), "INT16", scale=so2, zero_point=0)
        b.op("DEPTHWISE_CONV_2D", [t1, fd, bd], [t2],
             options("DepthwiseConv2DOptions", padding=PADDING["SAME"], strideH=1, strideW=1, depthMultiplier=1),
             "DepthwiseConv2DOptions")
        t2t = b.tensor((1, h, w_, 8), "INT16", scale=2.0**-15, zero_point=0)
        b.op("TANH", [t2], [t2t])
        sa = (so + 2.0**-15) * 0.8
        t3 = b.tensor((1, h, w_, 8), "INT16", scale=sa, zero_point=0)
        b.op("ADD", [t2t, t1], [t3], options("AddOptions"), "AddOptions")
        t3m = b.tensor((1, h - 1, w_ - 1, 8), "INT16", scale=sa, zero_point=0)
        b.op("MAX_POOL_2D", [t3], [t3m], options("Pool2DOptions", padding=PADDING["VALID"], strideH=1, strideW=1,
                                                 filterHeight=2, filterWidth=2), "Pool2DOptions")
        t4 = b.tensor((1, 2, 2, 8), "INT16", scale=sa, zero_point=0)
        b.op("AVERAGE_POOL_2D", [t3m], [t4], options("Pool2DOptions", padding=PADDING["VALID"], strideH=2, strideW=2,
                                                     filterHeight=2, filterWidth=2), "Pool2DOptions")
        t4l = b.tensor((1, 2, 2, 8), "INT16", scale=2.0**-15, zero_point=0)
        b.op("LOGISTIC", [t4], [t4l])
        feat = 32
        t5 = b.tensor((1, feat), "INT16", scale=2.0**-15, zero_point=0)
        shape_t = b.tensor((2,), "INT32", data=np.array([1, feat], dtype=np.int32))
        b.op("RESHAPE", [t4l, shape_t], [t5], options("ReshapeOptions", newShape=[1, feat]), "ReshapeOptions")
        last, ls = t5, 2.0**-15
    else:
        flat = b.tensor((1, feat), "INT16", scale=ls, zero_point=0)
        shape_t = b.tensor((2,), "INT32", data=np.array([1, feat], dtype=np.int32))
        b.op("RESHAPE", [last, shape_t], [flat], options("ReshapeOptions", newShape=[1, feat]), "ReshapeOptions")
        last = flat
    wf = float(rng.uniform(0.005, 0.02))
    fw = b.tensor((10, feat), "INT8", scale=wf, zero_point=0, data=rng.integers(-127, 128, size=(10, feat)))
    fb = b.tensor((10,), "INT64", scale=ls * wf, zero_point=0, data=rng.integers(-2**20, 2**20, size=10))
    sy = _out_scale(ls, wf, feat, rng)
    y16 = b.tensor((1, 10), "INT16", scale=sy, zero_point=0)
    b.op("FULLY_CONNECTED", [last, fw, fb], [y16], options("FullyConnectedOptions"), "FullyConnectedOptions")
    y8 = b.tensor((1, 10), "INT8", scale=sy * 32768 / 128 / 2, zero_point=int(rng.integers(-10, 10)))
    b.op("QUANTIZE", [y16], [y8])
    return b.build([x8], [y8]), f"mixed int8/int16 seed={seed} conv={conv} float_in={float_in}"


def float_chain(seed: int):
    """float32 in -> QUANTIZE float->int16 -> FC int16 -> DEQUANTIZE -> float32 out."""
    rng = np.random.default_rng(6000 + seed)
    b = ModelBuilder()
    n_in, n_out = 20, 7
    xf = b.tensor((1, n_in), "FLOAT32")
    si = float(rng.uniform(1e-4, 1e-3))
    x = b.tensor((1, n_in), "INT16", scale=si, zero_point=0)
    b.op("QUANTIZE", [xf], [x])
    wf = float(rng.uniform(0.005, 0.02))
    fw = b.tensor((n_out, n_in), "INT8", scale=wf, zero_point=0, data=rng.integers(-127, 128, size=(n_out, n_in)))
    y = b.tensor((1, n_out), "INT16", scale=_out_scale(si, wf, n_in, rng), zero_point=0)
    b.op("FULLY_CONNECTED", [x, fw], [y], options("FullyConnectedOptions"), "FullyConnectedOptions")
    yf = b.tensor((1, n_out), "FLOAT32")
    b.op("DEQUANTIZE", [y], [yf])
    return b.build([xf], [yf]), f"float I/O int16 FC seed={seed}"


@pytest.mark.slow
@pytest.mark.parametrize("seed,conv,float_in", [(0, True, False), (1, True, False), (2, False, False), (3, True, True)])
def test_mixed_int8_int16_matches_tflm(seed, conv, float_in):
    model, desc = mixed_model(seed, conv, float_in)
    check16(model, desc, seed=seed, samples=8)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_float_io_int16_matches_tflm(seed):
    model, desc = float_chain(seed)
    check16(model, desc, seed=seed)


# ---------------------------------------------------------------- what is refused, and memory

@pytest.mark.unit
def test_int16_ops_without_kernels_are_refused_by_name():
    b = ModelBuilder()
    x = b.tensor((1, 10), "INT16", scale=1e-3, zero_point=0)
    w = b.tensor((1, 10), "INT16", scale=1e-3, zero_point=0)
    y = b.tensor((1, 10), "INT16", scale=1e-3, zero_point=0)
    b.op("QUANTIZE", [x], [w])
    b.op("MUL", [x, w], [y], options("MulOptions"), "MulOptions")
    with pytest.raises(UnsupportedModelError, match=r"MUL has int16 \(int16x8\) tensors.*keep this layer at int8"):
        build_program(read_model_bytes(b.build([x], [y]), name="mul16"))


@pytest.mark.unit
@pytest.mark.parametrize("case", ["input zero point", "output scale", "output zero point", "int8 input"])
def test_int16_softmax_refuses_what_tflm_refuses(case):
    """TFLM's int16 SOFTMAX requires input zero point 0 and output scale 1/32768, zero point 0; an int8
    input with an int16 output has no tinyedge kernel. Each refusal names the problem and what to try."""
    b = ModelBuilder()
    x = b.tensor((2, 10), "INT8" if case == "int8 input" else "INT16", scale=1e-3,
                 zero_point=7 if case == "input zero point" else 0)
    y = b.tensor((2, 10), "INT16", scale=1 / 256 if case == "output scale" else 1 / 32768,
                 zero_point=-5 if case == "output zero point" else 0)
    b.op("SOFTMAX", [x], [y], options("SoftmaxOptions", beta=1.0), "SoftmaxOptions")
    with pytest.raises(UnsupportedModelError) as err:
        build_program(read_model_bytes(b.build([x], [y]), name="sm16"))
    text = str(err.value)
    want = {"input zero point": r"zero point 7; TFLM's int16 softmax requires 0 \(re-quantize",
            "output scale": r"scale 1/32768 and zero point 0 \(it has 0.00390625 and 0\).*int16x8 converter",
            "output zero point": r"scale 1/32768 and zero point 0 \(it has 3.05176e-05 and -5\)",
            "int8 input": r"INT8 input with INT16 output is not supported.*same activation type"}[case]
    assert re.search(want, text), text


@pytest.mark.unit
def test_int16_conv_needs_int64_bias_and_zero_point_0():
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.tensor((1, 4, 4, 2), "INT16", scale=1e-3, zero_point=5)
    f = b.tensor((3, 1, 1, 2), "INT8", scale=0.01, zero_point=0, data=rng.integers(-127, 128, size=(3, 1, 1, 2)))
    bias = b.tensor((3,), "INT32", scale=1e-5, zero_point=0, data=np.zeros(3, dtype=np.int32))
    y = b.tensor((1, 4, 4, 3), "INT16", scale=1e-3, zero_point=0)
    b.op("CONV_2D", [x, f, bias], [y], options("Conv2DOptions", padding=0, strideH=1, strideW=1), "Conv2DOptions")
    with pytest.raises(UnsupportedModelError) as err:
        build_program(read_model_bytes(b.build([x], [y]), name="c16"))
    text = str(err.value)
    assert "zero point 5" in text and "INT64" in text


@pytest.mark.unit
def test_memory_plan_sizes_int16_tensors_at_two_bytes():
    model, _ = mixed_model(0, conv=False)
    program = build_program(read_model_bytes(model, name="m"))
    plan = plan_memory(program)
    g = program.graph
    for key, buf in plan.buffers.items():
        if key >= 0:
            t = g.tensor(key)
            assert buf.size >= t.size * (2 if t.dtype == "INT16" else 1), (t.name, t.dtype, buf.size)
    assert any(g.tensor(k).dtype == "INT16" and b.size == 2 * g.tensor(k).size for k, b in plan.buffers.items()
               if k >= 0)


# ---------------------------------------------------------------- on the emulated board

@pytest.mark.slow
@pytest.mark.parametrize("float_in", [False, True])
def test_mixed_int8_int16_model_in_qemu(tmp_path, pio_core, float_in):
    """The mixed-precision model (int8 or float32 input, int8 output; int16 CONV, DEPTHWISE, TANH, ADD,
    MAX/AVERAGE_POOL, LOGISTIC, FC inside) on qemu-mps2-an386 gives TFLM's outputs exactly."""
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed")
    model, desc = mixed_model(1, conv=True, float_in=float_in)
    graph = read_model_bytes(model, name="mixed16")
    x = inputs16(graph, np.random.default_rng(7), 6).reshape((6,) + tuple(graph.input.shape))
    got, _ = qemu_outputs(graph, "qemu-mps2-an386", x, tmp_path / "proj", pio_core, timeout=60)
    expected = run_tflm(model, x).reshape(len(x), -1)
    assert np.array_equal(got, expected), f"{desc}: QEMU {got.tolist()} vs TFLM {expected.tolist()}"


def softmax_head_model(seed: int = 0) -> tuple[bytes, np.ndarray]:
    """float32 in -> QUANTIZE float->int16 -> FULLY_CONNECTED int16 (per-channel weights, int64 bias) ->
    ADD of a broadcast int16 constant -> QUANTIZE int16->int16 -> SOFTMAX int16 -> DEQUANTIZE -> float32
    out (a classifier head kept at 16 bits), and one input of 8 rows whose amplitudes (0 to 8) take the
    softmax from uniform through exp's whole table into underflow."""
    rng = np.random.default_rng(8000 + seed)
    rows, n_in, n_out = 8, 12, 10
    amp = np.array([0.0, 0.03, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0])
    x = (rng.uniform(-1, 1, size=(rows, n_in)) * amp[:, None]).astype(np.float32)
    w = rng.integers(-127, 128, size=(n_out, n_in))
    ws = rng.uniform(0.004, 0.02, size=n_out)
    s_in = 8.0 / 32768
    real = x @ (w * ws[:, None]).T
    s_fc = float(np.abs(real).max()) / 20000
    const_real = rng.uniform(-0.3, 0.3, size=n_out) * float(np.abs(real[4]).max())
    s_c = float(np.abs(const_real).max()) / 30000
    s_add = float(np.abs(real).max() + np.abs(const_real).max()) / 28000
    s_rq = s_add * 1.7
    beta = 12.0 / float(np.ptp(real[4] + const_real))  # amplitude 1: the row spans about 12 after beta
    b = ModelBuilder()
    xf = b.tensor((rows, n_in), "FLOAT32")
    x16 = b.tensor((rows, n_in), "INT16", scale=s_in, zero_point=0)
    b.op("QUANTIZE", [xf], [x16])
    fw = b.tensor((n_out, n_in), "INT8", scale=ws, zero_point=0, data=w)
    fb = b.tensor((n_out,), "INT64", scale=s_in * ws, zero_point=0, data=rng.integers(-2**14, 2**14, size=n_out))
    y1 = b.tensor((rows, n_out), "INT16", scale=s_fc, zero_point=0)
    b.op("FULLY_CONNECTED", [x16, fw, fb], [y1], options("FullyConnectedOptions"), "FullyConnectedOptions")
    c = b.tensor((n_out,), "INT16", scale=s_c, zero_point=0, data=np.round(const_real / s_c))
    y2 = b.tensor((rows, n_out), "INT16", scale=s_add, zero_point=0)
    b.op("ADD", [y1, c], [y2], options("AddOptions"), "AddOptions")
    y3 = b.tensor((rows, n_out), "INT16", scale=s_rq, zero_point=0)
    b.op("QUANTIZE", [y2], [y3])
    y4 = b.tensor((rows, n_out), "INT16", scale=2.0**-15, zero_point=0)
    b.op("SOFTMAX", [y3], [y4], options("SoftmaxOptions", beta=beta), "SoftmaxOptions")
    yf = b.tensor((rows, n_out), "FLOAT32")
    b.op("DEQUANTIZE", [y4], [yf])
    return b.build([xf], [yf]), x


@pytest.mark.slow
def test_int16_softmax_head_in_qemu(tmp_path, pio_core, monkeypatch):
    """The softmax head (per-channel FC, broadcast ADD, int16 requantize, SOFTMAX, DEQUANTIZE to a float32
    output, all int16 inside) gives TFLM's outputs exactly on the host and on qemu-mps2-an386. On the board,
    the firmware's boot self-test compares every output byte (the float32 values) with the interpreter's
    for this input: the generator's golden pair is set to it."""
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed")
    model, x = softmax_head_model()
    graph = read_model_bytes(model, name="head16")
    kernels = [s.kernel for s in build_program(graph).steps]
    assert {"te_fc_s16", "te_binary_s16", "te_requant_s16_s16", "te_softmax_s16", "te_dequantize_s16_f32"} \
        <= set(kernels), kernels
    expected = run_tflm(model, x[None]).reshape(1, -1)
    got, _ = host_vs_tflm(model, x=x.reshape(1, -1))
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), "host C differs from TFLM"
    rows = expected.reshape(x.shape[0], -1)
    assert rows.max(axis=1).min() < 0.3 and rows.max() > 0.99 and rows.min() <= 2.0**-14  # spread to underflow
    monkeypatch.setattr(generate_module, "golden_vectors_if_available",
                        lambda program: (x.tobytes(), expected.astype(np.float32).tobytes()))
    with deploy(graph, "qemu-mps2-an386", tmp_path / "proj", engine="qemu", core_dir=pio_core) as dep:
        client = connect(dep.url, connect_timeout=10.0, ready_timeout=20.0)
        try:
            info = client.info()
        finally:
            client.close()
    assert info.get("selftest") == "ok", f"the board's outputs differ from TFLM's: selftest={info.get('selftest')}"


# ---------------------------------------------------------------- what TensorFlow's converter writes

def _keras_int16x8(tf, io_type=None) -> bytes:
    """A small CNN converted model-wide with 16-bit activations (TF 2.21: QUANTIZE float32 -> int16 at the
    input, CONV/DEPTHWISE/ADD/pools/FC in int16 with int64 biases and per-channel int8 weights, SOFTMAX in
    int16 with output scale 1/32768)."""
    inp = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    y = tf.keras.layers.DepthwiseConv2D(3, padding="same")(x)
    z = tf.keras.layers.Add()([x, y])
    z = tf.keras.layers.MaxPooling2D(2)(z)
    z = tf.keras.layers.AveragePooling2D(2)(z)
    z = tf.keras.layers.Softmax()(tf.keras.layers.Dense(10)(tf.keras.layers.Flatten()(z)))
    rng = np.random.default_rng(0)

    def rep():
        for _ in range(20):
            yield [rng.normal(size=(1, 8, 8, 3)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, z))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if io_type is not None:
        conv.inference_input_type = conv.inference_output_type = io_type
    return bytes(conv.convert())


@pytest.mark.slow
def test_tf_converter_int16x8_model_matches_tflm():
    tf = pytest.importorskip("tensorflow")
    for io_type, name in ((None, "float32 I/O"), (tf.int16, "int16 I/O")):
        model = _keras_int16x8(tf, io_type)
        kernels = [s.kernel for s in build_program(read_model_bytes(model, name="k16")).steps]
        assert {"te_conv2d_s16", "te_dwconv2d_s16", "te_binary_s16", "te_fc_s16", "te_softmax_s16"} <= set(kernels), \
            kernels
        check16(model, f"TF int16x8 CNN, {name}", samples=4, busy=False)
