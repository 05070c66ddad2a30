"""A real board on a serial port: flashed with its board file's uploader (pyOCD, OpenOCD, UF2, esptool, or
``pio run -t upload``), then reached over its UART."""

from __future__ import annotations

import importlib.util
import os
import stat
from pathlib import Path

from ..boards import Board
from ..errors import LinkError, TinyedgeError
from ..firmware import flash_project
from ..firmware.upload import default_tool

#: Where a real board's port usually is, for the error messages.
PORT_EXAMPLE = "/dev/ttyACM0"


def is_url(port: str) -> bool:
    """True for a pyserial URL (``socket://``, ``rfc2217://``, ``loop://``...), False for a device name."""
    return "://" in port


def check_port(port: str | None, board_id: str = "the board") -> str:
    """``port`` when it can name the board's UART: a pyserial URL of a known scheme, or an existing
    character device (any name on Windows, where COM ports are not files). One LinkError otherwise."""
    if port is None or not str(port).strip():
        raise LinkError(f"{board_id} has no emulator here and no serial port was given",
                        f"connect it and pass its port, e.g. --port {PORT_EXAMPLE} (it is flashed first; "
                        "`pio device list` shows the candidates), or pick a qemu-* board")
    port = str(port).strip()
    if is_url(port):
        scheme = port.split("://", 1)[0].lower()
        # pyserial opens "<scheme>://" with its module serial.urlhandler.protocol_<scheme>.
        if not scheme.isidentifier() or importlib.util.find_spec(f"serial.urlhandler.protocol_{scheme}") is None:
            raise LinkError(f"'{port}' is not a serial port: pyserial has no '{scheme}://' URLs",
                            f"pass a device such as {PORT_EXAMPLE}, or a socket://HOST:PORT or rfc2217://HOST:PORT URL")
        return port
    if os.name == "nt":
        return port
    try:
        mode = os.stat(port).st_mode
    except OSError as exc:
        raise LinkError(f"serial port {port} does not exist ({exc.strerror})",
                        f"connect the board and check its port (`pio device list`), e.g. --port {PORT_EXAMPLE}",
                        ) from None
    if not stat.S_ISCHR(mode):
        raise LinkError(f"{port} is not a serial device (not a character device)",
                        f"pass the board's port, e.g. --port {PORT_EXAMPLE} (`pio device list` shows the candidates)")
    return port


class SerialBoardRunner:
    """The :class:`~tinyedge.runners.core.Runner` for a real board: :meth:`start` flashes the built project
    with the board's uploader (:func:`tinyedge.firmware.flash_project`) and returns ``port`` (its UART). The
    port is checked when the runner is made, so a missing or mistyped port fails before anything is built.

    ``upload_port`` is what the uploader gets (``pio run -t upload --upload-port``); by default the serial
    port itself when it is a device, and none for a URL (the uploader then finds the board or its probe).
    """

    def __init__(self, board: Board, port: str | None, *, upload_port: str | None = None,
                 core_dir: Path | None = None) -> None:
        self.board = board
        self.port = check_port(port, f"board {board.id}")
        self.upload_port = upload_port if upload_port is not None else (None if is_url(self.port) else self.port)
        self.core_dir = core_dir
        self.flashed: Path | None = None

    def describe(self) -> str:
        """What :meth:`start` does, for progress messages."""
        tool = default_tool(self.board)
        how = "pio run -t upload" if tool == "pio" else tool
        return f"flash: {how} ({self.upload_port or 'auto-detected port'})"

    def start(self, project_dir: Path) -> str:
        """Flash ``project_dir``'s firmware to the board (building it first when needed); returns the port."""
        project = Path(project_dir)
        if not (project / "platformio.ini").is_file():
            raise TinyedgeError(f"{project} is not a firmware project (no platformio.ini)",
                                "pass the folder `tinyedge generate` created")
        flash_project(project, upload_port=self.upload_port, core_dir=self.core_dir)
        self.flashed = project
        return self.port

    @property
    def url(self) -> str:
        """The board's serial port (a device name or pyserial URL)."""
        return self.port

    def stop(self) -> None:
        """Nothing to stop: the board keeps running its firmware; whoever opened the port closes it."""

    def __enter__(self) -> SerialBoardRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
