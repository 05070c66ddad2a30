"""Mixed int8 / int16x8 models: chosen layers with 16-bit activations, the rest int8.

TensorFlow's converter only offers 16-bit activations model-wide (``EXPERIMENTAL_TFLITE_BUILTINS_
ACTIVATIONS_INT16_WEIGHTS_INT8``); it has no per-layer choice. Both conversions of the same traced
function with the same calibration data produce the same operators in the same order, so a mixed model
is spliced from the two: every chosen operator is taken from the int16x8 model (its int16 activation
tensors, its int8 weights and int64 bias, its options), every other one from the int8 model, and
QUANTIZE operators requantize int8 -> int16 where an int16 layer reads an int8 tensor and int16 -> int8
where an int8 layer (or the model output) reads an int16 one. The model's input and output stay int8.
TFLM's QUANTIZE kernel requantizes between int8 and int16 in both directions.

This module needs no TensorFlow: it works on the two ``.tflite`` files with TFLM's flatbuffer schema.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flatbuffers

from ..errors import ModelError
from ..model import read_model_bytes
from ..model.memplan import plan_memory
from ..model.program import build_program

#: Operators whose int16x8 form tinyedge knows (the splice itself accepts any operator).
INT16_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D",
             "SOFTMAX", "LOGISTIC", "TANH", "RESHAPE", "MEAN", "PAD", "CONCATENATION")
#: Operators that compute something (the candidates ``auto`` considers); reshapes only move data.
COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D",
               "SOFTMAX", "LOGISTIC", "TANH", "MEAN")


@dataclass(frozen=True)
class OpLayer:
    """One operator of a converted model, named the way users name it: by its Keras layer."""

    index: int  # position in the subgraph's operator list
    op: str  # builtin operator name, e.g. "CONV_2D"
    tensor: str  # the output tensor's name in the .tflite file
    layer: str  # the Keras layer name read from the tensor name (else the operator's name, lower case)


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema  # noqa: PLC0415

    return schema


def _op_names(schema: Any) -> dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def _code(m: Any, op: Any) -> int:
    c = m.operatorCodes[op.opcodeIndex]
    return int(max(c.builtinCode, c.deprecatedBuiltinCode))  # codes > 127 live only in builtinCode


def _layer_of(tensor_name: str) -> str:
    """``functional_1/c1_1/Relu;functional_1/c1_1/convolution`` -> ``c1`` (Keras 3 adds ``_1`` suffixes)."""
    first = tensor_name.split(";")[0]
    parts = first.split("/")
    if len(parts) < 2:
        return ""
    return re.sub(r"_\d+$", "", parts[1])


def op_layers(model: bytes) -> list[OpLayer]:
    """Every operator of ``model`` with the Keras layer it came from (as far as the tensor names tell)."""
    schema = _schema()
    m = schema.ModelT.InitFromPackedBuf(model, 0)
    sg = m.subgraphs[0]
    names = _op_names(schema)
    out = []
    for i, op in enumerate(sg.operators):
        t = sg.tensors[op.outputs[0]].name
        tname = t.decode() if isinstance(t, bytes) else str(t or "")
        opname = names.get(_code(m, op), "UNKNOWN")
        # The last operator's output is often just "Identity": name it by its operator instead.
        out.append(OpLayer(i, opname, tname, _layer_of(tname) or opname.lower()))
    return out


def resolve_layers(model: bytes, wanted: list[str]) -> list[int]:
    """Operator indices for user layer names (a Keras layer name, an output tensor name, or ``#INDEX``).

    A Keras layer that became several operators (e.g. a Dense plus its activation) selects all of them.
    Raises ModelError naming the unknown layer and the names that exist.
    """
    layers = op_layers(model)
    chosen: list[int] = []
    for name in wanted:
        name = name.strip()
        if not name:
            continue
        if name.startswith("#") and name[1:].isdigit():
            idx = int(name[1:])
            if idx >= len(layers):
                raise ModelError(f"--int16: operator {name} does not exist (the model has {len(layers)})",
                                 "name a layer, or an operator index from `tinyedge inspect`")
            hits = [idx]
        else:
            hits = [ly.index for ly in layers if ly.layer == name or ly.tensor == name]
        if not hits:
            known = ", ".join(dict.fromkeys(ly.layer for ly in layers if ly.layer and ly.op in COMPUTE_OPS))
            raise ModelError(f"--int16: no layer named {name!r} in the converted model",
                             f"use one of: {known or '(no named layers)'}, or #INDEX of an operator")
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen)


def _is_const(m: Any, sg: Any, t: int) -> bool:
    buf = m.buffers[sg.tensors[t].buffer]
    return buf is not None and buf.data is not None and len(buf.data) > 0


def splice_int16(int8_model: bytes, int16_model: bytes, chosen: list[int]) -> bytes:
    """The int8 model with the operators ``chosen`` (indices) taken from the int16x8 model.

    Both must come from converting the same function (same operators, same order, same shapes); the
    result keeps the int8 model's input and output. Raises ModelError when the two do not line up.
    """
    schema = _schema()
    a = schema.ModelT.InitFromPackedBuf(int8_model, 0)
    b = schema.ModelT.InitFromPackedBuf(int16_model, 0)
    if len(a.subgraphs) != 1 or len(b.subgraphs) != 1:
        raise ModelError("mixed precision needs single-subgraph models", "convert a model without control flow")
    sa, sb = a.subgraphs[0], b.subgraphs[0]
    names = _op_names(schema)
    if len(sa.operators) != len(sb.operators):
        raise ModelError(
            f"the int16x8 conversion has {len(sb.operators)} operators, the int8 one {len(sa.operators)}",
            "TensorFlow converted the model differently at 16 bits; keep it int8 (drop --int16)")
    for i, (oa, ob) in enumerate(zip(sa.operators, sb.operators, strict=True)):
        if _code(a, oa) != _code(b, ob) or len(oa.outputs) != len(ob.outputs):
            raise ModelError(
                f"operator {i} is {names.get(_code(a, oa))} in the int8 model but {names.get(_code(b, ob))} "
                "in the int16x8 one", "keep the model int8 (drop --int16)")
    chosen_set = set(chosen)
    if not chosen_set:
        return int8_model
    if max(chosen_set) >= len(sa.operators) or min(chosen_set) < 0:
        raise ModelError(f"--int16: operator index out of range (the model has {len(sa.operators)})",
                         "name layers that exist")

    out = copy.deepcopy(a)
    so = out.subgraphs[0]
    so.operators = []

    def opcode(builtin: int, version: int) -> int:
        for k, c in enumerate(out.operatorCodes):
            if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin and c.version == version:
                return k
        c = schema.OperatorCodeT()
        c.builtinCode = builtin
        c.deprecatedBuiltinCode = min(builtin, 127)
        c.version = version
        out.operatorCodes.append(c)
        return len(out.operatorCodes) - 1

    quantize = opcode(schema.BuiltinOperator.QUANTIZE, 2)
    copied: dict[int, int] = {}  # int16-model tensor -> its copy in the output

    def copy_tensor(t: int, suffix: str = "") -> int:
        if t in copied:
            return copied[t]
        tensor = copy.deepcopy(sb.tensors[t])
        if _is_const(b, sb, t):
            out.buffers.append(copy.deepcopy(b.buffers[tensor.buffer]))
        else:
            empty = schema.BufferT()
            out.buffers.append(empty)
        tensor.buffer = len(out.buffers) - 1
        if suffix:
            tensor.name = (tensor.name or b"") + suffix.encode()
        so.tensors.append(tensor)
        copied[t] = len(so.tensors) - 1
        return copied[t]

    producer = {t: i for i, op in enumerate(sa.operators) for t in op.outputs}
    consumers: dict[int, set[int]] = {}
    for i, op in enumerate(sa.operators):
        for t in op.inputs:
            if t >= 0:
                consumers.setdefault(t, set()).add(i)
    graph_out = set(sa.outputs)

    def add_quantize(src: int, dst: int) -> None:
        q = schema.OperatorT()
        q.opcodeIndex = quantize
        q.inputs, q.outputs = [src], [dst]
        so.operators.append(q)

    for i, (oa, ob) in enumerate(zip(sa.operators, sb.operators, strict=True)):
        if i not in chosen_set:
            so.operators.append(copy.deepcopy(oa))
            continue
        op = copy.deepcopy(ob)
        op.opcodeIndex = opcode(_code(b, ob), b.operatorCodes[ob.opcodeIndex].version)
        inputs = []
        for ta, tb in zip(oa.inputs, ob.inputs, strict=True):
            if tb < 0:
                inputs.append(-1)
            elif _is_const(b, sb, tb):
                inputs.append(copy_tensor(tb))
            elif producer.get(ta) in chosen_set:
                inputs.append(copy_tensor(tb))  # made int16 by its (chosen) producer
            else:
                if tb not in copied:  # int8 -> int16 once per tensor, right before its first int16 reader
                    add_quantize(ta, copy_tensor(tb, "_int16"))
                inputs.append(copied[tb])
        op.inputs = inputs
        op.outputs = [copy_tensor(tb) for tb in ob.outputs]
        so.operators.append(op)
        for ta, tb in zip(oa.outputs, ob.outputs, strict=True):
            if ta in graph_out or any(c not in chosen_set for c in consumers.get(ta, ())):
                add_quantize(copied[tb], ta)  # int8 readers keep reading the int8 model's tensor
    _prune(out)
    builder = flatbuffers.Builder(len(int8_model) + len(int16_model))
    builder.Finish(out.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())



def _prune(m: Any) -> None:
    """Drop the tensors no operator uses any more (the int8 weights of layers now taken at 16 bits) and
    the buffers no tensor uses, so the file holds each layer's weights once. Buffer 0 stays the empty one."""
    sg = m.subgraphs[0]
    used = sorted({t for op in sg.operators for t in list(op.inputs) + list(op.outputs) if t >= 0}
                  | set(sg.inputs) | set(sg.outputs))
    tmap = {old: new for new, old in enumerate(used)}
    sg.tensors = [sg.tensors[t] for t in used]
    for op in sg.operators:
        op.inputs = [tmap[t] if t >= 0 else t for t in op.inputs]
        op.outputs = [tmap[t] for t in op.outputs]
    sg.inputs = [tmap[t] for t in sg.inputs]
    sg.outputs = [tmap[t] for t in sg.outputs]
    metadata = list(m.metadata or [])  # e.g. min_runtime_version: its buffer is kept too
    bufs = sorted({0} | {t.buffer for t in sg.tensors} | {md.buffer for md in metadata})
    bmap = {old: new for new, old in enumerate(bufs)}
    m.buffers = [m.buffers[b] for b in bufs]
    for t in sg.tensors:
        t.buffer = bmap[t.buffer]
    for md in metadata:
        md.buffer = bmap[md.buffer]


@dataclass
class Cost:
    """What tinyedge's generated code needs for a model: the planned activation arena and the constants."""

    ram_bytes: int
    flash_bytes: int


def model_cost(model: bytes) -> Cost:
    """The planned arena and constant bytes of ``model`` as tinyedge lowers it (portable kernels).

    Raises ModelError (from the reader/validator/lowering) when tinyedge cannot run the model.
    """
    program = build_program(read_model_bytes(model, name="mixed"))
    return Cost(plan_memory(program).arena_bytes, program.weight_bytes)


@dataclass
class AutoChoice:
    """What ``--int16 auto`` chose and what each tried unit measured."""

    layers: list[str]  # Keras layer names (units) kept at 16 bits, in the order they were added
    ops: list[int]  # their operator indices
    accuracy: float  # of the chosen mixed model
    cost: Cost
    base_cost: Cost  # the all-int8 model's
    trials: list[dict[str, Any]]  # per unit: layer, ops, accuracy/error alone, extra bytes, taken or why not
    reached: bool  # the accuracy target was met


def units(model: bytes) -> dict[str, list[int]]:
    """The candidate units of ``auto``, by Keras layer name: the layer's operators and its output's readers.

    16 bits only help where a tensor is stored at 16 bits, i.e. where its producer AND its readers run at
    16 bits (an int16 producer followed by an int8 reader requantizes straight back to the int8 scale).
    Readers that only move data (RESHAPE, pooling, PAD) are followed to the layer that computes next.
    """
    schema = _schema()
    m = schema.ModelT.InitFromPackedBuf(model, 0)
    sg = m.subgraphs[0]
    layers = op_layers(model)
    readers: dict[int, list[int]] = {}
    for i, op in enumerate(sg.operators):
        for t in op.inputs:
            if t >= 0:
                readers.setdefault(t, []).append(i)
    passthrough = ("RESHAPE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "PAD")
    out: dict[str, list[int]] = {}
    for ly in layers:
        if ly.op not in COMPUTE_OPS:
            continue
        ops = out.setdefault(ly.layer, [])
        todo = [ly.index]
        while todo:
            i = todo.pop()
            if i in ops:
                continue
            ops.append(i)
            if i == ly.index or layers[i].op in passthrough:
                todo.extend(r for t in sg.operators[i].outputs for r in readers.get(t, []))
        ops.sort()
    return out


def choose_auto(int8_model: bytes, int16_model: bytes, evaluate: Callable[[bytes], tuple[float, float]],
                target_accuracy: float, ram_budget: int | None = None) -> AutoChoice:
    """The fewest units at 16 bits that bring the accuracy to ``target_accuracy``, within ``ram_budget``.

    ``evaluate(model) -> (accuracy, output error)`` measures a candidate on the evaluation data (the error
    is against the float model's outputs and ranks units whose accuracy alone is equal). Units are ranked
    once by what each gains alone, then added in that order until the target is met; a unit whose model
    tinyedge cannot lower, or which would exceed ``ram_budget`` extra planned RAM bytes, is skipped (said
    in ``trials``). Greedy, so not guaranteed minimal, but ``len(units)`` + k evaluations instead of 2^n.
    """
    base_cost = model_cost(int8_model)
    base_acc, base_err = evaluate(int8_model)
    trials: list[dict[str, Any]] = []
    ranked: list[tuple[float, float, str, list[int]]] = []
    for name, ops in units(int8_model).items():
        trial: dict[str, Any] = {"layer": name, "ops": ops}
        trials.append(trial)
        mixed = splice_int16(int8_model, int16_model, ops)
        try:
            cost = model_cost(mixed)
        except ModelError as exc:
            trial["skipped"] = f"tinyedge cannot run it at 16 bits: {exc.problem}"
            continue
        trial["extra_ram_bytes"] = cost.ram_bytes - base_cost.ram_bytes
        trial["extra_flash_bytes"] = cost.flash_bytes - base_cost.flash_bytes
        acc, err = evaluate(mixed)
        trial["accuracy_alone"], trial["error_alone"] = acc, err
        ranked.append((-(acc - base_acc), err, name, ops))
    ranked.sort()
    chosen: list[str] = []
    ops_chosen: list[int] = []
    best, best_cost, acc = int8_model, base_cost, base_acc
    by_name = {t["layer"]: t for t in trials}
    for _, _, name, ops in ranked:
        if acc >= target_accuracy:
            break
        trial_ops = sorted(ops_chosen + ops)
        mixed = splice_int16(int8_model, int16_model, trial_ops)
        try:
            cost = model_cost(mixed)
        except ModelError as exc:
            by_name[name]["skipped"] = f"tinyedge cannot run it with the others at 16 bits: {exc.problem}"
            continue
        if ram_budget is not None and cost.ram_bytes - base_cost.ram_bytes > ram_budget:
            by_name[name]["skipped"] = (f"over the RAM budget: +{cost.ram_bytes - base_cost.ram_bytes} B "
                                        f"> {ram_budget} B")
            continue
        new_acc, _ = evaluate(mixed)
        by_name[name]["accuracy_with_previous"] = new_acc
        if new_acc <= acc:
            by_name[name]["skipped"] = "no accuracy gain on top of the layers already chosen"
            continue
        chosen.append(name)
        ops_chosen = trial_ops
        best, best_cost, acc = mixed, cost, new_acc
        by_name[name]["taken"] = True
    del best, base_err
    return AutoChoice(chosen, ops_chosen, acc, best_cost, base_cost, trials, acc >= target_accuracy)


def parse_spec(spec: str) -> tuple[str, list[str], int | None]:
    """``--int16`` value -> ("layers", names, None) or ("auto", [], RAM budget in bytes or None).

    ``auto:24k`` / ``auto:24576`` / ``auto:1M`` bound the extra planned RAM of the mixed model.
    """
    spec = spec.strip()
    if spec == "auto" or spec.startswith("auto:"):
        if spec == "auto":
            return "auto", [], None
        raw = spec[5:].strip().lower().removesuffix("b").removesuffix("i")
        mult = {"k": 1024, "m": 1024 * 1024}.get(raw[-1:], 1)
        digits = raw[:-1] if raw[-1:] in ("k", "m") else raw
        if not digits.isdigit():
            raise ModelError(f"--int16 {spec}: the budget must be a byte count like 24k, 24576 or 1M",
                             "pass e.g. --int16 auto:16k (extra RAM the 16-bit layers may use)")
        return "auto", [], int(digits) * mult
    names = [n for n in (s.strip() for s in spec.split(",")) if n]
    if not names:
        raise ModelError("--int16 needs layer names or auto", "pass e.g. --int16 conv1,dense or --int16 auto")
    return "layers", names, None
