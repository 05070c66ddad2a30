"""Per-layer auto-tuning: measure each layer's candidate kernels in QEMU and keep the fastest.

``-icount shift=0`` makes QEMU execute one instruction per virtual nanosecond and the firmware re-anchors
SysTick after every received byte, so ``te-profile``'s per-layer ticks are instruction counts that a
firmware repeats exactly on every run (in SysTick units: 40 instructions per tick at 25 MHz). That turns
tuning into a deterministic measurement rather than a statistical one:

* round ``k`` builds ONE firmware in which every layer runs its ``k``-th candidate
  (:func:`tinyedge.codegen.target.model_candidates`, the heuristic's choice first; a layer with fewer candidates
  runs its first) and profiles one inference, so ``max(#candidates)`` builds measure every candidate of
  every layer. A layer's ticks cover only its own call (``te_model_invoke_profiled`` reads the clock
  between layers), so the neighbours' work does not leak into it (only the clock's phase, see below);
* each layer keeps its fastest candidate when it beats the heuristic's (which round 0 always measures)
  by at least two clock ticks, else the heuristic's: a layer's count is a difference of two readings of a
  clock that ticks every 40 instructions, off by under one tick depending on the phase its predecessors
  leave, so a two-tick lead is the least that proves a candidate faster. No layer is ever slower than the
  untuned choice, and speed never costs RAM: a candidate whose scratch would make the planned arena
  larger than the heuristic's kernels need is refused (and ``inspect`` says so);
* when the chosen mix is not one of the measured firmwares, one more build checks it: a layer not faster
  there than its heuristic kernel in round 0 goes back to the heuristic's (memory placement is the only
  thing that differs, so this is a guard, not an expected case).

Results are cached per layer under ``tinyedge.paths.cache_dir("tune")``, keyed by everything that can
change a count: the candidates' kernels, parameters and constants, the core (and DSP/FPU), and a hash of
the C runtime, templates, code generator and build flags, plus the compiler's version. A second
``generate --tune`` of the same model therefore runs no build and no QEMU at all.

Boards without an emulator are tuned on an emulated board with the same core and DSP extension.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import proc
from .boards import Board, get_board, list_boards
from .codegen.target import model_candidates
from .errors import BoardError, TinyedgeError
from .firmware import build_project, generate_project
from .firmware.generate import with_choices
from .firmware.project import PLATFORM_DIR
from .link import connect
from .model import Graph, load_model
from .model.ir import Program, Step
from .model.memplan import plan_memory
from .model.program import build_program
from .paths import cache_dir, runtime_dir, templates_dir
from .runners import runner_for

#: Bump when the cache entries' meaning changes.
CACHE_FORMAT = 1
#: The seed of the input every tuning inference runs (counts hardly depend on it, but must not vary).
INPUT_SEED = 0
#: Per-line deadline of the measuring client's other commands (te-load) on a busy machine.
COMMAND_TIMEOUT_S = 30.0
#: Seconds one profiled inference may take in QEMU.
PROFILE_TIMEOUT_S = 300.0
_CODEGEN_DIR = Path(__file__).resolve().parent / "codegen"
_SOURCE_SUFFIXES = (".c", ".h", ".S", ".s", ".j2", ".py", ".json", ".ld", ".ini")


@dataclass(frozen=True)
class LayerTuning:
    """One step's candidates, what each measured (instructions per call) and the choice."""

    step: int  # index in the Program (what ``choices`` keys)
    op_index: int  # the operator's index in the model (what ``inspect`` numbers)
    op: str
    candidates: tuple[str, ...]  # variant names, the heuristic's choice first
    choice: str
    instructions: dict[str, int]  # per candidate measured (empty when nothing was measured)
    source: str  # "measured" (this run), "cache", or "only" (a single candidate: nothing to choose)
    why: str  # the reason ``inspect`` shows ("" for a single candidate: the step keeps its own)
    tuned_instructions: int | None = None  # the choice's count in the tuned firmware itself, when it ran

    @property
    def default(self) -> str:
        """The heuristic's choice (what an untuned generate uses)."""
        return self.candidates[0]


@dataclass
class TuneResult:
    """The per-layer choices for a model on a board, and how they were obtained."""

    board: str  # the board the choices are for
    measured_on: str  # the emulated board that ran the measurements (same core)
    core: str
    layers: list[LayerTuning]
    qemu_runs: int = 0  # firmware builds run in QEMU by this call (0: everything came from the cache)
    notes: list[str] = field(default_factory=list)  # anything unexpected seen while measuring

    @property
    def choices(self) -> dict[int, str]:
        """Step index -> variant name, for every step with more than one candidate."""
        return {t.step: t.choice for t in self.layers if len(t.candidates) > 1}

    @property
    def why(self) -> dict[int, str]:
        """Step index -> the reason to show, for every step whose choice was tuned."""
        return {t.step: t.why for t in self.layers if t.why}

    @property
    def from_cache(self) -> bool:
        """Nothing was measured: every tuned layer came from the cache."""
        return self.qemu_runs == 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def tuning_board(board: Board) -> Board:
    """The emulated board that measures for ``board``: itself when QEMU emulates it, else a QEMU board with
    the same core and DSP extension, one with the same FPU first (the int8 kernels use no floating point;
    BoardError when there is none)."""
    if board.qemu is not None:
        return board
    twins = [b for b in list_boards() if b.qemu is not None and (b.core, b.dsp) == (board.core, board.dsp)]
    if twins:
        return sorted(twins, key=lambda b: (b.fpu != board.fpu, b.id))[0]
    emulated = sorted(f"{b.id} ({b.core})" for b in list_boards() if b.qemu is not None)
    raise BoardError(
        f"cannot tune for {board.id}: QEMU does not emulate it and no emulated board has its core "
        f"({board.core}, dsp {str(board.dsp).lower()})",
        "generate without --tune (the heuristic's kernels), or add a board file for an emulated machine with "
        f"this core; emulated boards: {', '.join(emulated)}",
    )


def _files_digest(h: Any, root: Path) -> None:
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        # The runtime's C unit tests and host harness never reach a firmware: their edits keep the cache.
        if (p.is_file() and p.suffix in _SOURCE_SUFFIXES and "__pycache__" not in rel
                and not (root == runtime_dir() and len(rel) > 1)):
            h.update(str(p.relative_to(root)).encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())


def _compiler_version() -> str:
    try:
        gcc = proc.which("arm-none-eabi-gcc", "install the Arm GNU toolchain")
        out = proc.run([gcc, "--version"], what="arm-none-eabi-gcc --version").stdout or ""
    except TinyedgeError:  # no compiler: the build will say so; the key just lacks a version
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


def fingerprint(board: Board) -> str:
    """Hash of everything outside a layer that can change its instruction count: the core (DSP, FPU), the
    C runtime, the templates, the code generator, the offline platform's build flags, the compiler."""
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_FORMAT, board.core, board.dsp, board.fpu, _compiler_version()]).encode())
    for root in (runtime_dir(), templates_dir(), _CODEGEN_DIR, PLATFORM_DIR):
        _files_digest(h, root)
    return h.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _step_signature(name: str, s: Step) -> list[Any]:
    consts = {k: [str(a.dtype), list(a.shape), hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()]
              for k, a in sorted(s.consts.items())}
    return [name, s.kernel, s.struct, s.params, consts, s.args, s.scratch, s.inplace]


def layer_key(found: Mapping[str, Step], fp: str) -> str:
    """The cache key of a layer: its candidates (names, kernels, parameters, constants) and ``fp``."""
    sig = [fp, [_step_signature(n, s) for n, s in found.items()]]
    return hashlib.sha256(json.dumps(sig, default=_plain, sort_keys=True).encode()).hexdigest()


def _cache_path(cache: Path, key: str) -> Path:
    return cache / f"{key}.json"


def _read_entry(cache: Path, key: str, names: Sequence[str]) -> dict[str, Any] | None:
    try:
        entry = json.loads(_cache_path(cache, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT or entry.get("choice") not in names
            or not isinstance(entry.get("instructions"), dict)):
        return None
    return entry


def _write_entry(cache: Path, key: str, entry: dict[str, Any]) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    path = _cache_path(cache, key)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"format": CACHE_FORMAT, **entry}, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _why(names: Sequence[str], counts: Mapping[str, int], choice: str, core: str, cached: bool, tick: int,
         refused: str = "") -> str:
    """``tuned in QEMU on cortex-m4: dsp (heuristic) 12,340 < portable 45,600 instructions``; ``refused``
    says why a faster candidate was not taken."""
    order = sorted(names, key=lambda v: (counts.get(v, 1 << 62), v != choice, names.index(v)))
    text = ""
    for j, v in enumerate(order):
        if j:
            text += " = " if counts.get(v) == counts.get(order[j - 1]) else " < "
        label = f"{v} (heuristic)" if v == names[0] else v
        text += f"{label} {counts[v]:,}" if v in counts else f"{label} not measured"
    if refused:
        text += f" instructions; {refused}"
    elif order[0] != choice and counts.get(order[0]) != counts.get(choice):
        text += (f" instructions; {choice} kept: {order[0]} leads by less than two clock ticks "
                 f"({2 * tick} instructions), within what one measurement resolves")
    else:
        text += " instructions"
    return f"tuned in QEMU on {core}{' (cached)' if cached else ''}: {text}"


def _fastest(names: Sequence[str], counts: Mapping[str, int], tick: int) -> str:
    """The candidate with the fewest instructions, if it is provably faster than the heuristic's (``names[0]``).

    A layer's count is a difference of two clock readings ``tick`` instructions apart, so it is off by less
    than one tick either way, depending on the clock's phase when the layer starts (which its predecessors
    set). Only a lead of two ticks or more proves a candidate faster; otherwise the heuristic's stays.
    """
    best = min(names, key=lambda v: (counts.get(v, 1 << 62), names.index(v)))
    default = names[0]
    return best if default not in counts or counts[best] <= counts[default] - 2 * tick else default


def _arena(program: Program, board: Board, choices: Mapping[int, str]) -> int:
    """The planned arena of ``program`` on ``board`` with ``choices``."""
    return plan_memory(with_choices(program, board, choices)).arena_bytes


def _choose(program: Program, board: Board, names: list[list[str]], measured: list[dict[str, int]],
            fixed: Mapping[int, str], tick: int) -> tuple[dict[int, str], dict[int, str]]:
    """Each step's choice (``fixed`` ones as given) and, per step, why a faster candidate was refused.

    Speed never costs RAM: a candidate whose scratch makes the planned arena larger than the heuristic's
    kernels need is not eligible, and when the chosen mix together still needs more, the choices that
    gain the least go back to the heuristic's until it fits the heuristic's arena.
    """
    limit = _arena(program, board, {})
    choice: dict[int, str] = {}
    refused: dict[int, str] = {}
    for i, cands in enumerate(names):
        if i in fixed:
            choice[i] = fixed[i]
            continue
        best = _fastest(cands, measured[i], tick)
        if best == cands[0]:
            choice[i] = best
            continue
        arena = {v: _arena(program, board, {i: v}) for v in cands}
        choice[i] = _fastest([v for v in cands if v == cands[0] or arena[v] <= limit], measured[i], tick)
        if choice[i] != best:
            refused[i] = (f"{best} refused: its scratch makes the arena {arena[best]:,} B, the heuristic's kernels "
                          f"need {limit:,} B")
    while _arena(program, board, choice) > limit:
        changed = [i for i in range(len(names)) if i not in fixed and choice[i] != names[i][0]]
        if not changed:
            break
        i = min(changed, key=lambda j: (measured[j][names[j][0]] - measured[j][choice[j]], j))
        refused[i] = (f"{choice[i]} refused: with the other choices it makes the arena larger than the "
                      f"heuristic's {limit:,} B")
        choice[i] = names[i][0]
    return choice, refused


def _input_bytes(graph: Graph) -> bytes:
    rng = np.random.default_rng(INPUT_SEED)
    t = graph.input
    if t.dtype == "FLOAT32":
        return rng.uniform(-1.0, 1.0, size=int(t.size)).astype(np.float32).tobytes()
    return rng.integers(0, 256, size=int(t.nbytes), dtype=np.uint8).tobytes()


def profile_layers(graph: Graph, board: Board, choices: Mapping[int, str], project: Path,
                   core_dir: Path | None = None) -> list[int]:
    """Generate ``graph`` for the emulated ``board`` with ``choices`` into ``project``, build it, run one
    inference with ``te-profile`` in QEMU and return each step's instructions."""
    generate_project(graph, board, project, choices=choices, force=True)
    build_project(project, core_dir=core_dir)
    with runner_for(board, engine="qemu", core_dir=core_dir) as runner:
        url = runner.start(project)
        client = connect(url, connect_timeout=10.0, ready_timeout=20.0)
        # QEMU on a loaded machine (a CI runner building other firmware) can take seconds to answer a te-load:
        # a measurement waits longer than an interactive command would, but never without a deadline.
        client.timeouts["*"] = max(client.timeouts["*"], COMMAND_TIMEOUT_S)
        try:
            client.load(_input_bytes(graph))
            prof = client.profile(timeout=PROFILE_TIMEOUT_S)
        finally:
            client.close()
    per_tick = 1e9 / int(board.timer["hz"])  # -icount shift=0: one instruction per virtual ns
    layers: list[dict[str, int]] = prof["layers"]  # type: ignore[assignment]
    return [round(int(layer["ticks"]) * per_tick) for layer in layers]


def _quiet(message: str) -> None:
    """The default ``say``: no progress messages."""


@contextmanager
def _workspace(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        yield Path(workdir)
        return
    tmp = Path(tempfile.mkdtemp(prefix="te-tune-"))
    try:
        yield tmp / "project"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class _Layers:
    """Every step's candidates and cache key."""

    program: Program
    found: list[dict[str, Step]]
    names: list[list[str]]
    keys: list[str]


def _layers(graph: Graph, board: Board) -> _Layers:
    program = build_program(graph)
    found = model_candidates(program, board)
    fp = fingerprint(board)
    return _Layers(program, found, [list(f) for f in found], [layer_key(f, fp) for f in found])


def _tick(board: Board) -> int:
    """Instructions per tick of the board's clock in QEMU (``-icount shift=0``: one instruction per ns)."""
    return round(1e9 / int(board.timer["hz"]))


def _from_entry(i: int, s: Step, names: list[str], entry: dict[str, Any], twin: Board) -> LayerTuning:
    counts = {str(k): int(v) for k, v in entry["instructions"].items() if k in names}
    multi = len(names) > 1
    return LayerTuning(i, s.op.index, s.op.opcode, tuple(names), str(entry["choice"]), counts,
                       "cache" if multi else "only",
                       _why(names, counts, str(entry["choice"]), twin.core, True, _tick(twin),
                            str(entry.get("refused") or "")) if multi else "",
                       entry.get("tuned_instructions"))


def lookup(model: Graph | Path | str, board: Board | str, *, cache: Path | None = None) -> TuneResult | None:
    """The cached tuning of ``model`` on ``board`` (no build, no QEMU), or None when no layer with a choice
    has a cache entry. Layers without one are left out (they get the heuristic's kernel)."""
    graph = model if isinstance(model, Graph) else load_model(model)
    board = board if isinstance(board, Board) else get_board(board)
    try:
        twin = tuning_board(board)
    except BoardError:
        return None
    cache = cache or cache_dir("tune")
    lay = _layers(graph, twin)
    out = []
    for i, s in enumerate(lay.program.steps):
        entry = _read_entry(cache, lay.keys[i], lay.names[i])
        if entry is not None:
            out.append(_from_entry(i, s, lay.names[i], entry, twin))
    if not any(len(t.candidates) > 1 for t in out):
        return None
    return TuneResult(board.id, twin.id, twin.core, out)


def tune(model: Graph | Path | str, board: Board | str, *, core_dir: Path | None = None, workdir: Path | None = None,
         cache: Path | None = None, remeasure: bool = False, verify: bool = True,
         say: Callable[[str], None] | None = None) -> TuneResult:
    """Measure every layer's candidate kernels of ``model`` in QEMU on ``board``'s core and choose the fastest.

    Layers found in the cache (``cache``, default ``cache_dir("tune")``) are not measured again unless
    ``remeasure``; when all are, nothing is built. Otherwise ``max(#candidates)`` firmwares are built in
    ``workdir`` (default: a temporary folder) and profiled, plus one that checks the chosen mix when
    ``verify`` and it differs from all of them. ``say`` gets a line per step.
    """
    tell = say or _quiet
    graph = model if isinstance(model, Graph) else load_model(model)
    board = board if isinstance(board, Board) else get_board(board)
    twin = tuning_board(board)
    if twin.id != board.id:
        tell(f"{board.id} has no emulator: tuning on {twin.id} ({twin.core})")
    cache = cache or cache_dir("tune")
    lay = _layers(graph, twin)
    steps, names, n = lay.program.steps, lay.names, len(lay.program.steps)
    entries = {} if remeasure else {i: e for i in range(n)
                                    if (e := _read_entry(cache, lay.keys[i], names[i])) is not None}
    todo = [i for i in range(n) if len(names[i]) > 1 and i not in entries]
    result = TuneResult(board.id, twin.id, twin.core, [], 0)
    if not todo:
        result.layers = [_from_entry(i, steps[i], names[i], entries[i], twin) if i in entries else
                         LayerTuning(i, steps[i].op.index, steps[i].op.opcode, tuple(names[i]), names[i][0], {}, "only",
                                     "")
                         for i in range(n)]
        with_choice = sum(len(x) > 1 for x in names)
        tell(f"tuning: all {with_choice} layers with a choice came from the cache, nothing to measure" if with_choice
             else f"tuning: no layer has more than one kernel on {twin.id} ({twin.core}), nothing to measure")
        return result
    fixed = {i: str(e["choice"]) for i, e in entries.items()}
    tick = _tick(twin)
    rounds = max(len(names[i]) for i in todo)
    measured: list[dict[str, int]] = [{} for _ in range(n)]
    runs: list[tuple[dict[int, str], list[int]]] = []
    reverted: set[int] = set()
    with _workspace(workdir) as project:
        for k in range(rounds):
            mix = {i: fixed.get(i, names[i][k] if k < len(names[i]) else names[i][0]) for i in range(n)}
            tell(f"tuning round {k + 1}/{rounds}: build and profile in QEMU ({twin.id})")
            got = profile_layers(graph, twin, mix, project, core_dir)
            result.qemu_runs += 1
            if len(got) != n:
                raise BoardError(f"te-profile reported {len(got)} layers for a {n}-step model",
                                 "regenerate the project; the firmware and the model disagree")
            runs.append((mix, got))
            for i in range(n):
                seen = measured[i].setdefault(mix[i], got[i])
                if abs(seen - got[i]) > tick:  # a one-tick difference is the clock's phase, not the kernel
                    result.notes.append(f"step {i} {mix[i]}: {seen:,} then {got[i]:,} instructions in another "
                                        "firmware (kept the first)")
        choice, refused = _choose(lay.program, twin, names, measured, fixed, tick)
        tuned = next((c for m, c in runs if m == choice), None)
        if tuned is None and verify:
            tell("tuning: build and profile the chosen mix to check it")
            tuned = profile_layers(graph, twin, choice, project, core_dir)
            result.qemu_runs += 1
            for i in todo:
                default = names[i][0]
                if choice[i] != default and tuned[i] >= measured[i][default]:
                    result.notes.append(f"step {i}: {choice[i]} took {tuned[i]:,} instructions in the tuned firmware, "
                                        f"not fewer than {default}'s {measured[i][default]:,}: back to {default}")
                    choice[i] = default
                    reverted.add(i)
    # Sources edited while the rounds ran would mix two kernels' counts under one key: then keep nothing.
    keep = _layers(graph, twin).keys == lay.keys
    if not keep:
        result.notes.append("the kernels or the code generator changed while tuning: the results are used "
                            "once but not cached")
    for i in range(n):
        if i in entries:
            result.layers.append(_from_entry(i, steps[i], names[i], entries[i], twin))
            continue
        counts = {v: c for v, c in measured[i].items() if v in names[i]}
        multi = len(names[i]) > 1
        final = tuned[i] if tuned is not None and multi and i not in reverted else None
        t = LayerTuning(i, steps[i].op.index, steps[i].op.opcode, tuple(names[i]), choice[i], counts,
                        "measured" if multi else "only",
                        _why(names[i], counts, choice[i], twin.core, False, tick, refused.get(i, "")) if multi else "",
                        final)
        result.layers.append(t)
        if keep:
            _write_entry(cache, lay.keys[i], {"choice": t.choice, "instructions": counts, "tuned_instructions": final,
                                              "refused": refused.get(i, ""),
                                              "candidates": list(names[i]), "op": t.op, "core": twin.core,
                                              "measured_on": twin.id})
    return result


def measure_layers(model: Graph | Path | str, board: Board | str, *, choices: Mapping[int, str] | None = None,
                   core_dir: Path | None = None, workdir: Path | None = None) -> dict[int, int]:
    """Instructions of every layer of ``model`` on ``board``'s core, by operator index: one firmware built and
    profiled (``te-profile``) in QEMU, on ``board`` or its emulated twin (:func:`tuning_board`)."""
    graph = model if isinstance(model, Graph) else load_model(model)
    board = board if isinstance(board, Board) else get_board(board)
    twin = tuning_board(board)
    program = build_program(graph)
    with _workspace(workdir) as project:
        counts = profile_layers(graph, twin, dict(choices or {}), project, core_dir)
    return {s.op.index: c for s, c in zip(program.steps, counts, strict=True)}
