"""FULLY_CONNECTED: parameters as TFLM's fully connected Prepare computes them."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .. import quant
from ..graph import Graph, Operator
from ..ir import LowerFn, Step, fused_activation
from .common import CONV_ARGS, bias_problem, channel_scale_problem, io_problems, weights


def lower_fc(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """``te_fc_s8``: per-tensor or per-channel multipliers and the weight sums (see te_fc_s8)."""
    problems = io_problems(g, op, [op.inputs[0]])
    w, b, p2 = weights(g, op, "weights")
    act, p3 = fused_activation(op)
    problems += p2 + p3
    if int(op.options.get("weightsFormat", 0) or 0) != 0:
        problems.append(f"op {op.index} FULLY_CONNECTED: shuffled weights format is not supported")
    if problems:
        return None, problems
    assert w.data is not None and w.scale is not None  # checked by weights()
    if w.zero_point is None:  # a malformed quantization table (the reader fills it in whenever there are scales)
        raise TypeError("the weights have scales but no zero points")
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if len(w.shape) != 2:
        return None, [f"op {op.index} FULLY_CONNECTED: weights have shape {list(w.shape)}; 2-D expected"]
    out_depth, in_depth = w.shape
    batches = x.size // in_depth
    problems += channel_scale_problem(op, w, out_depth, 0, "weights") + bias_problem(op, b, out_depth)
    if x.size % in_depth or y.size != batches * out_depth:
        problems.append(f"op {op.index} FULLY_CONNECTED: input {list(x.shape)}, weights {list(w.shape)} and output "
                        f"{list(y.shape)} do not agree (the input must hold whole rows of {in_depth} values, the "
                        f"output {out_depth} values per row)")
    if problems:
        return None, problems
    in_scale, in_zp = x.q()
    out_scale, out_zp = y.q()
    if w.per_channel:
        mults, shifts = quant.conv_multipliers(in_scale, w.scale, out_scale, out_depth)
    else:
        m, s = quant.fc_multiplier_per_tensor(in_scale, float(w.scale[0]), out_scale)
        mults, shifts = [m], [s]
    amin, amax = quant.activation_range(act, out_scale, out_zp)
    params = dict(batches=batches, in_depth=in_depth, out_depth=out_depth, in_offset=-in_zp,
                  filter_offset=-int(w.zero_point[0]), out_offset=out_zp, act_min=amin, act_max=amax,
                  per_channel=int(w.per_channel))
    consts: dict[str, npt.NDArray[Any]] = {"filter": np.ascontiguousarray(w.data, dtype=np.int8)}
    if b is not None:
        consts["bias"] = np.ascontiguousarray(b.data, dtype=np.int32).reshape(-1)  # any shape of oc values
    consts["mult"] = np.asarray(mults, dtype=np.int32)
    consts["shift"] = np.asarray(shifts, dtype=np.int32)
    consts["wsum"] = w.data.astype(np.int64).sum(axis=1).astype(np.int32)  # see te_fc_s8
    return Step(op, "te_fc_s8", [op.inputs[0]], [op.outputs[0]], params, consts, batches * in_depth * out_depth,
                "te_fc_params", CONV_ARGS), []


LOWERINGS: dict[str, LowerFn] = {
    "FULLY_CONNECTED": lower_fc,
}
