"""int16x8: 16-bit activations (zero point 0), 8-bit symmetric weights, 64-bit biases (TFLite's
``EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8``), and the QUANTIZE/DEQUANTIZE ops that move
between int16 and int8 or float32 (mixed-precision models: int8 layers with some layers at 16 bits).

``program.build_program`` sends every op that reads or writes an INT16 tensor here (``lower_int16``)
instead of the int8 lowering of its family; ops without an int16 kernel get one problem naming the op and
what to try. Parameters are those of TFLM's Prepare (the same multipliers as int8; activation ranges
over the int16 range). Kernels: ``tinyedge/runtime/te_kernels_s16.c``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import fixedpoint as fx
from .. import quant
from ..graph import Graph, Operator
from ..ir import LowerFn, Step, fused_activation
from .common import (
    bias_problem,
    c_array,
    channel_scale_problem,
    ndim_problem,
    pad6,
    rank_problem,
    window_problems,
)
from .elementwise import broadcast_strides

S16_MIN, S16_MAX = -32768, 32767
#: TFLM's int64 MultiplyByQuantizedMultiplier asserts |x| < 2^47; biases far below keep every sum there.
BIAS_LIMIT = 1 << 40
#: Weighted kernels' arguments (no weight sums: int16x8 inputs have zero point 0).
S16_WEIGHTED_ARGS = ["params", "in0", "const:filter", "const:bias", "const:mult", "const:shift", "out0"]


def is_int16(g: Graph, op: Operator) -> bool:
    """True when ``op`` reads or writes an INT16 tensor (it is then lowered by :func:`lower_int16`)."""
    return any(i >= 0 and g.tensor(i).dtype == "INT16" for i in list(op.inputs) + list(op.outputs))


def s16_problems(g: Graph, op: Operator, idx: list[int], what: str, *, zero_zp: bool = True) -> list[str]:
    """Why the tensors ``idx`` are not per-tensor quantized INT16 (with zero point 0 when ``zero_zp``)."""
    out = []
    for i in idx:
        t = g.tensor(i)
        if t.dtype != "INT16":
            out.append(f"op {op.index} {op.opcode}: {what} tensor {i} '{t.name}' is {t.dtype}; the int16x8 kernel "
                       "takes INT16 (keep the whole layer at 16 bits, or all of it at 8)")
        elif not t.is_quantized:
            out.append(f"op {op.index} {op.opcode}: {what} tensor {i} '{t.name}' has no quantization parameters")
        elif t.per_channel:
            out.append(f"op {op.index} {op.opcode}: {what} tensor {i} '{t.name}' is quantized per channel")
        elif zero_zp and t.q()[1] != 0:
            out.append(f"op {op.index} {op.opcode}: {what} tensor {i} '{t.name}' has zero point {t.q()[1]}; int16x8 "
                       "activations have zero point 0 (as TFLM requires)")
    return out


def _io(g: Graph, op: Operator, inputs: list[int], *, zero_zp: bool = True) -> list[str]:
    return (s16_problems(g, op, inputs, "input", zero_zp=zero_zp)
            + s16_problems(g, op, list(op.outputs), "output", zero_zp=zero_zp))


def _weights(g: Graph, op: Operator) -> tuple[list[str], Any, Any]:
    """Problems of the int8 weights (input 1, symmetric) and the optional int64 bias (input 2)."""
    problems = []
    w = g.tensor(op.inputs[1])
    if not w.is_const or w.dtype != "INT8" or not w.is_quantized:
        problems.append(f"op {op.index} {op.opcode}: int16x8 weights must be a constant quantized INT8 tensor "
                        f"(tensor {op.inputs[1]} is {'constant ' if w.is_const else ''}{w.dtype})")
    elif w.zero_point is not None and np.any(w.zero_point != 0):
        problems.append(f"op {op.index} {op.opcode}: int16x8 weights must be symmetric (zero point 0)")
    b = None
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = g.tensor(op.inputs[2])
        if not b.is_const or b.dtype != "INT64":
            problems.append(f"op {op.index} {op.opcode}: the int16x8 bias must be a constant INT64 tensor (it is "
                            f"{b.dtype}); convert with the int16x8 converter, which writes int64 biases")
        elif b.data is not None and b.size and int(np.abs(b.data.astype(np.int64)).max()) >= BIAS_LIMIT:
            problems.append(f"op {op.index} {op.opcode}: a bias value exceeds 2^40 (TFLM's int64 requantization "
                            "needs every sum below 2^47)")
    return problems, w, b


def _bias_const(b: Any) -> dict[str, npt.NDArray[Any]]:
    return {} if b is None else {"bias": np.ascontiguousarray(b.data, dtype=np.int64).reshape(-1)}


def lower_conv_s16(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """CONV_2D / DEPTHWISE_CONV_2D int16x8 (reference_integer_ops::ConvPerChannel / DepthwiseConvPerChannel
    with int16 data and int64 bias): ``te_conv2d_s16`` / ``te_dwconv2d_s16``."""
    depthwise = op.opcode == "DEPTHWISE_CONV_2D"
    problems = _io(g, op, [op.inputs[0]])
    p2, w, b = _weights(g, op)
    act, p3 = fused_activation(op)
    problems += p2 + p3
    if not problems:
        problems += rank_problem(g, op, [op.inputs[0], op.inputs[1], op.outputs[0]], 4)
    if not {"padding", "strideH", "strideW"} <= set(op.options):
        problems.append(f"op {op.index} {op.opcode}: its options (strides, padding) are missing or belong to "
                        "another op type")
    if problems:
        return None, problems
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    n, ih, iw, ic = x.shape
    yn, oh, ow, oc = y.shape
    if depthwise:
        w1, kh, kw, wc = w.shape
        dm = oc // ic if ic and oc % ic == 0 else 1
        if "depthMultiplier" in op.options and int(op.options["depthMultiplier"] or 0) != dm:
            problems.append(f"op {op.index} {op.opcode}: depth_multiplier {op.options['depthMultiplier']} does not "
                            f"match {ic} input and {oc} output channels (expected {dm})")
        if w1 != 1 or wc != oc or oc % ic:
            problems.append(f"op {op.index} {op.opcode}: filter {list(w.shape)} does not map {ic} input channels to "
                            f"{oc} output channels")
    else:
        wc, kh, kw, w_ic = w.shape
        dm = 1
        if wc != oc or w_ic != ic:
            problems.append(f"op {op.index} {op.opcode}: filter {list(w.shape)} does not map {ic} input channels to "
                            f"{oc} output channels (grouped convolution is not supported)")
    if yn != n:
        problems.append(f"op {op.index} {op.opcode}: input batch {n} and output batch {yn} differ")
    o = op.options
    sh, sw = int(o.get("strideH", 1)), int(o.get("strideW", 1))
    dh, dw = int(o.get("dilationHFactor", 1) or 1), int(o.get("dilationWFactor", 1) or 1)
    problems += window_problems(op, "filter", (ih, iw), (kh, kw), (oh, ow), (sh, sw), (dh, dw))
    problems += channel_scale_problem(op, w, oc, 3 if depthwise else 0) + bias_problem(op, b, oc)
    if problems:
        return None, problems
    mults, shifts = quant.conv_multipliers(x.q()[0], w.scale, y.q()[0], oc)
    amin, amax = quant.activation_range(act, y.q()[0], 0, S16_MIN, S16_MAX)
    params = dict(
        batches=n, in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw,
        stride_h=sh, stride_w=sw, dil_h=dh, dil_w=dw,
        pad_h=quant.compute_padding(sh, dh, ih, kh, oh), pad_w=quant.compute_padding(sw, dw, iw, kw, ow),
        depth_mult=dm, in_offset=0, out_offset=0, act_min=amin, act_max=amax,
    )
    consts: dict[str, npt.NDArray[Any]] = {"filter": np.ascontiguousarray(w.data, dtype=np.int8), **_bias_const(b),
                                           "mult": np.asarray(mults, dtype=np.int32),
                                           "shift": np.asarray(shifts, dtype=np.int32)}
    macs = n * oh * ow * oc * kh * kw * (1 if depthwise else ic)
    kernel = "te_dwconv2d_s16" if depthwise else "te_conv2d_s16"
    return Step(op, kernel, [op.inputs[0]], [op.outputs[0]], params, consts, macs, "te_conv_params",
                S16_WEIGHTED_ARGS), []


def lower_fc_s16(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """FULLY_CONNECTED int16x8 (reference_integer_ops::FullyConnected with int16 data, int64 bias):
    ``te_fc_s16``, per-tensor or per-channel multipliers."""
    problems = _io(g, op, [op.inputs[0]])
    p2, w, b = _weights(g, op)
    act, p3 = fused_activation(op)
    problems += p2 + p3
    if int(op.options.get("weightsFormat", 0) or 0) != 0:
        problems.append(f"op {op.index} FULLY_CONNECTED: shuffled weights format is not supported")
    if problems:
        return None, problems
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if len(w.shape) != 2:
        return None, [f"op {op.index} FULLY_CONNECTED: weights have shape {list(w.shape)}; 2-D expected"]
    out_depth, in_depth = w.shape
    batches = x.size // in_depth
    problems += channel_scale_problem(op, w, out_depth, 0, "weights") + bias_problem(op, b, out_depth)
    if x.size % in_depth or y.size != batches * out_depth:
        problems.append(f"op {op.index} FULLY_CONNECTED: input {list(x.shape)}, weights {list(w.shape)} and output "
                        f"{list(y.shape)} do not agree")
    if problems:
        return None, problems
    in_scale, out_scale = x.q()[0], y.q()[0]
    if w.per_channel:
        mults, shifts = quant.conv_multipliers(in_scale, w.scale, out_scale, out_depth)
    else:
        m, s = quant.fc_multiplier_per_tensor(in_scale, float(w.scale[0]), out_scale)
        mults, shifts = [m], [s]
    amin, amax = quant.activation_range(act, out_scale, 0, S16_MIN, S16_MAX)
    params = dict(batches=batches, in_depth=in_depth, out_depth=out_depth, in_offset=0, filter_offset=0,
                  out_offset=0, act_min=amin, act_max=amax, per_channel=int(w.per_channel))
    consts: dict[str, npt.NDArray[Any]] = {"filter": np.ascontiguousarray(w.data, dtype=np.int8), **_bias_const(b),
                                           "mult": np.asarray(mults, dtype=np.int32),
                                           "shift": np.asarray(shifts, dtype=np.int32)}
    return Step(op, "te_fc_s16", [op.inputs[0]], [op.outputs[0]], params, consts, batches * in_depth * out_depth,
                "te_fc_params", S16_WEIGHTED_ARGS), []


def lower_pool_s16(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """MAX_POOL_2D / AVERAGE_POOL_2D on int16 (reference_integer_ops::MaxPool / AveragePool, int16)."""
    problems = _io(g, op, [op.inputs[0]])
    act, p3 = fused_activation(op)
    problems += p3 + rank_problem(g, op, [op.inputs[0], op.outputs[0]], 4)
    if not {"filterHeight", "filterWidth", "strideH", "strideW", "padding"} <= set(op.options):
        problems.append(f"op {op.index} {op.opcode}: its options (filter size, strides, padding) are missing or "
                        "belong to another op type")
    if problems:
        return None, problems
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    n, ih, iw, c = x.shape
    yn, oh, ow, yc = y.shape
    o = op.options
    kh, kw = int(o["filterHeight"]), int(o["filterWidth"])
    sh, sw = int(o.get("strideH", 1)), int(o.get("strideW", 1))
    problems += window_problems(op, "window", (ih, iw), (kh, kw), (oh, ow), (sh, sw))
    if (yn, yc) != (n, c):
        problems.append(f"op {op.index} {op.opcode}: input {list(x.shape)} and output {list(y.shape)} differ in "
                        "batch or channels")
    if problems:
        return None, problems
    amin, amax = quant.activation_range(act, y.q()[0], 0, S16_MIN, S16_MAX)
    params = dict(batches=n, in_h=ih, in_w=iw, ch=c, out_h=oh, out_w=ow, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw,
                  pad_h=quant.compute_padding(sh, 1, ih, kh, oh), pad_w=quant.compute_padding(sw, 1, iw, kw, ow),
                  act_min=amin, act_max=amax)
    kernel = "te_maxpool_s16" if op.opcode == "MAX_POOL_2D" else "te_avgpool_s16"
    return Step(op, kernel, [op.inputs[0]], [op.outputs[0]], params, {}, 0, "te_pool_params",
                ["params", "in0", "out0"]), []


def lower_add_s16(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """ADD on int16 (CalculateOpDataAdd with left_shift 15, reference_ops::Add / BroadcastAdd, int16):
    ``te_binary_s16``, numpy broadcasting up to 4-D."""
    a, b = op.inputs[0], op.inputs[1]
    ta, tb, ty = g.tensor(a), g.tensor(b), g.tensor(op.outputs[0])
    problems = _io(g, op, [a, b])
    act, p = fused_activation(op)
    problems += p
    for t in (ta, tb, ty):
        problems += ndim_problem(op, t.shape, 4)
    if not problems:
        try:
            bshape: tuple[int, ...] | None = tuple(np.broadcast_shapes(tuple(ta.shape), tuple(tb.shape)))
        except ValueError:
            bshape = None
        if bshape is None or int(np.prod(bshape)) != ty.size:
            problems.append(f"op {op.index} ADD: shapes {list(ta.shape)} and {list(tb.shape)} do not broadcast to "
                            f"the output shape {list(ty.shape)}")
    if not problems and ta.is_const and tb.is_const:
        problems.append(f"op {op.index} ADD: both inputs are constant (the converter folds such ops)")
    if problems:
        return None, problems
    (s1, _), (s2, _), (so, _) = ta.q(), tb.q(), ty.q()
    amin, amax = quant.activation_range(act, so, 0, S16_MIN, S16_MAX)
    out_shape = tuple(np.broadcast_shapes(tuple(ta.shape), tuple(tb.shape)))
    left_shift = 15
    twice_max = 2 * max(float(np.float32(s1)), float(np.float32(s2)))
    r1, r2 = float(np.float32(s1)) / twice_max, float(np.float32(s2)) / twice_max
    ro = twice_max / ((1 << left_shift) * float(np.float32(so)))
    (m1, sh1), (m2, sh2), (mo, sho) = (quant.quantize_multiplier(r) for r in (r1, r2, ro))
    params = dict(op=0, size=ty.size, broadcast=int(tuple(ta.shape) != tuple(tb.shape)),
                  dims=c_array(pad6(out_shape)), stride1=c_array(broadcast_strides(ta.shape, out_shape)),
                  stride2=c_array(broadcast_strides(tb.shape, out_shape)),
                  in1_offset=0, in2_offset=0, out_offset=0, left_shift=left_shift,
                  in1_mult=m1, in1_shift=sh1, in2_mult=m2, in2_shift=sh2, out_mult=mo, out_shift=sho,
                  act_min=amin, act_max=amax)
    inputs: list[int] = []
    consts: dict[str, npt.NDArray[Any]] = {}
    args = ["params"]
    for k, (i, t) in enumerate(((a, ta), (b, tb))):
        if t.is_const:
            consts[f"in{k}"] = np.ascontiguousarray(t.data, dtype=np.int16).reshape(-1)
            args.append(f"const:in{k}")
        else:
            args.append(f"in{len(inputs)}")
            inputs.append(i)
    return Step(op, "te_binary_s16", inputs, [op.outputs[0]], params, consts, 0, "te_binary_params",
                args + ["out0"]), []


def lower_quantize_s16(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """QUANTIZE with an int16 side (PrepareQuantizeReference + AffineQuantize / Requantize): float32 -> int16,
    int8 -> int16 (a 256-entry table), int16 -> int8 and int16 -> int16."""
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    pairs = {("FLOAT32", "INT16"), ("INT8", "INT16"), ("INT16", "INT8"), ("INT16", "INT16")}
    if (x.dtype, y.dtype) not in pairs:
        return None, [f"op {op.index} QUANTIZE: {x.dtype} -> {y.dtype} is not supported (tinyedge converts "
                      "FLOAT32/INT8 -> INT16, INT16 -> INT8/INT16)"]
    problems = []
    for t, what in ((x, "input"), (y, "output")):
        if t.dtype == "FLOAT32":
            continue
        if not t.is_quantized:
            problems.append(f"op {op.index} QUANTIZE: the {what} tensor '{t.name}' has no quantization parameters")
        elif t.per_channel:
            problems.append(f"op {op.index} QUANTIZE: per-channel {what} quantization is not supported (neither is "
                            "it in TFLM)")
    if not problems and x.is_const:
        problems.append(f"op {op.index} QUANTIZE: a constant input is not supported")
    if problems:
        return None, problems
    n = x.size
    out_scale, out_zp = y.q()
    if x.dtype == "FLOAT32":
        scale = repr(float(np.float32(out_scale)))
        return Step(op, "te_quantize_f32_s16", [op.inputs[0]], [op.outputs[0]], {"n": n, "scale": scale, "zp": out_zp},
                    {}, 0, None, [f"={n}", f"={scale}f", f"={out_zp}", "in0", "out0"]), []
    in_scale, in_zp = x.q()
    mult, shift = quant.quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    if x.dtype == "INT8":
        table = np.array([min(S16_MAX, max(S16_MIN, fx.mul_by_qm(v - in_zp, mult, shift) + out_zp))
                          for v in range(-128, 128)], dtype=np.int16)
        return Step(op, "te_lut_s8_s16", [op.inputs[0]], [op.outputs[0]], {"n": n}, {"lut": table}, 0, None,
                    [f"={n}", "const:lut", "in0", "out0"]), []
    kernel = "te_requant_s16_s8" if y.dtype == "INT8" else "te_requant_s16_s16"
    params = {"n": n, "mult": mult, "shift": shift, "in_zp": in_zp, "out_zp": out_zp}
    return Step(op, kernel, [op.inputs[0]], [op.outputs[0]], params, {}, 0, None,
                [f"={params[k]}" for k in ("n", "mult", "shift", "in_zp", "out_zp")] + ["in0", "out0"]), []


def lower_dequantize_s16(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """DEQUANTIZE int16 -> float32: (float)(double(scale) * (v - zero_point))."""
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems = s16_problems(g, op, [op.inputs[0]], "input", zero_zp=False)
    if y.dtype != "FLOAT32":
        problems.append(f"op {op.index} DEQUANTIZE: output is {y.dtype}; tinyedge supports INT16 -> FLOAT32")
    if not problems and x.is_const:
        problems.append(f"op {op.index} DEQUANTIZE: a constant input is not supported")
    if problems:
        return None, problems
    scale, zp = x.q()
    s = repr(float(np.float32(scale)))
    n = x.size
    return Step(op, "te_dequantize_s16_f32", [op.inputs[0]], [op.outputs[0]], {"n": n, "scale": s, "zp": zp}, {},
                0, None, [f"={n}", f"={s}", f"={zp}", "in0", "out0"]), []


def sigmoid_table() -> npt.NDArray[np.uint16]:
    """The 256-entry table TFLM's int16 LOGISTIC/TANH interpolate (its ``sigmoid_table_uint16``): 65536 *
    sigmoid(i / 24), each entry moved by half the linear interpolation's error at the midpoint to the next
    entry (so interpolation errs evenly on both sides), rounded; the last entry is the saturated 65535.
    Derived here and checked against the interpreter on all 65,536 int16 inputs (tests/test_int16_diff.py)."""
    def f(x: float) -> float:
        return 65536.0 / (1.0 + math.exp(-x / 24.0))

    values = [int(math.floor(f(i) - ((f(i) + f(i + 1)) / 2 - f(i + 0.5)) / 2 + 0.5)) for i in range(255)]
    return np.array(values + [65535], dtype=np.uint16)


def checked_log2(x: float) -> tuple[int, bool]:
    """CheckedLog2 (float32 math): (round(log2 x), whether x is a power of two within 1e-3 of the exponent)."""
    v = np.float32(np.float32(math.log(float(np.float32(x)))) * np.float32(np.float32(1.0) / np.float32(math.log(2.0))))
    r = np.float32(fx.tflite_round(float(v)))
    return int(r), bool(abs(float(np.float32(v - r))) < 1e-3)


def lower_logistic_tanh_s16(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """LOGISTIC / TANH on int16 (CalculateArithmeticOpDataLogistic / tanh CalculateArithmeticOpData for int16 +
    reference_integer_ops::Logistic / Tanh): ``te_logistic_s16`` / ``te_tanh_s16``."""
    problems = _io(g, op, [op.inputs[0]])
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if not problems and x.is_const:
        problems.append(f"op {op.index} {op.opcode}: a constant input is not supported")
    if not problems and x.size != y.size:
        problems.append(f"op {op.index} {op.opcode}: input and output sizes differ")
    if not problems:
        out_log2, out_pot = checked_log2(y.q()[0])
        if not out_pot or out_log2 != -15:
            problems.append(f"op {op.index} {op.opcode}: the int16 output scale must be 2^-15 (it is "
                            f"{y.q()[0]:g}), as TFLM requires")
    if problems:
        return None, problems
    in_scale = x.q()[0]
    log2, pot = checked_log2(in_scale)
    left_shift = (15 - 3) + log2
    pot = pot and (left_shift in ((0, 1) if op.opcode == "TANH" else (0,)))
    mult = 0
    if not pot:
        m = float(np.float32(in_scale)) * 4096.0 * 3.0
        left_shift = 0
        while m <= 32767.0 / 2.0 and left_shift <= 30:
            left_shift += 1
            m *= 2.0
        mult = int(m)
        if mult > 32767:
            return None, [f"op {op.index} {op.opcode}: input scale {in_scale:g} is too large for TFLM's int16 "
                          "kernel (its multiplier would exceed 32767)"]
    n = x.size
    kernel = "te_tanh_s16" if op.opcode == "TANH" else "te_logistic_s16"
    params = {"n": n, "mult": mult, "left_shift": left_shift}
    return Step(op, kernel, [op.inputs[0]], [op.outputs[0]], params,
                {"table": sigmoid_table().view(np.int16)}, 0, None,
                [f"={n}", f"={mult}", f"={left_shift}", "const:table@uint16_t", "in0", "out0"]), []


#: Entries of TFLM's int16 softmax tables: 512 steps over the input range plus one for the last slope.
SOFTMAX_LUT_SIZE = 513
#: The int16 softmax rescales input differences so that [-65535, 0] spans exp's table range [-10, 0].
SOFTMAX_DIFF_RANGE = 10.0 / 65535.0
#: TFLM's int16 softmax keeps the row's sum of Q0.15 exponentials in an int32: at most 65536 per row.
SOFTMAX_MAX_DEPTH = 65536


def _round_f32(x: np.float32) -> np.float32:
    """TfLiteRound on a float (roundf): exact, since a float32 plus 0.5 is exact in double."""
    return np.float32(fx.tflite_round(float(x)))


def _expf(x: np.float32) -> np.float32:
    """expf: exp in double rounded to float32 (what glibc's expf returns on the table's inputs; the tests
    compare every input with the C library's expf)."""
    return np.float32(math.exp(float(x)))


def _one_over_one_plus_x(x: np.float32) -> np.float32:
    return np.float32(np.float32(1.0) / np.float32(np.float32(1.0) + x))


def int16_lut(func: Any, lo: float, hi: float) -> npt.NDArray[np.int16]:
    """TFLM's ``gen_lut<float, int16_t, int16_t>`` over [lo, hi] to [-1, 1] in float32 arithmetic, step by
    step: 512 samples of ``func`` in Q0.15, each moved by half the interpolation's error at the midpoint to
    the next sample (so interpolation errs evenly), plus ``func(hi)`` for the last slope; saturated to int16."""
    f32 = np.float32
    lo32, hi32 = f32(lo), f32(hi)
    steps = SOFTMAX_LUT_SIZE - 1
    step = f32((hi32 - lo32) / f32(steps))
    half = f32(step / f32(2.0))
    inv = f32(f32(65536.0) / f32(f32(1.0) - f32(-1.0)))  # (int16 max - min + 1) / (output max - min)
    values = []
    for i in range(steps):
        x = f32(lo32 + f32(f32(i) * step))
        val, mid, nxt = func(x), func(f32(x + half)), func(f32(lo32 + f32(f32(i + 1) * step)))
        sample = _round_f32(f32(val * inv))
        interp = _round_f32(f32(f32(f32(nxt * inv) + _round_f32(f32(val * inv))) / f32(2.0)))
        bias = _round_f32(f32(f32(interp - _round_f32(f32(mid * inv))) / f32(2.0)))
        values.append(f32(sample - bias))
    values.append(_round_f32(f32(func(hi32) * inv)))
    return np.array([min(max(float(v), S16_MIN), S16_MAX) for v in values], dtype=np.int16)


@functools.lru_cache(maxsize=1)
def _softmax_lut_bytes() -> tuple[bytes, bytes]:
    return int16_lut(_expf, -10.0, 0.0).tobytes(), int16_lut(_one_over_one_plus_x, 0.0, 1.0).tobytes()


def softmax_luts() -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """The two 513-entry tables TFLM's int16 SOFTMAX builds at Prepare (independent of the model's scales):
    exp(x) over [-10, 0] and 1 / (1 + x) over [0, 1], both in Q0.15 (computed once per process)."""
    exp_bytes, recip_bytes = _softmax_lut_bytes()
    return np.frombuffer(exp_bytes, dtype=np.int16).copy(), np.frombuffer(recip_bytes, dtype=np.int16).copy()


def lower_softmax_s16(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """SOFTMAX int16 -> int16 (CalculateSoftmaxParams for int16 + reference_ops::SoftmaxInt16): the input
    difference to the row's maximum rescaled by ``scale * beta / (10 / 65535)``, exp and the reciprocal of
    the sum through TFLM's two interpolated tables: ``te_softmax_s16``."""
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if x.dtype != "INT16":
        return None, [f"op {op.index} SOFTMAX: {x.dtype} input with {y.dtype} output is not supported (tinyedge's "
                      "softmax kernels take INT8 -> INT8 or INT16 -> INT16); quantize the layer's input and output "
                      "with the same activation type"]
    problems = _io(g, op, [op.inputs[0]], zero_zp=False)
    if problems:
        return None, problems
    if "beta" not in op.options:
        return None, [f"op {op.index} SOFTMAX: its options (beta) are missing or belong to another op type"]
    if x.is_const:
        return None, [f"op {op.index} SOFTMAX: a constant input is not supported (the converter folds such ops)"]
    if not x.shape or tuple(x.shape) != tuple(y.shape):
        return None, [f"op {op.index} SOFTMAX: input {list(x.shape)} and output {list(y.shape)} must have the same "
                      "shape, at least 1-D"]
    (in_scale, in_zp), (out_scale, out_zp) = x.q(), y.q()
    if in_zp != 0:
        problems.append(f"op {op.index} SOFTMAX: the int16 input has zero point {in_zp}; TFLM's int16 softmax "
                        "requires 0 (re-quantize with symmetric int16 activations, as the int16x8 converter does)")
    target = np.float32(1.0) / np.float32(32768)
    if out_zp != 0 or abs(np.float32(out_scale) - target) > np.float32(0.001) * target:
        problems.append(f"op {op.index} SOFTMAX: the int16 output must have scale 1/32768 and zero point 0 (it has "
                        f"{out_scale:g} and {out_zp}), as TFLM requires; convert with the int16x8 converter, which "
                        "writes that quantization for softmax outputs")
    depth = int(x.shape[-1])
    if depth > SOFTMAX_MAX_DEPTH:
        problems.append(f"op {op.index} SOFTMAX: rows of {depth} values exceed {SOFTMAX_MAX_DEPTH} (TFLM's int32 "
                        "sum of exponentials would overflow); split the row or keep this layer in float")
    if problems:
        return None, problems
    beta = float(np.float32(op.options.get("beta", 1.0)))
    mult, shift = quant.quantize_multiplier(float(np.float32(in_scale)) * beta / SOFTMAX_DIFF_RANGE)
    exp_lut, recip_lut = softmax_luts()
    outer = x.size // depth if depth else 0
    params = {"outer": outer, "depth": depth, "in_mult": mult, "in_shift": shift}
    args = [f"={params[k]}" for k in ("outer", "depth", "in_mult", "in_shift")]
    return Step(op, "te_softmax_s16", [op.inputs[0]], [op.outputs[0]], params,
                {"exp_lut": exp_lut, "recip_lut": recip_lut}, 0, None,
                args + ["const:exp_lut", "const:recip_lut", "in0", "out0"]), []


#: Op name -> int16x8 lowering.
LOWERINGS_S16: dict[str, LowerFn] = {
    "CONV_2D": lower_conv_s16,
    "DEPTHWISE_CONV_2D": lower_conv_s16,
    "FULLY_CONNECTED": lower_fc_s16,
    "MAX_POOL_2D": lower_pool_s16,
    "AVERAGE_POOL_2D": lower_pool_s16,
    "ADD": lower_add_s16,
    "QUANTIZE": lower_quantize_s16,
    "DEQUANTIZE": lower_dequantize_s16,
    "LOGISTIC": lower_logistic_tanh_s16,
    "TANH": lower_logistic_tanh_s16,
    "SOFTMAX": lower_softmax_s16,
}
#: Ops whose output only relabels the input's buffer: INT16 in and out is fine.
ALIAS_OK = ("INT8", "INT16")


def lower_int16(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    """Lower an op that reads or writes INT16 tensors, or say why tinyedge cannot."""
    fn = LOWERINGS_S16.get(op.opcode)
    if fn is None:
        return None, [f"op {op.index} {op.opcode} has int16 (int16x8) tensors, which tinyedge's kernels do not "
                      f"support for {op.opcode} (int16x8 kernels: {', '.join(sorted(set(LOWERINGS_S16)))}); keep "
                      "this layer at int8 (quantize it with int8 activations, e.g. leave it out of `--int16`)"]
    return fn(g, op)


def alias_problems(g: Graph, op: Operator) -> list[str]:
    """Problems of a reshape-like op (RESHAPE, SQUEEZE, EXPAND_DIMS): INT8 or INT16, the same type and
    quantization in and out, the same number of elements."""
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    problems = []
    for i, t, what in ((op.inputs[0], x, "input"), (op.outputs[0], y, "output")):
        if t.dtype not in ALIAS_OK:
            problems.append(f"op {op.index} {op.opcode}: {what} tensor {i} '{t.name}' is {t.dtype}, tinyedge kernels "
                            "take INT8 (or INT16 for int16x8 layers)")
        elif not t.is_quantized:
            problems.append(f"op {op.index} {op.opcode}: {what} tensor {i} '{t.name}' has no quantization parameters")
    if not problems and x.dtype != y.dtype:
        problems.append(f"op {op.index} {op.opcode}: input is {x.dtype} but output is {y.dtype}")
    return problems
