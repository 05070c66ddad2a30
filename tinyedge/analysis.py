"""Exact analysis of a model for ``tinyedge inspect``: per-layer cost, the memory plan the generated
code uses, flash, TFLM's arena for comparison, and fit per board."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .boards import Board
from .boards.cores import has_dsp
from .codegen.target import DSP_KERNELS, specialize
from .errors import TinyedgeError
from .firmware import CODE_FLASH_ESTIMATE, elf_size, fit_report
from .firmware.generate import with_choices
from .model.graph import Graph
from .model.ir import Program, Step
from .model.lower import ALIAS_OPS
from .model.memplan import MemoryPlan, plan_memory
from .model.program import build_program
from .oracle import min_arena_bytes


@dataclass
class Layer:
    index: int  # operator index in the model
    op: str
    kind: str  # kernel | alias | folded
    output_shape: list[int]
    macs: int
    weight_bytes: int
    live_bytes: int  # activation bytes live while this layer runs (0 for aliases/folded ops)
    variant: str = ""  # which of the board's candidate kernels runs it (codegen.target.candidates), "" if none
    kernel: str = ""  # the C function
    why: str = ""  # why that variant: the heuristic, the tuner's measured counts, or why a faster one was refused


@dataclass
class Analysis:
    model: str
    sha256: str
    plan_for: str  # the board whose kernels and plan the figures describe, or "portable"
    layers: list[Layer]
    macs: int
    params: int
    weight_bytes: int
    ram_bytes: int  # peak of tinyedge's plan == TE_ARENA_BYTES
    naive_ram_bytes: int
    ram_lower_bound: int
    tflm_arena_bytes: int | None
    code_bytes: int
    code_measured: bool
    code_source: str
    fits: list[dict[str, Any]] = field(default_factory=list)
    tflm_error: str = ""  # why tflm_arena_bytes is unavailable (TFLM refused, crashed or hung), "" if measured

    @property
    def flash_bytes(self) -> int:
        return self.weight_bytes + self.code_bytes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["flash_bytes"] = self.flash_bytes
        if self.tflm_arena_bytes:
            d["ram_vs_tflm"] = round(self.ram_bytes / self.tflm_arena_bytes, 4)
        return d


def tflm_min_arena(graph: Graph) -> tuple[int | None, str]:
    """TFLM's minimum arena for this model on the host interpreter (64-bit), or None and why not.

    The interpreter runs in tinyedge.oracle's worker process: a TFLM crash or hang on this model makes the
    comparison unavailable, never the analysis.
    """
    try:
        return min_arena_bytes(graph.model_bytes), ""
    except TinyedgeError as exc:  # OracleError (or ToolError: no worker); the comparison is then n/a
        return None, exc.problem


def last_build_code_bytes(board: Board, project: Path | None, program: Program) -> tuple[int, str] | None:
    """Code bytes (flash minus weights) measured with arm-none-eabi-size on a project's last build."""
    if project is None:
        return None
    elf = Path(project) / ".pio" / "build" / board.id / "firmware.elf"
    if not elf.is_file():
        return None
    size = elf_size(elf)
    return max(size.text + size.data - program.weight_bytes, 0), f"arm-none-eabi-size {elf}"


def analyze(graph: Graph, boards: Sequence[Board] = (), *, project: Path | None = None, tflm: bool = True,
            choices: Mapping[int, str] | None = None, why: Mapping[int, str] | None = None) -> Analysis:
    """Analyse ``graph`` (raises UnsupportedModelError like ``generate`` would).

    With boards, the table and peak RAM describe the first board's program exactly as ``generate``
    builds it (its kernels, e.g. DSP, and their memory plan); each board's fit uses its own.
    ``choices``/``why`` (step index -> variant name / reason, e.g. from ``tinyedge.tune``) apply to the
    first board, as ``generate --tune`` would use them.
    """
    base = build_program(graph)
    program = with_choices(base, boards[0], choices, why) if boards else base
    plan: MemoryPlan = plan_memory(program)
    step_of = {s.op.index: i for i, s in enumerate(program.steps)}
    layers = []
    for op in graph.operators:
        shape = list(graph.tensor(op.outputs[0]).shape) if op.outputs else []
        if op.index in step_of:
            i = step_of[op.index]
            s = program.steps[i]
            layers.append(Layer(op.index, op.opcode, "kernel", shape, s.macs, s.weight_bytes, plan.live_bytes(i),
                                s.variant, s.kernel, s.why or _default_why(s, boards[0] if boards else None)))
        else:
            kind = "alias" if op.opcode in ALIAS_OPS and op.outputs[0] in program.alias else "folded"
            layers.append(Layer(op.index, op.opcode, kind, shape, 0, 0, 0))
    params = base.params
    tflm_arena, tflm_error = tflm_min_arena(graph) if tflm else (None, "")
    measured = None
    for b in boards:
        measured = last_build_code_bytes(b, project, program)
        if measured:
            break
    estimate = (CODE_FLASH_ESTIMATE, "estimate (no build of this model found; pass --project)")
    code, source = measured if measured else estimate
    fits = []
    for j, b in enumerate(boards):
        pb = program if j == 0 else specialize(base, b)
        f = fit_report(pb, plan_memory(pb), b, graph.input.nbytes, code if measured else None)
        fits.append(dict(board=b.id, fits=f.fits, ram_needed=f.ram_needed, ram_available=f.ram_available,
                         flash_needed=f.flash_needed, flash_available=f.flash_available,
                         flash_measured=f.flash_measured, problems=f.problems()))
    return Analysis(
        model=graph.name, sha256=graph.sha256, plan_for=boards[0].id if boards else "portable", layers=layers,
        macs=program.macs, params=params,
        weight_bytes=program.weight_bytes, ram_bytes=plan.arena_bytes, naive_ram_bytes=plan.naive_bytes,
        ram_lower_bound=plan.lower_bound, tflm_arena_bytes=tflm_arena,
        code_bytes=code, code_measured=measured is not None, code_source=source, fits=fits, tflm_error=tflm_error,
    )


def _default_why(s: Step, board: Board | None) -> str:
    """The reason for a step whose kernel came without one: there was nothing to choose from."""
    if board is None:
        return "portable C: no board given (pass --board)"
    if not has_dsp(board) and s.kernel in DSP_KERNELS:
        return f"portable C: {board.id} ({board.core}) has no DSP extension"
    return "the only kernel for this op"


@dataclass
class LayerPair:
    """One layer of two models side by side (e.g. a mixed int8/int16 model against its all-int8 twin);
    a side is None where only the other model has the layer (the QUANTIZE operators a mixed model adds)."""

    op: str
    a: Layer | None
    b: Layer | None
    a_instructions: int | None = None  # measured per-layer instructions (QEMU te-profile), None if not measured
    b_instructions: int | None = None


@dataclass
class Comparison:
    """Two analyses on the same board and their layers paired by operator sequence."""

    a: Analysis
    b: Analysis
    pairs: list[LayerPair]
    a_instructions: int | None = None  # whole inference (sum of the measured layers)
    b_instructions: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: both models' totals and the per-layer pairs."""
        def side(x: Analysis, instr: int | None) -> dict[str, Any]:
            return dict(model=x.model, sha256=x.sha256, ram_bytes=x.ram_bytes, weight_bytes=x.weight_bytes,
                        flash_bytes=x.flash_bytes, macs=x.macs, instructions=instr)
        def layer(x: Layer | None) -> dict[str, Any] | None:
            return None if x is None else asdict(x)
        return dict(plan_for=self.a.plan_for, a=side(self.a, self.a_instructions),
                    b=side(self.b, self.b_instructions),
                    layers=[dict(op=p.op, a=layer(p.a), b=layer(p.b), a_instructions=p.a_instructions,
                                 b_instructions=p.b_instructions) for p in self.pairs])


def compare(a: Analysis, b: Analysis, a_counts: Mapping[int, int] | None = None,
            b_counts: Mapping[int, int] | None = None) -> Comparison:
    """Pair ``a``'s and ``b``'s layers by their operator sequence (longest common subsequence, so operators
    only one model has, like a mixed model's QUANTIZE, stand alone). ``*_counts``: measured instructions by
    operator index (``tinyedge.tune.profile_layers``), or None."""
    ops_a, ops_b = [x.op for x in a.layers], [x.op for x in b.layers]
    pairs: list[LayerPair] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=ops_a, b=ops_b, autojunk=False).get_opcodes():
        if tag == "equal":
            pairs.extend(LayerPair(a.layers[i].op, a.layers[i], b.layers[j])
                         for i, j in zip(range(i1, i2), range(j1, j2), strict=True))
            continue
        pairs.extend(LayerPair(a.layers[i].op, a.layers[i], None) for i in range(i1, i2))
        pairs.extend(LayerPair(b.layers[j].op, None, b.layers[j]) for j in range(j1, j2))
    for pair in pairs:
        if a_counts is not None and pair.a is not None:
            pair.a_instructions = a_counts.get(pair.a.index)
        if b_counts is not None and pair.b is not None:
            pair.b_instructions = b_counts.get(pair.b.index)
    return Comparison(a, b, pairs, None if a_counts is None else sum(a_counts.values()),
                      None if b_counts is None else sum(b_counts.values()))


def analysis_json(a: Analysis) -> str:
    return json.dumps(a.to_dict(), indent=2)
