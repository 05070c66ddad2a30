"""MAX_POOL_2D and AVERAGE_POOL_2D: parameters as TFLM's pooling Prepare computes them."""

from __future__ import annotations

from .. import quant
from ..graph import Graph, Operator
from ..ir import LowerFn, Step, fused_activation
from .common import io_problems, rank_problem, window_problems


def lower_pool(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """``te_maxpool_s8`` / ``te_avgpool_s8``."""
    problems = io_problems(g, op, [op.inputs[0]])
    act, p3 = fused_activation(op)
    problems += p3
    problems += rank_problem(g, op, [op.inputs[0], op.outputs[0]], 4)
    if not {"filterHeight", "filterWidth", "strideH", "strideW", "padding"} <= set(op.options):
        problems.append(f"op {op.index} {op.opcode}: its options (filter size, strides, padding) are missing or "
                        "belong to another op type")
    if problems:
        return None, problems
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    n, ih, iw, c = x.shape
    yn, oh, ow, yc = y.shape
    o = op.options
    kh, kw = int(o["filterHeight"]), int(o["filterWidth"])
    sh, sw = int(o.get("strideH", 1)), int(o.get("strideW", 1))
    problems += window_problems(op, "window", (ih, iw), (kh, kw), (oh, ow), (sh, sw))
    if (yn, yc) != (n, c):
        problems.append(f"op {op.index} {op.opcode}: input {list(x.shape)} and output {list(y.shape)} differ in "
                        "batch or channels")
    if problems:
        return None, problems
    out_scale, out_zp = y.q()
    amin, amax = quant.activation_range(act, out_scale, out_zp)
    params = dict(batches=n, in_h=ih, in_w=iw, ch=c, out_h=oh, out_w=ow, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw,
                  pad_h=quant.compute_padding(sh, 1, ih, kh, oh), pad_w=quant.compute_padding(sw, 1, iw, kw, ow),
                  act_min=amin, act_max=amax)
    kernel = "te_maxpool_s8" if op.opcode == "MAX_POOL_2D" else "te_avgpool_s8"
    return Step(op, kernel, [op.inputs[0]], [op.outputs[0]], params, {}, 0, "te_pool_params",
                ["params", "in0", "out0"]), []


LOWERINGS: dict[str, LowerFn] = {
    "MAX_POOL_2D": lower_pool,
    "AVERAGE_POOL_2D": lower_pool,
}
