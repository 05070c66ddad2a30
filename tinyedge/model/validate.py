"""Structural validation of a parsed ``.tflite`` flatbuffer, before anything reads the graph.

``validate_model`` checks the raw schema objects (``schema_py_generated.ModelT``) the reader parsed: every
index in range, shapes and buffers consistent, quantization parameters usable, operators in an order where
each input exists before it is read. The reader (``graph.read_model_bytes``) calls it on every model, so
lowering, planning, code generation and the TFLM oracle only ever see graphs that passed.

All violations (up to ``MAX_PROBLEMS``) are reported in one ``ModelError``, each naming its field path,
e.g. ``subgraphs[0].operators[7].inputs[1] = 213, but the graph has 42 tensors``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import ModelError

#: Problems listed in one error; the rest are counted. One corrupt index tends to cascade.
MAX_PROBLEMS = 12
#: Largest dimension and element count accepted. No tensor that fits a microcontroller comes close, and
#: below 2**31 elements every element count and byte offset fits the int32 arithmetic TFLM and the
#: generated C use (and numpy's int64 products of a shape cannot overflow). A garbled shape in a
#: corrupt file is far beyond these.
MAX_DIM = 1 << 24
MAX_ELEMENTS = (1 << 31) - 1
MAX_RANK = 16
#: Scales outside this range cannot come from quantizing real float32 values, and make ``1 / scale`` or
#: the products of scales in the requantization multipliers overflow or vanish.
SCALE_RANGE = (1e-30, 1e30)
HINT = "re-export the model with the TFLite converter (or `tinyedge quantize`); the file looks corrupted or hand-edited"

#: Input positions TFLite lets a model leave empty (tensor index -1, ``kTfLiteOptionalTensor``).
_OPTIONAL_INPUTS: dict[str, set[int] | None] = {
    "CONV_2D": {2}, "DEPTHWISE_CONV_2D": {2}, "FULLY_CONNECTED": {2}, "TRANSPOSE_CONV": {3}, "CONV_3D": {2},
    "CONV_3D_TRANSPOSE": {3}, "SVDF": {3}, "RESHAPE": {1},
}
#: Recurrent ops: every input but the first may be omitted (peepholes, projections, layer norm...).
_RECURRENT = {"LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "RNN",
              "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN"}
#: Zero point range per quantized type.
_ZP_RANGE = {"INT8": (-128, 127), "UINT8": (0, 255), "INT16": (-32768, 32767), "INT4": (-8, 7),
             "INT32": (-(1 << 31), (1 << 31) - 1)}
#: Bytes per element of the types whose constant buffers have a fixed size (INT4 is packed two per byte).
_ITEMSIZE = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "BOOL": 1, "INT16": 2, "INT8": 1,
             "FLOAT64": 8, "UINT64": 8, "UINT32": 4, "UINT16": 2, "BFLOAT16": 2, "COMPLEX64": 8, "COMPLEX128": 16}


def enum_names(enum_cls: type) -> dict[int, str]:
    """Value -> name of a flatbuffer schema enum class."""
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.count = 0

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(text)


def _ints(values: Any) -> list[int]:
    return [int(v) for v in values] if values is not None else []


def _index(p: _Problems, path: str, value: int, n: int, what: str) -> bool:
    """Check ``0 <= value < n``; True when it is."""
    if 0 <= value < n:
        return True
    p.add(f"{path} = {value}, but the model has {n} {what}" if value >= 0 else f"{path} = {value} is negative")
    return False


def _buffer_bytes(buffer: Any, file_size: int) -> int:
    """Bytes of constant data a buffer holds (inline, or at an offset in the file for models > 2 GB)."""
    if buffer is None:
        return 0
    if buffer.data is not None and len(buffer.data):
        return len(buffer.data)
    offset = int(getattr(buffer, "offset", 0) or 0)
    return int(getattr(buffer, "size", 0) or 0) if offset > 1 else 0


def _check_buffers(p: _Problems, model: Any, file_size: int) -> None:
    for b, buffer in enumerate(model.buffers or []):
        offset = int(getattr(buffer, "offset", 0) or 0)
        size = int(getattr(buffer, "size", 0) or 0)
        if offset > 1 and offset + size > file_size:
            p.add(f"buffers[{b}] = bytes {offset}..{offset + size} of the file, but the file has {file_size} bytes")


def _check_quantization(p: _Problems, path: str, t: Any, dtype: str, shape: Sequence[int]) -> None:
    q = t.quantization
    if q is None or q.scale is None or not len(q.scale):
        return
    scales = [float(s) for s in q.scale]
    for k, s in enumerate(scales):
        if not math.isfinite(s) or s <= 0:
            p.add(f"{path}.quantization.scale[{k}] = {s}, but a scale must be finite and > 0")
            break
        if not SCALE_RANGE[0] <= s <= SCALE_RANGE[1]:
            p.add(f"{path}.quantization.scale[{k}] = {s:g}, outside the range real quantization gives "
                  f"({SCALE_RANGE[0]:g}..{SCALE_RANGE[1]:g})")
            break
    zps = _ints(q.zeroPoint)
    if not zps:
        # TFLM reads the quantization only when both lists are present: without zero points the tensor is
        # not quantized there, and tinyedge would assume 0.
        p.add(f"{path}.quantization has {len(scales)} scale(s) but no zeroPoint")
    elif len(zps) != len(scales):
        p.add(f"{path}.quantization.zeroPoint has {len(zps)} values, but scale has {len(scales)}")
    lo, hi = _ZP_RANGE.get(dtype, (-(1 << 63), (1 << 63) - 1))
    for k, z in enumerate(zps):
        if not lo <= z <= hi:
            p.add(f"{path}.quantization.zeroPoint[{k}] = {z}, outside the {dtype} range {lo}..{hi}")
            break
    if len(scales) > 1:
        qdim = int(q.quantizedDimension or 0)
        if not 0 <= qdim < len(shape):
            p.add(f"{path}.quantization.quantizedDimension = {qdim}, but the tensor has {len(shape)} dimensions")
        elif shape[qdim] != len(scales):
            p.add(f"{path}.quantization.scale has {len(scales)} values (per channel), but dimension {qdim} "
                  f"of the tensor has {shape[qdim]} channels")


def _check_tensor(p: _Problems, model: Any, path: str, t: Any, type_names: dict[int, str], file_size: int) -> bool:
    """Check one tensor; True when it holds constant data (or has no elements to hold)."""
    shape = _ints(t.shape)
    dtype = type_names.get(int(t.type), "")
    if not dtype:
        p.add(f"{path}.type = {t.type}, which is not a TFLite tensor type")
    count = 1
    bad_shape = False
    if len(shape) > MAX_RANK:
        p.add(f"{path}.shape has {len(shape)} dimensions (at most {MAX_RANK})")
        bad_shape = True
    else:
        for k, d in enumerate(shape):
            # 0 only in an empty 1-D constant (e.g. RESHAPE's shape vector for a scalar result)
            if not (1 <= d <= MAX_DIM or (d == 0 and len(shape) == 1 and int(t.buffer) > 0)):
                p.add(f"{path}.shape[{k}] = {d}, but a dimension must be 1..{MAX_DIM}")
                bad_shape = True
                break
            count *= d
        if not bad_shape and count > MAX_ELEMENTS:
            p.add(f"{path}.shape = {shape}: {count} elements (at most {MAX_ELEMENTS})")
            bad_shape = True
    sig = _ints(t.shapeSignature)
    if t.shapeSignature is not None and (
            len(sig) != len(shape) or any(not (d == -1 or 1 <= d <= MAX_DIM) for d in sig)):
        p.add(f"{path}.shapeSignature = {sig} does not match shape {shape} (-1 marks a dynamic dimension)")
    buffers = model.buffers or []
    nbytes = 0
    if _index(p, f"{path}.buffer", int(t.buffer), len(buffers), "buffers"):
        nbytes = _buffer_bytes(buffers[int(t.buffer)], file_size)
    if nbytes and not bad_shape and dtype:
        expected = (count + 1) // 2 if dtype == "INT4" else count * _ITEMSIZE.get(dtype, 0)
        if expected and nbytes != expected:
            p.add(f"{path}: buffers[{t.buffer}] holds {nbytes} bytes, but shape {shape} of {dtype} needs {expected}")
    if not bad_shape and dtype:
        _check_quantization(p, path, t, dtype, shape)
    return nbytes > 0 or (count == 0 and int(t.buffer) > 0)


def _allowed_missing(opname: str, position: int) -> bool:
    if opname.startswith("CUSTOM"):
        return True  # a custom kernel decides what it accepts
    if opname in _RECURRENT:
        return position > 0
    return position in (_OPTIONAL_INPUTS.get(opname) or set())


#: The options table each operator tinyedge lowers reads (TFLite's ``BuiltinOptions`` union member). An
#: operator carrying another op's table (e.g. TransposeConvOptions on a CONV_2D) would be read differently
#: by tinyedge and by TFLM, so it is refused. NONE is allowed: lowering says which options it needs.
OPTIONS_OF: dict[str, str] = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions", "MAX_POOL_2D": "Pool2DOptions", "AVERAGE_POOL_2D": "Pool2DOptions",
    "SOFTMAX": "SoftmaxOptions", "ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions",
    "MEAN": "ReducerOptions", "RESHAPE": "ReshapeOptions", "SQUEEZE": "SqueezeOptions",
    "EXPAND_DIMS": "ExpandDimsOptions", "CONCATENATION": "ConcatenationOptions", "PAD": "PadOptions",
    "PADV2": "PadV2Options", "STRIDED_SLICE": "StridedSliceOptions", "TRANSPOSE": "TransposeOptions",
    "LEAKY_RELU": "LeakyReluOptions", "PACK": "PackOptions", "SHAPE": "ShapeOptions",
    "QUANTIZE": "QuantizeOptions", "DEQUANTIZE": "DequantizeOptions", "HARD_SWISH": "HardSwishOptions",
}


def _check_subgraph(p: _Problems, model: Any, s: int, sg: Any, opnames: list[str], type_names: dict[int, str],
                    file_size: int, option_names: dict[int, str]) -> None:
    where = f"subgraphs[{s}]"
    tensors = sg.tensors or []
    n = len(tensors)
    defined: set[int] = set()
    for i, t in enumerate(tensors):
        if _check_tensor(p, model, f"{where}.tensors[{i}]", t, type_names, file_size) or t.isVariable:
            defined.add(i)
    inputs, outputs = _ints(sg.inputs), _ints(sg.outputs)
    for k, i in enumerate(inputs):
        if _index(p, f"{where}.inputs[{k}]", i, n, "tensors"):
            defined.add(i)
    operators = sg.operators or []
    if s == 0:
        if not operators:
            p.add(f"{where}.operators is empty: the model computes nothing")
        if not inputs:
            p.add(f"{where}.inputs is empty: the model has no input")
        if not outputs:
            p.add(f"{where}.outputs is empty: the model has no output")
    writer: dict[int, int] = {}  # tensor -> first operator writing it, to say "written by a later operator"
    for o, op in enumerate(operators):
        for i in _ints(op.outputs):
            writer.setdefault(i, o)
    nsub = len(model.subgraphs or [])
    for o, op in enumerate(operators):
        path = f"{where}.operators[{o}]"
        ok = _index(p, f"{path}.opcodeIndex", int(op.opcodeIndex), len(opnames), "operator codes")
        opname = opnames[int(op.opcodeIndex)] if ok else ""
        for k, i in enumerate(_ints(op.inputs)):
            if i == -1 and _allowed_missing(opname, k):
                continue  # an omitted optional input (e.g. no bias): lowering treats it as absent
            if i == -1:
                p.add(f"{path}.inputs[{k}] = -1 (omitted), but input {k} of {opname or 'this operator'} "
                      "is not optional")
            elif _index(p, f"{path}.inputs[{k}]", i, n, "tensors") and i not in defined:
                later = writer.get(i)
                why = (f"it is written by operators[{later}], a later operator (a cycle or a use before "
                       "definition)" if later is not None else "no operator writes it")
                p.add(f"{path}.inputs[{k}] = {i}, but tensor {i} is not a constant or a graph input and {why}")
        for k, i in enumerate(_ints(op.outputs)):
            if not _index(p, f"{path}.outputs[{k}]", i, n, "tensors"):
                continue
            if i in defined and not tensors[i].isVariable:
                p.add(f"{path}.outputs[{k}] = {i}, but tensor {i} is a constant, a graph input or written by an "
                      "earlier operator")
            defined.add(i)
        for k, i in enumerate(_ints(op.intermediates)):
            _index(p, f"{path}.intermediates[{k}]", i, n, "tensors")
        otype = int(op.builtinOptionsType or 0)
        expected = OPTIONS_OF.get(opname)
        if expected and otype and option_names.get(otype) != expected:
            p.add(f"{path}.builtinOptionsType = {option_names.get(otype, otype)}, but {opname} takes {expected}")
        for options in (op.builtinOptions, getattr(op, "builtinOptions2", None)):
            for key, value in (vars(options).items() if options is not None else ()):
                if isinstance(value, int) and (key.lower().endswith("subgraphindex") or key == "subgraph"):
                    _index(p, f"{path}.builtinOptions.{key}", value, nsub, "subgraphs")
    for k, i in enumerate(outputs):
        if _index(p, f"{where}.outputs[{k}]", i, n, "tensors") and i not in defined:
            p.add(f"{where}.outputs[{k}] = {i}, but no operator writes tensor {i}")


def validate_model(model: Any, file_size: int, source: str, schema: Any) -> None:
    """Raise one ModelError listing the structural problems of a parsed TFLite ``ModelT``.

    ``file_size`` bounds buffers stored by offset; ``source`` names the file in the message; ``schema`` is
    tflite_micro's generated schema module (its enums name operators and types).
    """
    p = _Problems()
    op_names = enum_names(schema.BuiltinOperator)
    type_names = enum_names(schema.TensorType)
    subgraphs = model.subgraphs or []
    if not subgraphs:
        p.add("subgraphs is empty: the model has no graph")
    opnames: list[str] = []
    for c, oc in enumerate(model.operatorCodes or []):
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        name = op_names.get(code, "")
        if not name:
            p.add(f"operatorCodes[{c}].builtinCode = {code}, which is not a TFLite builtin operator "
                  "(or one newer than the installed tflite_micro knows)")
        elif name == "CUSTOM" and not oc.customCode:
            p.add(f"operatorCodes[{c}] is CUSTOM without a customCode name")
        opnames.append(name or "UNKNOWN")
    _check_buffers(p, model, file_size)
    for s, sg in enumerate(subgraphs):
        _check_subgraph(p, model, s, sg, opnames, type_names, file_size, enum_names(schema.BuiltinOptions))
    for k, m in enumerate(model.metadata or []):
        _index(p, f"metadata[{k}].buffer", int(m.buffer), len(model.buffers or []), "buffers")
    for k, sd in enumerate(model.signatureDefs or []):
        if _index(p, f"signatureDefs[{k}].subgraphIndex", int(sd.subgraphIndex), len(subgraphs), "subgraphs"):
            n = len(subgraphs[int(sd.subgraphIndex)].tensors or [])
            for side in ("inputs", "outputs"):
                for j, tm in enumerate(getattr(sd, side) or []):
                    _index(p, f"signatureDefs[{k}].{side}[{j}].tensorIndex", int(tm.tensorIndex), n, "tensors")
    if p.count:
        more = f"; and {p.count - len(p.items)} more" if p.count > len(p.items) else ""
        plural = "s" if p.count != 1 else ""
        raise ModelError(f"{source} is not a valid TFLite model ({p.count} problem{plural}): "
                         + "; ".join(p.items) + more, HINT)
