"""Lower a Graph to a Program: the ordered kernel steps tinyedge's generated C executes.

One pass over the model both checks support (collecting *every* problem) and computes each
kernel's parameters the way TFLM's Prepare does. Shape-only ops with constant inputs are folded
here; reshapes become aliases (no copy). The Program is target-independent: the memory planner,
``inspect`` and the C generator all read it, so the numbers they show agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import UnsupportedModelError
from . import quant
from .graph import Graph, Operator, Tensor

#: Ops that become a kernel call.
KERNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "SOFTMAX")
#: Ops that only relabel a buffer's shape.
ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
#: Ops evaluated at generation time when their inputs are known then.
FOLD_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")
SUPPORTED_OPS = KERNEL_OPS + ALIAS_OPS + FOLD_OPS
FUSED_OK = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
PADDING = {0: "SAME", 1: "VALID"}


@dataclass
class Step:
    """One kernel call.

    ``params`` are the fields of the C struct ``struct`` (None: no struct); ``consts`` the constant
    arrays the call needs; ``args`` the call's arguments in order, each one of
    ``"params"`` (pointer to the struct), ``"in0"``/``"in1"``…, ``"out0"``…, ``"const:<name>"``
    (``0`` when that const is absent) or ``"=<C expression>"`` (a literal).
    """

    op: Operator
    kernel: str
    inputs: list[int]  # activation tensors read
    outputs: list[int]  # activation tensors written
    params: dict[str, Any] = field(default_factory=dict)
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    macs: int = 0
    struct: str | None = None
    args: list[str] = field(default_factory=list)
    scratch: int = 0  # bytes of working memory the kernel needs during the call (arg token "scratch")
    inplace: bool = False  # the kernel may write out0 over in0 (the planner does so only where in0 dies)

    @property
    def weight_bytes(self) -> int:
        return int(sum(a.nbytes for a in self.consts.values()))


@dataclass
class Program:
    graph: Graph
    steps: list[Step]
    alias: dict[int, int]  # tensor -> tensor whose buffer it shares (resolved to the root)
    folded: dict[int, np.ndarray]  # tensors computed at generation time
    input: int
    output: int

    def root(self, t: int) -> int:
        return self.alias.get(t, t)

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)

    @property
    def weight_bytes(self) -> int:
        """Bytes of every constant the generated code holds (weights, biases, requantization constants)."""
        return sum(s.weight_bytes for s in self.steps)

    @property
    def params(self) -> int:
        """The model's own parameters (weights and biases), however a target re-packs them."""
        return sum(int(a.size) for s in self.steps for k, a in s.consts.items() if k in ("filter", "bias"))

    @property
    def param_bytes(self) -> int:
        """Bytes of the model's weights and biases as stored in the .tflite (int8 weights, int32 biases)."""
        return sum(int(a.nbytes) for s in self.steps for k, a in s.consts.items() if k in ("filter", "bias"))


def _act_problems(g: Graph, op: Operator, idx: list[int], what: str) -> list[str]:
    out = []
    for i in idx:
        t = g.tensor(i)
        if t.dtype != "INT8":
            out.append(f"op {op.index} {op.opcode}: {what} tensor {i} '{t.name}' is {t.dtype}, tinyedge kernels take INT8")
        elif not t.is_quantized:
            out.append(f"op {op.index} {op.opcode}: {what} tensor {i} '{t.name}' has no quantization parameters")
    return out


def _types(g: Graph, op: Operator) -> str:
    ins = ",".join(g.tensor(i).dtype if i >= 0 else "-" for i in op.inputs)
    outs = ",".join(g.tensor(i).dtype for i in op.outputs)
    return f"({ins} -> {outs})"


def _const_value(g: Graph, folded: dict[int, np.ndarray], i: int) -> np.ndarray | None:
    if i in folded:
        return folded[i]
    t = g.tensor(i)
    return t.data


def _fold(g: Graph, op: Operator, folded: dict[int, np.ndarray]) -> np.ndarray | None:
    """Evaluate a shape-only op at generation time; None when its inputs are not known yet."""
    if op.opcode == "SHAPE":
        t = g.tensor(op.inputs[0])
        if t.shape_signature is not None and any(d < 0 for d in t.shape_signature[1:]):
            return None
        return np.asarray(t.shape, dtype=np.int32)
    vals = [_const_value(g, folded, i) for i in op.inputs if i >= 0]
    if any(v is None for v in vals):
        return None
    if op.opcode == "PACK":
        return np.stack([np.asarray(v) for v in vals], axis=op.options.get("axis", 0)).astype(vals[0].dtype)
    if op.opcode == "STRIDED_SLICE":
        x, begin, end, strides = (np.asarray(v) for v in vals)
        o = op.options
        sl = []
        for d in range(len(begin)):
            b = None if (o.get("beginMask", 0) >> d) & 1 else int(begin[d])
            e = None if (o.get("endMask", 0) >> d) & 1 else int(end[d])
            if (o.get("shrinkAxisMask", 0) >> d) & 1:
                sl.append(int(begin[d]))
            else:
                sl.append(slice(b, e, int(strides[d])))
        return np.asarray(x[tuple(sl)])
    if op.opcode in ALIAS_OPS:
        return np.asarray(vals[0]).reshape(g.tensor(op.outputs[0]).shape)
    return None


def build_program(g: Graph) -> Program:
    """Check every op, fold shape ops, resolve aliases and compute kernel parameters.

    Raises UnsupportedModelError listing every problem found (not just the first).
    """
    problems: list[str] = []
    if g.num_subgraphs != 1:
        problems.append(f"the model has {g.num_subgraphs} subgraphs; tinyedge generates code for single-subgraph models")
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        problems.append(f"the model has {len(g.inputs)} inputs and {len(g.outputs)} outputs; tinyedge supports one of each")
    float_io = [i for i in list(g.inputs) + list(g.outputs)
                if g.tensor(i).dtype not in ("INT8",) and not float_boundary_ok(g, i)]
    float_model = any(g.tensor(i).dtype == "FLOAT32" for i in float_io)
    for i in list(g.inputs) + list(g.outputs):
        t = g.tensor(i)
        sig = t.shape_signature
        if sig is not None and any(d < 0 for d in sig[1:]):
            problems.append(f"tensor {i} '{t.name}' has a dynamic shape {list(sig)}; tinyedge needs static shapes")

    folded: dict[int, np.ndarray] = {}
    alias: dict[int, int] = {}
    steps: list[Step] = []
    for op in g.operators:
        if op.opcode.startswith("CUSTOM:"):
            problems.append(f"op {op.index} {op.opcode} is a custom op {_types(g, op)}; tinyedge supports only builtin ops")
            continue
        if op.opcode not in SUPPORTED_OPS:
            problems.append(f"op {op.index} {op.opcode} {_types(g, op)} is not supported")
            continue
        if op.opcode in FOLD_OPS or (op.opcode in ALIAS_OPS and _const_value(g, folded, op.inputs[0]) is not None):
            v = _fold(g, op, folded)
            if v is not None:
                folded[op.outputs[0]] = v
                continue
            if op.opcode not in _LOWER:  # STRIDED_SLICE of a run-time tensor has a kernel
                problems.append(f"op {op.index} {op.opcode} {_types(g, op)}: its inputs are not known at generation time "
                                "(dynamic shape)")
                continue
        if op.opcode in ALIAS_OPS:
            problems += _act_problems(g, op, [op.inputs[0]], "input") + _act_problems(g, op, op.outputs, "output")
            src = op.inputs[0]
            alias[op.outputs[0]] = alias.get(src, src)
            continue
        try:
            step, probs = _LOWER[op.opcode](g, op)
        except (IndexError, KeyError, TypeError, ValueError) as exc:  # malformed op in the flatbuffer
            step, probs = None, [f"op {op.index} {op.opcode} {_types(g, op)} is malformed ({exc})"]
        problems += probs
        if step is not None and not probs:
            steps.append(step)
    if float_model:
        problems.insert(0, "the model computes in float (FLOAT32 inputs/outputs or ops): tinyedge runs full-integer int8 "
                           "models; run `tinyedge quantize MODEL --calib DATA.npz -o model.tflite` first")
    if problems:
        hint = (f"supported ops: {', '.join(SUPPORTED_OPS)}; re-export the model with only these ops "
                "(int8 activations, int8 weights, int32 bias)")
        if float_model:
            hint = "run `tinyedge quantize MODEL --calib DATA.npz -o model.tflite` first; " + hint
        raise UnsupportedModelError(problems, hint)
    return Program(g, steps, alias, folded, g.inputs[0], g.outputs[0])


# ---------------------------------------------------------------- per-op lowering

#: Argument order of the weighted kernels (conv, depthwise, fully connected).
WEIGHTED_ARGS = ["params", "in0", "const:filter", "const:bias", "const:mult", "const:shift", "out0"]
#: Conv and fully connected also take wsum (per output channel sum of weights, for the input-offset term).
CONV_ARGS = ["params", "in0", "const:filter", "const:bias", "const:mult", "const:shift", "const:wsum", "out0"]

def _fused(op: Operator) -> tuple[int, list[str]]:
    act = int(op.options.get("fusedActivationFunction", 0) or 0)
    if act not in FUSED_OK:
        return act, [f"op {op.index} {op.opcode}: fused activation {quant.ACTIVATIONS.get(act, act)} is not supported"]
    return act, []


def _weights(g: Graph, op: Operator, what: str = "filter") -> tuple[Tensor | None, Tensor | None, list[str]]:
    problems = []
    w = g.tensor(op.inputs[1])
    if not w.is_const:
        problems.append(f"op {op.index} {op.opcode}: {what} tensor {op.inputs[1]} is not constant")
    elif w.dtype != "INT8":
        problems.append(f"op {op.index} {op.opcode}: {what} is {w.dtype} (hybrid/float weights); tinyedge needs INT8 weights "
                        "— run `tinyedge quantize` first")
    elif not w.is_quantized:
        problems.append(f"op {op.index} {op.opcode}: {what} has no quantization parameters")
    b = None
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = g.tensor(op.inputs[2])
        if not b.is_const or b.dtype != "INT32":
            problems.append(f"op {op.index} {op.opcode}: bias must be a constant INT32 tensor (it is {b.dtype})")
    return w, b, problems


def _lower_conv(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    depthwise = op.opcode == "DEPTHWISE_CONV_2D"
    problems = _act_problems(g, op, [op.inputs[0]], "input") + _act_problems(g, op, op.outputs, "output")
    w, b, p2 = _weights(g, op)
    act, p3 = _fused(op)
    problems += p2 + p3
    if problems:
        return None, problems
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    n, ih, iw, ic = x.shape
    _, oh, ow, oc = y.shape
    if depthwise:
        _, kh, kw, wc = w.shape
        dm = int(op.options.get("depthMultiplier", 1) or 1)
        if wc != oc or ic * dm != oc:
            dm = oc // ic  # TFLM derives it from the shapes as well
    else:
        wc, kh, kw, _ = w.shape
        dm = 1
    o = op.options
    sh, sw = int(o.get("strideH", 1)), int(o.get("strideW", 1))
    dh, dw = int(o.get("dilationHFactor", 1) or 1), int(o.get("dilationWFactor", 1) or 1)
    in_scale, in_zp = x.q()
    out_scale, out_zp = y.q()
    mults, shifts = quant.conv_multipliers(in_scale, w.scale, out_scale, oc)
    amin, amax = quant.activation_range(act, out_scale, out_zp)
    params = dict(
        batches=n, in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw,
        stride_h=sh, stride_w=sw, dil_h=dh, dil_w=dw,
        pad_h=quant.compute_padding(sh, dh, ih, kh, oh), pad_w=quant.compute_padding(sw, dw, iw, kw, ow),
        depth_mult=dm, in_offset=-in_zp, out_offset=out_zp, act_min=amin, act_max=amax,
    )
    consts = {"filter": np.ascontiguousarray(w.data, dtype=np.int8)}
    if b is not None:
        consts["bias"] = np.ascontiguousarray(b.data, dtype=np.int32)
    consts["mult"] = np.asarray(mults, dtype=np.int32)
    consts["shift"] = np.asarray(shifts, dtype=np.int32)
    macs = n * oh * ow * oc * kh * kw * (1 if depthwise else ic)
    if depthwise:
        return Step(op, "te_dwconv2d_s8", [op.inputs[0]], [op.outputs[0]], params, consts, macs, "te_conv_params",
                    WEIGHTED_ARGS), []
    # The input-offset term is off * sum(w): the sums are constants (see te_conv2d_s8).
    consts["wsum"] = w.data.reshape(oc, -1).astype(np.int64).sum(axis=1).astype(np.int32)
    return Step(op, "te_conv2d_s8", [op.inputs[0]], [op.outputs[0]], params, consts, macs, "te_conv_params",
                CONV_ARGS), []


def _lower_fc(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    problems = _act_problems(g, op, [op.inputs[0]], "input") + _act_problems(g, op, op.outputs, "output")
    w, b, p2 = _weights(g, op, "weights")
    act, p3 = _fused(op)
    problems += p2 + p3
    if int(op.options.get("weightsFormat", 0) or 0) != 0:
        problems.append(f"op {op.index} FULLY_CONNECTED: shuffled weights format is not supported")
    if problems:
        return None, problems
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    out_depth, in_depth = w.shape
    batches = x.size // in_depth
    in_scale, in_zp = x.q()
    out_scale, out_zp = y.q()
    if w.per_channel:
        mults, shifts = quant.conv_multipliers(in_scale, w.scale, out_scale, out_depth)
    else:
        m, s = quant.fc_multiplier_per_tensor(in_scale, float(w.scale[0]), out_scale)
        mults, shifts = [m], [s]
    amin, amax = quant.activation_range(act, out_scale, out_zp)
    params = dict(batches=batches, in_depth=in_depth, out_depth=out_depth, in_offset=-in_zp,
                  filter_offset=-int(w.zero_point[0]), out_offset=out_zp, act_min=amin, act_max=amax,
                  per_channel=int(w.per_channel))
    consts = {"filter": np.ascontiguousarray(w.data, dtype=np.int8)}
    if b is not None:
        consts["bias"] = np.ascontiguousarray(b.data, dtype=np.int32)
    consts["mult"] = np.asarray(mults, dtype=np.int32)
    consts["shift"] = np.asarray(shifts, dtype=np.int32)
    consts["wsum"] = w.data.astype(np.int64).sum(axis=1).astype(np.int32)  # see te_fc_s8
    return Step(op, "te_fc_s8", [op.inputs[0]], [op.outputs[0]], params, consts, batches * in_depth * out_depth,
                "te_fc_params", CONV_ARGS), []


def _lower_pool(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    problems = _act_problems(g, op, [op.inputs[0]], "input") + _act_problems(g, op, op.outputs, "output")
    act, p3 = _fused(op)
    problems += p3
    if problems:
        return None, problems
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    n, ih, iw, c = x.shape
    _, oh, ow, _ = y.shape
    o = op.options
    kh, kw = int(o["filterHeight"]), int(o["filterWidth"])
    sh, sw = int(o.get("strideH", 1)), int(o.get("strideW", 1))
    out_scale, out_zp = y.q()
    amin, amax = quant.activation_range(act, out_scale, out_zp)
    params = dict(batches=n, in_h=ih, in_w=iw, ch=c, out_h=oh, out_w=ow, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw,
                  pad_h=quant.compute_padding(sh, 1, ih, kh, oh), pad_w=quant.compute_padding(sw, 1, iw, kw, ow),
                  act_min=amin, act_max=amax)
    kernel = "te_maxpool_s8" if op.opcode == "MAX_POOL_2D" else "te_avgpool_s8"
    return Step(op, kernel, [op.inputs[0]], [op.outputs[0]], params, {}, 0, "te_pool_params", ["params", "in0", "out0"]), []


def _lower_softmax(g: Graph, op: Operator) -> tuple[Step | None, list[str]]:
    problems = _act_problems(g, op, [op.inputs[0]], "input") + _act_problems(g, op, op.outputs, "output")
    if problems:
        return None, problems
    x, y = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    out_scale, out_zp = y.q()
    if out_zp != -128 or np.float32(out_scale) != np.float32(1.0 / 256):
        return None, [f"op {op.index} SOFTMAX: int8 output must have scale 1/256 and zero point -128 "
                      f"(has {out_scale:g}, {out_zp}), as TFLM requires"]
    mult, shift, diff_min = quant.softmax_params(float(op.options.get("beta", 1.0)), x.q()[0])
    depth = x.shape[-1]
    params = dict(outer=x.size // depth, depth=depth, in_mult=mult, in_left_shift=shift, diff_min=diff_min)
    args = [f"={params[k]}" for k in ("outer", "depth", "in_mult", "in_left_shift", "diff_min")] + ["in0", "out0"]
    return Step(op, "te_softmax_s8", [op.inputs[0]], [op.outputs[0]], params, {}, 0, None, args), []


_LOWER: dict[str, Callable[[Graph, Operator], tuple[Step | None, list[str]]]] = {
    "CONV_2D": _lower_conv,
    "DEPTHWISE_CONV_2D": _lower_conv,
    "FULLY_CONNECTED": _lower_fc,
    "MAX_POOL_2D": _lower_pool,
    "AVERAGE_POOL_2D": _lower_pool,
    "SOFTMAX": _lower_softmax,
}
assert set(_LOWER) == set(KERNEL_OPS)

# Element-wise, reduction and data-movement ops, and float32 I/O at the model boundary (ops_extra.py).
from .ops_extra import EXTRA_LOWER, float_boundary_ok  # noqa: E402  (ops_extra builds on this module)

_LOWER.update(EXTRA_LOWER)
KERNEL_OPS += tuple(o for o in EXTRA_LOWER if o not in KERNEL_OPS + FOLD_OPS)
SUPPORTED_OPS = KERNEL_OPS + ALIAS_OPS + FOLD_OPS
