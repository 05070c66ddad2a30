"""``tinyedge generate``: a complete PlatformIO project for a model and a board (codegen's C + the board files)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..boards import Board, get_board
from ..errors import FitError, TinyedgeError
from ..model import Graph, load_model
from ..model.memplan import MemoryPlan, plan_memory
from ..model.program import Program, build_program
from ..codegen.cmodel import render_model
from ..codegen.target import specialize
from ..render import render
from .project import project_files

#: RAM the firmware needs beside the arena: stack, the input buffer copy, command line buffer.
RUNTIME_RAM_BYTES = 4096
#: Code size estimate for kernels, runtime and port before a build measures it (arm-none-eabi, -O2).
CODE_FLASH_ESTIMATE = 12 * 1024


@dataclass
class FitReport:
    """Whether a model fits a board; flash is an estimate until a build measures it."""

    board: str
    ram_needed: int
    ram_available: int
    flash_needed: int
    flash_available: int
    flash_measured: bool = False

    @property
    def fits(self) -> bool:
        return self.ram_needed <= self.ram_available and self.flash_needed <= self.flash_available

    def problems(self) -> list[str]:
        out = []
        if self.ram_needed > self.ram_available:
            out.append(f"RAM: needs {self.ram_needed} bytes, {self.board} has {self.ram_available} "
                       f"({self.ram_needed - self.ram_available} over)")
        if self.flash_needed > self.flash_available:
            out.append(f"flash: needs {'' if self.flash_measured else '~'}{self.flash_needed} bytes, {self.board} has "
                       f"{self.flash_available} ({self.flash_needed - self.flash_available} over)")
        return out


def fit_report(program: Program, plan: MemoryPlan, board: Board, input_bytes: int, code_bytes: int | None = None) -> FitReport:
    ram = plan.arena_bytes + input_bytes + RUNTIME_RAM_BYTES
    flash = program.weight_bytes + (code_bytes if code_bytes is not None else CODE_FLASH_ESTIMATE)
    return FitReport(board.id, ram, board.ram.size, flash, board.flash.size, code_bytes is not None)


@dataclass
class GeneratedProject:
    path: Path
    board: Board
    graph: Graph
    program: Program
    plan: MemoryPlan
    fit: FitReport


def project_sources(graph: Graph, board: Board, *, mlperf_id: str | None = None) -> tuple[dict[str, str | bytes], Program, MemoryPlan, FitReport]:
    """All files of the project in memory (nothing written), after the support and fit checks."""
    program = specialize(build_program(graph), board)  # the board's fastest exact kernels (DSP where it has it)
    plan = plan_memory(program)
    fit = fit_report(program, plan, board, graph.input.nbytes)
    if not fit.fits:
        raise FitError(f"model '{graph.name}' does not fit {board.id}: " + "; ".join(fit.problems()),
                       "pick a board with more memory (`tinyedge boards`), or shrink the model (fewer filters/units)")
    cmodel = render_model(program, plan, mlperf_id=mlperf_id)
    files: dict[str, str | bytes] = dict(project_files(board, project_name=graph.name))
    files.update(cmodel.files)
    files["src/main.c"] = render("main.c.j2", version=__version__)
    files["model.tflite"] = graph.model_bytes
    manifest = {
        "tinyedge_version": __version__,
        "board": board.id,
        "model": graph.name,
        "model_sha256": graph.sha256,
        "arena_bytes": plan.arena_bytes,
        "naive_arena_bytes": plan.naive_bytes,
        "weight_bytes": program.weight_bytes,
        "macs": program.macs,
        "layers": [s.op.opcode for s in program.steps],
    }
    files["tinyedge.json"] = json.dumps(manifest, indent=2) + "\n"
    return files, program, plan, fit


def _is_tinyedge_project(path: Path) -> bool:
    return (path / "tinyedge.json").is_file()


def write_project(files: dict[str, str | bytes], out_dir: Path) -> None:
    """Write a project atomically: into a sibling temp folder, then swap it in.

    An existing tinyedge project is replaced (its ``.pio`` build cache kept); any other non-empty
    folder is refused, so nothing a user wrote is lost.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not _is_tinyedge_project(out_dir))):
        raise TinyedgeError(f"{out_dir} exists and is not a tinyedge project; refusing to overwrite it",
                            "pass a new or empty folder with -o")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a project folder is not
    try:
        for rel, content in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            if (old / ".pio").is_dir():
                os.replace(old / ".pio", tmp / ".pio")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def generate_project(model: str | Path | Graph, board: str | Board, out_dir: str | Path, *,
                     mlperf_id: str | None = None) -> GeneratedProject:
    """Generate a PlatformIO project for ``model`` on ``board`` into ``out_dir``.

    Raises UnsupportedModelError (every problem listed), FitError (bytes needed vs available) or
    BoardError before anything is written.
    """
    graph = model if isinstance(model, Graph) else load_model(model)
    board = board if isinstance(board, Board) else get_board(board)
    files, program, plan, fit = project_sources(graph, board, mlperf_id=mlperf_id)
    write_project(files, Path(out_dir))
    return GeneratedProject(Path(out_dir), board, graph, program, plan, fit)
