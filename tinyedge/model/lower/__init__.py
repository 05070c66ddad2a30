"""Lowering: one module per op family, each exporting ``LOWERINGS`` (op name -> lowering function with
the ``ir.LowerFn`` contract); ``registry`` merges them into one table once.

* ``conv`` (CONV_2D, DEPTHWISE_CONV_2D), ``fc`` (FULLY_CONNECTED), ``pool`` (MAX/AVERAGE_POOL_2D),
  ``softmax``;
* ``elementwise``: table ops (LOGISTIC, TANH, RELU, RELU6, LEAKY_RELU, HARD_SWISH, int8 QUANTIZE),
  ADD/SUB/MUL, MEAN;
* ``shape``: TRANSPOSE, run-time STRIDED_SLICE, PAD/PADV2, CONCATENATION;
* ``boundary``: float32 QUANTIZE/DEQUANTIZE at the model boundary;
* ``fold``: SHAPE, STRIDED_SLICE, PACK and reshapes of constants, evaluated at generation time;
* ``int16``: int16x8 layers (16-bit activations, 8-bit weights, 64-bit biases): ``program.build_program`` sends
  every op with an INT16 tensor there instead of its family's int8 lowering.
"""

from .boundary import boundary_quantization, float_boundary_ok
from .registry import ALIAS_OPS, FOLD_OPS, FOLDERS, KERNEL_OPS, LOWERINGS, SUPPORTED_OPS, build_registry

__all__ = ["ALIAS_OPS", "FOLD_OPS", "FOLDERS", "KERNEL_OPS", "LOWERINGS", "SUPPORTED_OPS", "boundary_quantization",
           "build_registry", "float_boundary_ok"]
