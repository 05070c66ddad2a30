"""The QEMU launcher."""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import serial

from .. import proc
from ..boards import Board, get_board
from ..errors import BoardError, LinkError, TinyedgeError, ToolError
from ..firmware.pio import project_env
from ..link.transport import open_url

QEMU_BIN = "qemu-system-arm"
QEMU_HINT = "sudo apt-get install qemu-system-arm (QEMU 7.2 or newer)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: The kernel's socket tables (Linux); elsewhere the listening checks are skipped and the serial retries cover it.
_TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def is_listening(port: int) -> bool | None:
    """Whether something listens on TCP ``port``, read from /proc without connecting (an emulator accepts a
    single client and starts the guest for it); None where /proc/net/tcp does not exist."""
    if not _TCP_TABLES[0].is_file():
        return None
    want = f":{port:04X}"
    for table in _TCP_TABLES:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 3 and cols[1].endswith(want) and cols[3] == "0A":  # 0A: LISTEN
                return True
    return False


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until ``process`` listens on TCP ``port``: True when it does, False when it exited first or
    ``timeout`` passed (or on a system without /proc, where the caller's connect retries cover it)."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            return False
        listening = is_listening(port)
        if listening is None:
            return False
        if listening:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def project_elf(project_dir: Path | str) -> Path:
    """The firmware ELF ``pio run`` builds for a project (it need not exist yet)."""
    project = Path(project_dir)
    return project / ".pio" / "build" / project_env(project) / "firmware.elf"


def project_board(project_dir: Path | str) -> Board:
    """The board of a generated project: ``tinyedge.json``'s ``board``, else the platformio.ini environment."""
    project = Path(project_dir)
    manifest = project / "tinyedge.json"
    if manifest.is_file():
        try:
            board_id = json.loads(manifest.read_text())["board"]
        except (ValueError, KeyError, TypeError):
            raise TinyedgeError(f"{manifest} has no board id",
                                "regenerate the project with `tinyedge generate`") from None
    else:
        board_id = project_env(project)
    return get_board(str(board_id))


def require_project(project_dir: Path | str) -> Path:
    """``project_dir`` resolved; TinyedgeError when it holds no platformio.ini."""
    project = Path(project_dir).resolve()
    if not (project / "platformio.ini").is_file():
        raise TinyedgeError(f"{project} is not a firmware project (no platformio.ini)",
                            "pass the folder `tinyedge generate` created")
    return project


def _machine(board: Board) -> str:
    qemu = board.qemu
    if not qemu or not qemu.get("machine"):
        raise BoardError(
            f"board '{board.id}' cannot be emulated by QEMU (no emulator.qemu.machine in {board.source})",
            "flash it to the real board with `tinyedge flash`, or pick a board with a QEMU machine (tinyedge boards)",
        )
    return str(qemu["machine"])


def qemu_command(board: Board, elf: Path | str, serial_port: int, *, icount: int = 0) -> list[str]:
    """The QEMU command line that runs ``elf`` on ``board`` with UART0 as a TCP server on ``serial_port``.

    ``wait=on`` holds the guest until the host connects, so the boot banner is never lost;
    ``-display none -monitor none`` rather than ``-nographic``, which would eat 0x01 bytes as the
    monitor escape. ``sleep=off`` keeps virtual time independent of the host when the guest idles.
    """
    return [
        QEMU_BIN,
        "-machine", _machine(board),
        "-display", "none",
        "-monitor", "none",
        "-icount", f"shift={icount},align=off,sleep=off",
        "-semihosting-config", "enable=on,target=native",
        # nodelay: the guest writes its reply byte by byte; with Nagle on, each reply waits ~40 ms
        # for the host's delayed ACK, which made every command round trip 45 ms instead of 2 ms.
        "-serial", f"tcp:127.0.0.1:{serial_port},server=on,wait=on,nodelay=on",
        "-kernel", str(elf),
    ]


class QemuSession:
    """QEMU running one firmware ELF; a context manager that always stops QEMU on exit.

    >>> with QemuSession(board, elf) as qemu:
    ...     link = qemu.open_serial(timeout=10)
    ...     link.write(b"...")
    ...     code = qemu.wait(timeout=30)
    """

    def __init__(self, board: Board, elf: Path | str, *, serial_port: int | None = None, icount: int = 0,
                 stdout: IO[Any] | int | None = subprocess.DEVNULL) -> None:
        self.board = board
        self.elf = Path(elf)
        self.port = serial_port or free_port()
        self.icount = icount
        self._stdout = stdout
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._serial: Any = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> QemuSession:
        """Start QEMU (it holds the guest until :meth:`open_serial` connects)."""
        if self._proc is not None:
            return self
        if not self.elf.is_file():
            raise ToolError(f"firmware {self.elf} does not exist", "build it first with `tinyedge build`")
        with open(self.elf, "rb") as f:
            if f.read(4) != b"\x7fELF":
                raise ToolError(f"{self.elf} is not an ELF file", "pass the firmware.elf that `tinyedge build` made")
        cmd = qemu_command(self.board, self.elf, self.port, icount=self.icount)
        proc.which(QEMU_BIN, QEMU_HINT)
        # stderr goes to a file, not a pipe: nobody reads it while QEMU runs, and a full pipe would stall it.
        self._stderr = tempfile.TemporaryFile()
        self._proc = proc.popen(cmd, stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=self._stderr)
        try:
            self._wait_listening(timeout=15.0)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self, timeout: float) -> None:
        # Wait until QEMU listens so that `url` works at once, and catch a QEMU that dies at start. A
        # timeout (or no /proc) is left to open_serial's retries and its clearer error.
        assert self._proc is not None
        wait_listening(self.port, self._proc, timeout)
        if self._proc.poll() is not None:
            raise self.died("at start")

    def __enter__(self) -> QemuSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """pyserial URL of the firmware's UART."""
        return f"socket://127.0.0.1:{self.port}"

    @property
    def returncode(self) -> int | None:
        """QEMU's exit status (the firmware's exit code), None while it runs."""
        return None if self._proc is None else self._proc.poll()

    def stderr_text(self) -> str:
        """What QEMU wrote to stderr so far, without its "info:" lines (e.g. "waiting for connection")."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").splitlines()
        return "\n".join(ln for ln in lines if ": info: " not in ln).strip()

    def died(self, when: str) -> TinyedgeError:
        """The error to raise for a QEMU that exited ``when`` (e.g. "at start"), with its stderr and command."""
        err = self.stderr_text()
        if "Address already in use" in err or "Failed to bind" in err:
            return LinkError(f"QEMU cannot listen on TCP port {self.port}: {err}",
                             "pick another --serial-port or leave it out")
        return ToolError(
            f"QEMU exited with code {self.returncode}" + (f" {when}" if when else "") + (f": {err}" if err else ""),
            f"run it by hand: {proc.format_cmd(qemu_command(self.board, self.elf, self.port, icount=self.icount))}",
        )

    def open_serial(self, timeout: float = 10.0, **serial_kwargs: Any) -> Any:
        """Connect to the UART, retrying until QEMU listens; returns a pyserial object (closed by :meth:`stop`).

        ``serial_kwargs`` go to ``serial.serial_for_url`` (default read timeout 1 s).
        """
        if self._proc is None:
            self.start()
        assert self._proc is not None
        serial_kwargs.setdefault("timeout", 1.0)
        serial_kwargs.setdefault("baudrate", int(self.board.uart["baud"]))
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise self.died("before the UART connected")
            try:
                self._serial = open_url(self.url, **serial_kwargs)  # keeps the boot banner
                return self._serial
            except (serial.SerialException, OSError) as exc:
                if time.monotonic() > deadline:
                    raise LinkError(
                        f"cannot connect to QEMU's UART at {self.url} within {timeout:g} s: {exc}",
                        "check that nothing else uses the port and that QEMU starts (tinyedge -v shows its command)",
                    ) from None
                time.sleep(0.05)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the firmware to exit and return its exit code; LinkError after ``timeout`` seconds."""
        if self._proc is None:
            raise ToolError("QEMU was not started", "call start() or use the session as a context manager")
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise LinkError(
                f"the firmware in QEMU did not exit within {timeout:g} s",
                "check that it reaches te_port_exit(), or give it longer",
            ) from None

    def stop(self) -> None:
        """Close the UART and kill QEMU if it still runs."""
        if self._serial is not None:
            try:
                self._serial.close()
            finally:
                self._serial = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


class QemuRunner:
    """The :class:`~tinyedge.runners.core.Runner` for boards QEMU emulates: one :class:`QemuSession` per
    :meth:`start`, on the same TCP port each time (so a client can reconnect after a restart).

    >>> with QemuRunner(board) as runner:
    ...     url = runner.start(project_dir)   # socket://127.0.0.1:N; the guest starts when a client connects
    """

    def __init__(self, board: Board, *, serial_port: int | None = None, icount: int = 0,
                 stdout: IO[Any] | int | None = subprocess.DEVNULL) -> None:
        _machine(board)  # a board QEMU cannot run fails here, before anything is built
        self.board = board
        self.port: int | None = serial_port
        self.icount = icount
        self._stdout = stdout
        self.session: QemuSession | None = None

    def describe(self) -> str:
        """What :meth:`start` does, for progress messages."""
        return f"emulate: QEMU {_machine(self.board)} (-icount shift={self.icount})"

    def start(self, project_dir: Path) -> str:
        """Run the built firmware of ``project_dir`` in QEMU (restarting it if it runs); returns the UART's URL."""
        return self.start_elf(project_elf(require_project(project_dir)))

    def start_elf(self, elf: Path | str) -> str:
        """Run the firmware ``elf`` in QEMU; returns the UART's URL."""
        self.stop()
        session = QemuSession(self.board, elf, serial_port=self.port, icount=self.icount, stdout=self._stdout)
        self.port = session.port
        self.session = session.start()
        return session.url

    @property
    def url(self) -> str:
        """pyserial URL of the UART (after :meth:`start`)."""
        return self._session().url

    def _session(self) -> QemuSession:
        if self.session is None:
            raise ToolError("QEMU was not started", "call start(project_dir) first")
        return self.session

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the firmware to exit; its exit code (see :meth:`QemuSession.wait`)."""
        return self._session().wait(timeout)

    def stop(self) -> None:
        """Stop QEMU (the port is kept for the next :meth:`start`)."""
        if self.session is not None:
            self.session.stop()

    def __enter__(self) -> QemuRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def emulate_project(project_dir: Path | str, serial_port: int | None = None, *,
                    echo: Callable[[str], None] = lambda msg: print(msg, flush=True)) -> int:
    """Run a built project's firmware in QEMU until it exits; return its exit code.

    The board comes from ``PROJECT/tinyedge.json`` (key ``board``) or the environment in
    platformio.ini. ``echo`` is told where the UART is; the firmware starts once a client connects.
    """
    project = require_project(project_dir)
    board = project_board(project)
    elf = project_elf(project)
    if not elf.is_file():
        raise ToolError(f"{elf} does not exist", f"build it first with `tinyedge build {project}`")
    with QemuRunner(board, serial_port=serial_port, stdout=None) as runner:
        url = runner.start_elf(elf)
        echo(f"QEMU {_machine(board)} runs {elf.name} of {project.name}; its UART is on {url} "
             f"(port {runner.port}). The firmware starts when a client connects, e.g. "
             f"`python -m serial.tools.miniterm {url}`.")
        code = runner.wait()
        session = runner._session()
        if code != 0 and "qemu-system-arm:" in session.stderr_text():
            raise session.died("while running the firmware")  # QEMU itself failed, not the firmware
        echo(f"firmware exited with code {code}")
        return code
