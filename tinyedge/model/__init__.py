"""The model domain: ``.tflite`` reader (graph IR), support check, analysis and memory planner."""

from .graph import Graph, Operator, Tensor, load_model, read_model_bytes

__all__ = ["Graph", "Operator", "Tensor", "load_model", "read_model_bytes"]
