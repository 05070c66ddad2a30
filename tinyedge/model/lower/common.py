"""Helpers the op-family lowerings share: operand checks and the C-side shape conventions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..graph import Graph, Operator, Tensor
from ..ir import act_problems

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
