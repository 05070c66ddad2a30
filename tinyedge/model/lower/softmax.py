"""SOFTMAX (int8 in, int8 out with TFLM's fixed 1/256, -128 output quantization)."""

from __future__ import annotations

import numpy as np

from .. import quant
from ..graph import Graph, Operator
from ..ir import LowerFn, Step
from .common import io_problems


def lower_softmax(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """``te_softmax_s8`` with the input multiplier, left shift and diff_min of TFLM's SoftmaxPrepare."""
    problems = io_problems(g, op, [op.inputs[0]])
    if problems:
        return None, problems
    if "beta" not in op.options:
        return None, [f"op {op.index} SOFTMAX: its options (beta) are missing or belong to another op type"]
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if not x.shape or x.size != y.size:
        return None, [f"op {op.index} SOFTMAX: input {list(x.shape)} and output {list(y.shape)} must have the same "
                      "size, at least 1-D"]
    out_scale, out_zp = y.q()
    if out_zp != -128 or np.float32(out_scale) != np.float32(1.0 / 256):
        return None, [f"op {op.index} SOFTMAX: int8 output must have scale 1/256 and zero point -128 "
                      f"(has {out_scale:g}, {out_zp}), as TFLM requires"]
    mult, shift, diff_min = quant.softmax_params(float(op.options.get("beta", 1.0)), x.q()[0])
    depth = x.shape[-1]
    params = dict(outer=x.size // depth, depth=depth, in_mult=mult, in_left_shift=shift, diff_min=diff_min)
    args = [f"={params[k]}" for k in ("outer", "depth", "in_mult", "in_left_shift", "diff_min")] + ["in0", "out0"]
    return Step(op, "te_softmax_s8", [op.inputs[0]], [op.outputs[0]], params, {}, 0, None, args), []


LOWERINGS: dict[str, LowerFn] = {
    "SOFTMAX": lower_softmax,
}
