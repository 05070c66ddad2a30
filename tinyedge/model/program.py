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
from .lower.int16 import alias_problems, is_int16, lower_int16

#: Fewest inputs each op reads by position (its lowering or folding indexes them); every op writes one output.
MIN_INPUTS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "ADD": 2, "SUB": 2, "MUL": 2, "MEAN": 2,
              "PAD": 2, "PADV2": 2, "TRANSPOSE": 2, "STRIDED_SLICE": 4}


def _types(g: Graph, op: Operator) -> str:
    ins = ",".join(g.tensor(i).dtype if 0 <= i < len(g.tensors) else "-" for i in op.inputs)
    outs = ",".join(g.tensor(i).dtype if 0 <= i < len(g.tensors) else "-" for i in op.outputs)
    return f"({ins} -> {outs})"


def _arity_problem(op: Operator) -> str | None:
    """Why ``op`` has too few tensors for tinyedge to lower it, if it has."""
    need = MIN_INPUTS.get(op.opcode, 1)
    present = [i for i in op.inputs[:need] if i >= 0]
    if len(op.inputs) < need or not op.inputs or op.inputs[0] < 0 or len(present) < need:
        return (f"op {op.index} {op.opcode} has inputs {op.inputs}; it needs {need} input tensor"
                f"{'s' if need > 1 else ''}")
    if len(op.outputs) != 1 or op.outputs[0] < 0:
        return f"op {op.index} {op.opcode} has outputs {op.outputs}; tinyedge lowers ops with exactly one output"
    return None


def _lower_op(g: Graph, op: Operator, folded: dict[int, npt.NDArray[Any]],
              alias: dict[int, int]) -> tuple[Step | None, list[str]]:
    """Fold ``op``, record it as an alias, or lower it to a Step (``folded`` and ``alias`` are updated)."""
    if op.opcode in FOLD_OPS or (op.opcode in ALIAS_OPS and const_value(g, folded, op.inputs[0]) is not None):
        v = FOLDERS[op.opcode](g, op, folded)
        if v is not None:
            folded[op.outputs[0]] = v
            return None, []
        if op.opcode not in LOWERINGS:  # STRIDED_SLICE of a run-time tensor has a kernel
            return None, [f"op {op.index} {op.opcode} {_types(g, op)}: its inputs are not known at "
                          "generation time (dynamic shape)"]
    if op.opcode in ALIAS_OPS:
        probs = (alias_problems(g, op) if is_int16(g, op) else
                 act_problems(g, op, [op.inputs[0]], "input") + act_problems(g, op, op.outputs, "output"))
        x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
        if not probs and x.nbytes != y.nbytes:
            probs.append(f"op {op.index} {op.opcode}: input shape {list(x.shape)} and output shape "
                         f"{list(y.shape)} hold different numbers of elements")
        src = op.inputs[0]
        alias[op.outputs[0]] = alias.get(src, src)
        return None, probs
    if is_int16(g, op):  # int16x8 layers have their own kernels
        return lower_int16(g, op)
    return LOWERINGS[op.opcode](g, op)


def _dataflow_problems(g: Graph, steps: list[Step], alias: dict[int, int],
                       folded: dict[int, npt.NDArray[Any]]) -> list[str]:
    """Run-time tensors the kernels read but nothing computes at run time, and a model output that is not
    computed at run time (a constant, or a value folded at generation time): the generated code would read
    an arena buffer nothing wrote."""
    def root(t: int) -> int:
        return alias.get(t, t)

    problems = []
    ready = {root(g.inputs[0])}
    for s in steps:
        for t in s.inputs:
            if root(t) not in ready:
                what = "computed at generation time (folded)" if t in folded else "not computed by an earlier op"
                problems.append(f"op {s.op.index} {s.op.opcode} reads tensor {t} '{g.tensor(t).name}' as a "
                                f"run-time input, but it is {what}")
        ready.update(root(t) for t in s.outputs)
    out = g.outputs[0]
    if root(out) not in ready:
        y = g.tensor(out)
        what = "a constant" if y.is_const else "folded at generation time" if out in folded else "never written"
        problems.append(f"the model output tensor {out} '{y.name}' is {what}: no kernel computes it at run time")
    if g.tensor(g.inputs[0]).is_const:
        problems.append(f"the model input tensor {g.inputs[0]} is a constant")
    return problems


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
        arity = _arity_problem(op)
        if arity:
            problems.append(arity)
            continue
        try:
            step, probs = _lower_op(g, op, folded, alias)
        except (ArithmeticError, IndexError, KeyError, TypeError, ValueError) as exc:  # a malformed op: one problem
            step, probs = None, [f"op {op.index} {op.opcode} {_types(g, op)} is malformed "
                                 f"({type(exc).__name__}: {exc})"]
        problems += probs
        if step is not None and not probs:
            steps.append(step)
    if not problems:
        problems += _dataflow_problems(g, steps, alias, folded)
    if float_model:
        problems.insert(0, "the model computes in float (FLOAT32 inputs/outputs or ops): tinyedge runs full-integer "
                           "int8 models; run `tinyedge quantize MODEL --calib DATA.npz -o model.tflite` first")
    if problems:
        hint = (f"supported ops: {', '.join(SUPPORTED_OPS)}; re-export the model with only these ops "
                "(int8 activations, int8 weights, int32 bias; int16x8 layers: int16 activations with zero point 0, "
                "int8 weights, int64 bias)")
        if float_model:
            hint = "run `tinyedge quantize MODEL --calib DATA.npz -o model.tflite` first; " + hint
        raise UnsupportedModelError(problems, hint)
    return Program(g, steps, alias, folded, g.inputs[0], g.outputs[0])


__all__ = ["build_program"]
