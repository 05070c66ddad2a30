"""The lowering registry: op name -> lowering function, merged once from the op-family modules.

Nothing here or in the family modules changes another module's globals: each family exports its own
``LOWERINGS`` table and this module builds the one registry (and the op lists) from them at import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..ir import LowerFn
from . import boundary, conv, elementwise, fc, fold, pool, shape, softmax
from .fold import FoldFn

#: (family, its table) in registry order.
FAMILIES: tuple[tuple[str, Mapping[str, LowerFn]], ...] = (
    ("conv", conv.LOWERINGS),
    ("fc", fc.LOWERINGS),
    ("pool", pool.LOWERINGS),
    ("softmax", softmax.LOWERINGS),
    ("elementwise", elementwise.LOWERINGS),
    ("shape", shape.LOWERINGS),
    ("boundary", boundary.LOWERINGS),
)


def build_registry(families: Iterable[tuple[str, Mapping[str, LowerFn]]]) -> dict[str, LowerFn]:
    """Merge the family tables; an op lowered by two families is an error (a bug, caught at import)."""
    registry: dict[str, LowerFn] = {}
    owner: dict[str, str] = {}
    for family, table in families:
        for op, fn in table.items():
            if op in registry:
                raise ValueError(f"op {op} is lowered by both lower.{owner[op]} and lower.{family}; "
                                 "register it in one family module")
            registry[op] = fn
            owner[op] = family
    return registry


#: Op name -> lowering function ``(graph, op) -> (Step | None, problems)``.
LOWERINGS: dict[str, LowerFn] = build_registry(FAMILIES)

#: Ops that become a kernel call, in the order the diagnosis lists them.
KERNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "SOFTMAX",
              "ADD", "SUB", "MUL", "LOGISTIC", "TANH", "RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "PAD", "PADV2",
              "MEAN", "CONCATENATION", "TRANSPOSE", "QUANTIZE", "DEQUANTIZE")
#: Ops that only relabel a buffer's shape.
ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
#: Ops evaluated at generation time when their inputs are known then.
FOLD_OPS = tuple(fold.FOLDINGS)
SUPPORTED_OPS = KERNEL_OPS + ALIAS_OPS + FOLD_OPS

#: Op name -> fold function: the fold ops, and the aliases (a reshape of a constant is folded too).
FOLDERS: dict[str, FoldFn] = {**fold.FOLDINGS, **{op: fold.fold_reshape for op in ALIAS_OPS}}

# KERNEL_OPS only orders the registry's ops: every lowered op is listed, once, as a kernel or a fold op.
if sorted(KERNEL_OPS) != sorted(set(LOWERINGS) - set(FOLD_OPS)):
    raise ValueError(f"KERNEL_OPS {sorted(KERNEL_OPS)} and the lowered non-fold ops "
                     f"{sorted(set(LOWERINGS) - set(FOLD_OPS))} differ; list each lowered op in KERNEL_OPS")
