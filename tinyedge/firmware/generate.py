"""``tinyedge generate``: a complete PlatformIO project for a model and a board (codegen's C + the board files)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..boards import Board, get_board
from ..codegen.cmodel import ApiOptions, render_model, runtime_source
from ..codegen.golden import golden_vectors_if_available
from ..codegen.target import specialize
from ..errors import FitError, TinyedgeError
from ..model import Graph, load_model
from ..model.ir import Program
from ..model.memplan import MemoryPlan, plan_memory
from ..model.program import build_program
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


def fit_report(program: Program, plan: MemoryPlan, board: Board, input_bytes: int,
               code_bytes: int | None = None) -> FitReport:
    """Whether ``program`` fits ``board`` (pinned with exact bytes in tests/test_fit.py).

    RAM = the plan's arena + ``input_bytes`` + RUNTIME_RAM_BYTES; flash = the program's weights + the
    measured ``code_bytes`` (a build's text + data minus the weights) or, without one, CODE_FLASH_ESTIMATE.
    """
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


def project_sources(graph: Graph, board: Board, *, mlperf_id: str | None = None, energy_mode: bool = False,
                    choices: Mapping[int, str] | None = None, why: Mapping[int, str] | None = None
                    ) -> tuple[dict[str, str | bytes], Program, MemoryPlan, FitReport]:
    """All files of the project in memory (nothing written), after the support and fit checks.

    ``energy_mode``: the firmware boots in MLPerf Tiny's energy timestamp mode (see :func:`generate_project`).
    ``choices``/``why``: per step index, the kernel variant to use and why (see :func:`generate_project`).
    """
    # The board's fastest exact kernels (DSP where it has it), or the variants a tuner measured.
    program = with_choices(build_program(graph), board, choices, why)
    # int16 model I/O needs nothing here: the header's TE_INPUT/OUTPUT_IS_INT16 switch main.c's output
    # buffer and te-results ("out16=[...]"); inputs move as raw bytes, two per value, little-endian.
    plan = plan_memory(program)
    fit = fit_report(program, plan, board, graph.input.nbytes)
    if not fit.fits:
        raise FitError(f"model '{graph.name}' does not fit {board.id}: " + "; ".join(fit.problems()),
                       "pick a board with more memory (`tinyedge boards`), or shrink the model (fewer filters/units)")
    # The golden pair of te_model_selftest(), which main.c runs at boot and reports in te-info.
    api = ApiOptions(golden=golden_vectors_if_available(program))
    cmodel = render_model(program, plan, mlperf_id=mlperf_id, api=api)
    files: dict[str, str | bytes] = dict(project_files(board, project_name=graph.name, energy_mode=energy_mode))
    files.update(cmodel.files)
    files["src/main.c"] = runtime_source("main.c")  # the command loop: static, te_version.h names the version
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
        # Which kernel each step runs and why: `tinyedge inspect --project` and a regenerate show them.
        "tuned": bool(choices),
        "variants": [{"step": i, "op": s.op.opcode, "kernel": s.kernel, "variant": s.variant, "why": s.why}
                     for i, s in enumerate(program.steps)],
    }
    if energy_mode:
        manifest["mlperf_timestamp_mode"] = "energy"
    files["tinyedge.json"] = json.dumps(manifest, indent=2) + "\n"
    return files, program, plan, fit


def with_choices(program: Program, board: Board, choices: Mapping[int, str] | None = None,
                 why: Mapping[int, str] | None = None) -> Program:
    """``program`` specialised for ``board`` with the variants ``choices`` names (step index -> variant name,
    e.g. from ``tinyedge.tune``; a step without one gets the heuristic's), each step's ``why`` replaced by
    ``why[i]`` where given."""
    out = specialize(program, board, dict(choices) if choices else None)
    if not why:
        return out
    steps = [dataclasses.replace(s, why=why[i]) if i in why else s for i, s in enumerate(out.steps)]
    return dataclasses.replace(out, steps=steps)


#: The manifest ``generate`` writes into every project; its ``files`` maps each generated file to its digest.
MANIFEST = "tinyedge.json"

# A user-section marker line, in any comment style a generated file uses (C ``/* */`` or ``//``, ini ``;``,
# ``#``): ``/* USER CODE BEGIN init */`` ... ``/* USER CODE END init */``, as STM32CubeMX marks them.
_USER_MARK = re.compile(r"^[ \t]*(?:/\*|//|;|#)[ \t]*USER CODE (BEGIN|END)[ \t]+([A-Za-z0-9_.-]+)")


class EditedFilesError(TinyedgeError):
    """Regenerating would overwrite changes a user made to files tinyedge generated.

    ``files`` lists them (paths relative to the project).
    """

    def __init__(self, out_dir: Path, files: list[str], *, old_style: bool) -> None:
        self.files = list(files)
        why = (" (the project predates tinyedge's file manifest, so a file that differs from what this "
               "version generates counts as changed)") if old_style else ""
        super().__init__(
            f"regenerating {out_dir} would overwrite your changes to {', '.join(files)}{why}",
            "keep application code in files you add (tinyedge never touches files it did not generate) or "
            "between the USER CODE BEGIN/END markers of src/main.c, which survive regeneration; "
            "or pass --force to overwrite the changes",
        )


def _user_sections(lines: list[str]) -> dict[str, list[str]] | None:
    """Name -> body lines of each user section; None when the markers do not pair up (nested, unclosed)."""
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in lines:
        m = _USER_MARK.match(line)
        if m is None:
            if current is not None:
                sections[current].append(line)
            continue
        kind, name = m.groups()
        if kind == "BEGIN" and current is None and name not in sections:
            current = name
            sections[name] = []
        elif kind == "END" and current == name:
            current = None
        else:
            return None
    return None if current is not None else sections


def _with_sections(lines: list[str], bodies: dict[str, list[str]]) -> list[str]:
    """``lines`` with the body of each user section named in ``bodies`` replaced (markers well formed)."""
    out: list[str] = []
    skipping = False
    for line in lines:
        m = _USER_MARK.match(line)
        if m is not None and m.group(1) == "END":
            skipping = False
        if not skipping:
            out.append(line)
        if m is not None and m.group(1) == "BEGIN" and m.group(2) in bodies:
            out.extend(bodies[m.group(2)])
            skipping = True
    return out


def owned_digest(content: bytes) -> str:
    """sha256 of a generated file as the manifest records it: user-section bodies blanked, so an edit
    confined to user sections does not count as an edit (a file whose markers do not pair up: as is)."""
    try:
        lines = content.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return hashlib.sha256(content).hexdigest()
    if _user_sections(lines) is not None:
        content = "".join(_with_sections(lines, {m.group(2): [] for m in map(_USER_MARK.match, lines)
                                                  if m is not None})).encode("utf-8")
    return hashlib.sha256(content).hexdigest()


def _carry_user_sections(new: bytes, old: bytes) -> tuple[bytes, list[str]]:
    """``new`` with the bodies of the user sections of ``old`` carried over; also the names of non-empty
    sections of ``old`` that ``new`` has no place for (they would be lost)."""
    try:
        new_lines = new.decode("utf-8").splitlines(keepends=True)
        old_lines = old.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return new, []
    old_sections = _user_sections(old_lines)
    new_sections = _user_sections(new_lines)
    if not old_sections or new_sections is None:
        return new, []
    lost = [n for n, body in old_sections.items() if n not in new_sections and "".join(body).strip()]
    keep = {n: body for n, body in old_sections.items() if n in new_sections}
    return "".join(_with_sections(new_lines, keep)).encode("utf-8"), lost


def _as_bytes(content: str | bytes) -> bytes:
    return content if isinstance(content, bytes) else content.encode("utf-8")


def _is_tinyedge_project(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def _recorded_files(out_dir: Path) -> dict[str, str] | None:
    """The ``files`` of a project's manifest, or None for a project from before the manifest had them."""
    try:
        files = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(files, dict):
        return None
    # Only plain relative paths: a tampered manifest must not make tinyedge touch files outside the project.
    return {rel: str(digest) for rel, digest in files.items()
            if isinstance(rel, str) and rel and not Path(rel).is_absolute() and ".." not in Path(rel).parts}


def _replace_file(path: Path, data: bytes) -> None:
    """Write ``path`` atomically: a temp file beside it, then os.replace (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tinyedge-{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _check_location(out_dir: Path) -> None:
    """A project folder cannot be made inside a regular file: say which path is the file."""
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise TinyedgeError(f"cannot write the project to {out_dir}: {parent} is a file, not a folder",
                                    "pass -o a folder path that is not inside a file")
            return


def _update_project(files: dict[str, bytes], out_dir: Path, *, force: bool) -> None:
    """Regenerate over an existing tinyedge project, keeping the user's files, edits and user sections.

    Every check runs before anything is written; files are replaced one by one atomically and the
    manifest last, so an interrupted run can be repeated (a file already equal to the new one is no edit).
    """
    recorded = _recorded_files(out_dir)
    old_style = recorded is None
    # Without a manifest: the files tinyedge generates now count as its own, compared with the new content.
    owned = set(files) if recorded is None else set(recorded)
    writes: dict[str, bytes] = {}
    edited: list[str] = []
    for rel, data in files.items():
        path = out_dir / rel
        if path.is_file():
            current = path.read_bytes()
            data, lost = _carry_user_sections(data, current)
            files[rel] = data
            if current == data:
                continue
            if recorded is not None and rel in recorded:
                untouched = owned_digest(current) in (recorded[rel], owned_digest(data))
            else:  # an old-style project's file, or a file the user added where tinyedge now generates one
                untouched = old_style and owned_digest(current) == owned_digest(data)
            if lost or not untouched:
                edited.append(rel)
        elif path.exists() or path.is_symlink():
            edited.append(rel)  # a folder or a dangling link where a generated file goes
        writes[rel] = data
    # Files tinyedge generated before but no longer does (another board's startup code, say) go away.
    removes: list[str] = []
    for rel in sorted(owned - set(files) - {MANIFEST}):
        path = out_dir / rel
        if path.is_file() and not path.is_symlink():
            removes.append(rel)
            if recorded is not None and owned_digest(path.read_bytes()) != recorded.get(rel):
                edited.append(rel)
    if edited and not force:
        raise EditedFilesError(out_dir, sorted(edited), old_style=old_style)
    for rel, data in writes.items():
        target = out_dir / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)  # only reached with force: the user asked to overwrite
        _replace_file(target, data)
    for rel in removes:
        (out_dir / rel).unlink()


def _with_file_manifest(files: dict[str, bytes]) -> bytes:
    """The project's manifest with ``files``: each generated file's :func:`owned_digest`."""
    manifest = json.loads(files[MANIFEST]) if MANIFEST in files else {}
    manifest["files"] = {rel: owned_digest(data) for rel, data in sorted(files.items()) if rel != MANIFEST}
    return (json.dumps(manifest, indent=2) + "\n").encode("utf-8")


def write_project(files: dict[str, str | bytes], out_dir: Path, *, force: bool = False) -> None:
    """Write a project without ever losing a user's work.

    A new or empty folder gets the whole project at once (a sibling temp folder swapped in). Over an
    existing tinyedge project, the files it generated and nobody changed are replaced (each atomically);
    files the user added, the ``.pio`` build cache and the bodies of ``USER CODE`` sections are kept; a
    generated file the user changed raises EditedFilesError unless ``force``. Any other non-empty folder
    is refused. ``tinyedge.json`` records the digest of every generated file (:func:`owned_digest`).
    """
    out_dir = Path(out_dir)
    data = {rel: _as_bytes(content) for rel, content in files.items()}
    _check_location(out_dir)
    try:
        if out_dir.is_dir() and _is_tinyedge_project(out_dir):
            generated = {rel: content for rel, content in data.items() if rel != MANIFEST}
            _update_project(generated, out_dir, force=force)  # carries user sections into ``generated``
            _replace_file(out_dir / MANIFEST, _with_file_manifest({**generated, MANIFEST: data.get(MANIFEST, b"{}")}))
            return
        if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
            raise TinyedgeError(f"{out_dir} exists and is not a tinyedge project; refusing to overwrite it",
                                "pass a new or empty folder with -o")
        data[MANIFEST] = _with_file_manifest(data)
        _write_new(data, out_dir)
    except OSError as exc:
        # Name the folder that failed when it is one of out_dir's parents (never a temp file's name).
        where = f" ({exc.filename})" if exc.filename and Path(exc.filename) in out_dir.parents else ""
        raise TinyedgeError(f"cannot write the project to {out_dir}: {exc.strerror or exc}{where}",
                            "pass -o a folder in a place you can write to, e.g. ./build/project") from None


def _write_new(files: dict[str, bytes], out_dir: Path) -> None:
    """A whole project into a new or empty folder: written in a sibling temp folder, then swapped in."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a project folder is not
    try:
        for rel, content in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content)
        if out_dir.exists():  # an empty folder
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def generate_project(model: str | Path | Graph, board: str | Board, out_dir: str | Path, *,
                     mlperf_id: str | None = None, force: bool = False, energy_mode: bool = False,
                     choices: Mapping[int, str] | None = None, why: Mapping[int, str] | None = None
                     ) -> GeneratedProject:
    """Generate a PlatformIO project for ``model`` on ``board`` into ``out_dir``.

    Raises UnsupportedModelError (every problem listed), FitError (bytes needed vs available) or
    BoardError before anything is written. Regenerating over a project keeps the files the user added
    and the ``USER CODE`` sections, and raises EditedFilesError for generated files the user changed
    unless ``force`` (see :func:`write_project`).

    ``energy_mode`` builds MLPerf Tiny's energy timestamp mode, as the reference firmware's
    ``EE_CFG_ENERGY_MODE``: the boot line ``m-timestamp-mode-energy``, a pulse on the board's timestamp GPIO
    (``mlperf.timestamp_gpio``) per ``timestamp``, the UART at the energy baud (``mlperf.energy_baud``, 9600).

    ``choices`` maps a step index to the kernel variant it runs (``tinyedge.codegen.target.candidates``'s
    names, as ``tinyedge.tune`` measured them; other steps get the heuristic's), ``why`` to the reason shown
    for it; the manifest's ``variants`` records each step's variant and reason.
    """
    graph = model if isinstance(model, Graph) else load_model(model)
    board = board if isinstance(board, Board) else get_board(board)
    files, program, plan, fit = project_sources(graph, board, mlperf_id=mlperf_id, energy_mode=energy_mode,
                                                choices=choices, why=why)
    write_project(files, Path(out_dir), force=force)
    return GeneratedProject(Path(out_dir), board, graph, program, plan, fit)
