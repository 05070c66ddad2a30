"""The DSP kernels (te_kernels_dsp.c, chosen by tinyedge.codegen.target for boards with ``dsp: true``)
against the tflite_micro interpreter, exact equality.

Two levels: on the host, the same kernel C runs on exact C models of SMLAD/SXTB16/SMMLAR (fast, many
randomized shapes); in QEMU (mps2-an386, Cortex-M4), firmware built by PlatformIO runs the real
instructions on randomized multi-layer chains and on KWS, driven over the serial link.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_model
from difftest import qemu_outputs
from helpers import ACTS, chain_model, conv_model, fc_model, rand_out_scale, rand_quant
from tflite_builder import ACT, PADDING, ModelBuilder, options, out_size
from tinyedge.boards import get_board
from tinyedge.codegen import target
from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.host import build_host, run_host
from tinyedge.codegen.target import candidates, specialize, variant
from tinyedge.model import load_model, read_model_bytes
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm

BOARD = "qemu-mps2-an386"
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
    kernels = [s.kernel for s in program.steps]
    return f"{desc}: {int((got != expected).sum())} of {got.size} outputs differ; kernels {kernels}"


HOST_CASES = ([("conv", s) for s in range(10)] + [("fc", s) for s in range(8)] + [("dw", s) for s in range(6)]
              + [("chain", s) for s in range(6)])


# slow: the DSP kernels' own -O3 host build alone takes most of the unit tier's minute
@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
@needs_tools
def test_kws_dsp_firmware_in_qemu_matches_tflm(tmp_path, pio_core):
    path = shared_model("kws_ref_model.tflite")
    graph = load_model(path)
    x = np.random.default_rng(7).integers(-128, 128, size=(2,) + tuple(graph.input.shape), dtype=np.int8)
    got, project = _run_in_qemu(graph, tmp_path / "kws", pio_core, x)
    assert all("_dsp" in s.kernel for s in project.program.steps if s.macs > 1000)
    assert project.plan.inplace, "the DSP plan runs pointwise and depthwise convolutions in place"
    assert np.array_equal(got, run_tflm(graph.model_bytes, x).reshape(len(x), -1))


# ------------------------------------------- depthwise 3x3 stride 2, fully connected 4 rows a pass (issue 13)

def dw3x3_model(seed: int, stride: int = 2, dead: bool = False) -> tuple[bytes, str]:
    """A 3x3 DEPTHWISE_CONV_2D (depth multiplier 1, any channel count) with the given stride; ``dead`` zeroes
    a channel's weights and gives another a tiny scale (the exact requantization rows)."""
    rng = np.random.default_rng(seed)
    h, w, c = int(rng.integers(3, 15)), int(rng.integers(3, 15)), int(rng.integers(1, 10))
    pad, act = ["SAME", "VALID"][seed % 2], ACTS[seed % len(ACTS)]
    oh, ow = out_size(pad, h, 3, stride, 1), out_size(pad, w, 3, stride, 1)
    in_s, in_zp = rand_quant(rng)
    f_scales = rng.uniform(0.002, 0.02, size=c).astype(np.float32)
    filt = rng.integers(-127, 128, size=(1, 3, 3, c), dtype=np.int8)
    if dead and c > 2:
        filt[..., 0] = 0
        f_scales[1] = 1e-9
    out_s = rand_out_scale(rng, in_s, float(f_scales.mean()), 9)
    b = ModelBuilder()
    ti = b.tensor((1, h, w, c), scale=in_s, zero_point=in_zp)
    tf = b.tensor((1, 3, 3, c), data=filt, scale=f_scales, zero_point=0, qdim=3)
    tb = b.tensor((c,), "INT32", data=rng.integers(-3000, 3000, size=c).astype(np.int32),
                  scale=in_s * f_scales.astype(np.float64), zero_point=0)
    to = b.tensor((1, oh, ow, c), scale=out_s, zero_point=int(rng.integers(-128, 128)))
    b.op("DEPTHWISE_CONV_2D", [ti, tf, tb], [to],
         options("DepthwiseConv2DOptions", padding=PADDING[pad], strideW=stride, strideH=stride, depthMultiplier=1,
                 fusedActivationFunction=ACT[act]), "DepthwiseConv2DOptions")
    return b.build([ti], [to]), f"DW3x3 s{stride} seed={seed} in=({h},{w},{c}) {pad} {act} dead={dead}"


def _compare_variant(model: bytes, desc: str, family: str, want: str, seed: int = 0) -> str | None:
    """_compare_host with ``want`` (a candidates() name) chosen for every step that has it; it must exist."""
    g = read_model_bytes(model, name="dspvar")
    program = build_program(g)
    board = get_board(BOARD)
    choices = {i: want for i, s in enumerate(program.steps) if want in candidates(s, board)}
    assert choices, f"{desc}: no step has the {family} variant {want}"
    program = specialize(program, board, choices)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(4,) + tuple(g.input.shape), dtype=np.int8)
    expected = run_tflm(model, x).reshape(4, -1)
    with tempfile.TemporaryDirectory(prefix="te-dspvar-") as d:
        got = run_host(build_host(render_model(program).files, Path(d)), x.reshape(4, -1), g.output.size)
    if np.array_equal(got, expected):
        return None
    return f"{desc} ({want}): {int((got != expected).sum())} of {got.size} outputs differ"


VARIANT_CASES = ([("dw", "dsp-dw3x3s2", s) for s in range(6)] + [("fc", "dsp-fc4", s) for s in range(5)]
                 + [("fc", "dsp-fc4x", s) for s in range(5, 10)])


@pytest.mark.slow
@pytest.mark.parametrize("family,want,seed", VARIANT_CASES, ids=[f"{w}-{s}" for _, w, s in VARIANT_CASES])
def test_dw3x3s2_and_fc4_kernels_on_host_match_tflm(family, want, seed):
    model, desc = dw3x3_model(seed, dead=seed % 3 == 2) if family == "dw" else fc_model(seed)
    problem = _compare_variant(model, desc, family, want, seed)
    assert problem is None, problem


@pytest.mark.slow
@pytest.mark.parametrize("band_bytes", [0, 100])
def test_dw3x3s2_in_bands_matches_tflm(band_bytes, monkeypatch):
    """te_dwconv3x3s2 with its buffer holding one output row's inputs (0: one row a band) or a few, the last
    band shorter: the rows two bands share are widened again, padding rows zeroed per band."""
    monkeypatch.setattr(target, "DW3S2_BAND_BYTES", band_bytes)
    seen: set[bool] = set()
    for seed in (0, 1, 2, 3):
        model, desc = dw3x3_model(seed, dead=seed == 2)
        g = read_model_bytes(model, name="band")
        step = candidates(build_program(g).steps[0], get_board(BOARD)).get("dsp-dw3x3s2")
        assert step is not None and (band_bytes or step.params["kpad"] == 1), desc
        bands = {step.params["kpad"] < step.params["out_h"]} if band_bytes else set()
        problem = _compare_variant(model, desc, "dw", "dsp-dw3x3s2", seed)
        assert problem is None, problem
        seen |= bands
    assert not band_bytes or True in seen  # some case ran in bands of several rows


@pytest.mark.unit
def test_fc4_weights_are_as_many_bytes_and_refuse_overflowing_rows():
    _fc4_weights = target._fc4_weights  # noqa: N806 (the layout function under test)
    rng = np.random.default_rng(3)
    for n, depth in [(1, 5), (2, 8), (3, 7), (4, 16), (7, 13), (9, 640)]:
        w = rng.integers(-127, 128, size=(n, depth))
        got = _fc4_weights(w)
        assert got is not None and got.dtype == np.int8 and got.size == n * ((depth + 3) // 4 * 4)
    # |x.w_s| can reach 2^23 for a long row of large weights: refused rather than wrong
    assert _fc4_weights(np.full((2, 700), -127)) is None


@pytest.mark.slow
@needs_tools
def test_fc4_and_dw3x3s2_firmware_in_qemu_matches_tflm(tmp_path, pio_core, monkeypatch):
    """The hand-written te_fc4/te_fc4x loops (ARM only) and te_dwconv3x3s2 on the real instructions."""
    heuristic = target._fc_candidates
    monkeypatch.setattr(target, "FC4_MIN_MACS", 0)  # these layers are small: the four-row kernels all the same
    cases = [(fc_model(4), "dsp-fc4"), (fc_model(9), "dsp-fc4x")] + [(dw3x3_model(s, dead=s == 2), "") for s in (1, 2)]
    for i, ((model, desc), want) in enumerate(cases):
        # the FULLY_CONNECTED variant under test first (the heuristic takes fc4x for short rows)
        monkeypatch.setattr(target, "_fc_candidates", lambda st, w=want: dict(
            sorted(heuristic(st).items(), key=lambda kv: kv[0] != w)))
        graph = read_model_bytes(model, name=f"dspvar{i}")
        x = np.random.default_rng(i).integers(-128, 128, size=(3,) + tuple(graph.input.shape), dtype=np.int8)
        got, project = _run_in_qemu(graph, tmp_path / f"p{i}", pio_core, x)
        kernels = [s.kernel for s in project.program.steps]
        assert any(k.startswith(("te_fc4", "te_dwconv3x3s2")) for k in kernels) and (
            not want or want[4:] in kernels[0]), (desc, kernels)
        assert np.array_equal(got, run_tflm(model, x).reshape(len(x), -1)), f"{desc}: {kernels}"


# ------------------------------------------------ CONV_2D blocked over pixels (te_conv2d_s8_dsp_pxN)

def _conv_layer(b: ModelBuilder, rng: np.random.Generator, ti: int, shape: tuple[int, int, int, int],
                in_s: float, oc: int, k: tuple[int, int], stride: tuple[int, int], dil: int, pad: str, act: str,
                dead: bool) -> tuple[int, tuple[int, int, int, int], float]:
    """One random CONV_2D after tensor ``ti``; ``dead``: channel 0 all zero, channel 1 a tiny scale (exact rows)."""
    n, h, w, c = shape
    oh, ow = out_size(pad, h, k[0], stride[0], dil), out_size(pad, w, k[1], stride[1], dil)
    f_scales = rng.uniform(0.002, 0.02, size=oc).astype(np.float32)
    filt = rng.integers(-127, 128, size=(oc, k[0], k[1], c), dtype=np.int8)
    if dead and oc > 2:
        filt[0] = 0
        f_scales[1] = 1e-9
    out_s = rand_out_scale(rng, in_s, float(f_scales.mean()), k[0] * k[1] * c)
    tf = b.tensor((oc, k[0], k[1], c), data=filt, scale=f_scales, zero_point=0, qdim=0)
    tb = b.tensor((oc,), "INT32", data=rng.integers(-3000, 3000, size=oc).astype(np.int32),
                  scale=in_s * f_scales.astype(np.float64), zero_point=0)
    to = b.tensor((n, oh, ow, oc), scale=out_s, zero_point=int(rng.integers(-128, 128)))
    b.op("CONV_2D", [ti, tf, tb], [to], options("Conv2DOptions", padding=PADDING[pad], strideH=stride[0],
                                                strideW=stride[1], fusedActivationFunction=ACT[act],
                                                dilationHFactor=dil, dilationWFactor=dil), "Conv2DOptions")
    return to, (n, oh, ow, oc), out_s


def px_conv_model(seed: int) -> tuple[bytes, str]:
    """A random CONV_2D with the shapes the pixel-blocked kernels specialise: pointwise with up to 99
    channels (in_c % 8 == 4 too), windows over the edges, strides, dilation, odd channel counts, dead and
    tiny-scale channels."""
    rng = np.random.default_rng(seed)
    if seed % 3 == 0:
        h, w, c = int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 25)) * 4
        k, stride, dil, pad = (1, 1), (1, 1), 1, "VALID"
    else:
        h, w, c = int(rng.integers(3, 12)), int(rng.integers(3, 12)), int(rng.integers(1, 20))
        k = (int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(1, min(w, 4) + 1)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        dil = 2 if seed % 4 == 1 and (k[0] - 1) * 2 < h and (k[1] - 1) * 2 < w else 1
        pad = ["SAME", "VALID"][seed % 2]
    shape = (1 + (seed % 5 == 0), h, w, c)
    in_s, in_zp = rand_quant(rng)
    b = ModelBuilder()
    ti = b.tensor(shape, scale=in_s, zero_point=in_zp)
    act = ACTS[seed % len(ACTS)]
    to, _, _ = _conv_layer(b, rng, ti, shape, in_s, int(rng.integers(1, 40)), k, stride, dil, pad, act,
                           dead=seed % 4 == 3)
    return b.build([ti], [to]), f"px seed={seed} in={shape} k={k} stride={stride} dil={dil} {pad} {act}"


def px_conv_chain() -> tuple[bytes, str]:
    """Five CONV_2Ds in one model (one firmware for the QEMU test): 3x3 stride 2 over 3 channels, pointwise
    12 -> 20 (in_c % 8 == 4), 3x3 dilation 2, 2x3 stride (1, 2) with odd channels and dead/tiny channels,
    1x1 over 9 channels (not the pointwise path: 9 % 4 != 0)."""
    rng = np.random.default_rng(1313)
    b = ModelBuilder()
    shape, in_s = (1, 13, 11, 3), 0.05
    ti = b.tensor(shape, scale=in_s, zero_point=7)
    t = ti
    layers = [(12, (3, 3), (2, 2), 1, "SAME", "RELU", False), (20, (1, 1), (1, 1), 1, "VALID", "NONE", False),
              (7, (3, 3), (1, 1), 2, "SAME", "RELU6", False), (9, (2, 3), (1, 2), 1, "VALID", "NONE", True),
              (16, (1, 1), (1, 1), 1, "SAME", "RELU_N1_TO_1", False)]
    for oc, k, stride, dil, pad, act, dead in layers:
        t, shape, in_s = _conv_layer(b, rng, t, shape, in_s, oc, k, stride, dil, pad, act, dead)
    return b.build([ti], [t]), "px conv chain"


PX_SEEDS = list(range(9))
PX_VARIANTS = ("dsp-px4", "dsp-px5", "dsp-px6")


@pytest.mark.slow
@pytest.mark.parametrize("seed", PX_SEEDS)
def test_px_conv_kernels_on_host_match_tflm(seed):
    """Every CONV_2D candidate (the pixel-blocked ones and the heuristic's order) exact on the host."""
    model, desc = px_conv_model(seed) if seed != PX_SEEDS[-1] else px_conv_chain()
    g = read_model_bytes(model, name="pxconv")
    program = build_program(g)
    board = get_board(BOARD)
    names = [list(candidates(s, board)) for s in program.steps]
    assert all(set(PX_VARIANTS) <= set(n) and n[0].startswith("dsp-px") for n in names), names
    x = np.random.default_rng(seed).integers(-128, 128, size=(3,) + tuple(g.input.shape), dtype=np.int8)
    expected = run_tflm(model, x).reshape(3, -1)
    for v in PX_VARIANTS:
        p = specialize(program, board, dict.fromkeys(range(len(program.steps)), v))
        with tempfile.TemporaryDirectory(prefix="te-pxdiff-") as d:
            got = run_host(build_host(render_model(p).files, Path(d)), x.reshape(3, -1), g.output.size)
        assert np.array_equal(got, expected), f"{desc} {v}: {[s.kernel for s in p.steps]}"


@pytest.mark.slow
@needs_tools
def test_px_conv_kernels_in_qemu_match_tflm(tmp_path, pio_core, monkeypatch):
    """One firmware, the five layers of px_conv_chain on px4, px5, px6, px4, px5: the assembly loops exact."""
    model, desc = px_conv_chain()
    graph = read_model_bytes(model, name="pxchain")
    forced = ["dsp-px4", "dsp-px5", "dsp-px6", "dsp-px4", "dsp-px5"]

    def choose(program, board=None, choices=None):
        return specialize(program, board, dict(enumerate(forced)))

    monkeypatch.setattr("tinyedge.firmware.generate.specialize", choose)
    x = np.random.default_rng(13).integers(-128, 128, size=(3,) + tuple(graph.input.shape), dtype=np.int8)
    got, project = _run_in_qemu(graph, tmp_path / "pxchain", pio_core, x)
    kernels = [s.kernel for s in project.program.steps]
    assert [k.split("_m")[0][-3:] for k in kernels] == ["px4", "px5", "px6", "px4", "px5"], kernels
    assert any(s.params["mode"] & 4 for s in project.program.steps), "the dead/tiny channels take exact rows"
    # layers 1 and 4 share te_conv2d_s8_dsp_px5: layer 1 (mode 1 alone) runs layer 4's clamp too
    alone = [f[forced[i]].params["mode"] for i, f in enumerate(target.model_candidates(build_program(graph),
                                                                                      get_board(BOARD)))]
    assert alone[1] == 1 and kernels[1] == kernels[4] == "te_conv2d_s8_dsp_px5_m3", (alone, kernels)
    assert np.array_equal(got, run_tflm(model, x).reshape(len(x), -1)), f"{desc}: {kernels}"


# ----------------------------------- flash: kernel code shared across a model's layers (model_candidates)

def tcn_conv_chain(dead: bool = False, width: int = 16) -> tuple[bytes, str]:
    """SWW's CONV_2D shapes on one signal: 1x1 over 28, 24 and 15 time steps, the k x 1 convs between
    shrinking it; the per-layer heuristic would take three different pixel-block sizes."""
    rng = np.random.default_rng(29)
    b = ModelBuilder()
    shape, in_s = (1, 28, 1, width), 0.05
    ti = t = b.tensor(shape, scale=in_s, zero_point=-3)
    w = width
    for oc, k, act in ((w + 8, 1, "RELU"), (w, 5, "NONE"), (w + 8, 1, "RELU"), (w, 10, "NONE"), (w + 8, 1, "NONE")):
        t, shape, in_s = _conv_layer(b, rng, t, shape, in_s, oc, (k, 1), (1, 1), 1, "VALID", act, dead)
    return b.build([ti], [t]), f"tcn conv chain dead={dead} width={width}"


def fc_chain(widths: tuple[int, ...], acts: tuple[str, ...]) -> bytes:
    """FULLY_CONNECTED layers of the given widths (the first is the input depth)."""
    rng = np.random.default_rng(len(widths))
    b = ModelBuilder()
    in_s = 0.05
    ti = t = b.tensor((1, widths[0]), scale=in_s, zero_point=5)
    for depth, units, act in zip(widths, widths[1:], acts):
        f_scales = rng.uniform(0.002, 0.02, size=units).astype(np.float32)
        out_s = rand_out_scale(rng, in_s, float(f_scales.mean()), depth)
        tw = b.tensor((units, depth), data=rng.integers(-127, 128, size=(units, depth), dtype=np.int8),
                      scale=f_scales, zero_point=0)
        tb = b.tensor((units,), "INT32", data=rng.integers(-3000, 3000, size=units).astype(np.int32),
                      scale=in_s * f_scales.astype(np.float64), zero_point=0)
        to = b.tensor((1, units), scale=out_s, zero_point=int(rng.integers(-20, 20)))
        b.op("FULLY_CONNECTED", [t, tw, tb], [to], options("FullyConnectedOptions", fusedActivationFunction=ACT[act]),
             "FullyConnectedOptions")
        t, in_s = to, out_s
    return b.build([ti], [t])


@pytest.mark.unit
def test_a_model_links_one_pixel_block_size_the_cheapest_in_all():
    board = get_board(BOARD)
    program = build_program(read_model_bytes(tcn_conv_chain()[0], name="tcn"))
    alone = [next(iter(candidates(s, board))) for s in program.steps]
    assert len(set(alone)) > 1 and all(a.startswith("dsp-px") for a in alone), alone  # what the rule is for
    found = target.model_candidates(program, board)
    firsts = {next(iter(f)) for f in found}
    assert len(firsts) == 1, firsts
    n = int(firsts.pop().removeprefix("dsp-px"))
    totals = {m: sum(target._px_estimate(f[f"dsp-px{m}"].params, m) for f in found) for m in (4, 5, 6)}
    assert totals[n] == min(totals.values()) and totals[n] > sum(
        min(target._px_estimate(f[v].params, int(v[-1])) for v in ("dsp-px4", "dsp-px5", "dsp-px6")) for f in found)
    assert all(next(iter(f.values())).why.startswith(f"heuristic: {n} pixels a pass") for f in found)
    assert all(not v.why.startswith("heuristic") for f in found for v in list(f.values())[1:])
    kernels = {s.kernel.split("_m")[0] for s in specialize(program, board).steps}
    assert kernels == {f"te_conv2d_s8_dsp_px{n}"}
    # the tuner still measures every size: each layer keeps all its candidates
    assert [set(f) for f in found] == [set(candidates(s, board)) for s in program.steps]


@pytest.mark.unit
def test_a_second_pixel_block_size_only_where_it_pays_for_its_code():
    """The same chain 128 channels wide: the second size saves more than PX_SIZE_BYTES x FLASH_INSTR_PER_BYTE
    estimated instructions, so it is linked, and every layer runs the cheaper of the two."""
    board = get_board(BOARD)
    program = build_program(read_model_bytes(tcn_conv_chain(width=128)[0], name="wide"))
    found = target.model_candidates(program, board)
    chosen = [int(next(iter(f)).removeprefix("dsp-px")) for f in found]
    linked = sorted(set(chosen))
    assert len(linked) == 2, chosen
    est = [{m: target._px_estimate(f[f"dsp-px{m}"].params, m) for m in (4, 5, 6)} for f in found]
    assert all(e[n] == min(e[m] for m in linked) for e, n in zip(est, chosen))
    one = min((4, 5, 6), key=lambda m: sum(e[m] for e in est))
    assert sum(e[one] for e in est) - sum(e[n] for e, n in zip(est, chosen)) >= (
        target.PX_SIZE_BYTES * target.FLASH_INSTR_PER_BYTE)
    assert f"sizes linked: {', '.join(map(str, linked))}" in next(iter(found[0].values())).why


@pytest.mark.unit
def test_four_row_fc_only_where_the_model_gives_it_enough_macs():
    board = get_board(BOARD)
    small = build_program(read_model_bytes(fc_chain((32, 64, 40), ("RELU", "NONE")), name="s"))  # 4,608 MACs
    assert [next(iter(candidates(s, board))) for s in small.steps] == ["dsp-fc4x", "dsp-fc4x"]
    found = target.model_candidates(small, board)
    assert [next(iter(f)) for f in found] == ["dsp", "dsp"]
    assert f"fewer than {target.FC4_MIN_MACS:,}" in next(iter(found[0].values())).why
    big = build_program(read_model_bytes(fc_chain((64, 256, 128), ("RELU", "NONE")), name="b"))  # 49,152 MACs
    assert [next(iter(f)) for f in target.model_candidates(big, board)] == ["dsp-fc4x", "dsp-fc4x"]


@pytest.mark.unit
def test_layers_on_one_kernel_share_its_entry_point_except_for_exact_rows():
    board = get_board(BOARD)
    portable = build_program(read_model_bytes(fc_chain((32, 64, 40), ("RELU", "NONE")), name="s"))
    alone = [next(iter(target.model_candidates(portable, board)[i].values())).params["mode"] for i in (0, 1)]
    assert alone == [2, 1]  # RELU above the zero point: a clamp, no fix-up; no activation: the fix-up only
    program = specialize(portable, board)
    assert [s.params["mode"] for s in program.steps] == [3, 3]
    assert {s.kernel for s in program.steps} == {"te_fc_s8_dsp_m3"}
    step = program.steps[0]
    steps = [dataclasses.replace(step, kernel=f"te_conv2d_s8_dsp_px6_m{m}", params={**step.params, "mode": m})
             for m in (0, 1, 2, 4, 5)]
    steps.append(dataclasses.replace(step, kernel="te_conv2d_s16_dsp_m0", params={**step.params, "mode": 0}))
    shared = target.share_modes(steps)
    assert [s.kernel[-2:] for s in shared] == ["m3", "m3", "m3", "m5", "m5", "m0"]
    assert [s.params["mode"] for s in shared] == [3, 3, 3, 5, 5, 0]
    # te_fc4 runs te_fc4x's body: one mode for both
    pair = [dataclasses.replace(step, kernel=k, params={**step.params, "mode": int(k[-1])})
            for k in ("te_fc4_s8_dsp_m0", "te_fc4x_s8_dsp_m1", "te_fc_s8_dsp_m2")]
    assert [s.kernel for s in target.share_modes(pair)] == ["te_fc4_s8_dsp_m1", "te_fc4x_s8_dsp_m1", "te_fc_s8_dsp_m2"]


@pytest.mark.slow
@pytest.mark.parametrize("dead", [False, True])
def test_shared_kernels_on_host_match_tflm(dead):
    """The model-wide choices (one pixel-block size, modes widened to the shared entry point) stay exact."""
    model, desc = tcn_conv_chain(dead)
    kernels = [s.kernel for s in specialize(build_program(read_model_bytes(model, name="tcn")), get_board(BOARD)).steps]
    assert len(set(kernels)) < len(kernels), kernels
    problem = _compare_host(model, desc, samples=4, seed=5)
    assert problem is None, problem


# ------------------------------------------ depthwise 3x3 stride 1, v2 (te_dwconv3x3v2: tall planes transposed)

@pytest.mark.slow
def test_dw3x3v2_on_host_matches_tflm():
    """te_dwconv3x3v2 on random 3x3 stride-1 layers (odd and even sizes, 1-9 channels, SAME/VALID, dead and
    tiny-scale channels), walked both ways: transposed (kpad 1) for tall planes, row by row otherwise."""
    seen: set[int] = set()
    for seed in range(12):
        model, desc = dw3x3_model(seed, stride=1, dead=seed % 3 == 2)
        g = read_model_bytes(model, name="dw3v2")
        step = candidates(build_program(g).steps[0], get_board(BOARD)).get("dsp-dw3x3v2")
        assert step is not None, desc
        seen.add(step.params["kpad"])
        problem = _compare_variant(model, desc, "dw", "dsp-dw3x3v2", seed)
        assert problem is None, problem
    assert {k & 1 for k in seen} == {0, 1}, seen  # kpad bit 0: transposed (bit 1: four channels at once)


_DW3V2_QEMU_SEEDS = (0, 9)  # 13x10x5 SAME (transposed, odd height), 8x13x9 VALID (row by row, 9 channels)


@pytest.mark.slow
@needs_tools
def test_dw3x3v2_in_qemu_matches_tflm(tmp_path, pio_core, monkeypatch):
    """te_dwconv3x3v2 on the real instructions: one tall (transposed) and one wide layer, with dead channels."""
    heuristic = target._dw_candidates
    monkeypatch.setattr(target, "_dw_candidates", lambda st: dict(
        sorted(heuristic(st).items(), key=lambda kv: kv[0] != "dsp-dw3x3v2")))
    for i, seed in enumerate(_DW3V2_QEMU_SEEDS):
        model, desc = dw3x3_model(seed, stride=1, dead=True)
        graph = read_model_bytes(model, name=f"dw3v2q{i}")
        x = np.random.default_rng(seed).integers(-128, 128, size=(3,) + tuple(graph.input.shape), dtype=np.int8)
        got, project = _run_in_qemu(graph, tmp_path / f"p{i}", pio_core, x)
        kernels = [s.kernel for s in project.program.steps]
        assert kernels[0].startswith("te_dwconv3x3v2_"), (desc, kernels)
        assert np.array_equal(got, run_tflm(model, x).reshape(len(x), -1)), f"{desc}: {kernels}"


# ------------------------------- CONV_2D pxN: windows expanded straight from the input rows (in_c % 4 == 0)
def px_rows_chain() -> tuple[bytes, str]:
    """Three CONV_2Ds whose filter rows are whole k-steps of >= 16 bytes (te_conv_px_body's direct expansion):
    3x3 SAME over 16 channels (IC's resblocks), 3x3 stride 2 over 8 channels, 5x5 SAME over 4 channels (a
    zero k-step past the patch: kpad 104 for 100 bytes), with dead and tiny-scale channels."""
    rng = np.random.default_rng(1314)
    b = ModelBuilder()
    shape, in_s = (1, 9, 10, 16), 0.05
    ti = b.tensor(shape, scale=in_s, zero_point=-5)
    t = ti
    layers = [(8, (3, 3), (1, 1), 1, "SAME", "RELU", True), (4, (3, 3), (2, 2), 1, "SAME", "NONE", False),
              (11, (5, 5), (1, 1), 1, "SAME", "RELU6", False)]
    for oc, k, stride, dil, pad, act, dead in layers:
        t, shape, in_s = _conv_layer(b, rng, t, shape, in_s, oc, k, stride, dil, pad, act, dead)
    return b.build([ti], [t]), "px rows chain"


@pytest.mark.slow
def test_px_rows_on_host_match_tflm():
    """The direct row expansion exact on the host for every pixel block size."""
    model, desc = px_rows_chain()
    g = read_model_bytes(model, name="pxrows")
    program = build_program(g)
    board = get_board(BOARD)
    x = np.random.default_rng(7).integers(-128, 128, size=(3,) + tuple(g.input.shape), dtype=np.int8)
    expected = run_tflm(model, x).reshape(3, -1)
    for v in PX_VARIANTS:
        p = specialize(program, board, dict.fromkeys(range(len(program.steps)), v))
        with tempfile.TemporaryDirectory(prefix="te-pxrows-") as d:
            got = run_host(build_host(render_model(p).files, Path(d)), x.reshape(3, -1), g.output.size)
        assert np.array_equal(got, expected), f"{desc} {v}: {[s.kernel for s in p.steps]}"


@pytest.mark.slow
@needs_tools
def test_px_rows_in_qemu_match_tflm(tmp_path, pio_core, monkeypatch):
    """One firmware, px_rows_chain on px6, px5, px4: the direct row expansion with the assembly loops exact."""
    model, desc = px_rows_chain()
    graph = read_model_bytes(model, name="pxrows")
    forced = ["dsp-px6", "dsp-px5", "dsp-px4"]

    def choose(program, board=None, choices=None):
        return specialize(program, board, dict(enumerate(forced)))

    monkeypatch.setattr("tinyedge.firmware.generate.specialize", choose)
    x = np.random.default_rng(14).integers(-128, 128, size=(3,) + tuple(graph.input.shape), dtype=np.int8)
    got, project = _run_in_qemu(graph, tmp_path / "pxrows", pio_core, x)
    kernels = [s.kernel for s in project.program.steps]
    assert [k.split("_m")[0][-3:] for k in kernels] == ["px6", "px5", "px4"], kernels
    assert np.array_equal(got, run_tflm(model, x).reshape(len(x), -1)), f"{desc}: {kernels}"


# ------------------- depthwise plane kernels, round two (issue 13, VWW): stride-2 row sums in assembly, four
# channels widened at once, the heuristic's small-plane rule

def _dw_layer(b: ModelBuilder, rng: np.random.Generator, ti: int, shape: tuple[int, int, int, int], in_s: float,
              stride: int, pad: str, act: str) -> tuple[int, tuple[int, int, int, int], float]:
    """One 3x3 DEPTHWISE_CONV_2D after tensor ``ti``: channel 0 all zero, channel 1 a tiny scale (exact rows)."""
    n, h, w, c = shape
    oh, ow = out_size(pad, h, 3, stride, 1), out_size(pad, w, 3, stride, 1)
    f_scales = rng.uniform(0.002, 0.02, size=c).astype(np.float32)
    filt = rng.integers(-127, 128, size=(1, 3, 3, c), dtype=np.int8)
    filt[..., 0] = 0
    f_scales[1] = 1e-9
    out_s = rand_out_scale(rng, in_s, float(f_scales.mean()), 9)
    tf = b.tensor((1, 3, 3, c), data=filt, scale=f_scales, zero_point=0, qdim=3)
    tb = b.tensor((c,), "INT32", data=rng.integers(-3000, 3000, size=c).astype(np.int32),
                  scale=in_s * f_scales.astype(np.float64), zero_point=0)
    to = b.tensor((n, oh, ow, c), scale=out_s, zero_point=int(rng.integers(-128, 128)))
    b.op("DEPTHWISE_CONV_2D", [ti, tf, tb], [to],
         options("DepthwiseConv2DOptions", padding=PADDING[pad], strideW=stride, strideH=stride, depthMultiplier=1,
                 fusedActivationFunction=ACT[act]), "DepthwiseConv2DOptions")
    return to, (n, oh, ow, c), out_s


def dw_plane_chain() -> tuple[bytes, str]:
    """Four 3x3 depthwise layers over 8 channels, dead and tiny-scale channels in each: stride 1 SAME on a wide
    11x13 plane, stride 2 SAME to 6x7 (odd row: the extra sum reads past its row), stride 1 SAME on 6x7,
    stride 2 VALID to 2x3."""
    rng = np.random.default_rng(1315)
    b = ModelBuilder()
    shape, in_s = (1, 11, 13, 8), 0.05
    ti = b.tensor(shape, scale=in_s, zero_point=-9)
    t = ti
    for stride, pad, act in [(1, "SAME", "RELU"), (2, "SAME", "NONE"), (1, "SAME", "RELU6"), (2, "VALID", "NONE")]:
        t, shape, in_s = _dw_layer(b, rng, t, shape, in_s, stride, pad, act)
    return b.build([ti], [t]), "dw plane chain"


#: Per layer of dw_plane_chain: the variant forced in QEMU (every new path on the real instructions) and its
#: kpad (te_dwconv3x3v2: bit 0 transposed, bit 1 four channels at once; te_dwconv3x3s2: output rows a band).
_DW_CHAIN_FORCED = ["dsp-dw3x3v2", "dsp-dw3x3s2", "dsp-dw3x3v2x1", "dsp-dw3x3s2"]
_DW_CHAIN_KPAD = [2, 2, 0, 2]  # with DW3S2_BAND_BYTES = 200: layer 1's six output rows in three bands


@pytest.mark.unit
def test_dw_candidates_small_planes_and_four_channel_widening():
    """The heuristic: the generic kernel first on stride-2 planes of fewer than DW_PLANE_MIN_OUTPUTS outputs
    (stride 1 keeps the 3x3 kernel's int8 weights), the plane kernels from there; four channels widened at
    once by default only on small row-by-row planes with in_c % 4 == 0, the other widening always offered to
    the tuner; the scratch the kernels need."""
    g = read_model_bytes(dw_plane_chain()[0], name="dwchain")
    board = get_board(BOARD)
    found = [candidates(s, board) for s in build_program(g).steps]
    assert [list(f)[0] for f in found] == ["dsp-dw3x3v2", "dsp-dw3x3s2", "dsp-dw3x3v2", "dsp"]
    assert found[3]["dsp"].kernel.startswith("te_dwconv2d_s8_dsp_") and "dsp-dw3x3s2" in found[3]
    v2, x1 = found[0]["dsp-dw3x3v2"], found[0]["dsp-dw3x3v2x1"]
    assert v2.params["kpad"] == 2 and x1.params["kpad"] == 0
    plane = 13 * ((13 + 4) & ~1) * 2  # (out_h + 2) rows of (out_w + 4) & ~1 int16
    assert x1.scratch == plane + 8 * 7 and v2.scratch == 4 * plane + 8 * 7
    s2 = found[1]["dsp-dw3x3s2"]
    assert s2.scratch == (2 * s2.params["kpad"] + 1) * (2 * 7 + 2) * 2 + 8 * 4
    # a tall plane is walked transposed and keeps one buffer unless the tuner takes the four-channel one
    tall = candidates(build_program(read_model_bytes(dw3x3_model(0, stride=1)[0], name="t")).steps[0], board)
    first = next(iter(tall.values()))
    assert not first.params.get("kpad", 0) & 2
    assert target.DW_PLANE_MIN_OUTPUTS == 16
    # a small stride-1 plane keeps the 3x3 kernel (int8 weights); the generic one (int16) is the tuner's option
    b = ModelBuilder()
    ti = b.tensor((1, 3, 3, 16), scale=0.05, zero_point=3)
    to, _, _ = _dw_layer(b, np.random.default_rng(7), ti, (1, 3, 3, 16), 0.05, 1, "SAME", "RELU")
    small = candidates(build_program(read_model_bytes(b.build([ti], [to]), name="s")).steps[0], board)
    assert next(iter(small)) == "dsp-dw3x3v2" and next(iter(small.values())).why.startswith("heuristic")
    generic = small["dsp-generic"]
    assert generic.consts["filter"].nbytes == 2 * small["dsp-dw3x3v2"].consts["filter"].nbytes
    assert "int16 weights" in generic.why and not generic.why.startswith("heuristic")


@pytest.mark.slow
def test_dw_plane_chain_on_host_matches_tflm():
    """dw_plane_chain exact on the host (C models of the DSP instructions) with the heuristic's choices (v2
    four channels at once, stride 2, v2, generic) and with the variants the QEMU test forces (two builds)."""
    model, desc = dw_plane_chain()
    g = read_model_bytes(model, name="dwchain")
    program = build_program(g)
    board = get_board(BOARD)
    x = np.random.default_rng(15).integers(-128, 128, size=(3,) + tuple(g.input.shape), dtype=np.int8)
    expected = run_tflm(model, x).reshape(3, -1)
    for choices in ({}, dict(enumerate(_DW_CHAIN_FORCED))):
        p = specialize(program, board, choices)
        assert [s.variant for s in p.steps] == (_DW_CHAIN_FORCED if choices else
                                                 ["dsp-dw3x3v2", "dsp-dw3x3s2", "dsp-dw3x3v2", "dsp"])
        with tempfile.TemporaryDirectory(prefix="te-dwchain-") as d:
            got = run_host(build_host(render_model(p).files, Path(d)), x.reshape(3, -1), g.output.size)
        assert np.array_equal(got, expected), f"{desc} {choices}: {[s.kernel for s in p.steps]}"


@pytest.mark.slow
@needs_tools
def test_dw_plane_chain_in_qemu_matches_tflm(tmp_path, pio_core, monkeypatch):
    """One firmware, dw_plane_chain on v2 with four channels widened at once, stride 2 with its assembly row
    sums (odd and even rows, SAME and VALID), v2 one channel at a time: exact on the real instructions."""
    model, desc = dw_plane_chain()
    graph = read_model_bytes(model, name="dwchain")

    def choose(program, board=None, choices=None):
        return specialize(program, board, dict(enumerate(_DW_CHAIN_FORCED)))

    monkeypatch.setattr("tinyedge.firmware.generate.specialize", choose)
    monkeypatch.setattr(target, "DW3S2_BAND_BYTES", 200)
    x = np.random.default_rng(16).integers(-128, 128, size=(3,) + tuple(graph.input.shape), dtype=np.int8)
    got, project = _run_in_qemu(graph, tmp_path / "dwchain", pio_core, x)
    steps = project.program.steps
    assert [s.variant for s in steps] == _DW_CHAIN_FORCED, [s.kernel for s in steps]
    assert [s.params["kpad"] for s in steps] == _DW_CHAIN_KPAD, [s.params for s in steps]
    assert all(s.params["mode"] & 4 for s in steps), "the dead/tiny channels take exact rows"
    assert np.array_equal(got, run_tflm(model, x).reshape(len(x), -1)), f"{desc}: {[s.kernel for s in steps]}"
