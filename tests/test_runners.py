"""tinyedge.runners: the Runner interface, runner_for, the three runners and deploy.

What runs here runs for real (PlatformIO, arm-none-eabi-gcc, QEMU). Renode is not installable here, so only
its missing-tool error is tested; a real board is opt-in (``-m hil`` with TINYEDGE_HIL_BOARD and
TINYEDGE_HIL_PORT set), and without one the serial runner is checked up to the uploader: PlatformIO builds
and calls the board's upload command, which here is a script that records what it was given.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from helpers import QEMU_BOARD
from tflite_builder import ACT, ModelBuilder, options
from tinyedge.boards import get_board
from tinyedge.errors import BoardError, LinkError, TinyedgeError, ToolError
from tinyedge.firmware import generate_project
from tinyedge.link import connect
from tinyedge.model import read_model_bytes
from tinyedge.runners import RENODE_HINT, QemuRunner, RenodeRunner, Runner, SerialBoardRunner, deploy, runner_for
from tinyedge.runners.qemu import free_port
from tinyedge.runners.serial import check_port

needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
    reason="needs arm-none-eabi-gcc and qemu-system-arm",
)
REAL_BOARD = "nucleo_l4r5zi"
RENODE_BOARD = "qemu-netduinoplus2"


def tiny_model() -> bytes:
    """A 1x8 -> 4 int8 FULLY_CONNECTED model: generated and built in seconds."""
    rng = np.random.default_rng(1)
    b = ModelBuilder()
    ti = b.tensor((1, 8), scale=0.05, zero_point=-3)
    tw = b.tensor((4, 8), data=rng.integers(-127, 128, size=(4, 8), dtype=np.int8), scale=0.01, zero_point=0)
    tb = b.tensor((4,), "INT32", data=rng.integers(-500, 500, size=4).astype(np.int32), scale=0.0005, zero_point=0)
    to = b.tensor((1, 4), scale=0.1, zero_point=2)
    b.op("FULLY_CONNECTED", [ti, tw, tb], [to],
         options("FullyConnectedOptions", fusedActivationFunction=ACT["NONE"]), "FullyConnectedOptions")
    return b.build([ti], [to])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.tflite"
    path.write_bytes(tiny_model())
    return path


@pytest.fixture
def pty_port():
    """A real character device that is nobody's UART: the slave side of a pseudo-terminal."""
    if not hasattr(os, "openpty"):
        pytest.skip("needs a POSIX pseudo-terminal")
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


# ------------------------------------------------------------------------------------------ runner_for
@pytest.mark.unit
def test_runner_for_picks_one_runner_per_case(pty_port):
    qemu = runner_for(QEMU_BOARD)
    assert isinstance(qemu, QemuRunner) and "QEMU mps2-an386" in qemu.describe()
    assert isinstance(runner_for(RENODE_BOARD, engine="renode"), RenodeRunner)
    board = runner_for(REAL_BOARD, port=pty_port)
    assert isinstance(board, SerialBoardRunner) and board.port == board.upload_port == pty_port
    for runner in (qemu, board):  # every runner is a Runner and a context manager
        assert isinstance(runner, QemuRunner | SerialBoardRunner)
        r: Runner = runner
        with r as same:
            assert same is r


@pytest.mark.unit
def test_real_board_without_port_is_one_clear_error():
    with pytest.raises(LinkError, match="no emulator here and no serial port") as err:
        runner_for(REAL_BOARD)
    assert "--port /dev/ttyACM0" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.unit
@pytest.mark.parametrize("port, problem", [
    ("/dev/ttyTINYEDGE-NONE", "does not exist"),
    (__file__, "not a serial device"),
    ("nosuchscheme://x", "no 'nosuchscheme://' URLs"),
    ("   ", "no serial port was given"),
])
def test_invalid_port_is_one_clear_error(port, problem):
    with pytest.raises(LinkError, match=problem) as err:
        SerialBoardRunner(get_board(REAL_BOARD), port)
    assert "\n" not in str(err.value) and "Try:" in str(err.value)


@pytest.mark.unit
def test_url_ports_are_not_upload_ports():
    runner = SerialBoardRunner(get_board(REAL_BOARD), "socket://127.0.0.1:4321")
    assert runner.url == "socket://127.0.0.1:4321" and runner.upload_port is None
    assert check_port("rfc2217://host:2217") == "rfc2217://host:2217"
    explicit = SerialBoardRunner(get_board(REAL_BOARD), "socket://127.0.0.1:4321", upload_port="/dev/ttyACM3")
    assert explicit.upload_port == "/dev/ttyACM3" and "/dev/ttyACM3" in explicit.describe()


@pytest.mark.unit
def test_engine_the_board_lacks_is_a_board_error():
    with pytest.raises(BoardError, match="no Renode platform"):
        runner_for("qemu-mps2-an385", engine="renode")
    with pytest.raises(BoardError, match="cannot be emulated by QEMU"):
        runner_for(REAL_BOARD, engine="qemu")
    with pytest.raises(BoardError, match="not both"):
        runner_for(QEMU_BOARD, engine="qemu", port="/dev/ttyACM0")
    with pytest.raises(BoardError, match="unknown engine"):
        runner_for(QEMU_BOARD, engine="bochs")


@pytest.mark.unit
def test_serial_runner_names_the_boards_own_uploader(pty_port):
    """A real board flashes with its board file's tool (no vendor platform): the progress line says which."""
    assert SerialBoardRunner(get_board("pico"), pty_port).describe() == f"flash: uf2 ({pty_port})"
    assert SerialBoardRunner(get_board(REAL_BOARD), pty_port).describe() == f"flash: openocd ({pty_port})"


# ------------------------------------------------------------------------------------------ Renode
@pytest.mark.unit
def test_renode_runner_without_renode_says_how_to_install(tiny, tmp_path, monkeypatch):
    project = generate_project(tiny, RENODE_BOARD, tmp_path / "p").path
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with RenodeRunner(get_board(RENODE_BOARD)) as runner, pytest.raises(ToolError) as err:
        runner.start(project)
    assert "'renode' is not on PATH" in str(err.value) and RENODE_HINT.split(":")[0] in str(err.value)
    assert (project / "renode" / f"{RENODE_BOARD}.resc").is_file()  # written first: runnable by hand


# ------------------------------------------------------------------------------------------ real board
UPLOADER = """import json, sys
from pathlib import Path
Path(sys.argv[1]).write_text(json.dumps(sys.argv[2:]))
"""


@needs_tools
@pytest.mark.slow
def test_serial_runner_flashes_with_platformio_then_returns_the_port(tiny, tmp_path, pio_core, pty_port):
    """Real PlatformIO builds the project and runs its upload command with the board's port; the uploader
    (the one piece that needs hardware) is a script that records its arguments."""
    board = get_board(QEMU_BOARD)  # a board that builds offline; its upload is replaced below
    project = generate_project(tiny, board, tmp_path / "p").path
    (project / "fake_uploader.py").write_text(UPLOADER)
    record = tmp_path / "uploaded.json"
    ini = project / "platformio.ini"
    ini.write_text(ini.read_text() + f'upload_command = "$PYTHONEXE" "$PROJECT_DIR/fake_uploader.py" "{record}" '
                                     '"$UPLOAD_PORT" "$SOURCE"\n')
    runner = SerialBoardRunner(board, pty_port, core_dir=pio_core)
    assert runner.describe() == f"flash: pio run -t upload ({pty_port})"
    with runner:
        assert runner.start(project) == pty_port
    port, source = json.loads(record.read_text())
    assert port == pty_port
    assert (project / source).resolve() == (project / ".pio" / "build" / board.id / "firmware.elf").resolve()


@pytest.mark.hil
def test_serial_runner_on_real_hardware(tiny, tmp_path):
    """Opt-in: TINYEDGE_HIL_BOARD=<board id> TINYEDGE_HIL_PORT=/dev/ttyACM0 pytest -m hil tests/test_runners.py"""

    board_id, port = os.environ.get("TINYEDGE_HIL_BOARD"), os.environ.get("TINYEDGE_HIL_PORT")
    if not board_id or not port:
        pytest.skip("set TINYEDGE_HIL_BOARD and TINYEDGE_HIL_PORT")
    with deploy(tiny, board_id, tmp_path / "p", port=port) as dep:
        assert dep.url == port
        client = connect(dep.url, connect_timeout=10.0, ready_timeout=20.0)
        try:
            assert client.info()["board"] == board_id
        finally:
            client.close()


# ------------------------------------------------------------------------------------------ QEMU and deploy
@needs_tools
@pytest.mark.slow
def test_deploy_runs_in_qemu_and_stops_on_interrupt(tiny, tmp_path, pio_core):
    graph = read_model_bytes(tiny.read_bytes(), name="tiny")
    port = free_port()
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with deploy(graph, QEMU_BOARD, tmp_path / "p", serial_port=port, core_dir=pio_core, say=said.append) as dep:
            assert dep.project.graph is graph and dep.project.board.id == QEMU_BOARD  # loaded once, handed on
            assert dep.url == f"socket://127.0.0.1:{port}" and dep.build.elf.is_file()
            assert said[:2] == [f"generate a PlatformIO project for {QEMU_BOARD}", "build: pio run"]
            assert said[-1] == "emulate: QEMU mps2-an386 (-icount shift=0)"
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:  # the guest boots for us
                s.settimeout(10)
                banner = b""
                while b"m-init-done" not in banner:
                    chunk = s.recv(4096)
                    assert chunk, banner
                    banner += chunk
            qemu = dep.runner
            raise KeyboardInterrupt
    assert isinstance(qemu, QemuRunner) and qemu.session is not None and qemu.session.returncode is not None


@needs_tools
@pytest.mark.slow
def test_qemu_runner_restarts_on_its_port(tiny, tmp_path, pio_core):
    with deploy(tiny, QEMU_BOARD, tmp_path / "p", core_dir=pio_core) as dep:
        runner = dep.runner
        assert isinstance(runner, QemuRunner)
        first = runner.session
        assert runner.start(dep.project.path) == dep.url  # a fresh boot, same URL for the client
        assert first is not None and first.returncode is not None and runner.session is not first


@pytest.mark.unit
def test_deploy_checks_the_runner_before_building(tiny, tmp_path):
    with pytest.raises(LinkError, match="no serial port"):
        with deploy(tiny, REAL_BOARD, tmp_path / "p"):
            pass
    assert not (tmp_path / "p").exists()  # nothing generated


@pytest.mark.unit
def test_qemu_runner_needs_a_built_project(tiny, tmp_path):
    project = generate_project(tiny, QEMU_BOARD, tmp_path / "p").path
    with QemuRunner(get_board(QEMU_BOARD)) as runner, pytest.raises(ToolError, match="build it first"):
        runner.start(project)
    with pytest.raises(TinyedgeError, match="not a firmware project"):
        QemuRunner(get_board(QEMU_BOARD)).start(tmp_path)

