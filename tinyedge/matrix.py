"""Compatibility matrix: which boards a model fits, at what estimated cost, and (``run=True``) what the
emulated boards measure: one board after another, on ``jobs`` boards at once (each its own QEMU), or on
the boards of a labgrid farm (``places``: each board on a place tagged ``board=<id>``, all at once).

Per board: RAM and flash needed vs available (the same fit check ``tinyedge generate`` applies, bytes
over when it does not fit), estimated latency from the model's MACs and the core, estimated energy from
the board's power model, and with ``run=True`` the figures measured on every emulated board that fits
(QEMU ``-icount shift=0``: instructions, latency at the board clock, energy, parity with tflite_micro).

>>> m = compatibility_matrix("kws_ref_model.tflite", "all")
>>> print(m.to_markdown())
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import analyze
from .boards import Board, board_ids, get_board
from .boards.cores import CORES
from .data import random_ints
from .errors import BoardError, TinyedgeError
from .model import Graph, load_model
from .runners import deploy, find_places, free_port, parse_tags
from .score import score

#: Instructions per multiply-accumulate of tinyedge's int8 kernels, by core: the cores table's figures
#: (``tinyedge.boards.cores.CORES``, where the measurement is described). Re-measure when the kernels
#: change; ``--run`` always measures.
INSTR_PER_MAC: dict[str, float] = {c.name: c.instr_per_mac for c in CORES.values() if c.instr_per_mac is not None}
#: Fixed per-inference cost (instructions) on top of the MACs (the per-MAC figures above already include
#: KWS's overheads; small models such as digits measure more than this estimate).
FIXED_INSTR = 0

#: Samples run per emulated board with ``run=True`` unless told otherwise.
DEFAULT_RUN_SAMPLES = 10


@dataclass
class Measured:
    """What an emulated board measured (``run=True``)."""

    samples: int
    instructions: int | None
    latency_ms: float | None
    energy_uj: float | None
    parity: float | None
    accuracy: float | None
    flash_bytes: int
    ram_bytes: int


@dataclass
class Row:
    board: str
    name: str
    core: str
    clock_hz: int
    emulated: bool
    fits: bool
    ram_needed: int
    ram_available: int
    flash_needed: int
    flash_available: int
    flash_measured: bool
    est_instructions: int
    est_latency_ms: float
    est_energy_uj: float
    problems: list[str] = field(default_factory=list)
    measured: Measured | None = None
    run_error: str | None = None

    @property
    def ram_over(self) -> int:
        return max(self.ram_needed - self.ram_available, 0)

    @property
    def flash_over(self) -> int:
        return max(self.flash_needed - self.flash_available, 0)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ram_over"] = self.ram_over
        d["flash_over"] = self.flash_over
        return d


@dataclass
class Matrix:
    model: str
    sha256: str
    macs: int
    weight_bytes: int
    arena_bytes: int
    rows: list[Row]
    notes: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "sha256": self.sha256, "macs": self.macs, "weight_bytes": self.weight_bytes,
                "arena_bytes": self.arena_bytes, "boards": [r.to_dict() for r in self.rows], "notes": self.notes}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        """A Markdown table, one board a row, then how each figure was obtained."""
        ran = any(r.measured or r.run_error for r in self.rows)
        head = ["board", "core", "clock", "fits", "RAM needed / has", "flash needed / has",
                "est. latency", "est. energy"]
        if ran:
            head += ["measured instructions", "measured latency", "measured energy", "parity"]
        lines = [f"# Compatibility matrix: {self.model}", "",
                 f"{self.macs:,} MACs, {self.weight_bytes:,} bytes of weights, arena {self.arena_bytes:,} bytes "
                 f"(sha256 {self.sha256[:12]})", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            fits = "yes" if r.fits else "**no**: " + ", ".join(
                f"{what} {over:,} B over" for what, over in (("RAM", r.ram_over), ("flash", r.flash_over)) if over)
            tilde = "" if r.flash_measured else "~"
            cells = [r.board, r.core, f"{r.clock_hz / 1e6:g} MHz", fits,
                     f"{r.ram_needed:,} / {r.ram_available:,}", f"{tilde}{r.flash_needed:,} / {r.flash_available:,}",
                     f"{r.est_latency_ms:.3g} ms", f"{r.est_energy_uj:.3g} uJ"]
            if ran:
                m = r.measured
                if m is not None:
                    cells += [f"{m.instructions:,}" if m.instructions is not None else "-",
                              f"{m.latency_ms:.3g} ms" if m.latency_ms is not None else "-",
                              f"{m.energy_uj:.3g} uJ" if m.energy_uj is not None else "-",
                              f"{m.parity:.3f}" if m.parity is not None else "-"]
                else:
                    cells += [r.run_error or "-", "-", "-", "-"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", *(f"- **{k}**: {v}" for k, v in self.notes.items())]
        return "\n".join(lines) + "\n"


def comparison_markdown(a: Matrix, b: Matrix) -> str:
    """Two models' matrices side by side, one board a row: RAM, flash and instructions of ``a`` against ``b``
    (e.g. a mixed int8/int16 model against its all-int8 twin); measured instructions where both ran."""
    rows_b = {r.board: r for r in b.rows}

    def pair(x: int | None, y: int | None) -> str:
        if x is None or y is None:
            return "-"
        return f"{x:,} / {y:,} ({x - y:+,})"
    lines = [f"# {a.model} (a) against {b.model} (b)", "",
             f"arena {pair(a.arena_bytes, b.arena_bytes)} bytes, weights {pair(a.weight_bytes, b.weight_bytes)} "
             "bytes", "",
             "| board | fits a / b | RAM needed a / b | flash needed a / b | est. instructions a / b "
             "| measured instructions a / b |", "|---|---|---|---|---|---|"]
    for r in a.rows:
        o = rows_b.get(r.board)
        if o is None:
            continue
        ma = r.measured.instructions if r.measured else None
        mb = o.measured.instructions if o.measured else None
        lines.append(f"| {r.board} | {'yes' if r.fits else 'no'} / {'yes' if o.fits else 'no'} | "
                     f"{pair(r.ram_needed, o.ram_needed)} | {pair(r.flash_needed, o.flash_needed)} | "
                     f"{pair(r.est_instructions, o.est_instructions)} | {pair(ma, mb)} |")
    lines += ["", "Estimated instructions scale the MACs by the core's measured instructions per MAC, so they do "
              "not see 16-bit kernels; run with --run for measured ones (and `tinyedge inspect A --compare B "
              "--measure` for each layer)."]
    return "\n".join(lines) + "\n"


def resolve_boards(spec: str | Iterable[str | Board]) -> list[Board]:
    """``"all"``, ``"emulated"``, a comma-separated list of ids, or an iterable of ids/boards."""
    if isinstance(spec, str):
        if spec.strip() in ("all", ""):
            return [get_board(b) for b in board_ids()]
        if spec.strip() == "emulated":
            return [b for b in (get_board(i) for i in board_ids()) if b.qemu]
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    boards = [b if isinstance(b, Board) else get_board(b) for b in spec]
    if not boards:
        raise BoardError("no boards given", "pass --boards all or a comma-separated list of ids (tinyedge boards)")
    return boards


def estimate_instructions(macs: int, core: str) -> int:
    """Instructions (= cycles at one per cycle) of one inference of a model with ``macs`` MACs on ``core``."""
    return int(round(macs * INSTR_PER_MAC.get(core, INSTR_PER_MAC["cortex-m4"]) + FIXED_INSTR))


def compatibility_matrix(model: str | Path, boards: str | Iterable[str | Board] = "all", *, run: bool = False,
                         data: str | Path | None = None, samples: int = DEFAULT_RUN_SAMPLES,
                         work_dir: str | Path | None = None, core_dir: Path | None = None,
                         say: Callable[[str], None] = lambda s: None, jobs: int | None = None,
                         places: str | dict[str, str] | None = None, coordinator: str | None = None,
                         place_wait: float | None = None) -> Matrix:
    """The compatibility matrix of ``model`` (an int8 .tflite) over ``boards``.

    Raises ModelError/UnsupportedModelError when the model cannot be generated at all. With ``run``,
    every emulated board that fits is generated, built and scored in QEMU on ``samples`` inputs: from
    ``data`` (.npz with x, y) when given, else deterministic random int8 inputs (parity only, no
    accuracy). A board that fails to build or run gets ``run_error`` instead of measured figures; the
    other boards still run.

    ``jobs`` boards run at once (default 1; each in its own folder with its own QEMU and TCP port; the rows
    stay in board order). ``places`` (a tag filter such as ``'farm=ci'``) runs every board that fits on a
    labgrid place of ``coordinator`` whose tags match and whose ``board`` tag names it, all places at once
    unless ``jobs`` says otherwise; a
    place is held for its board's run and released after it (waiting up to ``place_wait`` seconds for a
    place someone else holds).
    """
    graph = load_model(model)
    board_list = resolve_boards(boards)
    analysis = analyze(graph, board_list, tflm=False)
    rows = []
    for b, fit in zip(board_list, analysis.fits):
        instr = estimate_instructions(analysis.macs, b.core)
        latency_ms = instr / b.clock_hz * 1e3
        rows.append(Row(
            board=b.id, name=b.name, core=b.core, clock_hz=b.clock_hz, emulated=b.qemu is not None,
            fits=fit["fits"], ram_needed=fit["ram_needed"], ram_available=fit["ram_available"],
            flash_needed=fit["flash_needed"], flash_available=fit["flash_available"],
            flash_measured=fit["flash_measured"], est_instructions=instr, est_latency_ms=latency_ms,
            est_energy_uj=b.run_power_mw * latency_ms, problems=fit["problems"]))
    notes = {
        "fits": "RAM = planned arena + input buffer + 4 KiB runtime (stack, buffers); flash = weights + code "
                "(~ an estimate of 12 KiB until a build measures it): the check `tinyedge generate` applies",
        "est. latency": "ESTIMATE: MACs x instructions per MAC of the core / clock, one instruction per "
                        "cycle; instructions per MAC measured in QEMU for tinyedge's C kernels "
                        "(tinyedge.matrix.INSTR_PER_MAC)",
        "est. energy": "ESTIMATE: board power model (run current x voltage, from the datasheet named in the board "
                       "file) x estimated latency",
    }
    if run:
        where = _run_emulated(graph, board_list, rows, data=data, samples=samples, work_dir=work_dir,
                              core_dir=core_dir, say=say, jobs=jobs, places=places, coordinator=coordinator,
                              place_wait=place_wait)
        notes["measured"] = (f"{where}; QEMU -icount shift=0 over {samples} sample(s)"
                             + (f" of {Path(data).name}" if data else " of random int8 inputs (seeded)") +
                             ": median instructions of one inference; latency = instructions / board clock (one "
                             "instruction per cycle); energy = power model x that latency; parity = fraction of "
                             "outputs equal to tflite_micro's. Real boards and boards that do not fit are not run")
    return Matrix(model=graph.name, sha256=graph.sha256, macs=analysis.macs, weight_bytes=analysis.weight_bytes,
                  arena_bytes=analysis.ram_bytes, rows=rows, notes=notes)


def _random_inputs(graph: Any, n: int, path: Path) -> Path:
    """``n`` seeded random int8 inputs for ``graph`` (labels all 0: scoring needs them, accuracy is ignored)."""
    rng = np.random.default_rng(20240611)
    x = random_ints(graph.input.dtype, (n, *graph.input.shape[1:]), rng)  # int16 I/O: the whole int16 range
    np.savez(path, x=x, y=np.zeros(n, dtype=np.int64))
    return path


@dataclass(frozen=True)
class _Job:
    """One board to run: on a labgrid ``place``, or in a local QEMU on ``serial_port``."""

    board: Board
    place: str | None = None
    serial_port: int | None = None


def _assign_places(boards: list[Board], rows: list[Row], places: str | dict[str, str], coordinator: str | None,
                   say: Callable[[str], None]) -> list[_Job]:
    """One job per board that fits and has a matching place (the first by name); run_error for the others."""
    tags = parse_tags(places) if isinstance(places, str) else dict(places)
    found = find_places(tags, coordinator)
    spec = ",".join(f"{k}={v}" for k, v in tags.items())
    say(f"matrix: {len(found)} labgrid place(s) match {spec}: {', '.join(p.name for p in found) or 'none'}")
    taken: set[str] = set()
    jobs = []
    for b, row in zip(boards, rows):
        if not row.fits:
            row.run_error = "does not fit"
            continue
        place = next((p.name for p in found if p.board == b.id and p.name not in taken), None)
        if place is None:
            row.run_error = f"no labgrid place tagged board={b.id} matches {spec}"
            continue
        taken.add(place)
        jobs.append(_Job(b, place=place))
    return jobs


def _local_jobs(boards: list[Board], rows: list[Row]) -> list[_Job]:
    """One job per emulated board that fits, each with its own QEMU TCP port; run_error for the others."""
    jobs = []
    ports: set[int] = set()
    for b, row in zip(boards, rows):
        if not row.emulated:
            row.run_error = "not emulated"
        elif not row.fits:
            row.run_error = "does not fit"
        else:
            port = free_port()
            while port in ports:  # two workers must never share a port
                port = free_port()
            ports.add(port)
            jobs.append(_Job(b, serial_port=port))
    return jobs


def _run_one(job: _Job, graph: Graph, inputs: Path, root: Path, *, data: str | Path | None, samples: int,
             core_dir: Path | None, coordinator: str | None, place_wait: float | None,
             say: Callable[[str], None]) -> tuple[Measured | None, str | None]:
    """Generate, build, run and score one board in ``root/<board>``: (figures, None) or (None, error)."""
    b = job.board
    where = f"labgrid place {job.place}" if job.place else "QEMU"
    say(f"matrix: {b.id}: generate, build, run on {where}")
    try:
        with deploy(graph, b, root / b.id / "project", core_dir=core_dir,
                    **({"place": job.place, "coordinator": coordinator, "place_wait": place_wait} if job.place
                       else {"engine": "qemu", "serial_port": job.serial_port})) as dep:
            # The matrix needs the figures only: report.html without plots. Drawing them is seconds of pure
            # Python (matplotlib) per board, which boards running at once in threads would take turns at (GIL).
            report = score(dep.url, inputs, model=dep.project.graph, board=dep.project.board,
                           out_dir=root / b.id / "score", limit=samples, plots=False)
    except TinyedgeError as exc:
        say(f"matrix: {b.id}: {exc.problem.splitlines()[0]}")
        return None, exc.problem.splitlines()[0][:200]
    except Exception as exc:  # one board's failure must not stop the others: recorded in its row
        say(f"matrix: {b.id}: {type(exc).__name__}: {exc}")
        return None, f"{type(exc).__name__}: {exc}"[:200]
    d = report.data
    built = dep.build
    say(f"matrix: {b.id}: done")
    return Measured(
        samples=int(d["samples"]), instructions=d["instructions"], latency_ms=d["latency_ms"]["p50"],
        energy_uj=d["energy_uj_per_inference"], parity=d["parity"],
        accuracy=d["accuracy"] if data else None, flash_bytes=built.flash_bytes, ram_bytes=built.ram_bytes), None


def _run_emulated(graph: Graph, boards: list[Board], rows: list[Row], *, data: str | Path | None,
                  samples: int, work_dir: str | Path | None, core_dir: Path | None, say: Callable[[str], None],
                  jobs: int | None = None, places: str | dict[str, str] | None = None, coordinator: str | None = None,
                  place_wait: float | None = None) -> str:
    """Run the boards (local QEMU, ``jobs`` at once, or the labgrid ``places``, all at once) and fill the
    rows' measured figures or run errors, in board order; returns where they ran, for the notes."""
    own_dir = work_dir is None
    root = Path(tempfile.mkdtemp(prefix="tinyedge-matrix-")) if work_dir is None else Path(work_dir)
    root.mkdir(parents=True, exist_ok=True)
    try:
        inputs = Path(data) if data else _random_inputs(graph, samples, root / "random_inputs.npz")
        if places is not None:
            todo = _assign_places(boards, rows, places, coordinator, say)
            workers = len(todo) if jobs is None else max(1, jobs)
            where = f"on labgrid places (one per board, {'all' if jobs is None else workers} at once)"
        else:
            todo = _local_jobs(boards, rows)
            workers = 1 if jobs is None else max(1, jobs)
            where = f"in local QEMU, {workers} board(s) at once"
        if not todo:
            return where
        by_board = {r.board: r for r in rows}
        with ThreadPoolExecutor(max_workers=min(workers, len(todo)), thread_name_prefix="tinyedge-matrix") as pool:
            futures = [pool.submit(_run_one, job, graph, inputs, root, data=data, samples=samples,
                                   core_dir=core_dir, coordinator=coordinator, place_wait=place_wait, say=say)
                       for job in todo]
            try:
                for job, future in zip(todo, futures):
                    measured, error = future.result()
                    row = by_board[job.board.id]
                    row.run_error = error
                    if measured is not None:
                        row.measured = measured
                        row.flash_needed, row.flash_measured = measured.flash_bytes, True
            except BaseException:
                # Ctrl-C: start no other board; the running ones stop their QEMU and release their place
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return where
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
