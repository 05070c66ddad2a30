"""Element-wise and reduction ops; parameters computed exactly as TFLM's Prepare computes them (the TFLM
function mirrored is named in each docstring).

Kernels (``tinyedge/runtime/te_kernels_elementwise.c``):

* int8 -> int8 functions of one input byte (LOGISTIC, TANH, RELU, RELU6, LEAKY_RELU, HARD_SWISH,
  int8 QUANTIZE) become ``te_lut_s8`` with a 256-entry table computed here by ``fixedpoint``
  step by step as the TFLM reference kernel computes each value;
* ADD/SUB/MUL (numpy broadcasting up to 6-D): ``te_binary_s8``; MEAN: ``te_mean_s8``.

QUANTIZE of a float32 input (the model boundary) is lowered by ``boundary.quantize_f32_step``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .. import fixedpoint as fx
from .. import quant
from ..graph import Graph, Operator
from ..ir import LowerFn, Step, act_problems, fused_activation
from .boundary import quantize_f32_step
from .common import MAX_DIMS, c_array, const_int, io_problems, ndim_problem, pad6, strides

# ---------------------------------------------------------------- element-wise unary ops as tables

def lut_step(g: Graph, op: Operator, table: npt.NDArray[Any]) -> Step:
    """A ``te_lut_s8`` call mapping every input byte through ``table`` (256 int8 entries)."""
    x = g.tensor(op.inputs[0])
    n = x.size
    return Step(op, "te_lut_s8", [op.inputs[0]], [op.outputs[0]], {"n": n},
                {"lut": np.ascontiguousarray(table, dtype=np.int8)}, 0, None, [f"={n}", "const:lut", "in0", "out0"])


def unary_checks(g: Graph, op: Operator) -> list[str]:
    """Problems of a one-input int8 op: types, a constant input, input and output sizes."""
    problems = io_problems(g, op, [op.inputs[0]])
    if not problems and g.tensor(op.inputs[0]).is_const:
        problems.append(f"op {op.index} {op.opcode}: a constant input is not supported")
    if not problems and g.tensor(op.inputs[0]).size != g.tensor(op.outputs[0]).size:
        problems.append(f"op {op.index} {op.opcode}: input and output sizes differ")
    return problems


def lower_logistic_tanh(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """CalculateArithmeticOpDataLogistic / tanh CalculateArithmeticOpData + reference_integer_ops::
    Logistic / Tanh (gemmlowp fixed point, Q4.27 input)."""
    problems = unary_checks(g, op)
    if problems:
        return None, problems
    in_scale, in_zp = g.tensor(op.inputs[0]).q()
    out_scale, out_zp = g.tensor(op.outputs[0]).q()
    logistic = op.opcode == "LOGISTIC"
    if logistic and out_zp != -128:
        return None, [f"op {op.index} LOGISTIC: int8 output must have zero point -128 (has {out_zp}), as TFLM requires"]
    real = float(np.float32(in_scale)) * float(1 << (31 - 4))
    mult, left_shift = fx.frexp_multiplier(real)
    radius = fx.calculate_input_radius(4, left_shift, 31)

    def f(v: int) -> int:
        d = v - in_zp
        if d <= -radius:
            return -128
        if d >= radius:
            return 127
        q4 = fx.mul_by_qm(d, mult, left_shift)
        if logistic:
            return max(-128, min(127, fx.rdivpot(fx.logistic_q4(q4), 31 - 8) - 128))
        return max(-128, min(127, fx.rdivpot(fx.tanh_q4(q4), 31 - 7)))

    return lut_step(g, op, fx.int8_table(f)), []


def lower_relu(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """CalculateReluOpData<int8_t> + ReluQuantized (RELU); Relu6Prepare + Relu6Quantized (RELU6,
    which clamps the raw input to [zero, six] of the *input* quantization, as TFLM does)."""
    problems = unary_checks(g, op)
    if problems:
        return None, problems
    in_scale, in_zp = g.tensor(op.inputs[0]).q()
    out_scale, out_zp = g.tensor(op.outputs[0]).q()
    if op.opcode == "RELU6":
        six = int(fx.tflite_round(float(np.float32(6.0) / np.float32(in_scale)))) + in_zp
        six = max(-128, min(127, six))
        return lut_step(g, op, fx.int8_table(lambda v: min(max(v, in_zp), six))), []
    mult, shift = quant.quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    act_min = max(-128, out_zp + int(fx.tflite_round(float(np.float32(0.0) / np.float32(out_scale)))))

    def f(v: int) -> int:
        return min(127, max(act_min, out_zp + fx.mul_by_qm(v - in_zp, mult, shift)))

    return lut_step(g, op, fx.int8_table(f)), []


def lower_leaky_relu(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """CalculateOpDataLeakyRelu (scale products in float32) + QuantizeLeakyRelu."""
    problems = unary_checks(g, op)
    if problems:
        return None, problems
    in_scale, in_zp = g.tensor(op.inputs[0]).q()
    out_scale, out_zp = g.tensor(op.outputs[0]).q()
    alpha = np.float32(op.options.get("alpha", 0.0) or 0.0)
    si, so = np.float32(in_scale), np.float32(out_scale)
    m_alpha, s_alpha = quant.quantize_multiplier(float(np.float32(np.float32(si * alpha) / so)))
    m_id, s_id = quant.quantize_multiplier(float(np.float32(si / so)))

    def f(v: int) -> int:
        d = v - in_zp
        r = out_zp + (fx.mul_by_qm(d, m_id, s_id) if d >= 0 else fx.mul_by_qm(d, m_alpha, s_alpha))
        return min(127, max(-128, r))

    return lut_step(g, op, fx.int8_table(f)), []


def lower_hard_swish(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """HardSwishPrepare (float32 scale math, int16 multipliers) + reference_ops::HardSwish<int8_t>."""
    problems = unary_checks(g, op)
    if problems:
        return None, problems
    in_scale, in_zp = g.tensor(op.inputs[0]).q()
    out_scale, out_zp = g.tensor(op.outputs[0]).q()
    hires = np.float32(1.0 / 128.0) * np.float32(in_scale)
    reluish_scale = np.float32(3.0) / np.float32(32768.0)
    m32, out_exp = quant.quantize_multiplier(float(np.float32(hires / np.float32(out_scale))))
    out_m16 = fx.downscale_int32_to_int16_multiplier(m32)
    if out_exp > 0:
        return None, [f"op {op.index} HARD_SWISH: output scale {out_scale:g} is too small for the input scale "
                      f"{in_scale:g} (TFLM requires a non-positive output multiplier exponent)"]
    r32, r_exp = quant.quantize_multiplier(float(np.float32(hires / reluish_scale)))
    r_m16 = fx.downscale_int32_to_int16_multiplier(r32)

    def f(v: int) -> int:
        x = fx.wrap16(v - in_zp)
        hires_v = fx.wrap16(x * (1 << 7))
        preshift = fx.srdhm16(hires_v, out_m16)
        reluish = hires_v
        if r_exp > 0:
            reluish = fx.sat_left_shift16(reluish, r_exp - 1)
        reluish = fx.srdhm16(reluish, r_m16)
        if r_exp > 0:
            reluish = fx.sat_left_shift16(reluish, 1)
        if r_exp < 0:
            reluish = fx.rdivpot(reluish, -r_exp)
        reluish = fx.wrap16((reluish + (1 << 15)) >> 1)
        pre_out = fx.sat_doubling_high_mul16(reluish, preshift)
        out = fx.wrap16(fx.rdivpot(pre_out, -out_exp) + out_zp)
        return min(127, max(-128, out))

    return lut_step(g, op, fx.int8_table(f)), []


def lower_quantize(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """QUANTIZE: int8 -> int8 (Requantize, as a table) or float32 -> int8 (``boundary.quantize_f32_step``)."""
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems = act_problems(g, op, op.outputs, "output")
    if x.dtype not in ("FLOAT32", "INT8"):
        problems.append(f"op {op.index} QUANTIZE: input is {x.dtype}; tinyedge supports FLOAT32 -> INT8 and "
                        "INT8 -> INT8")
    elif x.dtype == "INT8":
        problems += act_problems(g, op, [op.inputs[0]], "input")
    if not problems and x.is_const:
        problems.append(f"op {op.index} QUANTIZE: a constant input is not supported")
    if not problems and y.per_channel:
        problems.append(f"op {op.index} QUANTIZE: per-channel output quantization is not supported (neither is it "
                        "in TFLM)")
    if problems:
        return None, problems
    if x.dtype == "FLOAT32":
        return quantize_f32_step(g, op), []
    out_scale, out_zp = y.q()
    in_scale, in_zp = x.q()
    mult, shift = quant.quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    table = fx.int8_table(lambda v: min(127, max(-128, fx.mul_by_qm(v - in_zp, mult, shift) + out_zp)))
    return lut_step(g, op, table), []


# ---------------------------------------------------------------- ADD / SUB / MUL

def broadcast_strides(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[int]:
    """Element strides of ``shape`` read at the indices of ``out_shape`` (0 on broadcast dimensions)."""
    s6, o6 = pad6(shape), pad6(out_shape)
    st = strides(s6)
    return [0 if (s6[d] == 1 and o6[d] != 1) else st[d] for d in range(MAX_DIMS)]


def lower_binary(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """ADD (CalculateOpDataAdd, double), SUB (CalculateOpDataSub, float32), MUL (CalculateOpDataMul) with
    the int8 AddFunc / BroadcastQuantSubSlow / MulElementwise element function, numpy broadcasting."""
    a, b = op.inputs[0], op.inputs[1]
    ta, tb, ty = g.tensor(a), g.tensor(b), g.tensor(op.outputs[0])
    problems = act_problems(g, op, [a, b], "input") + act_problems(g, op, op.outputs, "output")
    act, p = fused_activation(op)
    problems += p
    for t in (ta, tb, ty):
        problems += ndim_problem(op, t.shape)
    if not problems:
        bshape: tuple[int, ...] | None
        try:
            bshape = tuple(np.broadcast_shapes(tuple(ta.shape), tuple(tb.shape)))
        except ValueError:
            bshape = None
        if bshape is None or int(np.prod(bshape)) != ty.size:
            problems.append(f"op {op.index} {op.opcode}: shapes {list(ta.shape)} and {list(tb.shape)} do not broadcast "
                            f"to the output shape {list(ty.shape)}")
    if not problems and ta.is_const and tb.is_const:
        problems.append(f"op {op.index} {op.opcode}: both inputs are constant (the converter folds such ops)")
    if problems:
        return None, problems
    (s1, z1), (s2, z2), (so, zo) = ta.q(), tb.q(), ty.q()
    amin, amax = quant.activation_range(act, so, zo)
    out_shape = tuple(np.broadcast_shapes(tuple(ta.shape), tuple(tb.shape)))
    params = dict(op={"ADD": 0, "SUB": 1, "MUL": 2}[op.opcode], size=ty.size,
                  broadcast=int(tuple(ta.shape) != tuple(tb.shape)),
                  dims=c_array(pad6(out_shape)), stride1=c_array(broadcast_strides(ta.shape, out_shape)),
                  stride2=c_array(broadcast_strides(tb.shape, out_shape)),
                  in1_offset=-z1, in2_offset=-z2, out_offset=zo, left_shift=20,
                  in1_mult=0, in1_shift=0, in2_mult=0, in2_shift=0, out_mult=0, out_shift=0,
                  act_min=amin, act_max=amax)
    if op.opcode == "MUL":
        m, s = quant.quantize_multiplier(float(np.float32(s1)) * float(np.float32(s2)) / float(np.float32(so)))
        params.update(out_mult=m, out_shift=s, left_shift=0)
    else:
        if op.opcode == "ADD":
            twice_max = 2 * max(float(np.float32(s1)), float(np.float32(s2)))
            r1, r2 = float(np.float32(s1)) / twice_max, float(np.float32(s2)) / twice_max
            ro = twice_max / ((1 << 20) * float(np.float32(so)))
        else:
            f1, f2, fo = np.float32(s1), np.float32(s2), np.float32(so)
            twice_max32 = np.float32(2) * max(f1, f2)
            r1, r2 = float(np.float32(f1 / twice_max32)), float(np.float32(f2 / twice_max32))
            ro = float(np.float32(twice_max32 / np.float32(np.float32(1 << 20) * fo)))
        (m1, sh1), (m2, sh2), (mo, sho) = (quant.quantize_multiplier(r) for r in (r1, r2, ro))
        params.update(in1_mult=m1, in1_shift=sh1, in2_mult=m2, in2_shift=sh2, out_mult=mo, out_shift=sho)
    inputs: list[int] = []
    consts: dict[str, npt.NDArray[Any]] = {}
    args = ["params"]
    for k, (i, t) in enumerate(((a, ta), (b, tb))):
        if t.is_const:
            consts[f"in{k}"] = np.ascontiguousarray(t.data, dtype=np.int8).reshape(-1)
            args.append(f"const:in{k}")
        else:
            args.append(f"in{len(inputs)}")
            inputs.append(i)
    return Step(op, "te_binary_s8", inputs, [op.outputs[0]], params, consts, 0, "te_binary_params", args + ["out0"]), []


# ---------------------------------------------------------------- MEAN

def lower_mean(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """PrepareMeanOrSumHelper + reference_ops::QuantizedMeanOrSum: the int32 sum, less zero point times
    count, through the input/output multiplier with 1/count folded in. (The tflite_micro build tinyedge is
    tested against takes this path for int8 even when input and output share scale and zero point.)"""
    problems = io_problems(g, op, [op.inputs[0]])
    axis, p = const_int(g, op, 1, "axis")
    problems += p
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems += ndim_problem(op, x.shape, 5)
    if problems or axis is None:
        return None, problems
    nd = len(x.shape)
    axes: list[int] = []
    for v in axis.reshape(-1).tolist():
        a = v + nd if v < 0 else v
        if not 0 <= a < nd:
            return None, [f"op {op.index} MEAN: axis {v} is out of range for a {nd}-D input"]
        if a not in axes:
            axes.append(a)
    if len(axes) > 2:
        return None, [f"op {op.index} MEAN: reducing {len(axes)} axes at once is not supported "
                      "(TFLM reduces at most 2)"]
    count = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    if count == 0 or y.size != x.size // max(count, 1):
        return None, [f"op {op.index} MEAN: output shape {list(y.shape)} does not match the reduction"]
    (si, zi), (so, zo) = x.q(), y.q()
    mult, shift = quant.quantize_multiplier(float(np.float32(si)) / float(np.float32(so)))
    s = count.bit_length() - 1  # 63 - CountLeadingZeros(uint64 count)
    s = min(s, 32, 31 + shift)
    mult = int((mult << s) // count)
    shift -= s
    shape = list(x.shape)
    st = strides(shape)
    outer_dims = [1 if d in axes else shape[d] for d in range(nd)]
    red_dims = [shape[d] if d in axes else 1 for d in range(nd)]
    params = dict(outer_dims=c_array(pad6(outer_dims)), outer_strides=c_array(pad6(st, 0)),
                  red_dims=c_array(pad6(red_dims)), red_strides=c_array(pad6(st, 0)),
                  out_size=y.size, count=count, in_zp=zi, out_zp=zo, mult=mult, shift=shift)
    return Step(op, "te_mean_s8", [op.inputs[0]], [op.outputs[0]], params, {}, 0, "te_mean_params",
                ["params", "in0", "out0"]), []


LOWERINGS: dict[str, LowerFn] = {
    "ADD": lower_binary,
    "SUB": lower_binary,
    "MUL": lower_binary,
    "LOGISTIC": lower_logistic_tanh,
    "TANH": lower_logistic_tanh,
    "RELU": lower_relu,
    "RELU6": lower_relu,
    "LEAKY_RELU": lower_leaky_relu,
    "HARD_SWISH": lower_hard_swish,
    "MEAN": lower_mean,
    "QUANTIZE": lower_quantize,
}
