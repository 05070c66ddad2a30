"""The fast int8 ADD inside ``te_binary_s8`` (te_kernels_elementwise.c: the per-input rescale hoisted, SMMLAR
and folded rounding; built where the DSP extension is) against the tflite_micro interpreter: on the host with
the exact C models of the DSP instructions (``TE_ADD_FAST`` defined in the generated sources), and once in
QEMU on the Cortex-M4. The exhaustive byte-pair checks are the C unit test (runtime/tests/test_add_fast.c)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from difftest import check, compare, qemu_outputs
from test_fuse import force_fuse, residual_model
from test_ops_diff import operands
from tflite_builder import ACT, ModelBuilder, options
from tinyedge.boards import get_board
from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.fuse import FUSED_KERNEL
from tinyedge.codegen.host import build_host, run_host
from tinyedge.codegen.target import specialize
from tinyedge.model import read_model_bytes
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm

pytestmark = pytest.mark.slow  # host builds of every kernel and the tflite_micro interpreter, as test_ops_diff

ELEMENTWISE = "src/te_kernels_elementwise.c"
ACTS = list(ACT)
EXTREME_ZPS = (-128, 127, 0)


def fast_on(files: dict[str, str]) -> dict[str, str]:
    """The generated sources with the fast ADD built on the host (it is on by itself only with the DSP)."""
    return {**files, ELEMENTWISE: "#define TE_ADD_FAST 1\n" + files[ELEMENTWISE]}


def add_model(seed: int) -> tuple[bytes, str]:
    """One ADD of two same-shape operands cut from the model's input: scales up to 2^8 apart (either input the
    larger), the output's scale 1/4 to 32 times the larger (past 16 the fast path hands over to the portable
    one), zero points often at the int8 ends, every fused activation."""
    rng = np.random.default_rng(4200 + seed)
    shape = [int(rng.integers(1, 6)) for _ in range(int(rng.integers(1, 5)))]
    s1 = float(2.0 ** rng.uniform(-10, -2))
    s2 = s1 * float(2.0 ** rng.uniform(-8, 8))
    so = max(s1, s2) * float(2.0 ** rng.uniform(-2, 5))

    def zp() -> int:
        return int(rng.choice(EXTREME_ZPS)) if rng.random() < 0.4 else int(rng.integers(-128, 128))

    z1, z2, zo = zp(), zp(), zp()
    act = ACTS[seed % len(ACTS)]
    b = ModelBuilder()
    x, (ta, tb) = operands(b, [(shape, (s1, z1)), (shape, (s2, z2))], (s1, z1))
    to = b.tensor(shape, scale=so, zero_point=zo)
    ins = [tb, ta] if seed % 3 == 2 else [ta, tb]
    b.op("ADD", ins, [to], options("AddOptions", fusedActivationFunction=ACT[act]), "AddOptions")
    desc = (f"ADD seed={seed} shape={shape} scales=({s1:.3g},{z1}) ({s2:.3g},{z2}) -> ({so:.3g},{zo}) act={act} "
            f"swapped={seed % 3 == 2}")
    return b.build([x], [to]), desc


SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_fast_add_matches_tflm_on_the_host(seed):
    model, desc = add_model(seed)
    check(model, desc, seed=seed, samples=8, mutate=fast_on)


def test_the_host_harness_runs_the_fast_add():
    """An error in the fast path's final rounding alone (one more output bias LSB) is caught: with
    ``fast_on`` the host runs the fast ADD, not only the portable one."""
    needle = "const int32_t ob = (int32_t)((1u << ro) + ((uint32_t)zo << os));"

    def broken(files: dict[str, str]) -> dict[str, str]:
        files = fast_on(files)
        assert needle in files[ELEMENTWISE]
        return {**files, ELEMENTWISE: files[ELEMENTWISE].replace(needle, needle.replace("(1u << ro)", "(3u << ro)"))}

    assert any(compare(add_model(seed)[0], seed=seed, mutate=broken) is not None for seed in range(4))


@pytest.mark.parametrize("seed", range(6))
def test_fast_add_in_fused_residual_blocks_on_the_host(seed):
    """te_resblock_s8 calls te_binary_s8 per band of rows, often writing over the shortcut's rows."""
    model, desc = residual_model(seed)
    g = read_model_bytes(model, name=f"res{seed}")
    prog = force_fuse(specialize(build_program(g), get_board("qemu-mps2-an386")))
    assert any(s.kernel == FUSED_KERNEL for s in prog.steps), desc
    x = np.random.default_rng(seed).integers(-128, 128, size=(3,) + tuple(g.input.shape), dtype=np.int8)
    with tempfile.TemporaryDirectory(prefix="te-addfast-") as d:
        got = run_host(build_host(fast_on(render_model(prog).files), Path(d)), x.reshape(len(x), -1), g.output.size)
    assert np.array_equal(got, run_tflm(model, x).reshape(len(x), -1)), desc


def chain_model(seed: int) -> tuple[bytes, str]:
    """Two ADDs on 1x6x6x8 operands: (a + b) with RELU and the larger scale on a, then (c + that) with RELU6
    and the larger scale on the sum (the second operand): both input orders of the fast path."""
    rng = np.random.default_rng(4300 + seed)
    shape = [1, 6, 6, 8]
    sa, za = 0.05, -3
    sb, zb = 0.011, 17
    sc, zc = 0.02, -128
    b = ModelBuilder()
    x, (ta, tb, tc) = operands(b, [(shape, (sa, za)), (shape, (sb, zb)), (shape, (sc, zc))], (sa, za))
    t1 = b.tensor(shape, scale=0.07, zero_point=-128)
    b.op("ADD", [ta, tb], [t1], options("AddOptions", fusedActivationFunction=ACT["RELU"]), "AddOptions")
    t2 = b.tensor(shape, scale=0.04, zero_point=int(rng.integers(-128, -100)))
    b.op("ADD", [tc, t1], [t2], options("AddOptions", fusedActivationFunction=ACT["RELU6"]), "AddOptions")
    return b.build([x], [t2]), f"ADD chain seed={seed}"


needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
    reason="needs arm-none-eabi-gcc and qemu-system-arm",
)


@needs_tools
def test_fast_add_in_qemu_matches_tflm(tmp_path, pio_core):
    """On the Cortex-M4 (mps2-an386) the fast ADD is what te_binary_s8 runs: outputs equal TFLM's, the first
    rows walking every byte value through each operand."""
    model, desc = chain_model(0)
    graph = read_model_bytes(model, name="add_fast")
    rng = np.random.default_rng(0)
    n = graph.input.size
    x = rng.integers(-128, 128, size=(4, n)).astype(np.int8)
    x[0] = np.resize(np.arange(-128, 128), n)
    x[1] = np.resize(np.arange(127, -129, -1), n)
    x = x.reshape((len(x),) + tuple(graph.input.shape))
    expected = run_tflm(model, x).reshape(len(x), -1)
    got, project = qemu_outputs(graph, "qemu-mps2-an386", x, tmp_path / "proj", pio_core)
    assert [s.kernel for s in project.program.steps if s.op.opcode == "ADD"] == ["te_binary_s8"] * 2
    assert np.array_equal(got, expected), desc
