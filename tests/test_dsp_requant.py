"""Exact requantization in the DSP kernels for channels the fast folded row cannot express (issue 13).

``tinyedge.codegen.target.requant_constants`` gives ordinary channels the fast row ``{bias, m2, r, s1}`` and
every other channel TFLM accepts an exact row (TFLM's multiplier and shift, ``s1 <= 0``) that
``te_requant`` runs through TFLM's generic MultiplyByQuantizedMultiplier: dead (all-zero) channels, tiny
scales (a zero multiplier, right shifts above 29), left shifts other than the layer's (effective scale > 1),
and rounding constants that a large output zero point would overflow. So one odd channel no longer sends a
whole layer to the portable kernel.

Three levels: the rows against TFLM's arithmetic in Python (unit), a model whose CONV_2D, DEPTHWISE_CONV_2D
and FULLY_CONNECTED layers all have such channels against the tflite_micro interpreter on the host (the
kernels on exact C models of the DSP instructions) and in QEMU (mps2-an386, Cortex-M4; one firmware build).
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from difftest import qemu_outputs
from tflite_builder import ACT, PADDING, ModelBuilder, options
from tinyedge.boards import get_board
from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.host import build_host, run_host
from tinyedge.codegen.target import candidates, compact_rows, requant_constants, requant_refusal, specialize
from tinyedge.model import read_model_bytes
from tinyedge.model.fixedpoint import mul_by_qm, rdivpot
from tinyedge.model.ir import Program
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm

BOARD = "qemu-mps2-an386"
INT32_MAX = 2**31 - 1


# ------------------------------------------------------------------ te_requant restated in Python

def _wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def _smmlar(a: int, b: int, c: int) -> int:
    return _wrap32((a * b + (c << 32) + 2**31) >> 32)


def _te_requant(acc: int, row: tuple[int, int, int, int], lsh: int, mode: int, amin: int, amax: int,
                lsh_in_acc: bool = False) -> int:
    """te_requant (te_kernels_dsp_intrin.h) on one accumulator; with ``lsh_in_acc`` te_rq0 of the 3x3
    depthwise kernel, which receives ``acc << lsh``."""
    _, m2, r, s1 = row
    if lsh_in_acc:
        acc, lsh = _wrap32(acc << lsh), 0
    if mode & 4 and s1 <= 0:  # te_requant_exact: {bias, m2, 2^left, (zp - 256) * 32 + right}
        x = _wrap32(acc * (r % 2**32))
        t = rdivpot(_smmlar(x, m2, x), s1 & 31)
        return min(max(_wrap32(t + (s1 >> 5) + 256), amin), amax)
    a = _wrap32(acc << lsh)
    t = _smmlar(a, m2, a)
    x = _wrap32(r + 2 * t)
    if mode & 1:
        x += -1 if t < 0 else 0
    x = min(max(x >> s1, -128), 127)
    return min(max(x, amin), amax) if mode & 2 else x


def _tflm(acc: int, mult: int, shift: int, zp: int, amin: int, amax: int) -> int:
    return min(max(mul_by_qm(acc, mult, shift) + zp, amin), amax)


#: Effective scales (input scale x filter scale / output scale) whose QuantizeMultiplier is unusual.
ODD_EFF = {
    "dead": 2.0**-40,      # below 2^-32: TFLM's multiplier 0 (shift 0); weights all zero
    "tiny31": 2.0**-31.4,  # right shift 31
    "tiny30": 2.0**-30.4,  # right shift 30
    "s26": 2.0**-26.4,     # right shift 26: 2^s + zp 2^(s+1) overflows int32 once |zp| > 16
    "lsh1": 1.3,           # left shift 1
    "lsh2": 2.6,           # left shift 2
    "lsh3": 5.2,           # left shift 3
}


def _channel(kind: str, rng: np.random.Generator) -> tuple[int, int, int]:
    """(multiplier, shift, bias) of one channel of ``kind`` ("normal", "zero_w" or an ODD_EFF key)."""
    real = ODD_EFF.get(kind, float(rng.uniform(2.0**-12, 2.0**-5)))
    q, shift = math.frexp(real)
    mult = int(round(q * 2**31))
    if shift < -31:
        mult, shift = 0, 0
    big = kind.startswith("tiny") or kind == "s26"
    return mult, shift, int(rng.integers(-1_500_000_000, 1_500_000_000)) if big else int(rng.integers(-3000, 3000))


@pytest.mark.unit
@pytest.mark.parametrize("seed", range(6))
def test_rows_give_tflm_requantization_for_odd_channels(seed):
    """Random layers mixing every odd kind with ordinary channels: each accumulator the bound allows
    (its extremes included) requantizes exactly as TFLM does, fast rows and exact rows alike."""
    rng = np.random.default_rng(seed)
    kinds = list(rng.choice(["normal"] * 6 + list(ODD_EFF) + ["zero_w"], size=24))
    for lsh_in_acc in (False, True):
        chans = [_channel(k, rng) for k in kinds]
        mult = np.array([c[0] for c in chans])
        shift = np.array([c[1] for c in chans])
        bias = np.array([c[2] for c in chans], dtype=np.int64)
        bound = np.abs(bias) + rng.integers(0, 200_000, size=len(bias))
        zp = int(rng.choice([-128, -100, -3, 0, 50, 127]))
        amin, amax = (zp, 127) if seed % 2 else (-128, 127)
        got = requant_constants(bias, mult, shift, bound, zp, amin, amax, lsh_in_acc=lsh_in_acc,
                                max_lsh=7 if lsh_in_acc else 31)
        assert got is not None
        rows, lsh, mode = got
        assert mode & 4, "odd channels set TE_MODE_EXACT"
        assert (rows[:, 3] <= 0).sum() >= kinds.count("dead") + kinds.count("tiny31") + kinds.count("tiny30")
        compact = [_uncompact(w) for w in compact_rows(rows).tolist()]  # te_rq as te_rq_r rebuilds it
        for c in range(len(bias)):
            b = int(bound[c])
            accs = [-b, b, 0, 1, -1, *rng.integers(-b, b + 1, size=300).tolist()]
            row = tuple(int(v) for v in rows[c])
            assert compact[c] == row
            assert row[0] == bias[c]
            want = [_tflm(a, int(mult[c]), int(shift[c]), zp, amin, amax) for a in accs]
            have = [_te_requant(a, row, lsh, mode, amin, amax, lsh_in_acc) for a in accs]
            assert have == want, f"channel {c} ({kinds[c]}, row {row}, layer lsh {lsh}, lsh_in_acc {lsh_in_acc})"


def _uncompact(words: list[int]) -> tuple[int, int, int, int]:
    """A compact te_rq (int32 words bias, m2, k | s1 << 16) back to {bias, m2, r, s1}, as te_rq_r does."""
    bias, m2, word = words
    k, s1 = [int(v) for v in np.array([word], dtype=np.int32).view(np.int16)]
    if s1 > 0:
        return bias, m2, _wrap32(k << (s1 - 1)), s1
    return bias, m2, _wrap32(1 << k) if m2 else 0, s1


@pytest.mark.unit
def test_compact_rows_are_12_bytes_and_refuse_what_they_cannot_hold():
    rows, _, _ = requant_constants(np.array([5, -7]), np.array([2**30, 0]), np.array([-3, 0]),
                                   np.array([1000, 1000]), -128, -128, 127)
    packed = compact_rows(rows)
    assert packed.dtype == np.int32 and packed.shape == (2, 3)
    assert [_uncompact(w) for w in packed.tolist()] == [tuple(int(v) for v in r) for r in rows]
    with pytest.raises(AssertionError):
        compact_rows(np.array([[0, -2, 3, 2]]))  # r = 3 is no k << 1


@pytest.mark.unit
def test_ordinary_layers_keep_fast_rows_and_pay_nothing():
    """No odd channel: every row fast (s1 > 0), mode bit 2 clear: the same kernels as before."""
    rng = np.random.default_rng(1)
    mult = rng.integers(2**30, 2**31, size=16)
    shift = rng.integers(-12, -5, size=16)
    bias = rng.integers(-3000, 3000, size=16)
    rows, lsh, mode = requant_constants(bias, mult, shift, np.abs(bias) + 100_000, -5, -128, 127)
    assert lsh == 0 and mode == 1 and (rows[:, 3] > 0).all()
    assert rows[:, 1].tolist() == (mult * 2 - 2**32).tolist()


@pytest.mark.unit
def test_layer_left_shift_is_the_commonest_among_fast_channels():
    mult = np.full(8, 2**30 + 12345)
    shift = np.array([1, 1, 0, 1, -7, 1, 2, 1])
    bias = np.zeros(8, dtype=np.int64)
    rows, lsh, mode = requant_constants(bias, mult, shift, np.full(8, 5000), 3, -128, 127)
    assert lsh == 1 and mode & 4
    assert [int(s1) <= 0 for s1 in rows[:, 3]] == [s != 1 for s in shift]
    # the 3x3 depthwise kernel hands its exact rows acc << lsh: they shift by 2^(shift - lsh) ...
    dead_or_more = np.array([1, 1, 2, 1, 3, 1, 1, 1])
    m = mult.copy()
    m[2] = 0
    rows, lsh, _ = requant_constants(bias, m, dead_or_more, np.full(8, 5000), 3, -128, 127, lsh_in_acc=True)
    assert lsh == 1 and rows[2, 2] == 0 and rows[4, 2] == 4 and rows[2, 3] <= 0 and rows[4, 3] <= 0
    # ... and a right shift cannot be undone, so the layer falls back to left shift 0
    rows, lsh, _ = requant_constants(bias, mult, shift, np.full(8, 5000), 3, -128, 127, lsh_in_acc=True)
    assert lsh == 0 and (rows[shift > 0, 3] <= 0).all() and (rows[shift == -7, 3] > 0).all()
    # the 3x3 kernel's int16 weights take left shifts up to 7
    assert requant_constants(bias, mult, np.full(8, 9), np.full(8, 1), 3, -128, 127, max_lsh=7)[1] == 0


# ------------------------------------------------------------------ a model with odd channels everywhere

#: Per layer, the kind of each output channel (ODD_EFF keys, "zero_w": all-zero weights at an ordinary
#: scale, "normal"), and the layer's output zero point.
LAYERS = {
    "conv3x3": (["normal", "dead", "normal", "s26", "normal", "lsh2", "tiny31", "normal"], -128),
    "dw3x3": (["lsh1", "dead", "lsh1", "lsh1", "lsh2", "lsh1", "lsh3", "lsh1"], 5),
    "dw3x3s2": (["normal", "tiny30", "normal", "s26", "zero_w", "normal", "lsh1", "normal"], 120),
    "pw": (["normal", "dead", "normal", "tiny31", "normal", "lsh1", "normal", "s26", "zero_w", "normal", "normal",
            "normal"], -100),
    "fc": (["normal", "dead", "normal", "tiny30", "normal", "lsh2", "normal", "s26", "normal", "normal"], -120),
}


def odd_channels_model(seed: int) -> bytes:
    """CONV_2D 3x3 -> DEPTHWISE 3x3 -> DEPTHWISE 3x3 stride 2 -> CONV_2D 1x1 -> RESHAPE -> FULLY_CONNECTED
    (per channel), every layer with the odd channels of LAYERS: filter scales set directly so each channel
    gets the effective scale its kind needs, tiny-scale channels a bias large enough to round either way."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    h = w = 8
    in_s, in_zp = 0.05, int(rng.integers(-20, 20))
    t = b.tensor((1, h, w, 3), scale=in_s, zero_point=in_zp)
    first = t

    def layer(name: str, tin: int, in_s: float, cin: int, k: int, out_shape: tuple[int, ...], op: str,
              **opt: int) -> tuple[int, float]:
        kinds, out_zp = LAYERS[name]
        n = len(kinds)
        out_s = float(rng.uniform(0.02, 0.2))
        taps = k * k * (1 if op == "DEPTHWISE_CONV_2D" else cin)
        fshape = {"CONV_2D": (n, k, k, cin), "DEPTHWISE_CONV_2D": (1, k, k, n), "FULLY_CONNECTED": (n, cin)}[op]
        filt = np.moveaxis(rng.integers(-127, 128, size=fshape, dtype=np.int8), 3 if len(fshape) == 4 and
                           op == "DEPTHWISE_CONV_2D" else 0, 0).copy()  # channel first while editing
        scales, bias = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.int32)
        for c, kind in enumerate(kinds):
            eff = ODD_EFF.get(kind, float(1 / (130 * np.sqrt(taps) * rng.uniform(0.3, 2.0))))
            scales[c] = eff * out_s / in_s
            if kind in ("dead", "zero_w"):
                filt[c] = 0
            if kind.startswith("lsh"):  # one tap of +-1: outputs in range despite the scale > 1
                one = np.zeros(filt[c].size, dtype=np.int8)
                one[rng.integers(0, one.size)] = rng.choice([-1, 1])
                filt[c] = one.reshape(filt[c].shape)
            bias[c] = int(rng.integers(-50, 50)) if kind.startswith("lsh") else _channel(kind, rng)[2]
        filt = np.moveaxis(filt, 0, 3 if op == "DEPTHWISE_CONV_2D" else 0).copy()
        tf = b.tensor(fshape, data=filt, scale=scales, zero_point=0, qdim=3 if op == "DEPTHWISE_CONV_2D" else 0)
        tb = b.tensor((n,), "INT32", data=bias, scale=in_s * scales.astype(np.float64), zero_point=0)
        to = b.tensor(out_shape, scale=out_s, zero_point=out_zp)
        kind_opts = {"CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
                     "FULLY_CONNECTED": "FullyConnectedOptions"}[op]
        b.op(op, [tin, tf, tb], [to], options(kind_opts, **opt), kind_opts)
        return to, out_s

    same = PADDING["SAME"]
    t, s = layer("conv3x3", t, in_s, 3, 3, (1, h, w, 8), "CONV_2D", padding=same, strideW=1, strideH=1,
                 fusedActivationFunction=ACT["RELU"])
    t, s = layer("dw3x3", t, s, 8, 3, (1, h, w, 8), "DEPTHWISE_CONV_2D", padding=same, strideW=1, strideH=1,
                 depthMultiplier=1)
    t, s = layer("dw3x3s2", t, s, 8, 3, (1, h // 2, w // 2, 8), "DEPTHWISE_CONV_2D", padding=same, strideW=2,
                 strideH=2, depthMultiplier=1)
    t, s = layer("pw", t, s, 8, 1, (1, h // 2, w // 2, 12), "CONV_2D", padding=PADDING["VALID"], strideW=1,
                 strideH=1, fusedActivationFunction=ACT["RELU6"])
    n = h // 2 * w // 2 * 12
    shape = b.tensor((2,), "INT32", data=np.array([1, n], dtype=np.int32))
    flat = b.tensor((1, n), scale=s, zero_point=LAYERS["pw"][1])
    b.op("RESHAPE", [t, shape], [flat], options("ReshapeOptions", newShape=[1, n]), "ReshapeOptions")
    t, s = layer("fc", flat, s, n, 1, (1, len(LAYERS["fc"][0])), "FULLY_CONNECTED")
    return b.build([first], [t])


def _specialized(model: bytes) -> tuple[Program, Program]:
    g = read_model_bytes(model, name="oddchannels")
    portable = build_program(g)
    return portable, specialize(portable, get_board(BOARD))


def _check_odd_layers(portable: Program, program: Program) -> None:
    """Every weighted layer has a DSP kernel whose mode has TE_MODE_EXACT, and the odd kinds are there."""
    weighted = [(p, d) for p, d in zip(portable.steps, program.steps) if "shift" in p.consts]
    assert len(weighted) == len(LAYERS)
    for p, d in weighted:
        assert d.variant.startswith("dsp") and "_dsp" in d.kernel, f"{p.kernel} got {d.kernel} ({d.why})"
        assert re.search(r"_m[4-7]$", d.kernel), f"{d.kernel}: its odd channels need the exact mode"
    mult = np.concatenate([p.consts["mult"] for p, _ in weighted])
    shift = np.concatenate([p.consts["shift"] for p, _ in weighted])
    assert (mult == 0).any() and (shift <= -30).any() and (shift >= 2).any() and (shift == 1).any()
    assert any(d.params["lsh"] == 1 for _, d in weighted), "the 3x3 depthwise layer's majority left shift is 1"


@pytest.mark.unit
def test_odd_channels_no_longer_demote_a_layer():
    portable, program = _specialized(odd_channels_model(0))
    _check_odd_layers(portable, program)


@pytest.mark.unit
def test_a_folded_bias_beyond_int32_keeps_the_layer_portable_and_says_why():
    b = ModelBuilder()
    ti = b.tensor((1, 2, 2, 4), scale=0.05, zero_point=-100)  # input offset +100
    tf = b.tensor((2, 1, 1, 4), data=np.full((2, 1, 1, 4), 127, dtype=np.int8), scale=[0.01, 0.01], zero_point=0)
    tb = b.tensor((2,), "INT32", data=np.array([INT32_MAX - 10, 7], dtype=np.int32), scale=[0.0005, 0.0005],
                  zero_point=0)
    to = b.tensor((1, 2, 2, 2), scale=0.5, zero_point=0)
    b.op("CONV_2D", [ti, tf, tb], [to], options("Conv2DOptions", padding=PADDING["VALID"], strideW=1, strideH=1),
         "Conv2DOptions")
    step = build_program(read_model_bytes(b.build([ti], [to]), name="bigbias")).steps[0]
    found = candidates(step, get_board(BOARD))
    assert list(found) == ["portable"]
    why = found["portable"].why
    assert why == requant_refusal(step) and "channel 0's bias" in why and "does not fit int32" in why
    # nor can a multiplier QuantizeMultiplier never gives (positive scales: 0 or in [2^30, 2^31))
    assert requant_constants(np.zeros(2), [2**30, 2**29], [-3, -3], np.ones(2), 0, -128, 127) is None


# ------------------------------------------------------------------ against the tflite_micro interpreter

def _inputs(seed: int, samples: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=(samples, 1, 8, 8, 3), dtype=np.int8)


# slow: the DSP kernels' -O3 host build is most of a minute
@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_odd_channels_on_host_match_tflm(seed):
    model = odd_channels_model(seed)
    portable, program = _specialized(model)
    _check_odd_layers(portable, program)
    x = _inputs(seed, 6)
    expected = run_tflm(model, x).reshape(len(x), -1)
    with tempfile.TemporaryDirectory(prefix="te-dsprq-") as d:
        got = run_host(build_host(render_model(program).files, Path(d)), x.reshape(len(x), -1), expected.shape[1])
    assert np.array_equal(got, expected), (f"{int((got != expected).sum())} of {got.size} outputs differ; kernels "
                                           f"{[s.kernel for s in program.steps]}")


@pytest.mark.slow
@pytest.mark.skipif(not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_odd_channels_in_qemu_match_tflm(tmp_path, pio_core):
    model = odd_channels_model(0)
    graph = read_model_bytes(model, name="oddchannels")
    x = _inputs(0, 3)
    got, project = qemu_outputs(graph, BOARD, x, tmp_path / "proj", pio_core)
    _check_odd_layers(build_program(graph), project.program)
    expected = run_tflm(model, x).reshape(len(x), -1)
    assert np.array_equal(got, expected), (f"QEMU gave {got.tolist()}, TFLM {expected.tolist()}; kernels "
                                           f"{[s.kernel for s in project.program.steps]}")
