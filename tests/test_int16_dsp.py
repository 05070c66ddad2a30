"""The int16x8 DSP kernels (te_kernels_dsp_s16.c: CONV_2D incl. pointwise, DEPTHWISE_CONV_2D, FULLY_CONNECTED
on SMLAD / SMLALD, chosen by tinyedge.codegen.target for boards with ``dsp: true``) against the tflite_micro
interpreter, exact equality: on the host (exact C models of the instructions) on randomized shapes, and one
mixed int8 / int16 model in QEMU (mps2-an386, Cortex-M4, the real instructions). The models are the int16
tests' builders (tests/test_int16_diff.py) plus a few shapes those do not reach: pointwise convolutions, and
weights large enough that an int32 accumulator could overflow (the 64-bit mode)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from difftest import qemu_outputs
from test_int16_diff import _out_scale, conv_s16, fc_s16, inputs16, mixed_model
from tflite_builder import ACT, PADDING, ModelBuilder, options, out_size
from tinyedge.boards import get_board
from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.host import build_host
from tinyedge.codegen.target import candidates, rq16_rows, specialize
from tinyedge.model import read_model_bytes
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm
from tinyedge.proc import run

BOARD = "qemu-mps2-an386"
WEIGHTED = ("te_conv2d_s16", "te_dwconv2d_s16", "te_fc_s16")


def big_model(seed: int, kind: str):
    """A CONV_2D (pointwise, or 3x3 over many channels), DEPTHWISE_CONV_2D (odd channels, dilation) or
    FULLY_CONNECTED (long rows, batches) the int16 tests' small random shapes do not reach; ``wide`` cases have
    rows whose sum(|w|) * 32768 exceeds int32 (64-bit accumulators)."""
    rng = np.random.default_rng(7000 + seed)
    b = ModelBuilder()
    si = float(rng.uniform(1e-4, 2e-3))
    act = ["NONE", "RELU", "RELU6"][seed % 3] if kind != "fc-wide" else "NONE"
    if kind.startswith("fc"):
        batches, n_in = int(rng.integers(1, 4)), int(rng.integers(600, 700) if kind == "fc-wide" else 37)
        n_out = int(rng.integers(3, 12))
        ws = rng.uniform(0.002, 0.02, size=n_out)
        wdata = rng.choice([-127, -120, 119, 127], size=(n_out, n_in)) if kind == "fc-wide" else \
            rng.integers(-127, 128, size=(n_out, n_in))
        x = b.tensor((batches, n_in), "INT16", scale=si, zero_point=0)
        w = b.tensor((n_out, n_in), "INT8", scale=ws, zero_point=0, data=wdata)
        bias = b.tensor((n_out,), "INT64", scale=si * ws, zero_point=0, data=rng.integers(-2**30, 2**30, size=n_out))
        y = b.tensor((batches, n_out), "INT16", scale=_out_scale(si, float(ws.mean()), n_in, rng) * 4, zero_point=0)
        b.op("FULLY_CONNECTED", [x, w, bias], [y], options("FullyConnectedOptions", fusedActivationFunction=ACT[act]),
             "FullyConnectedOptions")
        return b.build([x], [y]), f"FULLY_CONNECTED int16 {kind} seed={seed} {batches}x{n_in}->{n_out} act={act}"
    depthwise = kind.startswith("dw")
    if kind == "pointwise":
        h, w_, ic, oc, k, s, d, pad = 5 - seed % 2, 3, 8 * int(rng.integers(1, 3)), int(rng.integers(3, 10)), 1, 1, 1, \
            "VALID"  # an odd and an even pixel count
    elif kind == "conv-wide":
        h, w_, ic, oc, k, s, d, pad = 4, 5, 64, 5, 3, 1, 1, "SAME"
    else:  # depthwise: odd channel counts, strides and dilations
        h, w_, ic, k, s, d = 7, 6, int(rng.integers(3, 10)) | 1, 3, 1 + seed % 2, 1 + (seed // 2) % 2
        oc, pad = ic, ["SAME", "VALID"][seed % 2]
    oh, ow = out_size(pad, h, k, s, d), out_size(pad, w_, k, s, d)
    ws = rng.uniform(0.002, 0.02, size=oc).astype(np.float32)
    fshape = (1, k, k, oc) if depthwise else (oc, k, k, ic)
    fdata = rng.choice([-127, 127, -126], size=fshape) if kind == "conv-wide" else \
        rng.integers(-127, 128, size=fshape)
    x = b.tensor((1, h, w_, ic), "INT16", scale=si, zero_point=0)
    f = b.tensor(fshape, "INT8", scale=ws, zero_point=0, qdim=3 if depthwise else 0, data=fdata)
    bias = b.tensor((oc,), "INT64", scale=si * ws, zero_point=0, data=rng.integers(-2**22, 2**22, size=oc))
    depth = k * k * (1 if depthwise else ic)
    y = b.tensor((1, oh, ow, oc), "INT16", scale=_out_scale(si, float(ws.mean()), depth, rng), zero_point=0)
    if depthwise:
        b.op("DEPTHWISE_CONV_2D", [x, f, bias], [y],
             options("DepthwiseConv2DOptions", padding=PADDING[pad], strideH=s, strideW=s, depthMultiplier=1,
                     dilationHFactor=d, dilationWFactor=d, fusedActivationFunction=ACT[act]), "DepthwiseConv2DOptions")
    else:
        b.op("CONV_2D", [x, f, bias], [y], options("Conv2DOptions", padding=PADDING[pad], strideH=s, strideW=s,
                                                   fusedActivationFunction=ACT[act]), "Conv2DOptions")
    return b.build([x], [y]), f"{kind} int16 seed={seed} in={[h, w_, ic]} k={k} s={s} d={d} {pad} oc={oc} act={act}"


def dsp_vs_tflm(model: bytes, desc: str, *, seed: int = 0, samples: int = 5) -> list[str]:
    """The DSP-specialised program's host outputs against TFLM's (fails on a difference); returns its kernels."""
    g = read_model_bytes(model, name="int16dsp")
    program = specialize(build_program(g), get_board(BOARD))
    kernels = [s.kernel for s in program.steps]
    x = inputs16(g, np.random.default_rng(seed), samples)
    expected = run_tflm(model, x.reshape((samples,) + tuple(g.input.shape))).reshape(samples, -1)
    with tempfile.TemporaryDirectory(prefix="te-int16dsp-") as d:
        exe = build_host(render_model(program).files, Path(d))
        proc = run([exe], capture=True, stdin_bytes=x.tobytes(), what="host model run")
    got = np.frombuffer(proc.stdout, dtype=expected.dtype).reshape(samples, -1)
    bad = got != expected
    if bad.any():
        s, e = np.argwhere(bad)[0]
        pytest.fail(f"{desc}: sample {s} element {e}: DSP C gave {got[s, e]}, TFLM gave {expected[s, e]} "
                    f"({int(bad.sum())} of {got.size} differ); kernels {kernels}")
    if expected.dtype == np.int16:  # the data exercised the arithmetic, not just the clamps
        assert np.isin(expected, (-32768, 32767)).mean() < 0.6 and len(np.unique(expected)) > 2, desc
    return kernels


MAKERS = {
    "conv": conv_s16,
    "dw": lambda s: conv_s16(s, True),
    "fc": fc_s16,
    **{k: (lambda s, k=k: big_model(s, k)) for k in ("pointwise", "conv-wide", "dw-odd", "fc-wide", "fc-batch")},
}
SEEDS = {"conv": 8, "dw": 6, "fc": 6, "dw-odd": 4, "pointwise": 2}
CASES = [(k, s) for k in MAKERS for s in range(SEEDS.get(k, 1))]


# slow: a host build of the kernels per case
@pytest.mark.slow
@pytest.mark.parametrize("kind,seed", CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_int16_dsp_kernels_on_host_match_tflm(kind, seed):
    model, desc = MAKERS[kind](seed)
    kernels = dsp_vs_tflm(model, desc, seed=seed)
    step = build_program(read_model_bytes(model, name="k")).steps[-1]
    depth_mult = step.params.get("depth_mult", 1)
    assert step.kernel in WEIGHTED
    if depth_mult == 1:  # every int16 CONV_2D / FC, and depthwise with depth multiplier 1, gets the DSP kernel
        assert kernels[-1] == f"{step.kernel}_dsp_m{int(kind.endswith('wide'))}", (desc, kernels)
    else:
        assert kernels[-1] == step.kernel, (desc, kernels)


@pytest.mark.unit
def test_int16_dsp_candidates_and_requant_rows():
    """The variant is offered (``dsp`` first, ``portable`` last) and its rows are TFLM's int64 arithmetic."""
    model, _ = conv_s16(0)
    step = build_program(read_model_bytes(model, name="c")).steps[0]
    found = candidates(step, get_board(BOARD))
    assert list(found) == ["dsp", "portable"] and found["dsp"].kernel.startswith("te_conv2d_s16_dsp_m")
    assert list(candidates(step, get_board("qemu-lm3s6965evb"))) == ["portable"]  # Cortex-M3: no DSP
    rng = np.random.default_rng(0)
    for i in range(2000):  # the kernel's arithmetic (te_rq16_out) against TFLM's, results beyond int32 included
        m = int(rng.integers(2**30, 2**31)) if i % 10 else 2**31 - 1
        sh, bias = int(rng.integers(-47, 0)), int(rng.integers(-2**40 + 1, 2**40))
        acc = int(rng.integers(-2**31, 2**31)) if i % 2 else int(rng.integers(-2**37, 2**37))
        rows = rq16_rows(np.array([bias]), np.array([m]), np.array([sh]))
        assert rows is not None
        c, packed = int(rows[0, 0]), int(rows[0, 1])
        mul, post = packed & 0xFFFFFFFF, packed >> 32
        hi = (((acc * mul + c) % 2**64) >> 32)
        got = (hi - 2**32 if hi >= 2**31 else hi) >> post
        m16 = (m + 2**15) >> 16 if m < 0x7FFF0000 else 0x7FFF
        tflm = (((acc + bias) * m16 + (1 << (14 - sh))) >> (15 - sh)) % 2**32
        assert got == (tflm - 2**32 if tflm >= 2**31 else tflm), (m, sh, bias, acc)
    assert rq16_rows(np.array([0]), np.array([2**30]), np.array([0])) is None  # total 15: refused


# ------------------------------------------------------------------------------------------ QEMU

@pytest.mark.slow
@pytest.mark.skipif(not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_int16_dsp_mixed_model_in_qemu(tmp_path, pio_core):
    """The mixed int8 / int16 model (int16 CONV_2D, DEPTHWISE_CONV_2D and FC on their DSP kernels) on
    qemu-mps2-an386 gives TFLM's outputs exactly."""
    model, desc = mixed_model(0, conv=True)
    graph = read_model_bytes(model, name="mixed16dsp")
    x = inputs16(graph, np.random.default_rng(3), 6).reshape((6,) + tuple(graph.input.shape))
    got, project = qemu_outputs(graph, BOARD, x, tmp_path / "proj", pio_core, timeout=60)
    kernels = [s.kernel for s in project.program.steps]
    assert {"te_conv2d_s16_dsp_m0", "te_dwconv2d_s16_dsp_m0", "te_fc_s16_dsp_m0"} <= set(kernels), kernels
    expected = run_tflm(model, x).reshape(len(x), -1)
    assert np.array_equal(got, expected), f"{desc}: QEMU {got.tolist()} vs TFLM {expected.tolist()}"
