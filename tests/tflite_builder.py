"""Build small int8 TFLite models directly as flatbuffers (through the schema module's object API),
so the differential tests can cover shapes, strides and quantization the converter rarely emits."""

from __future__ import annotations

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

_TYPES = {"INT8": S.TensorType.INT8, "INT32": S.TensorType.INT32, "FLOAT32": S.TensorType.FLOAT32,
          "INT16": S.TensorType.INT16}
_NP = {"INT8": np.int8, "INT32": np.int32, "FLOAT32": np.float32, "INT16": np.int16}


class ModelBuilder:
    def __init__(self) -> None:
        self.tensors: list = []
        self.buffers: list = [S.BufferT()]
        self.opcodes: list[int] = []
        self.ops: list = []

    def tensor(self, shape, dtype="INT8", scale=None, zero_point=None, data=None, qdim=0, name=None) -> int:
        t = S.TensorT()
        t.shape = list(int(d) for d in shape)
        t.type = _TYPES[dtype]
        t.name = name or f"t{len(self.tensors)}"
        if scale is not None:
            q = S.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            zp = np.atleast_1d(zero_point if zero_point is not None else 0)
            if len(zp) == 1 and len(q.scale) > 1:
                zp = np.zeros(len(q.scale), dtype=np.int64)
            q.zeroPoint = [int(z) for z in zp]
            q.quantizedDimension = qdim
            t.quantization = q
        if data is not None:
            b = S.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data, dtype=_NP[dtype]).tobytes(), dtype=np.uint8).tolist()
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        else:
            t.buffer = 0
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, name: str, inputs, outputs, options=None, options_type: str | None = None) -> None:
        code = getattr(S.BuiltinOperator, name)
        if code not in self.opcodes:
            self.opcodes.append(code)
        o = S.OperatorT()
        o.opcodeIndex = self.opcodes.index(code)
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        if options is not None:
            o.builtinOptionsType = getattr(S.BuiltinOptions, options_type)
            o.builtinOptions = options
        self.ops.append(o)

    def build(self, inputs, outputs) -> bytes:
        m = S.ModelT()
        m.version = 3
        m.description = "tinyedge test model"
        codes = []
        for c in self.opcodes:
            oc = S.OperatorCodeT()
            oc.builtinCode = c
            oc.deprecatedBuiltinCode = min(c, 127)
            oc.version = 1
            codes.append(oc)
        m.operatorCodes = codes
        sg = S.SubGraphT()
        sg.tensors = self.tensors
        sg.inputs = list(inputs)
        sg.outputs = list(outputs)
        sg.operators = self.ops
        sg.name = "main"
        m.subgraphs = [sg]
        m.buffers = self.buffers
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def options(kind: str, **fields):
    """An options object, e.g. options('Conv2DOptions', padding=0, strideW=1)."""
    o = getattr(S, kind + "T")()
    for k, v in fields.items():
        setattr(o, k, v)
    return o


PADDING = {"SAME": S.Padding.SAME, "VALID": S.Padding.VALID}
ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


def out_size(padding: str, size: int, k: int, stride: int, dilation: int = 1) -> int:
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size - eff + stride) // stride


# ---------------------------------------------------------------- post-processing helpers (diagnosis tests)

def _edit(model: bytes, fn) -> bytes:
    m = S.ModelT.InitFromObj(S.Model.GetRootAs(model, 0))
    fn(m)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def make_custom(model: bytes, op_index: int, name: str) -> bytes:
    """Turn operator ``op_index`` into a custom op called ``name`` (its options dropped)."""
    def fn(m):
        oc = S.OperatorCodeT()
        oc.builtinCode = S.BuiltinOperator.CUSTOM
        oc.deprecatedBuiltinCode = S.BuiltinOperator.CUSTOM
        oc.customCode = name
        oc.version = 1
        m.operatorCodes.append(oc)
        op = m.subgraphs[0].operators[op_index]
        op.opcodeIndex = len(m.operatorCodes) - 1
        op.builtinOptionsType = 0
        op.builtinOptions = None
    return _edit(model, fn)


def add_subgraph(model: bytes) -> bytes:
    """Append a copy of the first subgraph (as control-flow models carry several)."""
    def fn(m):
        copy = S.SubGraphT.InitFromObj(S.Model.GetRootAs(model, 0).Subgraphs(0))
        copy.name = "second"
        m.subgraphs.append(copy)
    return _edit(model, fn)


def make_dynamic(model: bytes, tensor: int, dim: int = 1) -> bytes:
    """Mark dimension ``dim`` of ``tensor`` as dynamic (-1 in its shape signature)."""
    def fn(m):
        t = m.subgraphs[0].tensors[tensor]
        sig = [int(d) for d in t.shape]
        sig[dim] = -1
        t.shapeSignature = sig
    return _edit(model, fn)


# ---------------------------------------------------------------- int16x8 (16-bit activations, int64 biases)

_TYPES["INT64"] = S.TensorType.INT64
_NP["INT64"] = np.int64
