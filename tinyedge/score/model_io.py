"""Input/output facts of a ``.tflite`` read straight from the flatbuffer (no TensorFlow import)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape[1:] if len(self.shape) > 1 else self.shape:
            n *= int(d)
        return n


@dataclass(frozen=True)
class ModelIO:
    input: TensorInfo
    output: TensorInfo


def read_model_io(buf: bytes, path: str | Path = "model") -> ModelIO:
    """Shape, type and quantization of input 0 and output 0 of subgraph 0; ModelError when unreadable."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    try:
        model = schema.Model.GetRootAs(buf, 0)
        sg = model.Subgraphs(0)

        def tensor(index: int) -> TensorInfo:
            t = sg.Tensors(index)
            q = t.Quantization()
            scale = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
            zp = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else None
            return TensorInfo(
                shape=tuple(int(d) for d in t.ShapeAsNumpy()),
                dtype=names.get(t.Type(), str(t.Type())).lower(),
                scale=float(scale[0]) if scale is not None else 0.0,
                zero_point=int(zp[0]) if zp is not None else 0,
            )

        io = ModelIO(tensor(sg.Inputs(0)), tensor(sg.Outputs(0)))
    except Exception as exc:  # flatbuffers raises assorted errors on a file that is not a model
        raise ModelError(f"cannot read {path} as a .tflite model: {exc}", "pass the .tflite the firmware was built from") from None
    if io.input.dtype != "int8" or io.output.dtype != "int8":
        raise ModelError(
            f"{path} has a {io.input.dtype} input and a {io.output.dtype} output; tinyedge scores int8 models",
            "quantize it to full-integer int8 (tinyedge quantize)",
        )
    return io
