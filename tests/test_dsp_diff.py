"""The DSP kernels (te_kernels_dsp.c, chosen by tinyedge.codegen.target for boards with ``dsp: true``)
against the tflite_micro interpreter, exact equality.

Two levels: on the host, the same kernel C runs on exact C models of SMLAD/SXTB16/SMMLAR (fast, many
randomized shapes); in QEMU (mps2-an386, Cortex-M4), firmware built by PlatformIO runs the real
instructions on randomized multi-layer chains and on KWS, driven over the serial link.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_model
from difftest import qemu_outputs
from helpers import chain_model, conv_model, fc_model
from tinyedge.boards import get_board
from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.host import build_host, run_host
from tinyedge.codegen.target import specialize, variant
from tinyedge.model import load_model, read_model_bytes
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm

BOARD = "qemu-mps2-an386"
def dw_model(seed: int) -> tuple[bytes, str]:
    """A depthwise model the DSP kernel takes (channels a multiple of 4, depth multiplier 1)."""
    for s in range(seed * 100, seed * 100 + 500):
        model, desc = conv_model(s, depthwise=True)
        g = read_model_bytes(model, name="dw")
        p = build_program(g).steps[0].params
        if p["in_c"] % 4 == 0 and p["depth_mult"] == 1:
            return model, desc
    raise AssertionError("no depthwise case with channels % 4 == 0")


def _compare_host(model: bytes, desc: str, samples: int = 4, seed: int = 0) -> str | None:
    g = read_model_bytes(model, name="dspdiff")
    program = specialize(build_program(g), get_board(BOARD))
    assert variant(program) == "dsp", f"{desc}: no step was given a DSP kernel"
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(samples,) + tuple(g.input.shape), dtype=np.int8)
    expected = run_tflm(model, x).reshape(samples, -1)
    with tempfile.TemporaryDirectory(prefix="te-dspdiff-") as d:
        got = run_host(build_host(render_model(program).files, Path(d)), x.reshape(samples, -1), g.output.size)
    if np.array_equal(got, expected):
        return None
    kernels = [s.kernel for s in program.steps]
    return f"{desc}: {int((got != expected).sum())} of {got.size} outputs differ; kernels {kernels}"


HOST_CASES = ([("conv", s) for s in range(10)] + [("fc", s) for s in range(8)] + [("dw", s) for s in range(6)]
              + [("chain", s) for s in range(6)])


# slow: the DSP kernels' own -O3 host build alone takes most of the unit tier's minute
@pytest.mark.slow
@pytest.mark.parametrize("kind,seed", HOST_CASES, ids=[f"{k}-{s}" for k, s in HOST_CASES])
def test_dsp_kernels_on_host_models_match_tflm(kind, seed):
    model, desc = {"conv": lambda: conv_model(seed), "fc": lambda: fc_model(seed), "dw": lambda: dw_model(seed),
                   "chain": lambda: chain_model(seed)}[kind]()
    problem = _compare_host(model, desc, seed=seed)
    assert problem is None, problem


# ------------------------------------------------------------------------------------------ QEMU

needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
    reason="needs arm-none-eabi-gcc and qemu-system-arm",
)


def _run_in_qemu(graph, workdir: Path, core_dir: Path, inputs: np.ndarray) -> tuple[np.ndarray, object]:
    got, project = qemu_outputs(graph, BOARD, inputs, workdir, core_dir)
    assert variant(project.program) == "dsp"
    return got, project


QEMU_CHAINS = [0, 1, 2, 3]


@pytest.mark.slow
@needs_tools
@pytest.mark.parametrize("seed", QEMU_CHAINS)
def test_dsp_firmware_in_qemu_matches_tflm(seed, tmp_path, pio_core):
    model, desc = chain_model(seed)
    graph = read_model_bytes(model, name=f"dspchain{seed}")
    x = np.random.default_rng(seed).integers(-128, 128, size=(3,) + tuple(graph.input.shape), dtype=np.int8)
    got, project = _run_in_qemu(graph, tmp_path / "proj", pio_core, x)
    expected = run_tflm(model, x).reshape(len(x), -1)
    assert np.array_equal(got, expected), (f"{desc}: QEMU gave {got.tolist()}, TFLM {expected.tolist()}; kernels "
                                           f"{[s.kernel for s in project.program.steps]}")


@pytest.mark.slow
@needs_tools
def test_kws_dsp_firmware_in_qemu_matches_tflm(tmp_path, pio_core):
    path = shared_model("kws_ref_model.tflite")
    graph = load_model(path)
    x = np.random.default_rng(7).integers(-128, 128, size=(2,) + tuple(graph.input.shape), dtype=np.int8)
    got, project = _run_in_qemu(graph, tmp_path / "kws", pio_core, x)
    assert all("_dsp" in s.kernel for s in project.program.steps if s.macs > 1000)
    assert project.plan.inplace, "the DSP plan runs pointwise and depthwise convolutions in place"
    assert np.array_equal(got, run_tflm(graph.model_bytes, x).reshape(len(x), -1))
