"""The fit formula, pinned with exact bytes (``tinyedge.firmware.generate.fit_report``):

    RAM   = arena (peak of the memory plan) + input bytes + RUNTIME_RAM_BYTES (4,096)
    flash = weight bytes + code (CODE_FLASH_ESTIMATE, 12,288, until a build measures it)

Every expected figure below is a literal derived by hand, never recomputed from the constants, so a
wrong formula or constant (e.g. ``RUNTIME_RAM_BYTES = 0``) fails these tests. The same figures must come
out of ``generate`` (FitError, GeneratedProject.fit) and ``inspect`` (``analyze``), and the KWS reference
model's figures are pinned as ``tinyedge inspect`` prints them today.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import shared_model
from tflite_builder import ModelBuilder, options
from tinyedge.analysis import analyze
from tinyedge.boards import Board, MemRegion, get_board
from tinyedge.cli import cli
from tinyedge.codegen.target import specialize
from tinyedge.errors import FitError
from tinyedge.firmware import CODE_FLASH_ESTIMATE, RUNTIME_RAM_BYTES, fit_report, generate_project
from tinyedge.model import Graph, load_model, read_model_bytes
from tinyedge.model.memplan import plan_memory
from tinyedge.model.program import build_program

pytestmark = pytest.mark.unit

DSP_BOARD = "qemu-mps2-an386"  # Cortex-M4: the DSP kernels
PORTABLE_BOARD = "qemu-mps2-an385"  # Cortex-M3: the portable kernels


def two_fc_model() -> Graph:
    """int8 (1,64) -> FC 32 + ReLU -> FC 8, per-tensor quantization.

    Portable weights: FC1 filter 32x64 = 2,048 + bias 32x4 = 128 + wsum 32x4 = 128 + mult 4 + shift 4 = 2,312;
    FC2 filter 8x32 = 256 + bias 32 + wsum 32 + 4 + 4 = 328; total 2,640.
    DSP weights: filter rows are whole words already (64 and 32 columns), plus one ``{bias, m2, r, s1}`` row
    of 16 bytes per channel: FC1 2,048 + 512 = 2,560, FC2 256 + 128 = 384; total 2,944.
    Arena: input 64 B at 0 and the hidden 32 B at 64 are live together during FC1; the output (8 B) reuses
    offset 0: peak 96. On the DSP board both layers run ``te_fc`` (2,304 MACs in all: too few for the four-row
    kernels' code, ``target.FC4_MIN_MACS``), which needs no scratch: peak 96 too. Input bytes 64.
    """
    b = ModelBuilder()
    x = b.tensor((1, 64), "INT8", scale=0.05, zero_point=-3)
    w1 = b.tensor((32, 64), "INT8", scale=0.02, zero_point=0, data=np.arange(32 * 64).reshape(32, 64) % 7 - 3)
    b1 = b.tensor((32,), "INT32", scale=0.001, zero_point=0, data=np.arange(32) - 16)
    h = b.tensor((1, 32), "INT8", scale=0.1, zero_point=-128)
    w2 = b.tensor((8, 32), "INT8", scale=0.02, zero_point=0, data=np.arange(8 * 32).reshape(8, 32) % 5 - 2)
    b2 = b.tensor((8,), "INT32", scale=0.002, zero_point=0, data=np.arange(8))
    y = b.tensor((1, 8), "INT8", scale=0.2, zero_point=5)
    b.op("FULLY_CONNECTED", [x, w1, b1], [h], options("FullyConnectedOptions", fusedActivationFunction=1),
         "FullyConnectedOptions")
    b.op("FULLY_CONNECTED", [h, w2, b2], [y], options("FullyConnectedOptions"), "FullyConnectedOptions")
    return read_model_bytes(b.build([x], [y]), name="fit")


@pytest.fixture(scope="module")
def graph() -> Graph:
    return two_fc_model()


def sized(board_id: str, *, ram: int | None = None, flash: int | None = None) -> Board:
    """A built-in board with its RAM and/or flash size replaced (same id, so messages name it)."""
    b = get_board(board_id)
    return dataclasses.replace(b, ram=MemRegion(b.ram.base, ram if ram is not None else b.ram.size),
                               flash=MemRegion(b.flash.base, flash if flash is not None else b.flash.size))


def test_constants():
    assert RUNTIME_RAM_BYTES == 4096
    assert CODE_FLASH_ESTIMATE == 12288


def test_the_formula_inputs(graph):
    """What the formula adds up, per kernel variant (so the fit figures below are what they claim)."""
    portable = build_program(graph)
    dsp = specialize(portable, get_board(DSP_BOARD))
    assert [s.kernel for s in portable.steps] == ["te_fc_s8", "te_fc_s8"]
    assert [s.kernel.split("_m")[0] for s in dsp.steps] == ["te_fc_s8_dsp", "te_fc_s8_dsp"]
    assert (portable.weight_bytes, dsp.weight_bytes) == (2640, 2944)
    assert (plan_memory(portable).arena_bytes, plan_memory(dsp).arena_bytes) == (96, 96)
    assert graph.input.nbytes == 64


def test_fit_report_with_the_code_estimate(graph):
    program = build_program(graph)
    board = get_board(PORTABLE_BOARD)
    f = fit_report(program, plan_memory(program), board, graph.input.nbytes)
    # RAM 96 + 64 + 4,096; flash 2,640 + 12,288 (estimate).
    assert (f.board, f.ram_needed, f.flash_needed, f.flash_measured) == (PORTABLE_BOARD, 4256, 14928, False)
    assert (f.ram_available, f.flash_available) == (4096 * 1024, 4096 * 1024)
    assert f.fits and f.problems() == []


def test_fit_report_with_measured_code(graph):
    program = build_program(graph)
    plan = plan_memory(program)
    board = get_board(PORTABLE_BOARD)
    measured = fit_report(program, plan, board, 64, code_bytes=5000)
    assert (measured.ram_needed, measured.flash_needed, measured.flash_measured) == (4256, 7640, True)
    # Zero measured code bytes is a measurement, not "no measurement": no estimate is added.
    zero = fit_report(program, plan, board, 64, code_bytes=0)
    assert (zero.flash_needed, zero.flash_measured) == (2640, True)


def test_fit_report_the_input_bytes_count(graph):
    program = build_program(graph)
    f = fit_report(program, plan_memory(program), get_board(PORTABLE_BOARD), 1000)
    assert f.ram_needed == 96 + 1000 + 4096


def test_fit_boundaries_and_messages(graph):
    program = build_program(graph)
    plan = plan_memory(program)
    exact = fit_report(program, plan, sized(PORTABLE_BOARD, ram=4256, flash=14928), 64)
    assert exact.fits and exact.problems() == []
    ram_short = fit_report(program, plan, sized(PORTABLE_BOARD, ram=4255), 64)
    assert not ram_short.fits
    assert ram_short.problems() == [f"RAM: needs 4256 bytes, {PORTABLE_BOARD} has 4255 (1 over)"]
    flash_short = fit_report(program, plan, sized(PORTABLE_BOARD, flash=14000), 64)
    assert not flash_short.fits
    assert flash_short.problems() == [f"flash: needs ~14928 bytes, {PORTABLE_BOARD} has 14000 (928 over)"]
    measured_short = fit_report(program, plan, sized(PORTABLE_BOARD, flash=7000), 64, code_bytes=5000)
    assert measured_short.problems() == [f"flash: needs 7640 bytes, {PORTABLE_BOARD} has 7000 (640 over)"]


def test_generate_applies_the_same_fit(graph, tmp_path):
    # The DSP board's program: weights 2,944 + 12,288 = 15,232; RAM 96 + 64 + 4,096 = 4,256.
    p = generate_project(graph, get_board(DSP_BOARD), tmp_path / "p")
    assert (p.fit.ram_needed, p.fit.flash_needed, p.fit.flash_measured) == (4256, 15232, False)
    manifest = json.loads((p.path / "tinyedge.json").read_text())
    assert (manifest["arena_bytes"], manifest["weight_bytes"]) == (96, 2944)
    with pytest.raises(FitError) as exc:
        generate_project(graph, sized(DSP_BOARD, ram=4000), tmp_path / "q")
    assert f"RAM: needs 4256 bytes, {DSP_BOARD} has 4000 (256 over)" in str(exc.value)
    assert not (tmp_path / "q").exists()


def test_inspect_applies_the_same_fit(graph):
    a = analyze(graph, [get_board(DSP_BOARD), get_board(PORTABLE_BOARD)], tflm=False)
    assert (a.plan_for, a.ram_bytes, a.weight_bytes, a.code_bytes, a.flash_bytes) == (
        DSP_BOARD, 96, 2944, 12288, 15232)
    fits = {f["board"]: (f["ram_needed"], f["flash_needed"], f["fits"]) for f in a.fits}
    assert fits == {DSP_BOARD: (4256, 15232, True), PORTABLE_BOARD: (4256, 14928, True)}


# ------------------------------------------------------------------------ the KWS reference model
KWS_BOARDS = ["qemu-mps2-an386", "qemu-mps2-an385", "qemu-microbit"]


@pytest.fixture(scope="module")
def kws() -> Graph:
    return load_model(shared_model("kws_ref_model.tflite"))


def test_kws_inspect_figures(kws):
    """MLPerf Tiny KWS (DS-CNN): peak RAM 9,408 B with the DSP kernels (an386; the 6-pixel pointwise kernel's
    accumulator and column scratch), 16,000 B portable (an385)."""
    a = analyze(kws, [get_board(b) for b in KWS_BOARDS], tflm=False)
    assert (a.macs, a.params, a.weight_bytes) == (2656768, 22604, 29120)
    assert (a.ram_bytes, a.naive_ram_bytes, a.ram_lower_bound) == (9408, 80096, 9394)  # naive: v2 depthwise scratch
    assert (a.code_bytes, a.code_measured, a.flash_bytes) == (12288, False, 41408)
    assert kws.input.nbytes == 490
    fits = {f["board"]: f for f in a.fits}
    # an386: 9,408 + 490 + 4,096 RAM; 29,120 (12-byte requantization rows) + 12,288 flash.
    assert (fits["qemu-mps2-an386"]["ram_needed"], fits["qemu-mps2-an386"]["flash_needed"]) == (13994, 41408)
    # an385 (portable kernels): arena 16,000 + 490 + 4,096; weights 30,312 + 12,288.
    assert (fits["qemu-mps2-an385"]["ram_needed"], fits["qemu-mps2-an385"]["flash_needed"]) == (20586, 42600)
    micro = fits["qemu-microbit"]
    assert (micro["fits"], micro["ram_needed"], micro["ram_available"]) == (False, 20586, 16384)
    assert micro["problems"] == ["RAM: needs 20586 bytes, qemu-microbit has 16384 (4202 over)"]


def test_kws_inspect_cli_json(kws):
    out = CliRunner().invoke(cli, ["inspect", str(shared_model("kws_ref_model.tflite")), "--board", "qemu-mps2-an386",
                                   "--json", "--no-tflm"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.output)
    assert (d["ram_bytes"], d["flash_bytes"], d["plan_for"]) == (9408, 41408, "qemu-mps2-an386")
    assert [(f["board"], f["ram_needed"], f["flash_needed"], f["fits"]) for f in d["fits"]] == [
        ("qemu-mps2-an386", 13994, 41408, True)]
