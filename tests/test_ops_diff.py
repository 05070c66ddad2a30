"""The element-wise, reduction, data-movement and float-boundary ops against the tflite_micro interpreter:
exact equality (bit-for-bit for float32 outputs) on randomized single-op models (seeded shapes, params,
quantization and fused activations). Every int8 input sample set covers all 256 byte values."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from difftest import check, inputs_for, qemu_outputs
from tflite_builder import ACT, ModelBuilder, options
from tinyedge.codegen.cmodel import render_model
from tinyedge.model import read_model_bytes
from tinyedge.model.lower import elementwise
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm
from tinyedge.proc import run

# slow: each host build of generated C links kernels compiled once per process at -O3 (~8 s of CPU, most of
# it te_kernels_dsp.c): too much for the unit tier's minute. tests/test_runtime_c.py is the unit-tier check
# of the kernels' C.
pytestmark = pytest.mark.slow

ACTS = list(ACT)


def _rand_shape(rng, rank: int, lo: int = 1, hi: int = 5) -> list[int]:
    return [int(rng.integers(lo, hi + 1)) for _ in range(rank)]


def _q(rng, lo=0.01, hi=0.1):
    return float(rng.uniform(lo, hi)), int(rng.integers(-128, 128))


# ---------------------------------------------------------------- models

def operands(b: ModelBuilder, specs, in_q):
    """One int8 model input feeding several operands: each is a run-time STRIDED_SLICE of the flat input,
    RESHAPEd (alias) to its shape and requantized by an int8 QUANTIZE when its (scale, zero point) differ.

    tinyedge (like the MLPerf Tiny harness) runs single-input models; this makes multi-input ops testable.
    Returns (input tensor, operand tensors).
    """
    total = sum(int(np.prod(shape)) for shape, _ in specs)
    s_in, z_in = in_q
    x = b.tensor((total,), scale=s_in, zero_point=z_in)
    out, off = [], 0
    for shape, q in specs:
        n = int(np.prod(shape))
        vec = b.tensor((n,), scale=s_in, zero_point=z_in)
        consts = [b.tensor((1,), "INT32", data=np.array([v], dtype=np.int32)) for v in (off, off + n, 1)]
        b.op("STRIDED_SLICE", [x] + consts, [vec], options("StridedSliceOptions"), "StridedSliceOptions")
        t = b.tensor(shape, scale=s_in, zero_point=z_in)
        tshape = b.tensor((len(shape),), "INT32", data=np.array(shape, dtype=np.int32))
        b.op("RESHAPE", [vec, tshape], [t], options("ReshapeOptions", newShape=list(shape)), "ReshapeOptions")
        if q is not None and (q[0] != s_in or q[1] != z_in):
            t2 = b.tensor(shape, scale=q[0], zero_point=q[1])
            b.op("QUANTIZE", [t], [t2])
            t = t2
        out.append(t)
        off += n
    return x, out


def binary_model(seed: int, kind: str):
    rng = np.random.default_rng(seed)
    max_rank = 4 if kind == "MUL" else 6
    rank = int(rng.integers(1, max_rank + 1))
    full = _rand_shape(rng, rank, 1, 4)
    mode = seed % 4  # 0 same shapes, 1 b broadcast, 2 a broadcast, 3 both broadcast
    shape_a, shape_b = list(full), list(full)
    if mode in (1, 3):
        shape_b = [1 if rng.random() < 0.5 else d for d in full][int(rng.integers(0, rank)):] or [1]
    if mode == 2:
        shape_a = [1 if rng.random() < 0.5 else d for d in full]
    if mode == 3:
        pb = [1] * (rank - len(shape_b)) + shape_b
        shape_a = [d if pbd == 1 else 1 for d, pbd in zip(full, pb)]
    out_shape = list(np.broadcast_shapes(tuple(shape_a), tuple(shape_b)))
    s1, z1 = _q(rng)
    s2, z2 = _q(rng, 0.005, 0.2)
    so = s1 * s2 * float(rng.uniform(30, 200)) if kind == "MUL" else (s1 + s2) * float(rng.uniform(0.4, 1.5))
    zo = int(rng.integers(-128, 128))
    act = ACTS[seed % len(ACTS)]
    const_b = seed % 5 == 4
    b = ModelBuilder()
    if const_b:
        x, (ta,) = operands(b, [(shape_a, (s1, z1))], (s1, z1))
        tb = b.tensor(shape_b, scale=s2, zero_point=z2, data=rng.integers(-128, 128, size=shape_b, dtype=np.int8))
    else:
        x, (ta, tb) = operands(b, [(shape_a, (s1, z1)), (shape_b, (s2, z2))], (s1, z1))
    to = b.tensor(out_shape, scale=so, zero_point=zo)
    opt = {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}[kind]
    ins = [tb, ta] if seed % 7 == 6 else [ta, tb]
    b.op(kind, ins, [to], options(opt, fusedActivationFunction=ACT[act]), opt)
    return b.build([x], [to]), (f"{kind} seed={seed} a={shape_a} b={shape_b}{'(const)' if const_b else ''} "
                                f"swapped={seed % 7 == 6} act={act} scales=({s1:.4f},{s2:.4f})->{so:.5f}")


def unary_model(seed: int, kind: str):
    rng = np.random.default_rng(seed)
    shape = _rand_shape(rng, int(rng.integers(1, 5)), 1, 6)
    s, z = _q(rng, 0.005, 0.15)
    opts, otype, desc = None, None, ""
    if kind == "LOGISTIC":
        so, zo = 1 / 256, -128
    elif kind == "TANH":
        so, zo = 1 / 128, 0
    elif kind == "RELU6":
        so, zo = s, z  # TFLM's RELU6 keeps the input's quantization
    else:
        so, zo = _q(rng, 0.005, 0.15)
    if kind == "HARD_SWISH":
        so = max(so, s / 100)
    if kind == "LEAKY_RELU":
        alpha = float(rng.choice([0.01, 0.1, 0.2, 0.3, 0.5, 1.5, -0.25]))
        opts, otype, desc = options("LeakyReluOptions", alpha=alpha), "LeakyReluOptions", f" alpha={alpha}"
    b = ModelBuilder()
    ti = b.tensor(shape, scale=s, zero_point=z)
    to = b.tensor(shape, scale=so, zero_point=zo)
    b.op(kind, [ti], [to], opts, otype)
    return b.build([ti], [to]), f"{kind} seed={seed} shape={shape} in=({s:.4f},{z}) out=({so:.4f},{zo}){desc}"


def requantize_model(seed: int):
    rng = np.random.default_rng(seed)
    shape = _rand_shape(rng, int(rng.integers(1, 4)), 1, 8)
    s, z = _q(rng, 0.005, 0.2)
    so, zo = _q(rng, 0.005, 0.2)
    b = ModelBuilder()
    ti = b.tensor(shape, scale=s, zero_point=z)
    to = b.tensor(shape, scale=so, zero_point=zo)
    b.op("QUANTIZE", [ti], [to])
    return b.build([ti], [to]), f"QUANTIZE int8->int8 seed={seed} shape={shape} ({s:.4f},{z})->({so:.4f},{zo})"


def float_io_model(seed: int):
    """float32 input -> QUANTIZE -> [op] -> DEQUANTIZE -> float32 output (a Keras export with float I/O)."""
    rng = np.random.default_rng(seed)
    shape = _rand_shape(rng, int(rng.integers(1, 4)), 1, 8)
    s, z = _q(rng, 0.005, 0.2)
    b = ModelBuilder()
    tf = b.tensor(shape, "FLOAT32")
    tq = b.tensor(shape, scale=s, zero_point=z)
    b.op("QUANTIZE", [tf], [tq])
    last, desc = tq, "QUANTIZE"
    if seed % 2:
        so, zo = _q(rng, 0.005, 0.2)
        tr = b.tensor(shape, scale=so, zero_point=zo)
        b.op("RELU", [tq], [tr])
        last, desc = tr, "QUANTIZE+RELU"
    if seed % 3 != 2:
        tout = b.tensor(shape, "FLOAT32")
        b.op("DEQUANTIZE", [last], [tout])
        desc += "+DEQUANTIZE"
    else:
        tout = last
    return b.build([tf], [tout]), f"float I/O {desc} seed={seed} shape={shape} q=({s:.4f},{z})"


def dequantize_model(seed: int):
    rng = np.random.default_rng(seed)
    shape = _rand_shape(rng, int(rng.integers(1, 4)), 1, 8)
    s, z = _q(rng, 0.0005, 2.0)
    b = ModelBuilder()
    ti = b.tensor(shape, scale=s, zero_point=z)
    to = b.tensor(shape, "FLOAT32")
    b.op("DEQUANTIZE", [ti], [to])
    return b.build([ti], [to]), f"DEQUANTIZE seed={seed} shape={shape} ({s:.6f},{z})"


MEAN_AXES = [[1, 2], [2, 1], [1], [-1], [0, 3], [3], [-2, -3], [2]]


def mean_model(seed: int):
    rng = np.random.default_rng(seed)
    shape = [int(rng.integers(1, 3))] + _rand_shape(rng, 3, 1, 7)
    axes = MEAN_AXES[seed % len(MEAN_AXES)]
    keep = bool(seed % 3)
    s, z = _q(rng)
    so, zo = (s, z) if seed % 4 == 1 else _q(rng)
    norm = sorted({a % 4 for a in axes})
    oshape = [1 if d in norm else n for d, n in enumerate(shape)] if keep else \
        [n for d, n in enumerate(shape) if d not in norm]
    b = ModelBuilder()
    ti = b.tensor(shape, scale=s, zero_point=z)
    ta = b.tensor((len(axes),), "INT32", data=np.array(axes, dtype=np.int32))
    to = b.tensor(oshape, scale=so, zero_point=zo)
    b.op("MEAN", [ti, ta], [to], options("ReducerOptions", keepDims=keep), "ReducerOptions")
    return b.build([ti], [to]), f"MEAN seed={seed} in={shape} axes={axes} keep={keep} ({s:.4f},{z})->({so:.4f},{zo})"


def pad_model(seed: int, kind: str):
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(1, 5))
    shape = _rand_shape(rng, rank, 1, 5)
    pads = rng.integers(0, 3, size=(rank, 2)).astype(np.int32)
    s, z = _q(rng)
    oshape = [int(d + p0 + p1) for d, (p0, p1) in zip(shape, pads)]
    b = ModelBuilder()
    ti = b.tensor(shape, scale=s, zero_point=z)
    tp = b.tensor((rank, 2), "INT32", data=pads)
    to = b.tensor(oshape, scale=s, zero_point=z)
    ins, desc = [ti, tp], ""
    if kind == "PADV2":
        v = int(rng.integers(-128, 128))
        ins.append(b.tensor((1,), data=np.array([v], dtype=np.int8), scale=s, zero_point=z))
        desc = f" value={v}"
        b.op("PADV2", ins, [to], options("PadV2Options"), "PadV2Options")
    else:
        b.op("PAD", ins, [to], options("PadOptions"), "PadOptions")
    return b.build([ti], [to]), f"{kind} seed={seed} in={shape} pads={pads.tolist()}{desc}"


def concat_model(seed: int):
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(1, 5))
    base = _rand_shape(rng, rank, 1, 4)
    axis = int(rng.integers(-rank, rank))
    k = int(rng.integers(2, 5))
    shapes = []
    for _ in range(k):
        sh = list(base)
        sh[axis] = int(rng.integers(1, 4))
        shapes.append(sh)
    q = _q(rng)
    const_k = int(rng.integers(0, k)) if seed % 3 == 2 else -1
    b = ModelBuilder()
    act_specs = [(sh, q) for i, sh in enumerate(shapes) if i != const_k]
    x, acts = operands(b, act_specs, q)
    tensors, it = [], iter(acts)
    for i, sh in enumerate(shapes):
        if i == const_k:
            tensors.append(b.tensor(sh, scale=q[0], zero_point=q[1],
                                    data=rng.integers(-128, 128, size=sh, dtype=np.int8)))
        else:
            tensors.append(next(it))
    oshape = list(base)
    oshape[axis] = sum(sh[axis] for sh in shapes)
    to = b.tensor(oshape, scale=q[0], zero_point=q[1])
    b.op("CONCATENATION", tensors, [to], options("ConcatenationOptions", axis=axis), "ConcatenationOptions")
    return b.build([x], [to]), f"CONCATENATION seed={seed} inputs={shapes} axis={axis} const_input={const_k}"


def transpose_model(seed: int):
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(2, 6))
    shape = _rand_shape(rng, rank, 1, 4)
    perm = [int(v) for v in rng.permutation(rank)]
    s, z = _q(rng)
    b = ModelBuilder()
    ti = b.tensor(shape, scale=s, zero_point=z)
    tp = b.tensor((rank,), "INT32", data=np.array(perm, dtype=np.int32))
    to = b.tensor([shape[p] for p in perm], scale=s, zero_point=z)
    b.op("TRANSPOSE", [ti, tp], [to], options("TransposeOptions"), "TransposeOptions")
    return b.build([ti], [to]), f"TRANSPOSE seed={seed} in={shape} perm={perm}"


def strided_slice_model(seed: int):
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(1, 5))
    shape = _rand_shape(rng, rank, 1, 7)
    begin, end, strides = [], [], []
    for d in shape:
        st = int(rng.choice([1, 1, 2, 3, -1, -2]))
        begin.append(int(rng.integers(-d - 1, d + 1)))
        end.append(int(rng.integers(-d - 1, d + 2)))
        strides.append(st)
    bm, em = int(rng.integers(0, 1 << rank)), int(rng.integers(0, 1 << rank))
    sm = int(rng.integers(0, 1 << rank)) if seed % 3 == 0 else 0
    for d in range(rank):  # a shrunk axis takes a valid begin
        if sm >> d & 1:
            begin[d] = int(rng.integers(-shape[d], shape[d]))
            strides[d] = 1
            bm &= ~(1 << d)
    ref = np.arange(int(np.prod(shape))).reshape(shape)
    idx = []
    for d in range(rank):
        if sm >> d & 1:
            idx.append(begin[d])
        else:
            idx.append(slice(None if bm >> d & 1 else begin[d], None if em >> d & 1 else end[d], strides[d]))
    oshape = list(ref[tuple(idx)].shape)
    if 0 in oshape:
        return strided_slice_model(seed + 1000)
    s, z = _q(rng)
    b = ModelBuilder()
    ti = b.tensor(shape, scale=s, zero_point=z)
    cs = [b.tensor((rank,), "INT32", data=np.array(v, dtype=np.int32)) for v in (begin, end, strides)]
    to = b.tensor(oshape, scale=s, zero_point=z)
    b.op("STRIDED_SLICE", [ti] + cs, [to], options("StridedSliceOptions", beginMask=bm, endMask=em,
                                                   shrinkAxisMask=sm), "StridedSliceOptions")
    return b.build([ti], [to]), (f"STRIDED_SLICE seed={seed} in={shape} begin={begin} end={end} strides={strides} "
                                 f"masks(b,e,s)=({bm},{em},{sm})")


MAKERS = {
    "ADD": lambda s: binary_model(s, "ADD"),
    "SUB": lambda s: binary_model(s, "SUB"),
    "MUL": lambda s: binary_model(s, "MUL"),
    "LOGISTIC": lambda s: unary_model(s, "LOGISTIC"),
    "TANH": lambda s: unary_model(s, "TANH"),
    "RELU": lambda s: unary_model(s, "RELU"),
    "RELU6": lambda s: unary_model(s, "RELU6"),
    "LEAKY_RELU": lambda s: unary_model(s, "LEAKY_RELU"),
    "HARD_SWISH": lambda s: unary_model(s, "HARD_SWISH"),
    "PAD": lambda s: pad_model(s, "PAD"),
    "PADV2": lambda s: pad_model(s, "PADV2"),
    "MEAN": mean_model,
    "CONCATENATION": concat_model,
    "TRANSPOSE": transpose_model,
    "STRIDED_SLICE": strided_slice_model,
    "QUANTIZE": requantize_model,
    "QUANTIZE_FLOAT": float_io_model,
    "DEQUANTIZE": dequantize_model,
}
SEEDS = {"ADD": 10, "SUB": 10, "MUL": 10, "MEAN": 10, "STRIDED_SLICE": 10, "QUANTIZE_FLOAT": 6}
CASES = [(k, s) for k in MAKERS for s in range(SEEDS.get(k, 6))]


@pytest.mark.parametrize("kind,seed", CASES, ids=[f"{k}-{s}" for k, s in CASES])
def test_op_matches_tflm(kind, seed):
    model, desc = MAKERS[kind](seed)
    check(model, desc, seed=seed)


# ---------------------------------------------------------------- multi-op chains, mutation, ARM, QEMU

def chain_model(seed: int, float_in: bool = False, float_out: bool = False):
    """Every new op in one graph, as converted Keras models chain them (residual ADD, hard-swish, global
    average pooling, squeeze-excite style MUL, gates)."""
    rng = np.random.default_rng(seed)
    q = [_q(rng, 0.02, 0.1) for _ in range(12)]
    b = ModelBuilder()
    shape = [1, 6, 6, 4]
    if float_in:
        xf = b.tensor(shape, "FLOAT32", name="x_float")
        x = b.tensor(shape, scale=q[0][0], zero_point=q[0][1])
        b.op("QUANTIZE", [xf], [x])
        graph_in = xf
    else:
        x = graph_in = b.tensor(shape, scale=q[0][0], zero_point=q[0][1])

    def const(values, dtype="INT32", **kw):
        arr = np.asarray(values, dtype=np.int32 if dtype == "INT32" else np.int8)
        return b.tensor(arr.shape, dtype, data=arr, **kw)

    a = b.tensor([1, 8, 8, 4], scale=q[0][0], zero_point=q[0][1])
    b.op("PAD", [x, const([[0, 0], [1, 1], [1, 1], [0, 0]])], [a], options("PadOptions"), "PadOptions")
    t = b.tensor([1, 8, 8, 4], scale=q[0][0], zero_point=q[0][1])
    b.op("TRANSPOSE", [a, const([0, 2, 1, 3])], [t], options("TransposeOptions"), "TransposeOptions")
    c = b.tensor(shape, scale=q[0][0], zero_point=q[0][1])
    b.op("STRIDED_SLICE", [t, const([0, 1, 1, 0]), const([1, 7, 7, 4]), const([1, 1, 1, 1])], [c],
         options("StridedSliceOptions"), "StridedSliceOptions")
    d = b.tensor(shape, scale=q[1][0] * 2, zero_point=q[1][1])
    b.op("ADD", [c, x], [d], options("AddOptions", fusedActivationFunction=ACT["RELU"]), "AddOptions")
    e = b.tensor(shape, scale=q[2][0], zero_point=q[2][1])
    b.op("HARD_SWISH", [d], [e])
    f = b.tensor(shape, scale=q[3][0], zero_point=q[3][1])
    b.op("MUL", [e, const(rng.integers(-128, 128, size=4), "INT8", scale=0.02, zero_point=3)], [f],
         options("MulOptions"), "MulOptions")
    g = b.tensor(shape, scale=q[4][0], zero_point=q[4][1])
    b.op("LEAKY_RELU", [f], [g], options("LeakyReluOptions", alpha=0.2), "LeakyReluOptions")
    xr = b.tensor(shape, scale=q[4][0], zero_point=q[4][1])
    b.op("QUANTIZE", [x], [xr])
    h = b.tensor([1, 6, 6, 8], scale=q[4][0], zero_point=q[4][1])
    b.op("CONCATENATION", [g, xr], [h], options("ConcatenationOptions", axis=3), "ConcatenationOptions")
    i = b.tensor([1, 8], scale=q[5][0], zero_point=q[5][1])
    b.op("MEAN", [h, const([1, 2])], [i], options("ReducerOptions", keepDims=False), "ReducerOptions")
    j = b.tensor([1, 8], scale=q[6][0], zero_point=q[6][1])
    b.op("SUB", [i, const(rng.integers(-128, 128, size=8), "INT8", scale=0.03, zero_point=-7)], [j],
         options("SubOptions"), "SubOptions")
    k = b.tensor([1, 8], scale=1 / 128, zero_point=0)
    b.op("TANH", [j], [k])
    m = b.tensor([1, 8], scale=1 / 256, zero_point=-128)
    b.op("LOGISTIC", [k], [m])
    r = b.tensor([1, 8], scale=q[7][0] / 10, zero_point=q[7][1])
    b.op("RELU", [m], [r])
    o = b.tensor([1, 8], scale=q[7][0] / 10, zero_point=q[7][1])
    b.op("RELU6", [r], [o])
    if float_out:
        of = b.tensor([1, 8], "FLOAT32", name="y_float")
        b.op("DEQUANTIZE", [o], [of])
        o = of
    return b.build([graph_in], [o]), f"chain seed={seed} float_in={float_in} float_out={float_out}"


CHAINS = [(0, False, False), (1, True, True), (2, True, False), (3, False, True)]


@pytest.mark.parametrize("seed,float_in,float_out", CHAINS)
def test_chain_matches_tflm(seed, float_in, float_out):
    model, desc = chain_model(seed, float_in, float_out)
    check(model, desc, seed=seed, samples=8)


def test_harness_catches_one_lsb_errors_in_new_kernels(monkeypatch):
    """A one-LSB error in one table entry (LOGISTIC) or in ADD's final rounding is caught and reported."""
    def off_by_one(g, op, table):
        table = np.array(table, dtype=np.int16)
        table[100] = table[100] + (1 if table[100] < 127 else -1)
        return real_lut(g, op, table.astype(np.int8))

    real_lut = elementwise.lut_step
    monkeypatch.setattr(elementwise, "lut_step", off_by_one)
    model, desc = unary_model(3, "LOGISTIC")
    with pytest.raises(pytest.fail.Exception, match=r"LOGISTIC seed=3.*generated C gave"):
        check(model, desc)
    monkeypatch.undo()
    check(model, desc)  # and the unmutated table passes

    def mutate(files):
        src = files["src/te_kernels_elementwise.c"]
        needle = "p->op == TE_BINARY_ADD ? sx + sy : sx - sy"
        assert needle in src
        # a quarter to half an output LSB added before the final rounding: some outputs move by one
        biased = "p->op == TE_BINARY_ADD ? sx + sy + (1 << (-p->out_shift - 1)) : sx - sy"
        return {**files, "src/te_kernels_elementwise.c": src.replace(needle, biased)}

    caught = 0
    for seed in range(4):
        model, desc = binary_model(seed, "ADD")
        try:
            check(model, desc, seed=seed, mutate=mutate)
        except pytest.fail.Exception:
            caught += 1
            break  # one catch is the proof
    assert caught > 0, "an ADD rounding error went unnoticed by the differential harness"


ARM_FLAGS = [("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"), ("-mcpu=cortex-m0", "-mthumb")]


@pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc"), reason="needs arm-none-eabi-gcc")
@pytest.mark.parametrize("flags", ARM_FLAGS, ids=["m4f", "m0"])
def test_generated_c_builds_for_arm_with_werror(flags, tmp_path):
    """All kernels and a model using every new op (float I/O included) compile warning-free for Cortex-M."""
    model, _ = chain_model(1, True, True)

    files = render_model(build_program(read_model_bytes(model, name="chain"))).files
    for rel, text in files.items():
        if rel.startswith("src/"):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(text)
    for c in sorted((tmp_path / "src").glob("te_*.c")):
        run(["arm-none-eabi-gcc", *flags, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I", tmp_path / "src",
             "-c", c, "-o", c.with_suffix(".o")], what=f"arm compile of {c.name}")


@pytest.mark.skipif(not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm", "pio")),
                    reason="needs arm-none-eabi-gcc, qemu-system-arm and platformio")
def test_chain_with_float_input_in_qemu(tmp_path, pio_core):
    """The firmware runs the every-op chain with a float32 input (sent as raw bytes through te-load) on
    qemu-mps2-an386 (Cortex-M4F) and gives TFLM's int8 outputs."""
    model, desc = chain_model(2, True, False)
    graph = read_model_bytes(model, name="chain")
    x = inputs_for(graph, np.random.default_rng(5), 6).reshape((6,) + tuple(graph.input.shape))
    got, _ = qemu_outputs(graph, "qemu-mps2-an386", x, tmp_path / "proj", pio_core, timeout=60)
    expected = run_tflm(model, x).reshape(len(x), -1)
    assert np.array_equal(got, expected), f"{desc}: QEMU {got.tolist()} vs TFLM {expected.tolist()}"
