"""Residual blocks fused by rows (tinyedge.codegen.fuse, te_kernels_fused.c): found where they are, planned
in less memory (written over their input only where that is safe), and bit-exact with the tflite_micro
interpreter on the host (portable and DSP kernels inside the block) and in QEMU."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from difftest import qemu_outputs
from helpers import ACTS, rand_quant
from test_memplan import check_plan
from tflite_builder import ACT, PADDING, ModelBuilder, options, out_size
from tinyedge.boards import get_board
from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.fuse import FUSED_KERNEL, find_blocks, fuse_block, fuse_residual_blocks
from tinyedge.codegen.host import build_host, run_host
from tinyedge.codegen.target import specialize
from tinyedge.model import read_model_bytes
from tinyedge.model.memplan import plan_memory, tail_inplace
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm

BOARD = "qemu-mps2-an386"


def residual_model(seed: int) -> tuple[bytes, str]:
    """conv0 -> x; ADD(shortcut, B(A(x))) with the shortcut x itself (stride 1, same channels) or a 1x1
    conv of x; A k x k (3 or 5) SAME with stride 1 or 2, B 3x3 SAME; the shortcut conv before or after the
    branch, the ADD's operands in either order, random quantization and activations; then a 1x1 conv."""
    rng = np.random.default_rng(7000 + seed)
    h, w = int(rng.integers(5, 14)), int(rng.integers(5, 14))
    c0 = int(rng.integers(1, 5))
    c1 = int(rng.choice([4, 8, 12, 3, 6]))
    stride = int(rng.integers(1, 3))
    c2 = c1 if stride == 1 and seed % 3 != 2 else int(rng.choice([4, 8, 16, 5]))
    identity = stride == 1 and c2 == c1
    ka = 5 if seed % 4 == 3 else 3
    b = ModelBuilder()
    s0, z0 = rand_quant(rng)
    t0 = b.tensor((1, h, w, c0), scale=s0, zero_point=z0)

    def conv(tin, in_scale, cin, cout, k, s, shape):
        per_channel = bool(rng.integers(0, 2))
        fs = rng.uniform(0.002, 0.02, size=cout if per_channel else 1).astype(np.float32)
        out_s = float(130 * np.sqrt(k * k * cin) * in_scale * float(fs.mean()) * rng.uniform(0.3, 2.0))
        out_zp = int(rng.integers(-128, 128)) if rng.integers(0, 2) else -128
        tf = b.tensor((cout, k, k, cin), data=rng.integers(-127, 128, size=(cout, k, k, cin), dtype=np.int8),
                      scale=fs, zero_point=0)
        tb = b.tensor((cout,), "INT32", data=rng.integers(-3000, 3000, size=cout).astype(np.int32),
                      scale=in_scale * fs.astype(np.float64), zero_point=0)
        to = b.tensor(shape, scale=out_s, zero_point=out_zp)
        act = ACTS[int(rng.integers(0, len(ACTS)))]
        b.op("CONV_2D", [tin, tf, tb], [to], options("Conv2DOptions", padding=PADDING["SAME"], strideW=s, strideH=s,
                                                     fusedActivationFunction=ACT[act]), "Conv2DOptions")
        return to, out_s

    x, sx = conv(t0, s0, c0, c1, 3, 1, (1, h, w, c1))
    h2, w2 = out_size("SAME", h, ka, stride), out_size("SAME", w, ka, stride)
    shortcut_first = not identity and bool(rng.integers(0, 2))
    if shortcut_first:
        sc, ss = conv(x, sx, c1, c2, 1, stride, (1, h2, w2, c2))
    y1, s1 = conv(x, sx, c1, c2, ka, stride, (1, h2, w2, c2))
    y2, s2 = conv(y1, s1, c2, c2, 3, 1, (1, h2, w2, c2))
    if identity:
        sc, ss = x, sx
    elif not shortcut_first:
        sc, ss = conv(x, sx, c1, c2, 1, stride, (1, h2, w2, c2))
    so = float(max(ss, s2) * rng.uniform(0.8, 2.5))
    ta = b.tensor((1, h2, w2, c2), scale=so, zero_point=int(rng.integers(-128, 128)))
    ins = [sc, y2] if seed % 2 else [y2, sc]
    b.op("ADD", ins, [ta], options("AddOptions", fusedActivationFunction=ACT[ACTS[int(rng.integers(0, len(ACTS)))]]),
         "AddOptions")
    out, _ = conv(ta, so, c2, 4, 1, 1, (1, h2, w2, 4))
    desc = (f"residual seed={seed} in=1x{h}x{w}x{c0} x=..x{c1} A {ka}x{ka} s{stride} -> {h2}x{w2}x{c2} B 3x3, "
            f"shortcut {'identity' if identity else '1x1 conv' + (' first' if shortcut_first else '')}")
    return b.build([t0], [out]), desc


def _programs(seed: int):
    model, desc = residual_model(seed)
    g = read_model_bytes(model, name=f"res{seed}")
    base = build_program(g)
    return model, desc, g, base, specialize(base, get_board(BOARD))


SEEDS = list(range(6))


def force_fuse(program):
    """``program`` with every block fused, even where the plan would not shrink (the arithmetic is under test)."""
    steps = list(program.steps)
    for blk in find_blocks(program):
        fused, nops = fuse_block(program, blk)
        steps[blk.first:blk.last + 1] = [fused, *nops]
    return dataclasses.replace(program, steps=steps)


@pytest.mark.unit
@pytest.mark.parametrize("seed", SEEDS)
def test_blocks_are_found_and_plans_stay_valid(seed):
    _, desc, _, base, dsp = _programs(seed)
    assert len(find_blocks(base)) == 1, desc
    fused = fuse_residual_blocks(base)
    assert plan_memory(fused).arena_bytes <= plan_memory(base).arena_bytes
    for name, prog in (("portable", fused), ("dsp", dsp), ("portable forced", force_fuse(base))):
        assert check_plan(prog, plan_memory(prog)) == [], f"{desc} [{name}]"
        assert len(prog.steps) == len(base.steps), "one layer per original step (te-profile, tune)"
        for s in prog.steps:
            if s.kernel == FUSED_KERNEL:
                assert s.macs == sum(t.macs for t in base.steps[1:-1])  # conv0 and the last conv stay


@pytest.mark.unit
def test_fused_resnet_stage_needs_little_more_than_its_input():
    """A 32x32x16 identity block (ResNet-8's first stage): layer by layer x, A(x) and B(A(x)) are live at
    once (48 KiB); fused, the block is written over x (16 KiB plus a window of rows and the conv scratch)."""
    for seed in range(200):
        model, desc = residual_model(seed)
        g = read_model_bytes(model, name="r")
        base = build_program(g)
        blocks = find_blocks(base)
        if blocks and blocks[0].s is None and base.steps[blocks[0].a].params["k_h"] == 3:
            break
    fused = fuse_residual_blocks(base)
    step = next(s for s in fused.steps if s.kernel == FUSED_KERNEL)
    assert step.inplace, "a 3x3 identity block can be written over its input"
    plan = plan_memory(fused)
    x = g.tensor(step.inputs[0]).nbytes
    assert plan.live_bytes(fused.steps.index(step)) <= x + step.scratch + g.input.nbytes


@pytest.mark.unit
def test_a_5x5_branch_is_not_written_over_its_input():
    """A's 5x5 rows reach two rows back: writing output row r over x row r would destroy a row A still reads."""
    seed = next(s for s in range(3, 400, 4) if find_blocks(build_program(read_model_bytes(residual_model(s)[0],
                                                                                         name="r"))))
    base = build_program(read_model_bytes(residual_model(seed)[0], name="r"))
    fused = force_fuse(base)
    step = next(s for s in fused.steps if s.kernel == FUSED_KERNEL)
    assert base.steps[find_blocks(base)[0].a].params["k_h"] == 5
    assert not step.inplace
    assert check_plan(fused, plan_memory(fused)) == []


def _host_outputs(program, g, x: np.ndarray) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="te-fuse-") as d:
        return run_host(build_host(render_model(program).files, Path(d)), x.reshape(len(x), -1), g.output.size)


# slow: the DSP kernels' -O3 host build
@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_fused_blocks_on_the_host_match_tflm(seed):
    model, desc, g, base, dsp = _programs(seed)
    x = np.random.default_rng(seed).integers(-128, 128, size=(3,) + tuple(g.input.shape), dtype=np.int8)
    expected = run_tflm(model, x).reshape(len(x), -1)
    for name, prog in (("portable", force_fuse(base)), ("dsp", force_fuse(dsp))):
        assert any(s.kernel == FUSED_KERNEL for s in prog.steps), desc
        got = _host_outputs(prog, g, x)
        assert np.array_equal(got, expected), f"{desc} [{name}]: {[s.kernel for s in prog.steps]}"


needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
    reason="needs arm-none-eabi-gcc and qemu-system-arm",
)


@pytest.mark.slow
@needs_tools
def test_fused_blocks_in_qemu_match_tflm(tmp_path, pio_core):
    for seed in range(1, 60):
        model, desc = residual_model(seed)
        graph = read_model_bytes(model, name=f"fused{seed}")
        prog = specialize(build_program(graph), get_board(BOARD))
        step = next((s for s in prog.steps if s.kernel == FUSED_KERNEL), None)
        if step is not None and step.inplace and "_dsp" in step.why:
            break
    x = np.random.default_rng(seed).integers(-128, 128, size=(3,) + tuple(graph.input.shape), dtype=np.int8)
    got, project = qemu_outputs(graph, BOARD, x, tmp_path / "proj", pio_core)
    assert any(s.kernel == FUSED_KERNEL for s in project.program.steps)
    assert np.array_equal(got, run_tflm(model, x).reshape(len(x), -1)), desc


# ---------------------------------------------------------------- outputs grown over their input's end


def expand_model(seed: int) -> tuple[bytes, str]:
    """conv 3x3 -> 8 channels, pointwise 8 -> 16 (more output than input channels), pointwise 16 -> 1: the
    expanding step would hold 24 channels' bytes; grown over the end of its input, 16 (the most of any step)."""
    rng = np.random.default_rng(9000 + seed)
    h, w = int(rng.integers(6, 16)), int(rng.integers(6, 16))
    b = ModelBuilder()
    s0, z0 = rand_quant(rng)
    t0 = b.tensor((1, h, w, 1), scale=s0, zero_point=z0)
    t, s = t0, s0
    for cin, cout, k in ((1, 8, 3), (8, 16, 1), (16, 1, 1)):
        fs = rng.uniform(0.002, 0.02, size=cout).astype(np.float32)
        out_s = float(130 * np.sqrt(k * k * cin) * s * float(fs.mean()) * rng.uniform(0.3, 2.0))
        tf = b.tensor((cout, k, k, cin), data=rng.integers(-127, 128, size=(cout, k, k, cin), dtype=np.int8),
                      scale=fs, zero_point=0)
        tb = b.tensor((cout,), "INT32", data=rng.integers(-3000, 3000, size=cout).astype(np.int32),
                      scale=s * fs.astype(np.float64), zero_point=0)
        to = b.tensor((1, h, w, cout), scale=out_s, zero_point=int(rng.integers(-128, 128)))
        b.op("CONV_2D", [t, tf, tb], [to], options("Conv2DOptions", padding=PADDING["SAME"], strideW=1, strideH=1,
                                                   fusedActivationFunction=ACT[ACTS[int(rng.integers(0, len(ACTS)))]]),
             "Conv2DOptions")
        t, s = to, out_s
    return b.build([t0], [t]), f"expand seed={seed} {h}x{w}: conv 3x3 1->8, pw 8->16, pw 16->1"


@pytest.mark.unit
@pytest.mark.parametrize("seed", range(3))
def test_an_expanding_pointwise_conv_grows_over_its_input(seed):
    model, desc = expand_model(seed)
    g = read_model_bytes(model, name="expand")
    dsp = specialize(build_program(g), get_board(BOARD))
    step = dsp.steps[1]
    assert tail_inplace(dsp, step), f"{desc}: {step.kernel} {step.params.get('pointwise')}"
    plan = plan_memory(dsp)
    assert check_plan(dsp, plan) == [], desc
    x, y = (g.tensor(t).nbytes for t in (step.inputs[0], step.outputs[0]))
    assert plan.offset(dsp, step.inputs[0]) + x == plan.offset(dsp, step.outputs[0]) + y, "input at the output's end"
    assert plan.live_bytes(1) < x + y
    assert plan.arena_bytes < x + y + step.scratch


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_an_expanding_pointwise_conv_grown_in_place_matches_tflm(seed):
    model, desc = expand_model(seed)
    g = read_model_bytes(model, name="expand")
    dsp = specialize(build_program(g), get_board(BOARD))
    plan = plan_memory(dsp)
    assert plan.offset(dsp, dsp.steps[1].inputs[0]) > plan.offset(dsp, dsp.steps[1].outputs[0]), desc
    x = np.random.default_rng(seed).integers(-128, 128, size=(3,) + tuple(g.input.shape), dtype=np.int8)
    assert np.array_equal(_host_outputs(dsp, g, x), run_tflm(model, x).reshape(len(x), -1)), desc
