"""te_dwconv1d (te_kernels_dsp_dw1d.c: DEPTHWISE_CONV_2D over a 1-D signal, k x 1 on W = 1 or 1 x k on H = 1)
against the tflite_micro interpreter, exact equality: on the host (exact C models of SMLAD/SMMLAR) over random
chains of such layers, and once in QEMU (mps2-an386, the real instructions). Also 1x1 CONV_2D on a 1x1 image
run by the FULLY_CONNECTED kernels (target._conv1px_candidates)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from difftest import qemu_outputs
from helpers import ACTS, rand_out_scale, rand_quant
from tflite_builder import ACT, PADDING, ModelBuilder, options, out_size
from tinyedge.boards import get_board
from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.host import build_host, run_host
from tinyedge.codegen.target import candidates, specialize
from tinyedge.model import read_model_bytes
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm

BOARD = "qemu-mps2-an386"


def dw1d_chain(seed: int, layers: int = 4, c: int | None = None, along_w: bool | None = None,
               batches: int = 1, dil: int = 1, full_last: bool = False) -> tuple[bytes, str]:
    """A chain of random 1-D depthwise layers (depth multiplier 1): taps 1..16, strides 1..3, SAME or VALID,
    every activation, channel 0 all-zero weights and channel 1 a tiny scale (exact requantization rows); seeds
    3 mod 4 start with a left shift. ``full_last``: the last layer's taps span its whole input (VALID, one
    output a channel, as SWW's last block)."""
    rng = np.random.default_rng(seed)
    c = int(rng.integers(1, 131)) if c is None else c
    along_w = bool(seed % 2) if along_w is None else along_w
    n = int(rng.integers(12, 48))
    b = ModelBuilder()

    def shape(length: int) -> tuple[int, int, int, int]:
        return (batches, 1, length, c) if along_w else (batches, length, 1, c)

    in_s, in_zp = rand_quant(rng)
    ti = first = b.tensor(shape(n), scale=in_s, zero_point=in_zp)
    desc = [f"seed={seed} c={c} along_w={along_w} batches={batches} n={n}"]
    for i in range(layers):
        k = int(rng.integers(1, 17)) if not (full_last and i == layers - 1) else n
        pad = "SAME" if k > n or rng.random() < 0.4 else "VALID"
        stride = int(rng.choice([1, 1, 2, 3]))
        act = ACTS[(seed + i) % len(ACTS)]
        if pad == "VALID" and (k - 1) * dil + 1 > n:
            pad = "SAME"
        m = out_size(pad, n, k, stride, dil)
        f_scales = rng.uniform(0.002, 0.02, size=c).astype(np.float32)
        filt = rng.integers(-127, 128, size=(1, 1, k, c) if along_w else (1, k, 1, c), dtype=np.int8)
        if c > 2:
            filt[..., 0] = 0
            f_scales[1] = 1e-9
        out_s = rand_out_scale(rng, in_s, float(f_scales.mean()), k)
        if seed % 4 == 3 and i == 0:
            out_s = in_s * float(f_scales.mean()) * 0.3  # a multiplier above 1: a left shift (into the weights)
        tf = b.tensor(filt.shape, data=filt, scale=f_scales, zero_point=0, qdim=3)
        tb = b.tensor((c,), "INT32", data=rng.integers(-3000, 3000, size=c).astype(np.int32),
                      scale=in_s * f_scales.astype(np.float64), zero_point=0)
        to = b.tensor(shape(m), scale=out_s, zero_point=int(rng.integers(-128, 128)))
        sw, sh = (stride, 1) if along_w else (1, stride)
        dw_, dh_ = (dil, 1) if along_w else (1, dil)
        b.op("DEPTHWISE_CONV_2D", [ti, tf, tb], [to],
             options("DepthwiseConv2DOptions", padding=PADDING[pad], strideW=sw, strideH=sh, depthMultiplier=1,
                     dilationWFactor=dw_, dilationHFactor=dh_, fusedActivationFunction=ACT[act]),
             "DepthwiseConv2DOptions")
        desc.append(f"k={k} s={stride} {pad} {act} -> {m}")
        ti, n, in_s = to, m, out_s
    return b.build([first], [ti]), " ".join(desc)


def _host_outputs(model: bytes, want: str | None, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(C outputs on the host, TFLM's, kernels) with ``want`` chosen wherever it is a candidate."""
    g = read_model_bytes(model, name="dw1d")
    program = build_program(g)
    board = get_board(BOARD)
    choices = {i: want for i, s in enumerate(program.steps) if want and want in candidates(s, board)}
    program = specialize(program, board, choices)
    x = np.random.default_rng(seed).integers(-128, 128, size=(samples,) + tuple(g.input.shape), dtype=np.int8)
    expected = run_tflm(model, x).reshape(samples, -1)
    with tempfile.TemporaryDirectory(prefix="te-dw1d-") as d:
        got = run_host(build_host(render_model(program).files, Path(d)), x.reshape(samples, -1), g.output.size)
    return got, expected, [s.kernel for s in program.steps]


#: (seed, channels, batches): odd, tiny and large channel counts, both axes (seed parity), one batch of 2.
HOST_CASES = [(0, 1, 1), (1, 3, 1), (2, 40, 1), (3, 130, 1), (4, 7, 2), (5, None, 1), (6, 128, 1), (7, 2, 1),
              (8, 128, 1), (9, 5, 2)]


@pytest.mark.slow  # a host build of the generated C each
@pytest.mark.parametrize("seed,c,batches", HOST_CASES, ids=[f"seed{s}" for s, _, _ in HOST_CASES])
def test_dw1d_on_host_matches_tflm(seed: int, c: int | None, batches: int) -> None:
    model, desc = dw1d_chain(seed, c=c, batches=batches, full_last=seed >= 8)
    got, expected, kernels = _host_outputs(model, "dsp-dw1d", samples=4, seed=seed)
    assert all(k.startswith("te_dwconv1d_s8_dsp_m") for k in kernels), (desc, kernels)
    assert np.array_equal(got, expected), f"{desc}: {int((got != expected).sum())} of {got.size} differ; {kernels}"


@pytest.mark.unit
def test_dw1d_is_the_heuristic_choice_only_for_1d_signals() -> None:
    """First where it applies (no dilation, W = 1 or H = 1), one output a channel included; absent on dilated
    layers."""
    board = get_board(BOARD)
    for along_w in (False, True):
        model, _ = dw1d_chain(11, layers=1, c=8, along_w=along_w)
        step = build_program(read_model_bytes(model, name="dw1d")).steps[0]
        found = candidates(step, board)
        assert next(iter(found)) == "dsp-dw1d" and found["dsp-dw1d"].params["kpad"] == int(along_w)
        assert "portable" in found and "dsp" in found
        assert not found["dsp"].why.startswith("heuristic")
    model, _ = dw1d_chain(3, layers=4, c=8)  # its last layer has one output a channel (no widening)
    last = build_program(read_model_bytes(model, name="dw1d")).steps[-1]
    assert last.params["out_w"] == 1 and next(iter(candidates(last, board))) == "dsp-dw1d"
    model, _ = dw1d_chain(12, layers=1, c=8, dil=2)
    assert "dsp-dw1d" not in candidates(build_program(read_model_bytes(model, name="dw1d")).steps[0], board)



def conv1px_chain(seed: int, batches: int = 1) -> tuple[bytes, str]:
    """1x1 CONV_2D layers on a 1x1 image (13 -> 130 -> 7 channels: odd rows and depths), channel 0 dead and
    channel 1 a tiny scale in each, random activations: what _conv1px_candidates hands to the FC kernels."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    in_s, in_zp = rand_quant(rng)
    ti = first = b.tensor((batches, 1, 1, 13), scale=in_s, zero_point=in_zp)
    c, desc = 13, [f"seed={seed} batches={batches} 13"]
    for i, oc in enumerate((130, 7)):
        f_scales = rng.uniform(0.002, 0.02, size=oc).astype(np.float32)
        filt = rng.integers(-127, 128, size=(oc, 1, 1, c), dtype=np.int8)
        filt[0] = 0
        f_scales[1] = 1e-9
        act = ACTS[(seed + i) % len(ACTS)]
        out_s = rand_out_scale(rng, in_s, float(f_scales.mean()), c)
        tf = b.tensor((oc, 1, 1, c), data=filt, scale=f_scales, zero_point=0, qdim=0)
        tb = b.tensor((oc,), "INT32", data=rng.integers(-3000, 3000, size=oc).astype(np.int32),
                      scale=in_s * f_scales.astype(np.float64), zero_point=0)
        to = b.tensor((batches, 1, 1, oc), scale=out_s, zero_point=int(rng.integers(-128, 128)))
        b.op("CONV_2D", [ti, tf, tb], [to], options("Conv2DOptions", padding=PADDING["VALID"], strideH=1, strideW=1,
                                                    fusedActivationFunction=ACT[act]), "Conv2DOptions")
        desc.append(f"-> {oc} {act}")
        ti, c, in_s = to, oc, out_s
    return b.build([first], [ti]), " ".join(desc)


@pytest.mark.slow  # a host build each
@pytest.mark.parametrize("want", ["fc-fc4x", "fc-fc4", "fc"])
def test_conv1px_as_fc_on_host_matches_tflm(want: str) -> None:
    model, desc = conv1px_chain(3, batches=2)
    got, expected, kernels = _host_outputs(model, want, samples=4, seed=3)
    assert all(k.startswith("te_fc") for k in kernels), (desc, want, kernels)
    assert np.array_equal(got, expected), f"{desc} ({want}): {int((got != expected).sum())} differ; {kernels}"


@pytest.mark.unit
def test_conv1px_is_the_heuristic_choice_only_on_1x1_images() -> None:
    board = get_board(BOARD)
    step = build_program(read_model_bytes(conv1px_chain(0)[0], name="c1")).steps[0]
    found = candidates(step, board)
    assert next(iter(found)).startswith("fc") and "dsp-px4" in found and "portable" in found
    assert found[next(iter(found))].why.startswith("heuristic: a 1x1 image")
    model, _ = dw1d_chain(11, layers=1, c=8)
    assert not any(k.startswith("fc") for k in candidates(build_program(read_model_bytes(model, name="d")).steps[0],
                                                          board))

needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
    reason="needs arm-none-eabi-gcc and qemu-system-arm",
)


@pytest.mark.slow
@needs_tools
def test_dw1d_in_qemu_matches_tflm(tmp_path: Path, pio_core: Path) -> None:
    """The real SMLAD/SMMLAR and unaligned word loads on the Cortex-M4: odd channels, both axes, strides; and
    1x1 convolutions on a 1x1 image in the FULLY_CONNECTED kernels' assembly (the heuristic's te_fc4x)."""
    cases = [(dw1d_chain(20, c=130), "te_dwconv1d_s8_dsp_m"), (dw1d_chain(21, c=7), "te_dwconv1d_s8_dsp_m"),
             (conv1px_chain(5), "te_fc")]
    for i, ((model, desc), prefix) in enumerate(cases):
        graph = read_model_bytes(model, name=f"dw1d{i}")
        x = np.random.default_rng(i).integers(-128, 128, size=(3,) + tuple(graph.input.shape), dtype=np.int8)
        got, project = qemu_outputs(graph, BOARD, x, tmp_path / f"p{i}", pio_core)
        kernels = [s.kernel for s in project.program.steps]
        assert all(k.startswith(prefix) for k in kernels), (desc, kernels)
        assert np.array_equal(got, run_tflm(model, x).reshape(len(x), -1)), f"{desc}: {kernels}"
