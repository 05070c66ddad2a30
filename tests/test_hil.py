"""Hardware in the loop: one command for a user with a real board attached.

    pytest -m hil --board nucleo_l4r5zi --port /dev/ttyACM0      # or --place NAME (labgrid)
    pytest -m hil --board pico --port /dev/ttyACM0 --power-trace run.csv

It generates the MLPerf Tiny KWS reference model (../shared/models/kws_ref_model.tflite) for the board,
builds it (a real board needs PlatformIO's vendor platform, downloaded once), flashes it with the board
file's uploader (pyOCD, OpenOCD, a UF2 copy or esptool: tinyedge/firmware/upload.py), checks the
firmware answers te-info with the right board and model hash, and scores a few samples with parity 1.0
(bit-exact with the tflite_micro interpreter). With ``--power-trace`` (a power-monitor trace of the board
running this firmware) it also checks energy is measured from the trace. Without ``--board`` and
``--port``/``--place`` every test skips, saying what to pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_model
from tinyedge.boards import Board, get_board
from tinyedge.firmware import upload_plan
from tinyedge.firmware.upload import default_tool
from tinyedge.link import connect
from tinyedge.runners import Deployment, deploy
from tinyedge.score import score

pytestmark = pytest.mark.hil

N = 5  # samples scored: enough for parity, short on a slow board
USAGE = "pytest -m hil --board ID --port /dev/ttyACM0 (or --place NAME)"


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest) -> tuple[Board, str | None, str | None]:
    """The attached board and where it is, from --board and --port / --place."""
    board_id, port, place = (request.config.getoption(o) for o in ("--board", "--port", "--place"))
    if not board_id:
        pytest.skip(f"no board attached: pass --board and --port or --place ({USAGE})")
    if not port and not place:
        pytest.skip(f"--board {board_id} needs --port or --place ({USAGE})")
    board = get_board(board_id)
    if board.qemu is not None:
        pytest.skip(f"{board_id} is an emulated board: the slow tier runs it in QEMU (pytest -m slow)")
    return board, port, place


@pytest.fixture(scope="module")
def kws() -> Path:
    return shared_model("kws_ref_model.tflite")


@pytest.fixture(scope="module")
def deployment(target, kws, tmp_path_factory) -> Iterator[Deployment]:
    """KWS generated, built and flashed to the board once for the module."""
    board, port, place = target
    with deploy(kws, board, tmp_path_factory.mktemp("hil") / "project", port=port, place=place,
                say=lambda line: print(line, flush=True)) as dep:
        yield dep


@pytest.fixture(scope="module")
def kws_data(tmp_path_factory) -> Path:
    rng = np.random.default_rng(14)
    path = tmp_path_factory.mktemp("hil-data") / "kws.npz"
    np.savez(path, x=rng.normal(0, 20, size=(N, 49, 10, 1)).astype(np.float32), y=rng.integers(0, 12, N))
    return path


def test_flashed_with_the_board_uploader(target, deployment):
    """The board was flashed with its own uploader from the built ELF/bin (no `pio run -t upload`)."""
    board, port, place = target
    if place:
        pytest.skip("a labgrid place flashes through the place's own drivers")
    plan = upload_plan(deployment.project.path, upload_port=port)
    assert plan is not None and plan.tool == default_tool(board) != "pio"
    assert plan.image.is_file()


def test_self_check(target, deployment):
    """te-info names the board and the hash of the model the firmware was built from."""
    board, _, _ = target
    client = connect(deployment.url, connect_timeout=10.0, ready_timeout=20.0)
    try:
        info = client.info()
    finally:
        client.close()
    assert info["board"] == board.id
    assert info["model_sha256"] == deployment.project.graph.sha256


def test_score_kws_parity(target, deployment, kws_data, tmp_path):
    """A few KWS samples on the board: every one answered, bit-exact with the interpreter, real timer."""
    board, _, _ = target
    report = score(deployment.url, kws_data, model=deployment.project.graph, board=board, out_dir=tmp_path,
                   step_summary=False)
    d = report.data
    assert d["samples_ok"] == N and d["parity"] == 1.0
    assert "emulator" not in d["measurement"]["latency_ms"]  # the board's own timer, not an estimate


def test_energy_with_a_power_monitor(request, target, deployment, kws_data, tmp_path):
    """With a power-monitor trace of this firmware, energy per inference is measured, not modelled."""
    trace = request.config.getoption("--power-trace")
    if not trace:
        pytest.skip("no power monitor: pass --power-trace CSV (a trace with a gpio marker column, "
                    "see tinyedge/score/energy.py) to check measured energy")
    board, _, _ = target
    report = score(deployment.url, kws_data, model=deployment.project.graph, board=board, out_dir=tmp_path,
                   power_trace=trace, step_summary=False)
    d = report.data
    assert d["energy_source"] == "trace" and d["energy_uj_per_inference"] > 0
