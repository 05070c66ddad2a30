"""Read a ``.tflite`` flatbuffer into tinyedge's graph IR, without importing TensorFlow.

Uses the schema module that ships with the ``tflite_micro`` wheel. The IR is deliberately small:
tensors (shape, dtype, quantization, constant data) and operators (opcode name, tensor indices,
builtin options as a dict).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from .validate import HINT, enum_names, validate_model

_DTYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "UINT8": np.uint8, "INT64": np.int64,
    "INT16": np.int16, "INT8": np.int8, "BOOL": np.bool_, "UINT32": np.uint32, "FLOAT64": np.float64,
    "UINT16": np.uint16,
}


def _schema() -> Any:  # the generated flatbuffer module carries no type information
    # tflite_micro: imported on first use, so `tinyedge --help` and the board commands start fast.
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema  # noqa: PLC0415

    return schema


@dataclass
class Tensor:
    """One tensor of the (single) subgraph."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # TFLite type name: INT8, INT32, FLOAT32, ...
    scale: np.ndarray | None = None  # float32, one per channel or a single value
    zero_point: np.ndarray | None = None  # int64
    quantized_dimension: int = 0
    data: np.ndarray | None = None  # constant contents, reshaped to ``shape``
    shape_signature: tuple[int, ...] | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def itemsize(self) -> int:
        return np.dtype(_DTYPES.get(self.dtype, np.uint8)).itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def is_quantized(self) -> bool:
        return self.scale is not None and len(self.scale) > 0

    @property
    def per_channel(self) -> bool:
        return self.scale is not None and len(self.scale) > 1

    def q(self) -> tuple[float, int]:
        """Per-tensor (scale, zero point); raises if the tensor has no quantization."""
        if self.scale is None or not len(self.scale):
            raise ModelError(f"tensor {self.index} '{self.name}' has no quantization parameters",
                             "quantize the model with `tinyedge quantize`")
        zp = int(self.zero_point[0]) if self.zero_point is not None and len(self.zero_point) else 0
        return float(self.scale[0]), zp


@dataclass
class Operator:
    """One operator: ``opcode`` is the builtin name (e.g. CONV_2D) or ``CUSTOM:<name>``."""

    index: int
    opcode: str
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)
    version: int = 1


@dataclass
class Graph:
    """A model's first subgraph plus model-level facts."""

    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    sha256: str
    model_bytes: bytes = field(repr=False)
    num_subgraphs: int = 1
    name: str = "model"
    description: str = ""

    def tensor(self, i: int) -> Tensor:
        if i < 0:  # -1 is an omitted optional input: never let Python wrap it to the last tensor
            raise ModelError(f"{self.name}: tensor index {i} (an omitted optional input) was read",
                             "report this as a tinyedge bug, with the model attached")
        return self.tensors[i]

    @property
    def input(self) -> Tensor:
        return self.tensors[self.inputs[0]]

    @property
    def output(self) -> Tensor:
        return self.tensors[self.outputs[0]]


def _options_dict(opts: Any) -> dict[str, Any]:
    if opts is None:
        return {}
    out = {}
    for k, v in vars(opts).items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        out[k] = v
    return out


def _text(value: Any, default: str = "") -> str:
    """A flatbuffer string (bytes) as text; invalid UTF-8 is replaced, never an error."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value) if value else default


def read_model_bytes(buf: bytes, name: str = "model", *, source: str | None = None) -> Graph:
    """Parse and validate a TFLite flatbuffer; raise one ModelError naming ``source`` (default ``name``)
    when it is not one, is corrupt, or fails ``validate.validate_model``. Nothing else escapes."""
    where = source or name
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError(f"{where} is not a TFLite flatbuffer (no 'TFL3' identifier)",
                         "pass a .tflite file, e.g. one written by `tinyedge quantize`")
    schema = _schema()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(buf, 0))
    except Exception as exc:  # a corrupt flatbuffer can fail anywhere in the generated reader
        raise ModelError(f"{where} is a corrupt or truncated TFLite flatbuffer ({type(exc).__name__}: {exc})",
                         HINT) from None
    try:
        validate_model(model, len(buf), where, schema)
        return _graph(model, buf, name, schema)
    except ModelError:
        raise
    except Exception as exc:  # whatever validation did not foresee is still one error naming the file
        raise ModelError(f"{where} could not be read ({type(exc).__name__}: {exc})", HINT) from None


def _graph(model: Any, buf: bytes, name: str, schema: Any) -> Graph:
    """The IR of a validated ModelT's first subgraph."""
    op_names = enum_names(schema.BuiltinOperator)
    type_names = enum_names(schema.TensorType)
    sg = model.subgraphs[0]
    tensors: list[Tensor] = []
    for i, t in enumerate(sg.tensors or []):
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        sig = tuple(int(d) for d in t.shapeSignature) if t.shapeSignature is not None else None
        dtype = type_names.get(t.type, f"TYPE{t.type}")
        scale = zp = None
        qdim = 0
        if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale):
            scale = np.asarray(t.quantization.scale, dtype=np.float32)
            zp = np.asarray(t.quantization.zeroPoint if t.quantization.zeroPoint is not None
                            and len(t.quantization.zeroPoint) else [0] * len(scale), dtype=np.int64)
            qdim = int(t.quantization.quantizedDimension or 0)
        data: np.ndarray | None = None
        buffer = model.buffers[t.buffer]  # in range: validated
        raw = b""
        if buffer.data is not None and len(buffer.data):
            raw = np.asarray(buffer.data, dtype=np.uint8).tobytes()
        elif (getattr(buffer, "offset", None) or 0) > 1:
            raw = buf[buffer.offset: buffer.offset + buffer.size]
        np_type = _DTYPES.get(dtype)
        if raw and np_type is not None:  # the size matches the shape: validated
            data = np.frombuffer(raw, dtype=np_type).reshape(shape if shape else ())
        tensors.append(Tensor(i, _text(t.name, f"t{i}"), shape, dtype, scale, zp, qdim, data, sig))
    operators: list[Operator] = []
    for i, op in enumerate(sg.operators or []):
        oc = model.operatorCodes[op.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        opname = op_names.get(code, f"BUILTIN_{code}")
        if opname == "CUSTOM":
            opname = f"CUSTOM:{_text(oc.customCode)}"
        operators.append(Operator(
            i, opname, [int(x) for x in (op.inputs if op.inputs is not None else [])],
            [int(x) for x in (op.outputs if op.outputs is not None else [])],
            _options_dict(op.builtinOptions), int(oc.version or 1)))
    return Graph(
        tensors=tensors, operators=operators,
        inputs=[int(x) for x in sg.inputs], outputs=[int(x) for x in sg.outputs],
        sha256=hashlib.sha256(buf).hexdigest(), model_bytes=bytes(buf),
        num_subgraphs=len(model.subgraphs), name=name, description=_text(model.description),
    )


def load_model(path: str | Path) -> Graph:
    """Read a ``.tflite`` file (or the ``model.tflite`` of a generated project folder) into a Graph;
    raise ModelError with what to try (a directory that is neither a project nor a SavedModel is one)."""
    path = Path(path)
    name = path.stem
    if path.is_dir() and (path / "tinyedge.json").is_file() and (path / "model.tflite").is_file():
        # A project `tinyedge generate` wrote: its copy of the model, under the model's own name.
        try:
            name = str(json.loads((path / "tinyedge.json").read_text())["model"])
        except (OSError, ValueError, KeyError, TypeError):
            name = path.name
        path = path / "model.tflite"
    elif path.is_dir() and not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path} is a directory, not a .tflite file",
                         "pass the .tflite file itself (or a project folder written by `tinyedge generate`)")
    if not path.exists():
        raise ModelError(f"model file {path} does not exist", "check the path")
    if path.suffix in (".keras", ".h5") or path.is_dir():
        raise ModelError(f"{path} is a Keras model, not a .tflite",
                         f"run `tinyedge quantize {path} --calib DATA.npz -o model.tflite` first")
    return read_model_bytes(path.read_bytes(), name=name, source=str(path))
