"""Boards are data: YAML files validated by :mod:`tinyedge.boards.schema`.

Search path (first hit wins): ``./boards`` of the current project, ``$TINYEDGE_BOARDS_DIR`` (or
``~/.config/tinyedge/boards``), then the built-in set shipped with tinyedge.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import BoardError
from ..paths import builtin_boards_dir
from .cores import CORES, Core, core_info, has_dsp, has_dwt, has_fpu, is_armv6m
from .schema import validate

_log = logging.getLogger(__name__)

__all__ = [
    "Board",
    "CORES",
    "Core",
    "MemRegion",
    "board_ids",
    "core_info",
    "get_board",
    "has_dsp",
    "has_dwt",
    "has_fpu",
    "is_armv6m",
    "list_boards",
    "load_board_file",
    "search_path",
    "validate",
]


@dataclass(frozen=True)
class MemRegion:
    base: int
    size: int


@dataclass(frozen=True)
class Board:
    """A validated board description. ``raw`` keeps the YAML mapping for templates."""

    id: str
    name: str
    core: str
    fpu: str
    dsp: bool
    clock_hz: int
    flash: MemRegion
    ram: MemRegion
    uart: dict[str, Any]
    timer: dict[str, Any]
    platformio: dict[str, Any]
    emulator: dict[str, Any]
    power: dict[str, Any]
    source: Path
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def qemu(self) -> dict[str, Any] | None:
        """The QEMU mapping (``machine`` etc.) or None when the board cannot be emulated by QEMU."""
        return (self.emulator or {}).get("qemu")

    @property
    def run_current_ma(self) -> float:
        """Run-mode supply current at the board clock, from the power model."""
        p = self.power
        if "run_current_ma" in p:
            return float(p["run_current_ma"])
        return float(p["run_current_ma_per_mhz"]) * self.clock_hz / 1e6

    @property
    def run_power_mw(self) -> float:
        return self.run_current_ma * float(self.power["voltage_v"])


def search_path() -> list[Path]:
    """Folders searched for ``<id>.yaml``, in priority order."""
    dirs = [Path.cwd() / "boards"]
    user = os.environ.get("TINYEDGE_BOARDS_DIR")
    dirs.append(Path(user) if user else Path.home() / ".config" / "tinyedge" / "boards")
    dirs.append(builtin_boards_dir())
    seen: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [s.resolve() for s in seen]:
            seen.append(d)
    return seen


def _board_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in search_path():
        for f in sorted(d.glob("*.yaml")):
            if f.name.startswith("invalid_"):
                continue
            found.setdefault(f.stem, f)
    return found


def load_board_file(path: str | Path) -> Board:
    """Load and validate one board file; raise BoardError listing every schema problem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BoardError(f"cannot read board file {path}: {exc.strerror}", "check the path") from None
    except yaml.YAMLError as exc:
        # One line: where and what, without PyYAML's multi-line context (its marks repeat the path).
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        what = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise BoardError(f"board file {path} is not valid YAML: {what}{where}", "fix the YAML syntax") from None
    problems = validate(data)
    if problems:
        raise BoardError(
            f"board file {path} is invalid: " + "; ".join(problems),
            "compare it with a built-in board (tinyedge boards --json) and the schema in tinyedge/boards/schema.py",
        )
    if data["id"] != path.stem:
        raise BoardError(f"board file {path} declares id '{data['id']}'",
                         f"rename the file to {data['id']}.yaml or fix its id")
    mem = data["memory"]
    return Board(
        id=data["id"], name=data["name"], core=data["core"], fpu=data["fpu"], dsp=data["dsp"],
        clock_hz=data["clock_hz"], flash=MemRegion(**mem["flash"]), ram=MemRegion(**mem["ram"]),
        uart=data["uart"], timer=data["timer"], platformio=data["platformio"],
        emulator=data.get("emulator") or {}, power=data["power"], source=path, raw=data,
    )


def board_ids() -> list[str]:
    return sorted(_board_files())


def get_board(board_id: str) -> Board:
    """The board named ``board_id``; an unknown id raises BoardError with close matches."""
    files = _board_files()
    if board_id not in files:
        close = difflib.get_close_matches(board_id, list(files), n=3, cutoff=0.4)
        hint = f"did you mean {' or '.join(close)}?" if close else "list the boards with `tinyedge boards`"
        raise BoardError(f"unknown board '{board_id}'", hint)
    return load_board_file(files[board_id])


def list_boards(*, problems: list[BoardError] | None = None) -> list[Board]:
    """Every board that loads, by id. One bad file does not hide the others: it is skipped and its
    BoardError (naming the file and the problem) appended to ``problems``, or logged as a warning
    when no list is given. ``get_board`` of that file's id raises the same error."""
    boards: list[Board] = []
    for _, path in sorted(_board_files().items()):
        try:
            boards.append(load_board_file(path))
        except BoardError as exc:
            if problems is None:
                _log.warning("skipped a board: %s", exc)
            else:
                problems.append(exc)
    return boards
