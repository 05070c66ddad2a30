"""Renode: a ``.resc`` script and a Robot Framework suite (``.robot``) per project, and the launchers.

For every board whose file names a Renode platform (``emulator.renode: {platform, uart}``):

* :func:`renode_script` renders ``<id>.resc``: the machine from Renode's platform description, the
  firmware ELF loaded, the UART on a TCP socket (so ``tinyedge score socket://...`` works as with QEMU);
* :func:`robot_suite` renders ``<id>.robot``: boot, wait for ``m-init-done``, load one input with the
  MLPerf Tiny ``db`` commands, one inference, and the int8 outputs checked against tflite_micro's;
* :func:`write_renode_files` writes both into ``PROJECT/renode/``; :func:`run_renode` and
  :func:`run_robot` start ``renode`` / ``renode-test`` when they are on PATH, and otherwise say how to
  install Renode.

The scripts are written for Renode 1.14+ (``CreateServerSocketTerminal``, ``Wait For Line On Uart``
with ``treatAsRegex``).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from .. import proc
from ..boards import Board, get_board, list_boards
from ..data import random_ints
from ..errors import BoardError, LinkError, TinyedgeError, ToolError
from ..model import load_model
from ..oracle import run_tflm
from ..render import render
from .qemu import free_port, project_elf, wait_listening

RENODE_BIN = "renode"
RENODE_TEST_BIN = "renode-test"
RENODE_HINT = (
    "install Renode 1.14 or newer and put `renode` and `renode-test` on PATH: the Linux portable package from "
    "https://renode.io (Downloads) or https://github.com/renode/renode/releases; renode-test also needs the "
    "Python packages of Renode's tests/requirements.txt (pip install -r <renode>/tests/requirements.txt)"
)
#: Input bytes per ``db`` line, as the MLPerf Tiny runner sends them (and tinyedge.link does).
DB_CHUNK = 31
#: Seconds Renode's terminal tester waits for each expected line.
ROBOT_TIMEOUT_S = 60


@dataclass(frozen=True)
class RenodeFiles:
    resc: Path
    robot: Path
    elf: Path


def renode_platform(board: Board) -> dict[str, str]:
    """The board's Renode mapping ``{platform, uart}``; BoardError when Renode has no model of it."""
    renode = (board.emulator or {}).get("renode")
    if not renode:
        with_renode = [b for b in _renode_board_ids()]
        raise BoardError(
            f"board '{board.id}' has no Renode platform (emulator.renode in {board.source})",
            ("use QEMU (tinyedge emulate) or a board Renode models: " + ", ".join(with_renode)) if with_renode
            else "use QEMU (tinyedge emulate)",
        )
    return {"platform": str(renode["platform"]), "uart": str(renode["uart"])}


def _renode_board_ids() -> list[str]:
    return [b.id for b in list_boards() if (b.emulator or {}).get("renode")]


def renode_script(board: Board, elf: Path | str = "firmware.elf", *, port: int = 3456) -> str:
    """The ``.resc`` text for ``board``: ``$elf`` and ``$port`` default to ``elf`` and ``port``."""
    return render("board.resc.j2", board=board, renode=renode_platform(board), elf=str(elf), port=int(port))


def _regex_escape_robot(text: str) -> str:
    # A regex for Renode's matcher, written in a Robot cell: backslashes double (Robot unescapes them once).
    return re.escape(text).replace("\\", "\\\\")


def robot_suite(board: Board, elf: Path | str, *, model_name: str, model_sha256: str, input_bytes: bytes,
                expected_out: list[int] | np.ndarray, timeout_s: int = ROBOT_TIMEOUT_S) -> str:
    """The ``.robot`` suite for one firmware: boot, ``m-init-done``, one inference on ``input_bytes`` whose
    outputs must equal ``expected_out`` (tflite_micro's: int8, an int16 array for an int16 output, a float32
    one for a float output) in the ``te-results`` line."""
    data = bytes(input_bytes)
    if not data:
        raise TinyedgeError("the Robot suite needs a non-empty input", "pass the model's input bytes")
    chunks = [data[i:i + DB_CHUNK].hex() for i in range(0, len(data), DB_CHUNK)]
    values = np.asarray(expected_out).reshape(-1)
    if values.dtype == np.float32:  # te-results sends a float32 output as its IEEE bits, outf=[3F800000,...]
        key, out = "outf", "[" + ",".join(f"{int(v):08X}" for v in values.view(np.uint32)) + "]"
    else:  # ... and names int16 outputs out16
        key, out = ("out16" if values.dtype == np.int16 else "out"), "[" + ",".join(str(int(v)) for v in values) + "]"
    expected = r"te-results-ticks=\\d+,.*" + key + "=" + _regex_escape_robot(out) + r".*"
    return render("board.robot.j2", board=board, renode=renode_platform(board), elf=str(elf), model_name=model_name,
                  model_sha256=model_sha256, input_bytes=len(data), input_hex=chunks, expected_regex=expected,
                  timeout_s=int(timeout_s))


def _project_board(project: Path) -> Board:
    manifest = project / "tinyedge.json"
    try:
        return get_board(str(json.loads(manifest.read_text())["board"]))
    except (OSError, ValueError, KeyError, TypeError):
        raise TinyedgeError(f"{project} has no readable tinyedge.json with a board id",
                            "pass a project made by `tinyedge generate`") from None


def write_renode_files(project_dir: Path | str, *, seed: int = 0) -> RenodeFiles:
    """Write ``PROJECT/renode/<board>.resc`` and ``<board>.robot`` for a generated project.

    The suite's input is a seeded random int8 input of the project's model (``model.tflite``); its
    expected outputs come from the tflite_micro interpreter.
    """
    project = Path(project_dir).resolve()
    if not (project / "platformio.ini").is_file() or not (project / "model.tflite").is_file():
        raise TinyedgeError(f"{project} is not a tinyedge project (no platformio.ini or model.tflite)",
                            "generate one with `tinyedge generate`")
    board = _project_board(project)
    renode_platform(board)  # fail before any work for boards Renode does not model

    graph = load_model(project / "model.tflite")
    rng = np.random.default_rng(seed)
    x = random_ints(graph.input.dtype, (1, *graph.input.shape[1:]), rng)
    if graph.input.dtype == "FLOAT32":  # a float input (the model quantizes it): int8-range values, exact
        x = x.astype(np.float32)
    expected = np.asarray(run_tflm(graph.model_bytes, x)).reshape(-1)
    elf = project_elf(project)
    out = project / "renode"
    out.mkdir(exist_ok=True)
    resc = out / f"{board.id}.resc"
    robot = out / f"{board.id}.robot"
    resc.write_text(renode_script(board, elf))
    robot.write_text(robot_suite(board, elf, model_name=graph.name, model_sha256=graph.sha256,
                                 input_bytes=x.tobytes(), expected_out=expected))
    return RenodeFiles(resc=resc, robot=robot, elf=elf)


def _require(tool: str) -> str:
    return proc.which(tool, RENODE_HINT)


def _require_elf(files: RenodeFiles, project: Path) -> None:
    if not files.elf.is_file():
        raise ToolError(f"{files.elf} does not exist", f"build it first with `tinyedge build {project}`")


def write_shipped_scripts(folder: Path | str) -> list[Path]:
    """Write ``<id>.resc`` for every board with a Renode platform into ``folder`` (the ``renode/`` folder
    that ships with tinyedge holds these; ``$elf`` and ``$port`` are set by whoever includes them)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for board in list_boards():
        if (board.emulator or {}).get("renode"):
            path = folder / f"{board.id}.resc"
            path.write_text(renode_script(board))
            written.append(path)
    return written


def renode_command(resc: Path, elf: Path, port: int, *, console: bool = True) -> list[str]:
    """``renode`` headless, running ``resc`` with ``$elf``/``$port`` set, then starting the machine; with
    ``console`` its monitor is on the terminal (interactive), without it Renode runs until it is stopped."""
    return [RENODE_BIN, "--disable-xwt", *(["--console"] if console else []), "--plain", "-e",
            f"$elf=@{elf}; $port={int(port)}; include @{resc}; start"]


def run_renode(project_dir: Path | str, serial_port: int | None = None, *,
               echo: Callable[[str], None] = lambda msg: print(msg, flush=True)) -> int:
    """Run a built project's firmware in Renode with its UART on TCP ``serial_port``; returns Renode's exit code."""
    project = Path(project_dir).resolve()
    files = write_renode_files(project)
    _require(RENODE_BIN)
    _require_elf(files, project)
    port = serial_port or free_port()
    echo(f"Renode runs {files.elf.name} of {project.name} ({files.resc.name}); its UART is on "
         f"socket://127.0.0.1:{port}. Quit Renode with `quit` in its console.")
    return proc.run(renode_command(files.resc, files.elf, port), check=False, capture=False, timeout=None,
                    what="renode").returncode


def run_robot(project_dir: Path | str, *, results_dir: Path | str | None = None,
              echo: Callable[[str], None] = lambda msg: print(msg, flush=True)) -> int:
    """Run the project's Robot Framework suite with ``renode-test``; returns its exit code (0: all passed)."""
    project = Path(project_dir).resolve()
    files = write_renode_files(project)
    tool = _require(RENODE_TEST_BIN)
    _require_elf(files, project)
    results = Path(results_dir) if results_dir else project / "renode" / "results"
    results.mkdir(parents=True, exist_ok=True)
    echo(f"renode-test {files.robot} (results in {results})")
    return proc.run([tool, str(files.robot), "--results-dir", str(results)], check=False, capture=False,
                    timeout=None, what="renode-test").returncode


#: Seconds Renode gets to load the platform and open the UART's socket.
RENODE_START_TIMEOUT_S = 60.0


class RenodeRunner:
    """The :class:`~tinyedge.runners.core.Runner` for boards Renode models: Renode headless in the
    background running the project's generated ``.resc``, its UART on a TCP socket.

    Renode cannot be installed by tinyedge: :meth:`start` raises a ToolError with :data:`RENODE_HINT`
    when ``renode`` is not on PATH (after writing the ``.resc``, so it can be run by hand).
    """

    def __init__(self, board: Board, *, serial_port: int | None = None) -> None:
        renode_platform(board)  # a board Renode does not model fails here, before anything is built
        self.board = board
        self.port: int | None = serial_port
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def describe(self) -> str:
        """What :meth:`start` does, for progress messages."""
        return f"emulate: Renode {renode_platform(self.board)['platform']}"

    def start(self, project_dir: Path) -> str:
        """Write the project's Renode files, start Renode on its built firmware; returns the UART's URL."""
        project = Path(project_dir).resolve()
        files = write_renode_files(project)
        _require(RENODE_BIN)
        _require_elf(files, project)
        self.stop()
        port = self.port = self.port or free_port()
        self._log = tempfile.TemporaryFile()  # a file, not a pipe: nobody reads it while Renode runs
        cmd = renode_command(files.resc, files.elf, port, console=False)
        self._proc = proc.popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        if not wait_listening(port, self._proc, RENODE_START_TIMEOUT_S) and self._proc.poll() is not None:
            log = self._output()
            self.stop()
            raise ToolError(f"Renode exited with code {self._proc.returncode} at start" + (f": {log}" if log else ""),
                            f"run it by hand: {proc.format_cmd(renode_command(files.resc, files.elf, port))}")
        return self.url

    @property
    def url(self) -> str:
        """pyserial URL of the UART (after :meth:`start`)."""
        if self.port is None:
            raise LinkError("Renode was not started", "call start(project_dir) first")
        return f"socket://127.0.0.1:{self.port}"

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return "\n".join(self._log.read().decode(errors="replace").strip().splitlines()[-15:])

    def stop(self) -> None:
        """Stop Renode if it runs."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> RenodeRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
