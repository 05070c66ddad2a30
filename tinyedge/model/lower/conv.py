"""CONV_2D and DEPTHWISE_CONV_2D: parameters as TFLM's conv/depthwise Prepare computes them."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .. import quant
from ..graph import Graph, Operator
from ..ir import LowerFn, Step, fused_activation
from .common import (
    CONV_ARGS,
    WEIGHTED_ARGS,
    bias_problem,
    channel_scale_problem,
    io_problems,
    rank_problem,
    weights,
    window_problems,
)


def lower_conv(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """``te_conv2d_s8`` / ``te_dwconv2d_s8`` with per-channel multipliers (and, for conv, the weight sums)."""
    depthwise = op.opcode == "DEPTHWISE_CONV_2D"
    problems = io_problems(g, op, [op.inputs[0]])
    w, b, p2 = weights(g, op)
    act, p3 = fused_activation(op)
    problems += p2 + p3
    if not problems:
        problems += rank_problem(g, op, [op.inputs[0], op.inputs[1], op.outputs[0]], 4)
    if not {"padding", "strideH", "strideW"} <= set(op.options):
        # TFLM would run it with zeroed parameters; tinyedge would assume defaults: refuse rather than differ
        problems.append(f"op {op.index} {op.opcode}: its options (strides, padding) are missing or belong to "
                        "another op type")
    if problems:
        return None, problems
    assert w.data is not None and w.scale is not None  # checked by weights()
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    n, ih, iw, ic = x.shape
    yn, oh, ow, oc = y.shape
    if depthwise:
        w1, kh, kw, wc = w.shape
        dm = oc // ic if ic and oc % ic == 0 else 1
        # TFLM's reference kernel loops over the option's depth_multiplier, not the shapes': an option that
        # disagrees with the channels would make the two compute different things, so it is refused.
        if "depthMultiplier" in op.options and int(op.options["depthMultiplier"] or 0) != dm:
            problems.append(f"op {op.index} {op.opcode}: depth_multiplier {op.options['depthMultiplier']} does not "
                            f"match {ic} input and {oc} output channels (expected {dm})")
        if w1 != 1 or wc != oc or oc % ic:
            problems.append(f"op {op.index} {op.opcode}: filter {list(w.shape)} does not map {ic} input channels to "
                            f"{oc} output channels (expected [1, kh, kw, {oc}] with {oc} a multiple of {ic})")
    else:
        wc, kh, kw, w_ic = w.shape
        dm = 1
        if wc != oc or w_ic != ic:
            problems.append(f"op {op.index} {op.opcode}: filter {list(w.shape)} does not map {ic} input channels to "
                            f"{oc} output channels (expected [{oc}, kh, kw, {ic}]; grouped convolution is not "
                            "supported)")
    if yn != n:
        problems.append(f"op {op.index} {op.opcode}: input batch {n} and output batch {yn} differ")
    o = op.options
    sh, sw = int(o.get("strideH", 1)), int(o.get("strideW", 1))
    dh, dw = int(o.get("dilationHFactor", 1) or 1), int(o.get("dilationWFactor", 1) or 1)
    problems += window_problems(op, "filter", (ih, iw), (kh, kw), (oh, ow), (sh, sw), (dh, dw))
    problems += channel_scale_problem(op, w, oc, 3 if depthwise else 0) + bias_problem(op, b, oc)
    if problems:
        return None, problems
    in_scale, in_zp = x.q()
    out_scale, out_zp = y.q()
    mults, shifts = quant.conv_multipliers(in_scale, w.scale, out_scale, oc)
    amin, amax = quant.activation_range(act, out_scale, out_zp)
    params = dict(
        batches=n, in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw,
        stride_h=sh, stride_w=sw, dil_h=dh, dil_w=dw,
        pad_h=quant.compute_padding(sh, dh, ih, kh, oh), pad_w=quant.compute_padding(sw, dw, iw, kw, ow),
        depth_mult=dm, in_offset=-in_zp, out_offset=out_zp, act_min=amin, act_max=amax,
    )
    consts: dict[str, npt.NDArray[Any]] = {"filter": np.ascontiguousarray(w.data, dtype=np.int8)}
    if b is not None:
        consts["bias"] = np.ascontiguousarray(b.data, dtype=np.int32).reshape(-1)  # any shape of oc values
    consts["mult"] = np.asarray(mults, dtype=np.int32)
    consts["shift"] = np.asarray(shifts, dtype=np.int32)
    macs = n * oh * ow * oc * kh * kw * (1 if depthwise else ic)
    if depthwise:
        return Step(op, "te_dwconv2d_s8", [op.inputs[0]], [op.outputs[0]], params, consts, macs, "te_conv_params",
                    WEIGHTED_ARGS), []
    # The input-offset term is off * sum(w): the sums are constants (see te_conv2d_s8).
    consts["wsum"] = w.data.reshape(oc, -1).astype(np.int64).sum(axis=1).astype(np.int32)
    return Step(op, "te_conv2d_s8", [op.inputs[0]], [op.outputs[0]], params, consts, macs, "te_conv_params",
                CONV_ARGS), []


LOWERINGS: dict[str, LowerFn] = {
    "CONV_2D": lower_conv,
    "DEPTHWISE_CONV_2D": lower_conv,
}
