"""The model domain: ``.tflite`` reader (``graph``), the lowered IR (``ir``: Program, Step), lowering by op
family (``lower``) and the one-pass support diagnosis (``program.build_program``), TFLM's quantization
arithmetic (``quant``, ``fixedpoint``) and the memory planner (``memplan``)."""

from .graph import Graph, Operator, Tensor, load_model, read_model_bytes

__all__ = ["Graph", "Operator", "Tensor", "load_model", "read_model_bytes"]
