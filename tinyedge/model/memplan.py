"""Static memory plan: every activation buffer gets an offset in one arena.

Lifetimes come from the step order (a buffer lives from the step that writes it to the last step
that reads it; the model input from before the first step, the output until after the last).
Reshape aliases share their source's buffer. Offsets are chosen greedy-by-size with first fit, which
is what the generated C uses (``TE_ARENA_BYTES`` is this plan's peak).
"""

from __future__ import annotations

from dataclasses import dataclass

from .program import Program

ALIGN = 16  # bytes; keeps every buffer word-aligned for the SIMD kernels


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass(frozen=True)
class Buffer:
    tensor: int  # root tensor index
    size: int
    first: int  # first step index at which the buffer must hold data
    last: int  # last step index at which it is read
    offset: int = -1


@dataclass
class MemoryPlan:
    buffers: dict[int, Buffer]  # root tensor -> placed buffer
    arena_bytes: int  # peak of this plan
    naive_bytes: int  # every buffer its own space (for comparison)
    lower_bound: int  # the largest set of buffers live at one step (no plan can beat it)

    def offset(self, program: Program, tensor: int) -> int:
        return self.buffers[program.root(tensor)].offset

    def live_bytes(self, step: int) -> int:
        """Bytes of activation buffers live during ``step``."""
        return sum(b.size for b in self.buffers.values() if b.first <= step <= b.last)


def lifetimes(program: Program) -> dict[int, Buffer]:
    """Size and [first, last] step of every activation buffer (aliases folded into their root)."""
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
    return {r: Buffer(r, sizes[r], first[r], last[r]) for r in first}


def plan_memory(program: Program) -> MemoryPlan:
    """Greedy by size, first fit: place the largest buffers first at the lowest free offset."""
    bufs = lifetimes(program)
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
    naive = sum(_align(b.size) for b in bufs.values())
    steps = range(-1, len(program.steps) + 1)
    bound = max((sum(b.size for b in bufs.values() if b.first <= s <= b.last) for s in steps), default=0)
    return MemoryPlan(result, arena, naive, bound)
