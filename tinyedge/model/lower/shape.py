"""Data-movement ops on run-time tensors; parameters as TFLM's Prepare computes them.

Kernels (``tinyedge/runtime/te_kernels_shape.c``): TRANSPOSE and run-time STRIDED_SLICE become
``te_gather_s8``; PAD/PADV2 ``te_pad_s8``; CONCATENATION ``te_concat_s8``. (STRIDED_SLICE of a tensor known
at generation time is folded instead: see ``fold``.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import quant
from ..graph import Graph, Operator
from ..ir import LowerFn, Step, act_problems
from .common import c_array, const_int, io_problems, ndim_problem, pad6, strides

CONCAT_MAX_INPUTS = 10  # TFLM's kMaxInputNum


def gather_step(op: Operator, src: int, dst: int, out_dims: Sequence[int], in_strides: Sequence[int],
                base: int) -> Step:
    """A ``te_gather_s8`` call: out[i] = in[base + sum(i_d * in_strides[d])] over ``out_dims``."""
    n = int(np.prod(out_dims)) if len(out_dims) else 1
    params = dict(dims=c_array(pad6(out_dims)), strides=c_array(pad6(in_strides, 0)), base=base, size=n)
    return Step(op, "te_gather_s8", [src], [dst], params, {}, 0, "te_gather_params", ["params", "in0", "out0"])


def lower_transpose(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """TRANSPOSE (reference_ops::Transpose): output[i] = input[permuted i]."""
    problems = io_problems(g, op, [op.inputs[0]])
    perm_t, p = const_int(g, op, 1, "perm")
    problems += p
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems += ndim_problem(op, x.shape)
    if problems or perm_t is None:
        return None, problems
    perm = [int(v) + len(x.shape) if v < 0 else int(v) for v in perm_t.reshape(-1)]
    if sorted(perm) != list(range(len(x.shape))) or [x.shape[d] for d in perm] != list(y.shape):
        return None, [f"op {op.index} TRANSPOSE: permutation {perm} does not map {list(x.shape)} to {list(y.shape)}"]
    st = strides(x.shape)
    return gather_step(op, op.inputs[0], op.outputs[0], list(y.shape), [st[d] for d in perm], 0), []


def slice_axis(begin: int, end: int, stride: int, size: int, begin_mask: bool, end_mask: bool,
               shrink: bool) -> tuple[int, int]:
    """strided_slice::StartForAxis / StopForAxis -> (start, element count)."""
    if size == 0:
        return 0, 0
    start = begin
    if begin_mask:
        start = -(1 << 31) if stride > 0 else (1 << 31) - 1
    if start < 0:
        start += size
    start = min(max(start, 0), size) if stride > 0 else min(max(start, -1), size - 1)
    if shrink:  # one element, whatever the stride's sign (TFLM's loop would copy none for a negative one)
        return start, 1
    else:
        stop = end
        if end_mask:
            stop = (1 << 31) - 1 if stride > 0 else -(1 << 31)
        if stop < 0:
            stop += size
        stop = min(max(stop, 0), size) if stride > 0 else min(max(stop, -1), size - 1)
    count = max(0, math.ceil((stop - start) / stride))
    return start, count


def lower_strided_slice(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """STRIDED_SLICE on a run-time tensor (StridedSlicePrepare: constant begin/end/strides, at most 4-D;
    ellipsis and new-axis masks are ignored, as TFLM does)."""
    problems = io_problems(g, op, [op.inputs[0]])
    vals: list[npt.NDArray[np.int64]] = []
    for k, what in ((1, "begin"), (2, "end"), (3, "strides")):
        v, p = const_int(g, op, k, what)
        problems += p
        if v is not None:
            vals.append(v)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems += ndim_problem(op, x.shape, 4)
    if problems:
        return None, problems
    begin, end, steps = (v.reshape(-1).tolist() for v in vals)
    o = op.options
    bm, em, sm = int(o.get("beginMask", 0) or 0), int(o.get("endMask", 0) or 0), int(o.get("shrinkAxisMask", 0) or 0)
    nd = len(x.shape)
    if len(begin) != nd or len(end) != nd or len(steps) != nd or any(s == 0 for s in steps):
        return None, [f"op {op.index} STRIDED_SLICE: begin/end/strides must have one non-zero entry per input "
                      f"dimension ({nd})"]
    st = strides(x.shape)
    base = 0
    dims: list[int] = []
    in_strides: list[int] = []
    kept: list[int] = []
    for d in range(nd):
        start, count = slice_axis(int(begin[d]), int(end[d]), int(steps[d]), int(x.shape[d]), bool(bm >> d & 1),
                                  bool(em >> d & 1), bool(sm >> d & 1))
        base += start * st[d] if count else 0
        dims.append(count)
        in_strides.append(int(steps[d]) * st[d])
        if not (sm >> d & 1):
            kept.append(count)
    if int(np.prod(dims)) != y.size or kept != [int(v) for v in y.shape]:
        return None, [f"op {op.index} STRIDED_SLICE: the slice gives shape {kept}, the output tensor says "
                      f"{list(y.shape)}"]
    return gather_step(op, op.inputs[0], op.outputs[0], dims, in_strides, base), []


def lower_pad(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """PAD / PADV2 (reference_ops::Pad): the pad value is the output zero point, or PADV2's constant."""
    problems = io_problems(g, op, [op.inputs[0]])
    pads_t, p = const_int(g, op, 1, "paddings")
    problems += p
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems += ndim_problem(op, x.shape, 5)
    pad_value = None
    if not problems:
        pad_value = y.q()[1]
        if op.opcode == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            c = g.tensor(op.inputs[2])
            if c.data is None or c.dtype != "INT8":
                problems.append(f"op {op.index} PADV2: the constant value must be a constant INT8 tensor")
            else:
                pad_value = int(np.asarray(c.data).reshape(-1)[0])
    if problems or pads_t is None:
        return None, problems
    pads = pads_t.reshape(-1, 2)
    if pads.shape[0] != len(x.shape) or (pads < 0).any() or \
            [int(x.shape[d] + pads[d, 0] + pads[d, 1]) for d in range(len(x.shape))] != [int(v) for v in y.shape]:
        return None, [f"op {op.index} {op.opcode}: paddings {pads.tolist()} do not map {list(x.shape)} to "
                      f"{list(y.shape)}"]
    ost = strides(y.shape)
    base = int(sum(int(pads[d, 0]) * ost[d] for d in range(len(x.shape))))
    params = dict(in_dims=c_array(pad6(x.shape)), out_strides=c_array(pad6(ost, 0)), base=base,
                  in_size=x.size, out_size=y.size, value=pad_value)
    return Step(op, "te_pad_s8", [op.inputs[0]], [op.outputs[0]], params, {}, 0, "te_pad_params",
                ["params", "in0", "out0"]), []


def lower_concat(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """CONCATENATION (reference_ops::Concatenation on int8: bytes are copied, as TFLM does, whatever the
    inputs' quantization; TFLM accepts no fused activation and at most 10 inputs of at most 4-D)."""
    ins = [i for i in op.inputs if i >= 0]
    act_ins = [i for i in ins if not g.tensor(i).is_const]
    problems = act_problems(g, op, act_ins, "input") + act_problems(g, op, op.outputs, "output")
    for i in ins:
        if g.tensor(i).is_const and g.tensor(i).dtype != "INT8":
            problems.append(f"op {op.index} CONCATENATION: constant input {i} is {g.tensor(i).dtype}, not INT8")
    act = int(op.options.get("fusedActivationFunction", 0) or 0)
    if act:
        problems.append(f"op {op.index} CONCATENATION: fused activation {quant.ACTIVATIONS.get(act, act)} is not "
                        "supported (TFLM accepts none)")
    if len(ins) > CONCAT_MAX_INPUTS:
        problems.append(f"op {op.index} CONCATENATION: {len(ins)} inputs (at most {CONCAT_MAX_INPUTS})")
    y = g.tensor(op.outputs[0])
    problems += ndim_problem(op, y.shape, 4)
    if problems:
        return None, problems
    nd = len(y.shape)
    axis = int(op.options.get("axis", 0) or 0)
    axis = axis + nd if axis < 0 else axis
    shapes = [list(g.tensor(i).shape) for i in ins]
    rest = list(y.shape[:axis]) + list(y.shape[axis + 1:])
    if not 0 <= axis < nd or any(len(s) != nd or s[:axis] + s[axis + 1:] != rest for s in shapes) \
            or sum(s[axis] for s in shapes) != y.shape[axis]:
        return None, [f"op {op.index} CONCATENATION: inputs {shapes} do not concatenate to {list(y.shape)} "
                      f"on axis {axis}"]
    outer = int(np.prod(y.shape[:axis])) if axis else 1
    inner = int(np.prod(y.shape[axis + 1:])) if axis + 1 < nd else 1
    chunks = [s[axis] * inner for s in shapes] + [0] * (CONCAT_MAX_INPUTS - len(shapes))
    params = dict(outer=outer, count=len(ins), chunk=c_array(chunks))
    inputs: list[int] = []
    consts: dict[str, npt.NDArray[Any]] = {}
    args = ["params", "out0"]
    for k, i in enumerate(ins):
        if g.tensor(i).is_const:
            consts[f"in{k}"] = np.ascontiguousarray(g.tensor(i).data, dtype=np.int8).reshape(-1)
            args.append(f"const:in{k}")
        else:
            args.append(f"in{len(inputs)}")
            inputs.append(i)
    args += ["=0"] * (CONCAT_MAX_INPUTS - len(ins))
    return Step(op, "te_concat_s8", inputs, [op.outputs[0]], params, consts, 0, "te_concat_params", args), []


LOWERINGS: dict[str, LowerFn] = {
    "PAD": lower_pad,
    "PADV2": lower_pad,
    "CONCATENATION": lower_concat,
    "TRANSPOSE": lower_transpose,
    "STRIDED_SLICE": lower_strided_slice,
}
