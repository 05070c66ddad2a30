"""Static memory plan: every activation buffer (and every kernel's scratch) gets an offset in one arena.

Lifetimes come from the step order (a buffer lives from the step that writes it to the last step
that reads it; the model input from before the first step, the output until after the last).
Reshape aliases share their source's buffer. A step whose kernel may run in place (``Step.inplace``:
element-wise ops, the DSP pointwise and depthwise convolutions) writes its output over its input when
that input dies at this step, so the two tensors become one buffer. A kernel's working memory
(``Step.scratch``: im2col columns, row buffers) is a buffer living for that step only.

Offsets are chosen greedy-by-size with first fit (:func:`plan_memory`, what the generated C uses:
``TE_ARENA_BYTES`` is its peak); :func:`plan_naive` gives every buffer its own space, for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ir import Program

ALIGN = 16  # bytes; keeps every buffer word-aligned for the SIMD kernels


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


def scratch_key(step: int) -> int:
    """The buffer key of step ``step``'s scratch (negative: never a tensor index)."""
    return -(step + 1)


@dataclass(frozen=True)
class Buffer:
    tensor: int  # root tensor index, or scratch_key(step) for a kernel's scratch
    size: int
    first: int  # first step index at which the buffer must hold data
    last: int  # last step index at which it is read
    offset: int = -1

    @property
    def is_scratch(self) -> bool:
        return self.tensor < 0


@dataclass
class MemoryPlan:
    buffers: dict[int, Buffer]  # buffer key -> placed buffer
    arena_bytes: int  # peak of this plan
    naive_bytes: int  # every buffer its own space (for comparison)
    lower_bound: int  # the largest set of buffers live at one step (no plan of these buffers can beat it)
    inplace: dict[int, int] = field(default_factory=dict)  # root tensor -> root whose buffer it was written over
    strategy: str = "greedy"

    def key(self, program: Program, tensor: int) -> int:
        r = program.root(tensor)
        while r in self.inplace:
            r = self.inplace[r]
        return r

    def offset(self, program: Program, tensor: int) -> int:
        return self.buffers[self.key(program, tensor)].offset

    def scratch_offset(self, step: int) -> int:
        return self.buffers[scratch_key(step)].offset

    def live_bytes(self, step: int) -> int:
        """Bytes of buffers live during ``step``."""
        return sum(b.size for b in self.buffers.values() if b.first <= step <= b.last)


def _raw_lifetimes(program: Program) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
    g = program.graph
    n = len(program.steps)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    root_in = program.root(program.input)
    first[root_in] = -1
    last[root_in] = -1
    for i, step in enumerate(program.steps):
        for t in step.outputs:
            r = program.root(t)
            first.setdefault(r, i)
            last[r] = max(last.get(r, i), i)
        for t in step.inputs:
            r = program.root(t)
            first.setdefault(r, i)
            last[r] = max(last.get(r, -1), i)
    root_out = program.root(program.output)
    first.setdefault(root_out, -1)
    last[root_out] = n
    sizes: dict[int, int] = {}
    for t in range(len(g.tensors)):
        r = program.root(t)
        if r in first and not g.tensor(t).is_const:
            sizes[r] = max(sizes.get(r, 0), g.tensor(t).nbytes)
    return first, last, sizes


def lifetimes(program: Program, *, inplace: bool = True) -> tuple[dict[int, Buffer], dict[int, int]]:
    """Every buffer's size and [first, last] step, and the in-place merges (output root -> input root).

    Aliases are folded into their root; with ``inplace``, a step that may run in place and whose
    input dies at that step shares one buffer between its input and output.
    """
    first, last, sizes = _raw_lifetimes(program)
    merged: dict[int, int] = {}

    def find(r: int) -> int:
        while r in merged:
            r = merged[r]
        return r

    if inplace:
        for i, step in enumerate(program.steps):
            if not step.inplace or not step.inputs or not step.outputs:
                continue
            src, dst = find(program.root(step.inputs[0])), program.root(step.outputs[0])
            others = [find(program.root(t)) for t in step.inputs[1:]]
            # the input must die here (no later reader), be read only as in0, and the output be fresh
            if src == dst or last.get(src) != i or first.get(dst) != i or src in others:
                continue
            merged[dst] = src
            sizes[src] = max(sizes[src], sizes[dst])
            last[src] = last[dst]
            del first[dst], last[dst], sizes[dst]
    bufs = {r: Buffer(r, sizes[r], first[r], last[r]) for r in first}
    for i, step in enumerate(program.steps):
        if step.scratch > 0:
            bufs[scratch_key(i)] = Buffer(scratch_key(i), int(step.scratch), i, i)
    return bufs, merged


def _peak(bufs: dict[int, Buffer], n_steps: int) -> int:
    steps = range(-1, n_steps + 1)
    return max((sum(b.size for b in bufs.values() if b.first <= s <= b.last) for s in steps), default=0)


def _naive_bytes(program: Program) -> int:
    bufs, _ = lifetimes(program, inplace=False)
    return sum(_align(b.size) for b in bufs.values())


def plan_naive(program: Program) -> MemoryPlan:
    """Every buffer its own space, one after the other (no reuse, no in-place): the baseline."""
    bufs, _ = lifetimes(program, inplace=False)
    placed: dict[int, Buffer] = {}
    offset = 0
    for key in sorted(bufs, key=lambda k: (bufs[k].first, k)):
        b = bufs[key]
        placed[key] = Buffer(b.tensor, b.size, b.first, b.last, offset)
        offset += _align(b.size)
    return MemoryPlan(placed, _align(offset), offset, _peak(bufs, len(program.steps)), {}, "naive")


def plan_memory(program: Program, *, inplace: bool = True) -> MemoryPlan:
    """Greedy by size, first fit: place the largest buffers first at the lowest offset free for their lifetime."""
    bufs, merged = lifetimes(program, inplace=inplace)
    placed: list[Buffer] = []
    order = sorted(bufs.values(), key=lambda b: (-b.size, b.first, b.tensor))
    for b in order:
        conflicts = sorted((p for p in placed if p.first <= b.last and b.first <= p.last), key=lambda p: p.offset)
        offset = 0
        for p in conflicts:
            if offset + b.size <= p.offset:
                break
            offset = max(offset, _align(p.offset + p.size))
        placed.append(Buffer(b.tensor, b.size, b.first, b.last, offset))
    result = {p.tensor: p for p in placed}
    arena = _align(max((p.offset + p.size for p in placed), default=0))
    return MemoryPlan(result, arena, _naive_bytes(program), _peak(bufs, len(program.steps)), merged, "greedy")


def overlaps(plan: MemoryPlan) -> list[tuple[int, int]]:
    """Pairs of buffers of ``plan`` that are live at the same step and share bytes (empty for a valid plan)."""
    bad = []
    items = sorted(plan.buffers.values(), key=lambda b: b.offset)
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            if b.offset >= a.offset + a.size:
                break
            if a.first <= b.last and b.first <= a.last and a.size and b.size:
                bad.append((a.tensor, b.tensor))
    return bad
