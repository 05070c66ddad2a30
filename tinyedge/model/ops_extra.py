"""Lowering of the element-wise, reduction and data-movement ops (beyond conv/FC/pool/softmax).

Each ``_lower_*`` function has the contract of ``program._LOWER``: ``(graph, op) -> (Step | None,
problems)``; the parameters are computed exactly as TFLM's Prepare computes them (the TFLM function
mirrored is named in each docstring). ``EXTRA_LOWER`` is merged into ``program._LOWER`` when
``program`` is imported.

Kernels (``firmware_templates/te_kernels_elementwise.*.j2`` and ``te_kernels_shape.*.j2``):

* int8 -> int8 functions of one input byte (LOGISTIC, TANH, RELU, RELU6, LEAKY_RELU, HARD_SWISH,
  int8 QUANTIZE) become ``te_lut_s8`` with a 256-entry table computed here by ``fixedpoint``
  step by step as the TFLM reference kernel computes each value;
* ADD/SUB/MUL (numpy broadcasting up to 6-D): ``te_binary_s8``; MEAN: ``te_mean_s8``;
* TRANSPOSE and run-time STRIDED_SLICE: ``te_gather_s8``; PAD/PADV2: ``te_pad_s8``;
  CONCATENATION: ``te_concat_s8``;
* QUANTIZE float32 -> int8 (model input) and DEQUANTIZE int8 -> float32 (model output).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from . import fixedpoint as fx
from . import quant
from .graph import Graph, Operator
from .program import Step, _act_problems, _fused

MAX_DIMS = 6  # every shape is padded to 6 dimensions in the C parameter structs
LowerFn = Callable[[Graph, Operator], "tuple[Step | None, list[str]]"]


def _c_array(values) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def _pad6(shape, fill: int = 1) -> list[int]:
    shape = [int(d) for d in shape]
    return [fill] * (MAX_DIMS - len(shape)) + shape


def _strides(shape) -> list[int]:
    """Row-major element strides of a shape."""
    out, acc = [], 1
    for d in reversed(list(shape)):
        out.append(acc)
        acc *= int(d)
    return list(reversed(out))


def _io_problems(g: Graph, op: Operator, inputs: list[int]) -> list[str]:
    return _act_problems(g, op, inputs, "input") + _act_problems(g, op, op.outputs, "output")


def _const_int(g: Graph, op: Operator, k: int, what: str) -> tuple[np.ndarray | None, list[str]]:
    """A constant integer operand (axis, perm, paddings, begin/end/strides)."""
    if len(op.inputs) <= k or op.inputs[k] < 0:
        return None, [f"op {op.index} {op.opcode}: the {what} input is missing"]
    t = g.tensor(op.inputs[k])
    if t.data is None:
        return None, [f"op {op.index} {op.opcode}: the {what} tensor {op.inputs[k]} '{t.name}' is not constant "
                      "(tinyedge needs it known at generation time)"]
    if t.dtype not in ("INT32", "INT64"):
        return None, [f"op {op.index} {op.opcode}: the {what} tensor is {t.dtype}, expected INT32"]
    return np.asarray(t.data).astype(np.int64), []


def _ndim_problem(op: Operator, shape, limit: int = MAX_DIMS) -> list[str]:
    if len(shape) > limit:
        return [f"op {op.index} {op.opcode}: {len(shape)}-D tensors are not supported (at most {limit}-D)"]
    return []


# ---------------------------------------------------------------- element-wise unary ops as tables

def _lut_step(g: Graph, op: Operator, table: np.ndarray) -> Step:
    x = g.tensor(op.inputs[0])
    n = x.size
    return Step(op, "te_lut_s8", [op.inputs[0]], [op.outputs[0]], {"n": n},
                {"lut": np.ascontiguousarray(table, dtype=np.int8)}, 0, None, [f"={n}", "const:lut", "in0", "out0"])


def _unary_checks(g: Graph, op: Operator) -> list[str]:
    problems = _io_problems(g, op, [op.inputs[0]])
    if not problems and g.tensor(op.inputs[0]).is_const:
        problems.append(f"op {op.index} {op.opcode}: a constant input is not supported")
    if not problems and g.tensor(op.inputs[0]).size != g.tensor(op.outputs[0]).size:
        problems.append(f"op {op.index} {op.opcode}: input and output sizes differ")
    return problems


def _lower_logistic_tanh(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """CalculateArithmeticOpDataLogistic / tanh CalculateArithmeticOpData + reference_integer_ops::
    Logistic / Tanh (gemmlowp fixed point, Q4.27 input)."""
    problems = _unary_checks(g, op)
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

    return _lut_step(g, op, fx.int8_table(f)), []


def _lower_relu(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """CalculateReluOpData<int8_t> + ReluQuantized (RELU); Relu6Prepare + Relu6Quantized (RELU6,
    which clamps the raw input to [zero, six] of the *input* quantization, as TFLM does)."""
    problems = _unary_checks(g, op)
    if problems:
        return None, problems
    in_scale, in_zp = g.tensor(op.inputs[0]).q()
    out_scale, out_zp = g.tensor(op.outputs[0]).q()
    if op.opcode == "RELU6":
        six = int(fx.tflite_round(float(np.float32(6.0) / np.float32(in_scale)))) + in_zp
        six = max(-128, min(127, six))
        return _lut_step(g, op, fx.int8_table(lambda v: min(max(v, in_zp), six))), []
    mult, shift = quant.quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    act_min = max(-128, out_zp + int(fx.tflite_round(float(np.float32(0.0) / np.float32(out_scale)))))

    def f(v: int) -> int:
        return min(127, max(act_min, out_zp + fx.mul_by_qm(v - in_zp, mult, shift)))

    return _lut_step(g, op, fx.int8_table(f)), []


def _lower_leaky_relu(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """CalculateOpDataLeakyRelu (scale products in float32) + QuantizeLeakyRelu."""
    problems = _unary_checks(g, op)
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

    return _lut_step(g, op, fx.int8_table(f)), []


def _lower_hard_swish(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """HardSwishPrepare (float32 scale math, int16 multipliers) + reference_ops::HardSwish<int8_t>."""
    problems = _unary_checks(g, op)
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

    return _lut_step(g, op, fx.int8_table(f)), []


def _lower_quantize(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """QUANTIZE: float32 -> int8 (AffineQuantize, TfLiteRound) or int8 -> int8 (Requantize)."""
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems = _act_problems(g, op, op.outputs, "output")
    if x.dtype not in ("FLOAT32", "INT8"):
        problems.append(f"op {op.index} QUANTIZE: input is {x.dtype}; tinyedge supports FLOAT32 -> INT8 and "
                        "INT8 -> INT8")
    elif x.dtype == "INT8":
        problems += _act_problems(g, op, [op.inputs[0]], "input")
    if not problems and x.is_const:
        problems.append(f"op {op.index} QUANTIZE: a constant input is not supported")
    if not problems and y.per_channel:
        problems.append(f"op {op.index} QUANTIZE: per-channel output quantization is not supported (neither is it "
                        "in TFLM)")
    if problems:
        return None, problems
    out_scale, out_zp = y.q()
    n = x.size
    if x.dtype == "FLOAT32":
        scale = repr(float(np.float32(out_scale)))
        return Step(op, "te_quantize_f32_s8", [op.inputs[0]], [op.outputs[0]], {"n": n, "scale": scale, "zp": out_zp},
                    {}, 0, None, [f"={n}", f"={scale}f", f"={out_zp}", "in0", "out0"]), []
    in_scale, in_zp = x.q()
    mult, shift = quant.quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    table = fx.int8_table(lambda v: min(127, max(-128, fx.mul_by_qm(v - in_zp, mult, shift) + out_zp)))
    return _lut_step(g, op, table), []


def _lower_dequantize(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """DEQUANTIZE int8 -> float32: (float)(double(scale) * (v - zero_point))."""
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems = _act_problems(g, op, [op.inputs[0]], "input")
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


# ---------------------------------------------------------------- ADD / SUB / MUL

def _broadcast_strides(shape, out_shape) -> list[int]:
    """Element strides of ``shape`` read at the indices of ``out_shape`` (0 on broadcast dimensions)."""
    s6, o6 = _pad6(shape), _pad6(out_shape)
    st = _strides(s6)
    return [0 if (s6[d] == 1 and o6[d] != 1) else st[d] for d in range(MAX_DIMS)]


def _lower_binary(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """ADD (CalculateOpDataAdd, double), SUB (CalculateOpDataSub, float32), MUL (CalculateOpDataMul) with
    the int8 AddFunc / BroadcastQuantSubSlow / MulElementwise element function, numpy broadcasting."""
    a, b = op.inputs[0], op.inputs[1]
    ta, tb, ty = g.tensor(a), g.tensor(b), g.tensor(op.outputs[0])
    problems = _act_problems(g, op, [a, b], "input") + _act_problems(g, op, op.outputs, "output")
    act, p = _fused(op)
    problems += p
    for t in (ta, tb, ty):
        problems += _ndim_problem(op, t.shape)
    if not problems:
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
                  dims=_c_array(_pad6(out_shape)), stride1=_c_array(_broadcast_strides(ta.shape, out_shape)),
                  stride2=_c_array(_broadcast_strides(tb.shape, out_shape)),
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
            twice_max = np.float32(2) * max(f1, f2)
            r1, r2 = float(np.float32(f1 / twice_max)), float(np.float32(f2 / twice_max))
            ro = float(np.float32(twice_max / np.float32(np.float32(1 << 20) * fo)))
        (m1, sh1), (m2, sh2), (mo, sho) = (quant.quantize_multiplier(r) for r in (r1, r2, ro))
        params.update(in1_mult=m1, in1_shift=sh1, in2_mult=m2, in2_shift=sh2, out_mult=mo, out_shift=sho)
    inputs, consts, args = [], {}, ["params"]
    for k, (i, t) in enumerate(((a, ta), (b, tb))):
        if t.is_const:
            consts[f"in{k}"] = np.ascontiguousarray(t.data, dtype=np.int8).reshape(-1)
            args.append(f"const:in{k}")
        else:
            args.append(f"in{len(inputs)}")
            inputs.append(i)
    return Step(op, "te_binary_s8", inputs, [op.outputs[0]], params, consts, 0, "te_binary_params", args + ["out0"]), []


# ---------------------------------------------------------------- MEAN

def _lower_mean(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """PrepareMeanOrSumHelper + reference_ops::QuantizedMeanOrSum: the int32 sum, less zero point times
    count, through the input/output multiplier with 1/count folded in. (The tflite_micro build tinyedge is
    tested against takes this path for int8 even when input and output share scale and zero point.)"""
    problems = _io_problems(g, op, [op.inputs[0]])
    axis, p = _const_int(g, op, 1, "axis")
    problems += p
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems += _ndim_problem(op, x.shape, 5)
    if problems:
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
    st = _strides(shape)
    outer_dims = [1 if d in axes else shape[d] for d in range(nd)]
    red_dims = [shape[d] if d in axes else 1 for d in range(nd)]
    params = dict(outer_dims=_c_array(_pad6(outer_dims)), outer_strides=_c_array(_pad6(st, 0)),
                  red_dims=_c_array(_pad6(red_dims)), red_strides=_c_array(_pad6(st, 0)),
                  out_size=y.size, count=count, in_zp=zi, out_zp=zo, mult=mult, shift=shift)
    return Step(op, "te_mean_s8", [op.inputs[0]], [op.outputs[0]], params, {}, 0, "te_mean_params",
                ["params", "in0", "out0"]), []


# ---------------------------------------------------------------- data movement

def _gather_step(op: Operator, src: int, dst: int, out_dims, in_strides, base: int) -> Step:
    n = int(np.prod(out_dims)) if len(out_dims) else 1
    params = dict(dims=_c_array(_pad6(out_dims)), strides=_c_array(_pad6(in_strides, 0)), base=base, size=n)
    return Step(op, "te_gather_s8", [src], [dst], params, {}, 0, "te_gather_params", ["params", "in0", "out0"])


def _lower_transpose(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """TRANSPOSE (reference_ops::Transpose): output[i] = input[permuted i]."""
    problems = _io_problems(g, op, [op.inputs[0]])
    perm, p = _const_int(g, op, 1, "perm")
    problems += p
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems += _ndim_problem(op, x.shape)
    if problems:
        return None, problems
    perm = [int(v) + len(x.shape) if v < 0 else int(v) for v in perm.reshape(-1)]
    if sorted(perm) != list(range(len(x.shape))) or [x.shape[d] for d in perm] != list(y.shape):
        return None, [f"op {op.index} TRANSPOSE: permutation {perm} does not map {list(x.shape)} to {list(y.shape)}"]
    st = _strides(x.shape)
    return _gather_step(op, op.inputs[0], op.outputs[0], list(y.shape), [st[d] for d in perm], 0), []


def _slice_axis(begin: int, end: int, stride: int, size: int, begin_mask: bool, end_mask: bool,
                shrink: bool) -> tuple[int, int]:
    """strided_slice::StartForAxis / StopForAxis -> (start, element count)."""
    if size == 0:
        return 0, 0
    start = begin
    if begin_mask:
        start = -(1 << 31) if stride > 0 else (1 << 31) - 1
    if start < 0:
        start += size
    start = min(max(start, 0), size) if stride > 0 else min(max(start, -1), size - 1)
    if shrink:  # one element, whatever the stride's sign (TFLM's loop would copy none for a negative one)
        return start, 1
    else:
        stop = end
        if end_mask:
            stop = (1 << 31) - 1 if stride > 0 else -(1 << 31)
        if stop < 0:
            stop += size
        stop = min(max(stop, 0), size) if stride > 0 else min(max(stop, -1), size - 1)
    count = max(0, math.ceil((stop - start) / stride))
    return start, count


def _lower_strided_slice(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """STRIDED_SLICE on a run-time tensor (StridedSlicePrepare: constant begin/end/strides, at most 4-D;
    ellipsis and new-axis masks are ignored, as TFLM does)."""
    problems = _io_problems(g, op, [op.inputs[0]])
    vals = []
    for k, what in ((1, "begin"), (2, "end"), (3, "strides")):
        v, p = _const_int(g, op, k, what)
        problems += p
        vals.append(v)
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems += _ndim_problem(op, x.shape, 4)
    if problems:
        return None, problems
    begin, end, strides = (v.reshape(-1).tolist() for v in vals)
    o = op.options
    bm, em, sm = int(o.get("beginMask", 0) or 0), int(o.get("endMask", 0) or 0), int(o.get("shrinkAxisMask", 0) or 0)
    nd = len(x.shape)
    if len(begin) != nd or len(end) != nd or len(strides) != nd or any(s == 0 for s in strides):
        return None, [f"op {op.index} STRIDED_SLICE: begin/end/strides must have one non-zero entry per input "
                      f"dimension ({nd})"]
    st = _strides(x.shape)
    base, dims, in_strides, kept = 0, [], [], []
    for d in range(nd):
        start, count = _slice_axis(int(begin[d]), int(end[d]), int(strides[d]), int(x.shape[d]), bool(bm >> d & 1),
                                   bool(em >> d & 1), bool(sm >> d & 1))
        base += start * st[d] if count else 0
        dims.append(count)
        in_strides.append(int(strides[d]) * st[d])
        if not (sm >> d & 1):
            kept.append(count)
    if int(np.prod(dims)) != y.size or kept != [int(v) for v in y.shape]:
        return None, [f"op {op.index} STRIDED_SLICE: the slice gives shape {kept}, the output tensor says "
                      f"{list(y.shape)}"]
    return _gather_step(op, op.inputs[0], op.outputs[0], dims, in_strides, base), []


def _lower_pad(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """PAD / PADV2 (reference_ops::Pad): the pad value is the output zero point, or PADV2's constant."""
    problems = _io_problems(g, op, [op.inputs[0]])
    pads, p = _const_int(g, op, 1, "paddings")
    problems += p
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems += _ndim_problem(op, x.shape, 5)
    pad_value = None
    if not problems:
        pad_value = y.q()[1]
        if op.opcode == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            c = g.tensor(op.inputs[2])
            if c.data is None or c.dtype != "INT8":
                problems.append(f"op {op.index} PADV2: the constant value must be a constant INT8 tensor")
            else:
                pad_value = int(np.asarray(c.data).reshape(-1)[0])
    if problems:
        return None, problems
    pads = pads.reshape(-1, 2)
    if pads.shape[0] != len(x.shape) or (pads < 0).any() or \
            [int(x.shape[d] + pads[d, 0] + pads[d, 1]) for d in range(len(x.shape))] != [int(v) for v in y.shape]:
        return None, [f"op {op.index} {op.opcode}: paddings {pads.tolist()} do not map {list(x.shape)} to "
                      f"{list(y.shape)}"]
    ost = _strides(y.shape)
    base = int(sum(int(pads[d, 0]) * ost[d] for d in range(len(x.shape))))
    params = dict(in_dims=_c_array(_pad6(x.shape)), out_strides=_c_array(_pad6(ost, 0)), base=base,
                  in_size=x.size, out_size=y.size, value=pad_value)
    return Step(op, "te_pad_s8", [op.inputs[0]], [op.outputs[0]], params, {}, 0, "te_pad_params",
                ["params", "in0", "out0"]), []


CONCAT_MAX_INPUTS = 10  # TFLM's kMaxInputNum


def _lower_concat(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """CONCATENATION (reference_ops::Concatenation on int8: bytes are copied, as TFLM does, whatever the
    inputs' quantization; TFLM accepts no fused activation and at most 10 inputs of at most 4-D)."""
    ins = [i for i in op.inputs if i >= 0]
    act_ins = [i for i in ins if not g.tensor(i).is_const]
    problems = _act_problems(g, op, act_ins, "input") + _act_problems(g, op, op.outputs, "output")
    for i in ins:
        if g.tensor(i).is_const and g.tensor(i).dtype != "INT8":
            problems.append(f"op {op.index} CONCATENATION: constant input {i} is {g.tensor(i).dtype}, not INT8")
    act = int(op.options.get("fusedActivationFunction", 0) or 0)
    if act:
        problems.append(f"op {op.index} CONCATENATION: fused activation {quant.ACTIVATIONS.get(act, act)} is not "
                        "supported (TFLM accepts none)")
    if len(ins) > CONCAT_MAX_INPUTS:
        problems.append(f"op {op.index} CONCATENATION: {len(ins)} inputs (at most {CONCAT_MAX_INPUTS})")
    y = g.tensor(op.outputs[0])
    problems += _ndim_problem(op, y.shape, 4)
    if problems:
        return None, problems
    nd = len(y.shape)
    axis = int(op.options.get("axis", 0) or 0)
    axis = axis + nd if axis < 0 else axis
    shapes = [list(g.tensor(i).shape) for i in ins]
    rest = list(y.shape[:axis]) + list(y.shape[axis + 1:])
    if not 0 <= axis < nd or any(len(s) != nd or s[:axis] + s[axis + 1:] != rest for s in shapes) \
            or sum(s[axis] for s in shapes) != y.shape[axis]:
        return None, [f"op {op.index} CONCATENATION: inputs {shapes} do not concatenate to {list(y.shape)} "
                      f"on axis {axis}"]
    outer = int(np.prod(y.shape[:axis])) if axis else 1
    inner = int(np.prod(y.shape[axis + 1:])) if axis + 1 < nd else 1
    chunks = [s[axis] * inner for s in shapes] + [0] * (CONCAT_MAX_INPUTS - len(shapes))
    params = dict(outer=outer, count=len(ins), chunk=_c_array(chunks))
    inputs, consts, args = [], {}, ["params", "out0"]
    for k, i in enumerate(ins):
        if g.tensor(i).is_const:
            consts[f"in{k}"] = np.ascontiguousarray(g.tensor(i).data, dtype=np.int8).reshape(-1)
            args.append(f"const:in{k}")
        else:
            args.append(f"in{len(inputs)}")
            inputs.append(i)
    args += ["=0"] * (CONCAT_MAX_INPUTS - len(ins))
    return Step(op, "te_concat_s8", inputs, [op.outputs[0]], params, consts, 0, "te_concat_params", args), []


EXTRA_LOWER: dict[str, LowerFn] = {
    "ADD": _lower_binary,
    "SUB": _lower_binary,
    "MUL": _lower_binary,
    "LOGISTIC": _lower_logistic_tanh,
    "TANH": _lower_logistic_tanh,
    "RELU": _lower_relu,
    "RELU6": _lower_relu,
    "LEAKY_RELU": _lower_leaky_relu,
    "HARD_SWISH": _lower_hard_swish,
    "PAD": _lower_pad,
    "PADV2": _lower_pad,
    "MEAN": _lower_mean,
    "CONCATENATION": _lower_concat,
    "TRANSPOSE": _lower_transpose,
    "STRIDED_SLICE": _lower_strided_slice,
    "QUANTIZE": _lower_quantize,
    "DEQUANTIZE": _lower_dequantize,
}


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


__all__ = ["EXTRA_LOWER", "float_boundary_ok"]


def boundary_quantization(program, tensor: int) -> tuple[float, int]:
    """(scale, zero point) of a model input/output; for a float32 boundary, those of the int8 tensor the
    model's QUANTIZE writes (input) or its DEQUANTIZE reads (output)."""
    g = program.graph
    t = g.tensor(tensor)
    if t.is_quantized:
        return t.q()
    for s in program.steps:
        if s.kernel == "te_quantize_f32_s8" and tensor in s.inputs:
            return g.tensor(s.outputs[0]).q()
        if s.kernel == "te_dequantize_s8_f32" and tensor in s.outputs:
            return g.tensor(s.inputs[0]).q()
    return 1.0, 0
