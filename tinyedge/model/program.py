"""Lower a Graph to a Program: the ordered kernel steps tinyedge's generated C executes.

One pass over the model both checks support (collecting *every* problem) and computes each
kernel's parameters the way TFLM's Prepare does, through the lowering registry (``model.lower``).
Shape-only ops with constant inputs are folded here; reshapes become aliases (no copy). The IR
(``Program``, ``Step``) lives in ``model.ir``.
"""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

from ..errors import UnsupportedModelError
from .graph import Graph, Operator
from .ir import Program, Step, act_problems
from .lower import ALIAS_OPS, FOLD_OPS, FOLDERS, LOWERINGS, SUPPORTED_OPS, float_boundary_ok
from .lower.fold import const_value


def _types(g: Graph, op: Operator) -> str:
    ins = ",".join(g.tensor(i).dtype if i >= 0 else "-" for i in op.inputs)
    outs = ",".join(g.tensor(i).dtype for i in op.outputs)
    return f"({ins} -> {outs})"


def build_program(g: Graph) -> Program:
    """Check every op, fold shape ops, resolve aliases and compute kernel parameters.

    Raises UnsupportedModelError listing every problem found (not just the first).
    """
    problems: list[str] = []
    if g.num_subgraphs != 1:
        problems.append(f"the model has {g.num_subgraphs} subgraphs; "
                        "tinyedge generates code for single-subgraph models")
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        problems.append(f"the model has {len(g.inputs)} inputs and {len(g.outputs)} outputs; "
                        "tinyedge supports one of each")
    float_io = [i for i in list(g.inputs) + list(g.outputs)
                if g.tensor(i).dtype not in ("INT8",) and not float_boundary_ok(g, i)]
    float_model = any(g.tensor(i).dtype == "FLOAT32" for i in float_io)
    for i in list(g.inputs) + list(g.outputs):
        t = g.tensor(i)
        sig = t.shape_signature
        if sig is not None and any(d < 0 for d in sig[1:]):
            problems.append(f"tensor {i} '{t.name}' has a dynamic shape {list(sig)}; tinyedge needs static shapes")

    folded: dict[int, npt.NDArray[Any]] = {}
    alias: dict[int, int] = {}
    steps: list[Step] = []
    for op in g.operators:
        if op.opcode.startswith("CUSTOM:"):
            problems.append(f"op {op.index} {op.opcode} is a custom op {_types(g, op)}; "
                            "tinyedge supports only builtin ops")
            continue
        if op.opcode not in SUPPORTED_OPS:
            problems.append(f"op {op.index} {op.opcode} {_types(g, op)} is not supported")
            continue
        if op.opcode in FOLD_OPS or (op.opcode in ALIAS_OPS and const_value(g, folded, op.inputs[0]) is not None):
            v = FOLDERS[op.opcode](g, op, folded)
            if v is not None:
                folded[op.outputs[0]] = v
                continue
            if op.opcode not in LOWERINGS:  # STRIDED_SLICE of a run-time tensor has a kernel
                problems.append(f"op {op.index} {op.opcode} {_types(g, op)}: its inputs are not known at "
                                "generation time (dynamic shape)")
                continue
        if op.opcode in ALIAS_OPS:
            problems += act_problems(g, op, [op.inputs[0]], "input") + act_problems(g, op, op.outputs, "output")
            src = op.inputs[0]
            alias[op.outputs[0]] = alias.get(src, src)
            continue
        step: Step | None
        try:
            step, probs = LOWERINGS[op.opcode](g, op)
        except (IndexError, KeyError, TypeError, ValueError) as exc:  # malformed op in the flatbuffer
            step, probs = None, [f"op {op.index} {op.opcode} {_types(g, op)} is malformed ({exc})"]
        problems += probs
        if step is not None and not probs:
            steps.append(step)
    if float_model:
        problems.insert(0, "the model computes in float (FLOAT32 inputs/outputs or ops): tinyedge runs full-integer "
                           "int8 models; run `tinyedge quantize MODEL --calib DATA.npz -o model.tflite` first")
    if problems:
        hint = (f"supported ops: {', '.join(SUPPORTED_OPS)}; re-export the model with only these ops "
                "(int8 activations, int8 weights, int32 bias)")
        if float_model:
            hint = "run `tinyedge quantize MODEL --calib DATA.npz -o model.tflite` first; " + hint
        raise UnsupportedModelError(problems, hint)
    return Program(g, steps, alias, folded, g.inputs[0], g.outputs[0])


__all__ = ["build_program"]
