"""Shape-only ops evaluated at generation time when their inputs are known then: SHAPE, PACK,
STRIDED_SLICE, and the reshapes (RESHAPE/SQUEEZE/EXPAND_DIMS) of a constant.

Each fold has the contract ``(graph, op, folded) -> value | None`` (None: an input is not known at
generation time); ``folded`` holds the tensors folded so far.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..graph import Graph, Operator

Folded = dict[int, npt.NDArray[Any]]
FoldFn = Callable[[Graph, Operator, Folded], npt.NDArray[Any] | None]


def const_value(g: Graph, folded: Folded, i: int) -> npt.NDArray[Any] | None:
    """The value of tensor ``i`` if known at generation time (a constant or a folded tensor)."""
    if i in folded:
        return folded[i]
    return g.tensor(i).data


def const_inputs(g: Graph, op: Operator, folded: Folded) -> list[npt.NDArray[Any]] | None:
    """The values of all the op's present inputs, or None if one is not known at generation time."""
    vals = [const_value(g, folded, i) for i in op.inputs if i >= 0]
    known = [v for v in vals if v is not None]
    return known if len(known) == len(vals) else None


def fold_shape(g: Graph, op: Operator, folded: Folded) -> npt.NDArray[Any] | None:
    """SHAPE of a tensor whose shape is static (beyond the batch dimension)."""
    t = g.tensor(op.inputs[0])
    if t.shape_signature is not None and any(d < 0 for d in t.shape_signature[1:]):
        return None
    return np.asarray(t.shape, dtype=np.int32)


def fold_pack(g: Graph, op: Operator, folded: Folded) -> npt.NDArray[Any] | None:
    """PACK of known values along ``axis``."""
    vals = const_inputs(g, op, folded)
    if vals is None:
        return None
    return np.stack([np.asarray(v) for v in vals], axis=op.options.get("axis", 0)).astype(vals[0].dtype)


def fold_strided_slice(g: Graph, op: Operator, folded: Folded) -> npt.NDArray[Any] | None:
    """STRIDED_SLICE of a known value with known begin/end/strides (begin, end and shrink-axis masks)."""
    vals = const_inputs(g, op, folded)
    if vals is None:
        return None
    x, begin, end, steps = (np.asarray(v) for v in vals)
    o = op.options
    sl: list[int | slice] = []
    for d in range(len(begin)):
        b = None if (o.get("beginMask", 0) >> d) & 1 else int(begin[d])
        e = None if (o.get("endMask", 0) >> d) & 1 else int(end[d])
        if (o.get("shrinkAxisMask", 0) >> d) & 1:
            sl.append(int(begin[d]))
        else:
            sl.append(slice(b, e, int(steps[d])))
    return np.asarray(x[tuple(sl)])


def fold_reshape(g: Graph, op: Operator, folded: Folded) -> npt.NDArray[Any] | None:
    """RESHAPE/SQUEEZE/EXPAND_DIMS of a known value: the value in the output's shape."""
    vals = const_inputs(g, op, folded)
    if vals is None:
        return None
    return np.asarray(vals[0]).reshape(g.tensor(op.outputs[0]).shape)


#: Ops evaluated at generation time (a STRIDED_SLICE of a run-time tensor gets a kernel instead:
#: ``shape.lower_strided_slice``).
FOLDINGS: dict[str, FoldFn] = {
    "SHAPE": fold_shape,
    "STRIDED_SLICE": fold_strided_slice,
    "PACK": fold_pack,
}
