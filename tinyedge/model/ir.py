"""The lowered IR: a Program is the ordered kernel Steps tinyedge's generated C executes.

The memory planner, ``inspect`` and the C generator all read a Program, so the numbers they show
agree. This module holds the IR and the checks every op family shares; it imports nothing from the
lowering (``model.lower``) or from ``model.program`` (which builds a Program from a Graph).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt

from . import quant
from .graph import Graph, Operator

#: Fused activations tinyedge's kernels apply (TFLite ActivationFunctionType values).
FUSED_OK = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
#: TFLite Padding values.
PADDING = {0: "SAME", 1: "VALID"}


@dataclass
class Step:
    """One kernel call.

    ``params`` are the fields of the C struct ``struct`` (None: no struct); ``consts`` the constant
    arrays the call needs; ``args`` the call's arguments in order, each one of
    ``"params"`` (pointer to the struct), ``"in0"``/``"in1"``…, ``"out0"``…, ``"const:<name>"``
    (``0`` when that const is absent) or ``"=<C expression>"`` (a literal).
    """

    op: Operator
    kernel: str
    inputs: list[int]  # activation tensors read
    outputs: list[int]  # activation tensors written
    params: dict[str, Any] = field(default_factory=dict)
    consts: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    macs: int = 0
    struct: str | None = None
    args: list[str] = field(default_factory=list)
    scratch: int = 0  # bytes of working memory the kernel needs during the call (arg token "scratch")
    inplace: bool = False  # the kernel may write out0 over in0 (the planner does so only where in0 dies)
    variant: str = "portable"  # which of the target's candidate kernels this is (codegen.target.candidates)
    why: str = ""  # why that candidate was chosen (heuristic, tuned figures, or why a faster one was refused)

    @property
    def weight_bytes(self) -> int:
        """Bytes of this call's constants."""
        return int(sum(a.nbytes for a in self.consts.values()))


@dataclass
class Program:
    """A Graph lowered to kernel calls, with the tensors that alias a buffer or were folded."""

    graph: Graph
    steps: list[Step]
    alias: dict[int, int]  # tensor -> tensor whose buffer it shares (resolved to the root)
    folded: dict[int, npt.NDArray[Any]]  # tensors computed at generation time
    input: int
    output: int

    def root(self, t: int) -> int:
        """The tensor whose buffer ``t`` uses (itself unless it is an alias)."""
        return self.alias.get(t, t)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one inference."""
        return sum(s.macs for s in self.steps)

    @property
    def weight_bytes(self) -> int:
        """Bytes of every constant the generated code holds (weights, biases, requantization constants)."""
        return sum(s.weight_bytes for s in self.steps)

    @property
    def params(self) -> int:
        """The model's own parameters (weights and biases), however a target re-packs them."""
        return sum(int(a.size) for s in self.steps for k, a in s.consts.items() if k in ("filter", "bias"))

    @property
    def param_bytes(self) -> int:
        """Bytes of the model's weights and biases as stored in the .tflite (int8 weights, int32 biases)."""
        return sum(int(a.nbytes) for s in self.steps for k, a in s.consts.items() if k in ("filter", "bias"))


#: The contract of every op lowering: ``(graph, op) -> (Step | None, problems)``. A lowering returns a
#: Step only when it found no problem; problems are complete sentences naming the op.
LowerFn = Callable[[Graph, Operator], tuple[Step | None, list[str]]]


def act_problems(g: Graph, op: Operator, idx: list[int], what: str) -> list[str]:
    """Why the activation tensors ``idx`` (``what``: "input"/"output") are not quantized INT8, if they are not."""
    out = []
    for i in idx:
        t = g.tensor(i)
        if t.dtype != "INT8":
            out.append(f"op {op.index} {op.opcode}: {what} tensor {i} '{t.name}' is {t.dtype}, "
                       "tinyedge kernels take INT8")
        elif not t.is_quantized:
            out.append(f"op {op.index} {op.opcode}: {what} tensor {i} '{t.name}' has no quantization parameters")
    return out


def fused_activation(op: Operator) -> tuple[int, list[str]]:
    """The op's fused activation (TFLite ActivationFunctionType) and the problem if the kernels lack it."""
    act = int(op.options.get("fusedActivationFunction", 0) or 0)
    if act not in FUSED_OK:
        return act, [f"op {op.index} {op.opcode}: fused activation {quant.ACTIVATIONS.get(act, act)} is not supported"]
    return act, []
