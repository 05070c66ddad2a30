"""Target specialisation: map a Program's portable kernel steps to the fastest kernels a board has.

For cores with the DSP extension (``tinyedge.boards.cores.has_dsp``: the board file's ``dsp: true`` on a
core that can have it, Cortex-M4/M7/M33/M55, ``__ARM_FEATURE_DSP``) CONV_2D,
DEPTHWISE_CONV_2D and FULLY_CONNECTED become the SMLAD/SXTB16 kernels of ``te_kernels_dsp.c``. The work
that does not depend on the input is done here, at generation time:

* weights are re-ordered for the kernels' access pattern (rows padded to whole words; depthwise taps
  widened to the int16 pairs SMLABB/SMLATT read);
* the input zero point is folded into the bias (``bias + input_offset * sum(w)``) wherever padding
  allows it, so the inner loops multiply raw int8 values;
* TFLM's requantization (``MultiplyByQuantizedMultiplier``, double rounding) plus the output zero point
  becomes four per-channel constants ``{bias, m2, r, s1}`` (see ``te_kernels_dsp.h``), with a per-layer
  mode that drops the negative-rounding fix-up and the clamp when they cannot change a result.

Every rewrite is exact: a layer whose constants cannot be proven free of int32 overflow, or whose shape
the DSP kernels do not cover, keeps its portable kernel. The differential tests run both paths against
the tflite_micro interpreter (the DSP one in QEMU).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..boards import Board
from ..boards.cores import has_dsp
from ..model.ir import Program, Step

INT32_MAX = 2**31 - 1
#: The kernel families this pass knows how to specialise, by portable kernel name.
DSP_KERNELS = ("te_conv2d_s8", "te_dwconv2d_s8", "te_fc_s8")


def candidates(step: Step, board: Board | None) -> dict[str, Step]:
    """Every exact kernel the board can run ``step`` with, by variant name, the heuristic's choice first.

    ``"portable"`` (the step itself) is always there, last unless it is the only one. The autotuner
    (``tinyedge.tune``) measures them all; :func:`specialize` without ``choices`` takes the first.
    """
    found: dict[str, Step] = {}
    if board is not None and has_dsp(board):
        family = {"te_conv2d_s8": _conv_candidates, "te_dwconv2d_s8": _dw_candidates, "te_fc_s8": _fc_candidates}
        if step.kernel in family:
            found.update(family[step.kernel](step))
    found["portable"] = step
    return found


def _labelled(step: Step | None, name: str, why: str) -> dict[str, Step]:
    return {} if step is None else {name: dataclasses.replace(step, variant=name, why=why)}


def _conv_candidates(step: Step) -> dict[str, Step]:
    """CONV_2D's DSP variants, the heuristic's choice first."""
    return _labelled(_dsp_conv(step), "dsp", "heuristic: the board has the DSP extension")


def _dw_candidates(step: Step) -> dict[str, Step]:
    """DEPTHWISE_CONV_2D's DSP variants, the heuristic's choice first."""
    return _labelled(_dsp_dwconv(step), "dsp", "heuristic: the board has the DSP extension")


def _fc_candidates(step: Step) -> dict[str, Step]:
    """FULLY_CONNECTED's DSP variants, the heuristic's choice first."""
    return _labelled(_dsp_fc(step), "dsp", "heuristic: the board has the DSP extension")


def specialize(program: Program, board: Board | None = None, choices: dict[int, str] | None = None) -> Program:
    """The Program with every step the board has a faster exact kernel for replaced by it.

    ``board`` is a :class:`tinyedge.boards.Board` (or None: the portable program, unchanged).
    ``choices`` maps a step's index to the variant name to use (from :func:`candidates`, e.g. as measured
    by ``tinyedge.tune``); a step without one, or whose named variant does not exist, gets the first.
    """
    if board is None or not has_dsp(board):
        return program
    steps = []
    for i, s in enumerate(program.steps):
        found = candidates(s, board)
        want = (choices or {}).get(i)
        steps.append(found[want] if want in found else next(iter(found.values())))
    return dataclasses.replace(program, steps=steps)


def variant(program: Program) -> str:
    """``"dsp"`` when any step runs a DSP kernel, else ``"portable"``."""
    return "dsp" if any("_dsp" in s.kernel for s in program.steps) else "portable"


def _x_max(in_offset: int) -> int:
    """Largest |x + input_offset| over int8 x."""
    return max(127 + in_offset, 128 - in_offset)


def requant_constants(bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, acc_bound: np.ndarray, out_zp: int,
                      act_min: int, act_max: int) -> tuple[np.ndarray, int, int] | None:
    """Per-channel ``te_rq`` rows ``{bias, m2, r, s1}``, the layer's left shift and mode; None when not exact.

    ``acc_bound`` bounds |accumulator| (bias included) per channel. With ``t = SRDHM(acc << lsh, m)``
    computed as ``SMMLAR(acc << lsh, 2m - 2^32, acc << lsh)`` (exact for m in [2^30, 2^31)), TFLM's
    ``RoundingDivideByPOT(t, s) + zp`` equals ``(2^s + (zp << (s+1)) + 2t - (t < 0)) >> (s+1)``.
    """
    n = len(bias)
    mult = np.broadcast_to(np.asarray(mult, dtype=np.int64), (n,))
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), (n,))
    lsh = np.maximum(shift, 0)
    if len(set(lsh.tolist())) != 1 or np.any(mult < 2**30) or np.any(mult >= 2**31):
        return None
    left = int(lsh[0])
    s = np.maximum(-shift, 0)
    if np.any(s > 29):
        return None
    s1 = s + 1
    r = (np.int64(1) << s) + (np.int64(out_zp) << s1)
    shifted = acc_bound.astype(np.int64) << left
    t_bound = shifted + 1
    if (np.any(shifted > INT32_MAX) or np.any(2 * t_bound + np.abs(r) + 1 > INT32_MAX)
            or np.any(np.abs(bias) > INT32_MAX)):
        return None
    m2 = mult * 2 - 2**32
    rq = np.stack([bias.astype(np.int64), m2, r, s1], axis=1).astype(np.int32)
    corr = act_min < out_zp  # a negative t can only matter when the clamp does not swallow it
    clamp = act_min > -128 or act_max < 127
    return rq, left, int(corr) | (int(clamp) << 1)


def _bias(step: Step, n: int) -> np.ndarray:
    b = step.consts.get("bias")
    return np.zeros(n, dtype=np.int64) if b is None else b.astype(np.int64)


def _conv_params(p: dict[str, Any], **extra: Any) -> dict[str, Any]:
    keys = ("batches", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h", "stride_w",
            "dil_h", "dil_w", "pad_h", "pad_w")
    out = {k: p[k] for k in keys}
    out.update(extra)
    return out


def _dsp_conv(s: Step) -> Step | None:
    p = s.params
    w = s.consts["filter"].astype(np.int64)  # (oc, kh, kw, ic)
    oc, ic = p["out_c"], p["in_c"]
    patch = p["k_h"] * p["k_w"] * ic
    pointwise = (p["k_h"] == p["k_w"] == 1 and p["stride_h"] == p["stride_w"] == 1 and p["pad_h"] == p["pad_w"] == 0
                 and p["in_h"] == p["out_h"] and p["in_w"] == p["out_w"] and ic % 4 == 0)
    kpad = (patch + 3) // 4 * 4
    if kpad > 8000:
        return None
    flat = w.reshape(oc, patch)
    filt = np.zeros((oc, kpad), dtype=np.int8)
    filt[:, :patch] = flat
    in_off = int(p["in_offset"])
    bias = _bias(s, oc) + in_off * flat.sum(axis=1)  # padding is filled with the zero point: exact
    bound = np.abs(_bias(s, oc)) + np.abs(flat).sum(axis=1) * _x_max(in_off)
    rq = requant_constants(bias, s.consts["mult"], s.consts["shift"], bound, p["out_offset"], p["act_min"],
                           p["act_max"])
    if rq is None:
        return None
    rows, lsh, mode = rq
    params = _conv_params(p, kpad=kpad, pointwise=int(pointwise), lsh=lsh, mode=mode, in_zp=-in_off, in_off=in_off,
                          act_min=p["act_min"], act_max=p["act_max"])
    return dataclasses.replace(
        s, kernel=f"te_conv2d_s8_dsp_m{mode}", struct="te_dsp_conv_params", params=params,
        consts={"filter": filt, "rq": rows},
        args=["params", "in0", "const:filter", "const:rq@te_rq", "out0", "scratch"],
        scratch=8 * kpad + (0 if pointwise else kpad), inplace=pointwise and oc <= ic)


def _dw_requant(s: Step, flat: np.ndarray) -> tuple[np.ndarray, int, int, dict[str, Any]] | None:
    """Requantization rows, left shift, mode and kernel params of a depthwise step with taps x channels
    weights ``flat``; None when the folded constants cannot be proven exact."""
    p = s.params
    in_off = int(p["in_offset"])
    bias = _bias(s, p["in_c"])
    bound = np.abs(bias) + np.abs(flat).sum(axis=0) * _x_max(in_off)
    rq = requant_constants(bias, s.consts["mult"], s.consts["shift"], bound, p["out_offset"], p["act_min"],
                           p["act_max"])
    if rq is None:
        return None
    rows, lsh, mode = rq
    params = _conv_params(p, kpad=0, pointwise=0, lsh=lsh, mode=mode, in_zp=-in_off, in_off=in_off,
                          act_min=p["act_min"], act_max=p["act_max"])
    return rows, lsh, mode, params


def _dsp_dw3x3(s: Step) -> Step | None:
    """3x3, stride 1, no dilation: ``te_dwconv3x3`` (channel planes widened once, SMLAD on column pairs)."""
    p = s.params
    c = p["in_c"]
    if (p["depth_mult"] != 1 or p["out_c"] != c or p["k_h"] != 3 or p["k_w"] != 3 or p["stride_h"] != 1
            or p["stride_w"] != 1 or p["dil_h"] != 1 or p["dil_w"] != 1):
        return None
    if not (0 <= p["pad_h"] and p["in_h"] + p["pad_h"] <= p["out_h"] + 2 and 0 <= p["pad_w"]
            and p["in_w"] + p["pad_w"] <= p["out_w"] + 2):
        return None
    scratch = (p["out_h"] + 2) * ((p["out_w"] + 4) & ~1) * 2
    if scratch > max(4096, p["in_h"] * p["in_w"] * c // 2):
        return None  # a large plane: the row-buffer kernel needs less memory
    w = s.consts["filter"].astype(np.int64)  # (1, 3, 3, c)
    flat = w.reshape(9, c)
    rq = _dw_requant(s, flat)
    if rq is None:
        return None
    rows, lsh, mode, params = rq
    if lsh > 7:
        return None  # the kernel folds the left shift into int16 weights
    return dataclasses.replace(
        s, kernel=f"te_dwconv3x3_s8_dsp_m{mode}", struct="te_dsp_conv_params", params=params,
        consts={"filter": flat.astype(np.int8).reshape(-1), "rq": rows},
        args=["params", "in0", "const:filter", "const:rq@te_rq", "out0", "scratch"],
        scratch=scratch, inplace=p["in_h"] == p["out_h"] and p["in_w"] == p["out_w"])


def _dsp_dwconv(s: Step) -> Step | None:
    p = s.params
    c = p["in_c"]
    fast = _dsp_dw3x3(s)
    if fast is not None:
        return fast
    if p["depth_mult"] != 1 or c % 4 or p["out_c"] != c:
        return None
    w = s.consts["filter"].astype(np.int64)  # (1, kh, kw, c)
    taps = p["k_h"] * p["k_w"]
    flat = w.reshape(taps, c)
    # int16 pairs per tap and group of 4 channels: (c0, c2), (c1, c3) as SXTAB16 widens the input word
    filt = flat.reshape(taps, c // 4, 4)[:, :, [0, 2, 1, 3]].astype(np.int16).reshape(-1)
    rq = _dw_requant(s, flat)
    if rq is None:
        return None
    rows, lsh, mode, params = rq
    inplace = (p["stride_h"] == 1 and p["in_h"] == p["out_h"] and p["in_w"] == p["out_w"])
    return dataclasses.replace(
        s, kernel=f"te_dwconv2d_s8_dsp_m{mode}", struct="te_dsp_conv_params", params=params,
        consts={"filter": filt, "rq": rows},
        args=["params", "in0", "const:filter", "const:rq@te_rq", "out0", "scratch"],
        scratch=(p["pad_h"] + 1) * p["out_w"] * c, inplace=inplace)


def _dsp_fc(s: Step) -> Step | None:
    p = s.params
    if p["filter_offset"] != 0:
        return None
    w = s.consts["filter"].astype(np.int64)  # (out, in)
    n, depth = w.shape
    kpad = (depth + 3) // 4 * 4
    filt = np.zeros((n, kpad), dtype=np.int8)
    filt[:, :depth] = w
    in_off = int(p["in_offset"])
    bias = _bias(s, n) + in_off * w.sum(axis=1)
    bound = np.abs(_bias(s, n)) + np.abs(w).sum(axis=1) * _x_max(in_off)
    rq = requant_constants(bias, s.consts["mult"], s.consts["shift"], bound, p["out_offset"], p["act_min"],
                           p["act_max"])
    if rq is None:
        return None
    rows, lsh, mode = rq
    params = dict(batches=p["batches"], in_depth=depth, out_depth=n, kpad=kpad, lsh=lsh, mode=mode,
                  act_min=p["act_min"], act_max=p["act_max"])
    return dataclasses.replace(
        s, kernel=f"te_fc_s8_dsp_m{mode}", struct="te_dsp_fc_params", params=params,
        consts={"filter": filt, "rq": rows},
        args=["params", "in0", "const:filter", "const:rq@te_rq", "out0"], scratch=0, inplace=False)
