"""Helpers the op-family lowerings share: operand checks and the C-side shape conventions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..graph import Graph, Operator, Tensor
from ..ir import PADDING, act_problems

MAX_DIMS = 6  # every shape is padded to 6 dimensions in the C parameter structs
#: Argument order of the weighted kernels (conv, depthwise, fully connected).
WEIGHTED_ARGS = ["params", "in0", "const:filter", "const:bias", "const:mult", "const:shift", "out0"]
#: Conv and fully connected also take wsum (per output channel sum of weights, for the input-offset term).
CONV_ARGS = ["params", "in0", "const:filter", "const:bias", "const:mult", "const:shift", "const:wsum", "out0"]


def c_array(values: Iterable[Any]) -> str:
    """A C initializer list of integers."""
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def pad6(shape: Iterable[Any], fill: int = 1) -> list[int]:
    """``shape`` left-padded with ``fill`` to MAX_DIMS dimensions."""
    dims = [int(d) for d in shape]
    return [fill] * (MAX_DIMS - len(dims)) + dims


def strides(shape: Iterable[Any]) -> list[int]:
    """Row-major element strides of a shape."""
    out, acc = [], 1
    for d in reversed(list(shape)):
        out.append(acc)
        acc *= int(d)
    return list(reversed(out))


def io_problems(g: Graph, op: Operator, inputs: list[int]) -> list[str]:
    """Type problems of the activation ``inputs`` and of every output."""
    return act_problems(g, op, inputs, "input") + act_problems(g, op, op.outputs, "output")


def const_int(g: Graph, op: Operator, k: int, what: str) -> tuple[npt.NDArray[np.int64] | None, list[str]]:
    """A constant integer operand (axis, perm, paddings, begin/end/strides)."""
    if len(op.inputs) <= k or op.inputs[k] < 0:
        return None, [f"op {op.index} {op.opcode}: the {what} input is missing"]
    t = g.tensor(op.inputs[k])
    if t.data is None:
        return None, [f"op {op.index} {op.opcode}: the {what} tensor {op.inputs[k]} '{t.name}' is not constant "
                      "(tinyedge needs it known at generation time)"]
    if t.dtype not in ("INT32", "INT64"):
        return None, [f"op {op.index} {op.opcode}: the {what} tensor is {t.dtype}, expected INT32"]
    return np.asarray(t.data).astype(np.int64), []


def ndim_problem(op: Operator, shape: Sequence[Any], limit: int = MAX_DIMS) -> list[str]:
    """The problem when ``shape`` has more than ``limit`` dimensions."""
    if len(shape) > limit:
        return [f"op {op.index} {op.opcode}: {len(shape)}-D tensors are not supported (at most {limit}-D)"]
    return []


def weights(g: Graph, op: Operator, what: str = "filter") -> tuple[Tensor, Tensor | None, list[str]]:
    """The weights (input 1) and optional bias (input 2) of a weighted op, and their type problems."""
    problems = []
    w = g.tensor(op.inputs[1])
    if not w.is_const:
        problems.append(f"op {op.index} {op.opcode}: {what} tensor {op.inputs[1]} is not constant")
    elif w.dtype != "INT8":
        problems.append(f"op {op.index} {op.opcode}: {what} is {w.dtype} (hybrid/float weights); "
                        "tinyedge needs INT8 weights — run `tinyedge quantize` first")
    elif not w.is_quantized:
        problems.append(f"op {op.index} {op.opcode}: {what} has no quantization parameters")
    b = None
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = g.tensor(op.inputs[2])
        if not b.is_const or b.dtype != "INT32":
            problems.append(f"op {op.index} {op.opcode}: bias must be a constant INT32 tensor (it is {b.dtype})")
    return w, b, problems


#: Largest stride, dilation or window side accepted: far beyond any real layer, small enough that every offset
#: the generated C computes from them stays well inside int32.
MAX_WINDOW = 4096


def window_problems(op: Operator, what: str, ins: Sequence[int], kernel: Sequence[int], outs: Sequence[int],
                    stride: Sequence[int], dilation: Sequence[int] = (1, 1)) -> list[str]:
    """Problems of a 2-D window op (conv, depthwise, pool): padding, strides, dilations and kernel size must be
    valid and the output tensor's height and width those TFLM computes (``ComputeOutSize``): TFLM derives the
    padding from that computed size, so another output size would silently change the result."""
    padding = PADDING.get(int(op.options.get("padding", 0) or 0))
    if padding is None:
        return [f"op {op.index} {op.opcode}: padding {op.options.get('padding')} is neither SAME (0) nor VALID (1)"]
    if any(int(s) < 1 for s in stride) or any(int(d) < 1 for d in dilation) or any(int(k) < 1 for k in kernel):
        return [f"op {op.index} {op.opcode}: strides {list(stride)}, dilations {list(dilation)} and {what} size "
                f"{list(kernel)} must all be at least 1"]
    if any(int(v) > MAX_WINDOW for v in (*stride, *dilation, *kernel)):
        return [f"op {op.index} {op.opcode}: strides {list(stride)}, dilations {list(dilation)} or {what} size "
                f"{list(kernel)} exceed {MAX_WINDOW}: no real model uses such a window"]
    expect = []
    for size, k, s, d in zip(ins, kernel, stride, dilation):
        eff = (int(k) - 1) * int(d) + 1
        expect.append((size + s - 1) // s if padding == "SAME" else (size - eff + s) // s)
    if [int(v) for v in outs] != expect:
        return [f"op {op.index} {op.opcode}: the output is {list(outs)} (height, width), but a {padding} "
                f"{list(kernel)} {what} with strides {list(stride)} over {list(ins)} gives {expect}"]
    return []


def rank_problem(g: Graph, op: Operator, tensors: Sequence[int], rank: int) -> list[str]:
    """The problem when one of ``tensors`` does not have ``rank`` dimensions."""
    bad = [i for i in tensors if len(g.tensor(i).shape) != rank]
    return [f"op {op.index} {op.opcode}: tensor {i} '{g.tensor(i).name}' has shape {list(g.tensor(i).shape)}; "
            f"{rank}-D expected" for i in bad]


def channel_scale_problem(op: Operator, w: Tensor, channels: int, qdim: int, what: str = "filter") -> list[str]:
    """Per-channel scales must be one per output channel along ``qdim`` (or one for the whole tensor)."""
    n = 0 if w.scale is None else len(w.scale)
    zp = 0 if w.zero_point is None else len(w.zero_point)
    if n not in (1, channels) or zp not in (n, 1) or (n > 1 and w.quantized_dimension != qdim):
        return [f"op {op.index} {op.opcode}: {what} has {n} scales and {zp} zero points along dimension "
                f"{w.quantized_dimension}; expected 1, or {channels} along dimension {qdim}"]
    return []


def bias_problem(op: Operator, b: Tensor | None, channels: int) -> list[str]:
    """The bias must hold one value per output channel."""
    if b is not None and b.size != channels:
        return [f"op {op.index} {op.opcode}: bias has {b.size} values for {channels} output channels"]
    return []
