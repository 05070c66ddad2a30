"""The DSP kernels (te_kernels_dsp.c, chosen by tinyedge.codegen.target for boards with ``dsp: true``)
against the tflite_micro interpreter, exact equality.

Two levels: on the host, the same kernel C runs on exact C models of SMLAD/SXTB16/SMMLAR (fast, many
randomized shapes); in QEMU (mps2-an386, Cortex-M4), firmware built by PlatformIO runs the real
instructions on randomized multi-layer chains and on KWS, driven over the serial link.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_model
from difftest import qemu_outputs
from test_kernels_diff import conv_model, fc_model
from tflite_builder import ACT, PADDING, ModelBuilder, options, out_size
from tinyedge.boards import get_board
from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.host import build_host, run_host
from tinyedge.codegen.target import specialize, variant
from tinyedge.model import load_model, read_model_bytes
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm

BOARD = "qemu-mps2-an386"
ACTS = list(ACT)


def _q(rng):
    return float(rng.uniform(0.01, 0.1)), int(rng.integers(-128, 128))


def chain_model(seed: int) -> tuple[bytes, str]:
    """CONV_2D (general) -> DEPTHWISE_CONV_2D (in place) -> CONV_2D 1x1 (in place) -> RESHAPE -> FULLY_CONNECTED."""
    rng = np.random.default_rng(1000 + seed)
    h, w, c = int(rng.integers(4, 12)), int(rng.integers(4, 12)), int(rng.integers(1, 6))
    c1 = 4 * int(rng.integers(1, 5))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    pad = ["SAME", "VALID"][seed % 2]
    if pad == "VALID":
        kh, kw = min(kh, h), min(kw, w)
    h1, w1 = out_size(pad, h, kh, sh), out_size(pad, w, kw, sw)
    c2 = c1 if seed % 3 else max(4, c1 - 4)  # pointwise in place needs out_c <= in_c; sometimes it shrinks
    units = int(rng.integers(2, 12))
    b = ModelBuilder()
    s0, z0 = _q(rng)
    t0 = b.tensor((1, h, w, c), scale=s0, zero_point=z0)

    def conv(tin, in_scale, cin, cout, k, stride, padding, shape, depthwise=False):
        per_channel = bool(rng.integers(0, 2)) or depthwise
        fs = rng.uniform(0.002, 0.02, size=cout if per_channel else 1).astype(np.float32)
        kk = k[0] * k[1] * (1 if depthwise else cin)
        out_s = float(130 * np.sqrt(kk) * in_scale * float(fs.mean()) * rng.uniform(0.3, 2.0))
        out_zp = int(rng.integers(-128, 128)) if rng.integers(0, 2) else -128
        fshape = (1, k[0], k[1], cout) if depthwise else (cout, k[0], k[1], cin)
        tf = b.tensor(fshape, data=rng.integers(-127, 128, size=fshape, dtype=np.int8), scale=fs, zero_point=0,
                      qdim=3 if depthwise else 0)
        tb = b.tensor((cout,), "INT32", data=rng.integers(-3000, 3000, size=cout).astype(np.int32),
                      scale=in_scale * fs.astype(np.float64), zero_point=0)
        to = b.tensor(shape, scale=out_s, zero_point=out_zp)
        act = ACTS[int(rng.integers(0, len(ACTS)))]
        if depthwise:
            b.op("DEPTHWISE_CONV_2D", [tin, tf, tb], [to],
                 options("DepthwiseConv2DOptions", padding=PADDING[padding], strideW=stride[1], strideH=stride[0],
                         depthMultiplier=1, fusedActivationFunction=ACT[act]), "DepthwiseConv2DOptions")
        else:
            b.op("CONV_2D", [tin, tf, tb], [to],
                 options("Conv2DOptions", padding=PADDING[padding], strideW=stride[1], strideH=stride[0],
                         fusedActivationFunction=ACT[act]), "Conv2DOptions")
        return to, out_s

    t1, s1 = conv(t0, s0, c, c1, (kh, kw), (sh, sw), pad, (1, h1, w1, c1))
    t2, s2 = conv(t1, s1, c1, c1, (3, 3), (1, 1), "SAME", (1, h1, w1, c1), depthwise=True)
    t3, s3 = conv(t2, s2, c1, c2, (1, 1), (1, 1), "VALID", (1, h1, w1, c2))
    n = h1 * w1 * c2
    tshape = b.tensor((2,), "INT32", data=np.array([1, n], dtype=np.int32))
    t4 = b.tensor((1, n), scale=s3, zero_point=b_zp(b, t3))
    b.op("RESHAPE", [t3, tshape], [t4], options("ReshapeOptions", newShape=[1, n]), "ReshapeOptions")
    fs = np.float32(rng.uniform(0.002, 0.02))
    tw = b.tensor((units, n), data=rng.integers(-127, 128, size=(units, n), dtype=np.int8), scale=fs, zero_point=0)
    tb = b.tensor((units,), "INT32", data=rng.integers(-5000, 5000, size=units).astype(np.int32), scale=s3 * float(fs),
                  zero_point=0)
    to = b.tensor((1, units), scale=float(130 * np.sqrt(n) * s3 * fs * rng.uniform(0.3, 2.0)),
                  zero_point=int(rng.integers(-128, 128)))
    b.op("FULLY_CONNECTED", [t4, tw, tb], [to], options("FullyConnectedOptions"), "FullyConnectedOptions")
    desc = (f"chain seed={seed} in=1x{h}x{w}x{c} conv k={kh}x{kw} s={sh}x{sw} {pad} -> {h1}x{w1}x{c1} dw3x3 -> "
            f"pw {c2} -> fc {units}")
    return b.build([t0], [to]), desc


def b_zp(b: ModelBuilder, t: int) -> int:
    """Zero point of tensor ``t`` as the builder recorded it."""
    return int(b.tensors[t].quantization.zeroPoint[0])


def dw_model(seed: int) -> tuple[bytes, str]:
    """A depthwise model the DSP kernel takes (channels a multiple of 4, depth multiplier 1)."""
    for s in range(seed * 100, seed * 100 + 500):
        model, desc = conv_model(s, depthwise=True)
        g = read_model_bytes(model, name="dw")
        p = build_program(g).steps[0].params
        if p["in_c"] % 4 == 0 and p["depth_mult"] == 1:
            return model, desc
    raise AssertionError("no depthwise case with channels % 4 == 0")


def _compare_host(model: bytes, desc: str, samples: int = 4, seed: int = 0) -> str | None:
    g = read_model_bytes(model, name="dspdiff")
    program = specialize(build_program(g), get_board(BOARD))
    assert variant(program) == "dsp", f"{desc}: no step was given a DSP kernel"
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(samples,) + tuple(g.input.shape), dtype=np.int8)
    expected = run_tflm(model, x).reshape(samples, -1)
    with tempfile.TemporaryDirectory(prefix="te-dspdiff-") as d:
        got = run_host(build_host(render_model(program).files, Path(d)), x.reshape(samples, -1), g.output.size)
    if np.array_equal(got, expected):
        return None
    return f"{desc}: {int((got != expected).sum())} of {got.size} outputs differ; kernels {[s.kernel for s in program.steps]}"


HOST_CASES = ([("conv", s) for s in range(10)] + [("fc", s) for s in range(8)] + [("dw", s) for s in range(6)]
              + [("chain", s) for s in range(6)])


@pytest.mark.parametrize("kind,seed", HOST_CASES, ids=[f"{k}-{s}" for k, s in HOST_CASES])
def test_dsp_kernels_on_host_models_match_tflm(kind, seed):
    model, desc = {"conv": lambda: conv_model(seed), "fc": lambda: fc_model(seed), "dw": lambda: dw_model(seed),
                   "chain": lambda: chain_model(seed)}[kind]()
    problem = _compare_host(model, desc, seed=seed)
    assert problem is None, problem


# ------------------------------------------------------------------------------------------ QEMU

needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
    reason="needs arm-none-eabi-gcc and qemu-system-arm",
)


def _run_in_qemu(graph, workdir: Path, core_dir: Path, inputs: np.ndarray) -> tuple[np.ndarray, object]:
    got, project = qemu_outputs(graph, BOARD, inputs, workdir, core_dir)
    assert variant(project.program) == "dsp"
    return got, project


QEMU_CHAINS = [0, 1, 2, 3]


@needs_tools
@pytest.mark.parametrize("seed", QEMU_CHAINS)
def test_dsp_firmware_in_qemu_matches_tflm(seed, tmp_path, pio_core):
    model, desc = chain_model(seed)
    graph = read_model_bytes(model, name=f"dspchain{seed}")
    x = np.random.default_rng(seed).integers(-128, 128, size=(3,) + tuple(graph.input.shape), dtype=np.int8)
    got, project = _run_in_qemu(graph, tmp_path / "proj", pio_core, x)
    expected = run_tflm(model, x).reshape(len(x), -1)
    assert np.array_equal(got, expected), (f"{desc}: QEMU gave {got.tolist()}, TFLM {expected.tolist()}; kernels "
                                           f"{[s.kernel for s in project.program.steps]}")


@needs_tools
def test_kws_dsp_firmware_in_qemu_matches_tflm(tmp_path, pio_core):
    path = shared_model("kws_ref_model.tflite")
    graph = load_model(path)
    x = np.random.default_rng(7).integers(-128, 128, size=(2,) + tuple(graph.input.shape), dtype=np.int8)
    got, project = _run_in_qemu(graph, tmp_path / "kws", pio_core, x)
    assert all("_dsp" in s.kernel for s in project.program.steps if s.macs > 1000)
    assert project.plan.inplace, "the DSP plan runs pointwise and depthwise convolutions in place"
    assert np.array_equal(got, run_tflm(graph.model_bytes, x).reshape(len(x), -1))
