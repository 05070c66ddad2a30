"""One interface for every way firmware runs: the :class:`Runner` protocol and :func:`runner_for`.

A runner turns a built project into a pyserial URL of the device's UART and stops whatever it started;
one file per runner: :class:`~tinyedge.runners.qemu.QemuRunner`,
:class:`~tinyedge.runners.renode.RenodeRunner`, :class:`~tinyedge.runners.serial.SerialBoardRunner`,
:class:`~tinyedge.runners.labgrid.LabgridPlaceRunner` (a board in a labgrid farm).

>>> with runner_for(board) as runner:
...     url = runner.start(project_dir)
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Protocol

from ..boards import Board, get_board
from ..errors import BoardError
from .labgrid import DEFAULT_PLACE_WAIT, LabgridPlaceRunner
from .qemu import QemuRunner
from .renode import RenodeRunner
from .serial import SerialBoardRunner

ENGINES = ("qemu", "renode")


class Runner(Protocol):
    """Runs a built firmware project and gives the URL of its UART; a context manager that stops it."""

    def start(self, project_dir: Path) -> str:
        """Run (or flash) ``project_dir``'s built firmware; the pyserial URL of the device's UART."""
        ...

    def stop(self) -> None:
        """Stop what :meth:`start` started (idempotent)."""
        ...

    def describe(self) -> str:
        """One line saying what :meth:`start` does, for progress messages."""
        ...

    def __enter__(self) -> Runner: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


def runner_for(board: Board | str, *, engine: str | None = None, port: str | None = None,
               serial_port: int | None = None, core_dir: Path | None = None, place: str | None = None,
               coordinator: str | None = None, place_wait: float | None = None) -> Runner:
    """The runner for ``board``: a real board on ``port`` (flashed first), else the emulator ``engine``
    (default: QEMU when the board has a QEMU machine). ``serial_port`` is the emulator's TCP port for
    the UART (default: a free one); ``core_dir`` the PlatformIO core used to flash.

    ``place`` is a labgrid place holding the board (:class:`~tinyedge.runners.labgrid.LabgridPlaceRunner`,
    at ``coordinator``, default ``$LG_COORDINATOR``; it waits up to ``place_wait`` seconds for a held place).

    Fails at once (before anything is built) for a board that cannot run this way: a real board
    without a port, a port that does not exist, a board the engine does not model.
    """
    board = board if isinstance(board, Board) else get_board(board)
    if place is not None:
        if port is not None or engine is not None:
            raise BoardError(f"a labgrid place ({place}) and a {'serial port' if port else 'emulator'} were both "
                             f"given for {board.id}", "pass --place for a board in the farm, or --port, not both")
        farm = LabgridPlaceRunner(place, coordinator=coordinator, board=board,
                                  wait=DEFAULT_PLACE_WAIT if place_wait is None else place_wait)
        if board.qemu is None:
            raise farm.flash_error()  # a real board on a place cannot be flashed through labgrid yet
        return farm
    if engine is not None and engine not in ENGINES:
        raise BoardError(f"unknown engine '{engine}'", f"pick one of {', '.join(ENGINES)}")
    if port is not None:
        if engine is not None:
            raise BoardError(f"both a serial port ({port}) and an emulator ({engine}) were given for {board.id}",
                             "pass --port for a real board, or an engine for an emulated one, not both")
        return SerialBoardRunner(board, port, core_dir=core_dir)
    if engine == "renode":
        return RenodeRunner(board, serial_port=serial_port)
    if engine is None and board.qemu is None:
        return SerialBoardRunner(board, None, core_dir=core_dir)  # raises: a real board needs its port
    return QemuRunner(board, serial_port=serial_port)
