"""float32 at the model boundary: QUANTIZE float32 -> int8 on the input side, DEQUANTIZE int8 -> float32 on
the output side (int8 models exported with float I/O; the conversion is part of the model).

Kernels: ``te_quantize_f32_s8`` and ``te_dequantize_s8_f32`` in ``tinyedge/runtime/te_kernels_elementwise.c``.
QUANTIZE itself is registered by ``elementwise`` (its int8 -> int8 form is a table); a float32 input comes
here through ``quantize_f32_step``.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Operator
from ..ir import LowerFn, Program, Step, act_problems


def quantize_f32_step(g: Graph, op: Operator) -> Step:
    """QUANTIZE float32 -> int8 (AffineQuantize, TfLiteRound), for an op whose checks passed."""
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    out_scale, out_zp = y.q()
    n = x.size
    scale = repr(float(np.float32(out_scale)))
    return Step(op, "te_quantize_f32_s8", [op.inputs[0]], [op.outputs[0]], {"n": n, "scale": scale, "zp": out_zp},
                {}, 0, None, [f"={n}", f"={scale}f", f"={out_zp}", "in0", "out0"])


def lower_dequantize(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """DEQUANTIZE int8 -> float32: (float)(double(scale) * (v - zero_point))."""
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems = act_problems(g, op, [op.inputs[0]], "input")
    if y.dtype != "FLOAT32":
        problems.append(f"op {op.index} DEQUANTIZE: output is {y.dtype}; tinyedge supports INT8 -> FLOAT32")
    if not problems and x.is_const:
        problems.append(f"op {op.index} DEQUANTIZE: a constant input is not supported")
    if not problems and x.per_channel:
        problems.append(f"op {op.index} DEQUANTIZE: per-channel input quantization is not supported")
    if problems:
        return None, problems
    scale, zp = x.q()
    s = repr(float(np.float32(scale)))
    n = x.size
    return Step(op, "te_dequantize_s8_f32", [op.inputs[0]], [op.outputs[0]], {"n": n, "scale": s, "zp": zp}, {}, 0,
                None, [f"={n}", f"={s}", f"={zp}", "in0", "out0"]), []


def float_boundary_ok(g: Graph, tensor: int) -> bool:
    """A FLOAT32 model input read only by QUANTIZE, or a FLOAT32 model output written by DEQUANTIZE:
    int8 models exported with float I/O; tinyedge runs them (the conversion is part of the model)."""
    t = g.tensor(tensor)
    if t.dtype != "FLOAT32":
        return False
    if tensor in g.inputs:
        readers = [op for op in g.operators if tensor in op.inputs]
        return bool(readers) and all(op.opcode == "QUANTIZE" for op in readers)
    if tensor in g.outputs:
        return any(op.opcode == "DEQUANTIZE" and tensor in op.outputs for op in g.operators)
    return False


def boundary_quantization(program: Program, tensor: int) -> tuple[float, int]:
    """(scale, zero point) of a model input/output; for a float32 boundary, those of the int8 tensor the
    model's QUANTIZE writes (input) or its DEQUANTIZE reads (output)."""
    g = program.graph
    t = g.tensor(tensor)
    if t.is_quantized:
        return t.q()
    for s in program.steps:
        if s.kernel in ("te_quantize_f32_s8", "te_quantize_f32_s16") and tensor in s.inputs:
            return g.tensor(s.outputs[0]).q()
        if s.kernel in ("te_dequantize_s8_f32", "te_dequantize_s16_f32") and tensor in s.outputs:
            return g.tensor(s.inputs[0]).q()
    return 1.0, 0


LOWERINGS: dict[str, LowerFn] = {
    "DEQUANTIZE": lower_dequantize,
}
