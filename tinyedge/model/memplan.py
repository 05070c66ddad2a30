"""Static memory plan: every activation buffer (and every kernel's scratch) gets an offset in one arena.

Lifetimes come from the step order (a buffer lives from the step that writes it to the last step
that reads it; the model input from before the first step, the output until after the last).
Reshape aliases share their source's buffer. A step whose kernel may run in place (``Step.inplace``: the
DSP pointwise and depthwise convolutions, fused residual blocks; element-wise kernels over any input of the
output's shape, see :func:`inplace_inputs`) writes its output over an input that dies at this step, so
the two tensors become one buffer; from then on it holds only the output's bytes (``Buffer.shrinks``), so
a smaller output frees the rest. A kernel's working memory (``Step.scratch``: im2col columns, row
buffers) is a buffer living for that step only.

Offsets are chosen greedy-by-size with first fit (:func:`plan_memory`, what the generated C uses:
``TE_ARENA_BYTES`` is its peak); :func:`plan_naive` gives every buffer its own space, for comparison.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from .ir import Program, Step

ALIGN = 16  # bytes; keeps every buffer word-aligned for the SIMD kernels


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


def scratch_key(step: int) -> int:
    """The buffer key of step ``step``'s scratch (negative: never a tensor index)."""
    return -(step + 1)


@dataclass(frozen=True)
class Buffer:
    tensor: int  # root tensor index, or scratch_key(step) for a kernel's scratch
    size: int  # bytes from its start it ever uses
    first: int  # first step index at which the buffer must hold data
    last: int  # last step index at which it is read
    offset: int = -1
    # (step, lo, hi): from that step on, the buffer holds data in bytes [lo, hi) of its own (in step order).
    # In-place steps make a buffer's tensors succeed each other: a smaller output written over its input
    # frees the rest, a larger one over the end of its input grows the buffer below it. Empty: [0, size).
    spans: tuple[tuple[int, int, int], ...] = ()

    @property
    def is_scratch(self) -> bool:
        return self.tensor < 0

    def span_at(self, step: int) -> tuple[int, int]:
        """Bytes [lo, hi) of the buffer in use at ``step`` (empty outside its lifetime)."""
        if not self.first <= step <= self.last:
            return (0, 0)
        if not self.spans:
            return (0, self.size)
        lo, hi = self.spans[0][1], self.spans[0][2]
        for at, a, b in self.spans:
            if at > step:
                break
            lo, hi = a, b
        return (lo, hi)

    def size_at(self, step: int) -> int:
        """Bytes in use at ``step`` (0 outside the lifetime)."""
        lo, hi = self.span_at(step)
        return hi - lo

    def extent(self, lo: int, hi: int) -> tuple[int, int]:
        """Bytes [start, end) of the buffer in use at some step of [lo, hi] ((0, 0) when none is)."""
        lo, hi = max(lo, self.first), min(hi, self.last)
        if lo > hi:
            return (0, 0)
        if not self.spans:
            return (0, self.size)
        steps = {lo} | {at for at, _, _ in self.spans if lo <= at <= hi}
        used = [self.span_at(t) for t in steps]
        return (min(a for a, _ in used), max(b for _, b in used))


@dataclass
class MemoryPlan:
    buffers: dict[int, Buffer]  # buffer key -> placed buffer
    arena_bytes: int  # peak of this plan
    naive_bytes: int  # every buffer its own space (for comparison)
    lower_bound: int  # the largest set of buffers live at one step (no plan of these buffers can beat it)
    inplace: dict[int, int] = field(default_factory=dict)  # root tensor -> root whose buffer it was written over
    strategy: str = "greedy"
    within: dict[int, int] = field(default_factory=dict)  # root tensor -> its start inside its buffer (else 0)

    def key(self, program: Program, tensor: int) -> int:
        r = program.root(tensor)
        while r in self.inplace:
            r = self.inplace[r]
        return r

    def offset(self, program: Program, tensor: int) -> int:
        return self.buffers[self.key(program, tensor)].offset + self.within.get(program.root(tensor), 0)

    def scratch_offset(self, step: int) -> int:
        return self.buffers[scratch_key(step)].offset

    def live_bytes(self, step: int) -> int:
        """Bytes of buffers live during ``step``."""
        return sum(b.size_at(step) for b in self.buffers.values())


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


#: Element-wise kernels: ``out[i]`` depends on ``in[i]`` only, so the output may be written over any input of
#: the output's shape and element size (not over a broadcast one, whose elements later outputs still read).
ELEMENTWISE_KERNELS = frozenset({"te_binary_s8", "te_lut_s8"})


def inplace_inputs(program: Program, step: Step) -> list[int]:
    """Positions of ``step``'s inputs its output may be written over, in order of preference.

    ``Step.inplace`` allows in0; an element-wise kernel (:data:`ELEMENTWISE_KERNELS`) allows every input
    with the output's shape and element size, so an ADD can reuse whichever operand dies at it (the residual
    branch or the shortcut).
    """
    if not step.inputs or not step.outputs:
        return []
    if step.kernel in ELEMENTWISE_KERNELS:
        g = program.graph
        y = g.tensor(step.outputs[0])
        return [k for k, t in enumerate(step.inputs)
                if tuple(g.tensor(t).shape) == tuple(y.shape) and g.tensor(t).itemsize == y.itemsize]
    return [0] if step.inplace else []


#: Kernels that read each input pixel before writing the output pixel at the same index, in pixel order
#: (the DSP pointwise convolutions, ``pointwise`` set). One with more output than input channels may write
#: its output over a buffer whose END its input occupies: output pixel p ends at (p + 1) * out_c, at or
#: before the first unread input pixel, which starts at N * (out_c - in_c) + (p + 1) * in_c.
_PIXEL_ORDER = re.compile(r"te_conv2d_s8_dsp(_[a-z]+[0-9]*)*_m[0-7]")


def tail_inplace(program: Program, step: Step) -> bool:
    """Whether ``step`` may write its larger output over a buffer that holds its input at the end."""
    p = step.params
    return (bool(_PIXEL_ORDER.fullmatch(step.kernel)) and p.get("pointwise") == 1 and p.get("batches") == 1
            and len(step.inputs) == 1 and len(step.outputs) == 1
            and p.get("out_c", 0) > p.get("in_c", 0) > 0)


def lifetimes(program: Program, *, inplace: bool = True) -> tuple[dict[int, Buffer], dict[int, int]]:
    """Every buffer's size and [first, last] step, and the in-place merges (output root -> input root).

    Aliases are folded into their root; with ``inplace``, a step that may run in place and whose
    input dies at that step shares one buffer between its input and output.
    """
    bufs, merged, _ = _lifetimes(program, inplace=inplace)
    return bufs, merged


def _lifetimes(program: Program, *, inplace: bool = True,
               tail: frozenset[int] = frozenset()) -> tuple[dict[int, Buffer], dict[int, int], dict[int, int]]:
    first, last, sizes = _raw_lifetimes(program)
    merged: dict[int, int] = {}
    spans: dict[int, list[tuple[int, int, int]]] = {}
    within: dict[int, int] = {}  # tensor root -> start inside its buffer
    members: dict[int, list[int]] = {}  # buffer root -> tensor roots in it

    def find(r: int) -> int:
        while r in merged:
            r = merged[r]
        return r

    if inplace:
        for i, step in enumerate(program.steps):
            if not step.outputs:
                continue
            dst = program.root(step.outputs[0])
            roots = [find(program.root(t)) for t in step.inputs]
            grow = i in tail and tail_inplace(program, step)
            for k in [0] if grow else inplace_inputs(program, step):
                src = roots[k]
                # the input must die here (no later reader), be read only once, and the output be fresh
                if src != dst and last.get(src) == i and first.get(dst) == i and roots.count(src) == 1:
                    break
            else:
                continue
            tl = spans.setdefault(src, [(first[src], 0, sizes[src])])
            cur_lo, cur_hi = tl[-1][1], tl[-1][2]
            shift = 0
            if grow:
                # the input's bytes end where the output's do: move the buffer's start down by the difference
                x = program.root(step.inputs[0])
                shift = sizes[dst] - (within.get(x, 0) + program.graph.tensor(step.inputs[0]).nbytes)
                if shift < 0 or shift % 4:  # the input stays word-aligned (whole SIMD words)
                    continue
                tl[:] = [(at, a + shift, b + shift) for at, a, b in tl]
                for t in members.get(src, [src]):
                    within[t] = within.get(t, 0) + shift
                cur_lo, cur_hi = cur_lo + shift, cur_hi + shift
            merged[dst] = src
            members.setdefault(src, [src]).append(dst)
            # both tensors at step i, then only dst's bytes (the buffer's first ones)
            tl += [(i, min(cur_lo, 0), max(cur_hi, sizes[dst])), (i + 1, 0, sizes[dst])]
            sizes[src] = max(sizes[src] + shift, sizes[dst])
            last[src] = last[dst]
            del first[dst], last[dst], sizes[dst]
    bufs = {r: Buffer(r, sizes[r], first[r], last[r], -1, _compact(spans.get(r, []), sizes[r])) for r in first}
    for i, step in enumerate(program.steps):
        if step.scratch > 0:
            bufs[scratch_key(i)] = Buffer(scratch_key(i), int(step.scratch), i, i)
    return bufs, merged, within


def _compact(timeline: list[tuple[int, int, int]], size: int) -> tuple[tuple[int, int, int], ...]:
    """The timeline without entries that change nothing (later entries at one step win); empty if it always
    spans the whole buffer."""
    by_step: dict[int, tuple[int, int]] = {}
    for at, a, b in timeline:
        by_step[at] = (a, b)
    out: list[tuple[int, int, int]] = []
    for at in sorted(by_step):
        if not out or out[-1][1:] != by_step[at]:
            out.append((at, *by_step[at]))
    return () if all(o[1:] == (0, size) for o in out) else tuple(out)


def _peak(bufs: dict[int, Buffer], n_steps: int) -> int:
    steps = range(-1, n_steps + 1)
    return max((sum(b.size_at(s) for b in bufs.values()) for s in steps), default=0)


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
    """Greedy by size, first fit: place the largest buffers first at the lowest offset free for their lifetime
    (a shrunk buffer's freed bytes count as free from its shrinking on)."""
    # Largest first; then in step order, which puts a buffer that grows below its input (tail_inplace)
    # above the input before it rather than that input above it. Growing outputs over their input's end
    # saves memory at their step but pins where the input goes: plans with and without, the smallest wins.
    Plan = tuple[int, list[Buffer], dict[int, Buffer], dict[int, int], dict[int, int]]

    def plan(tail: frozenset[int]) -> Plan:
        bufs, merged, within = _lifetimes(program, inplace=inplace, tail=tail)
        best: Plan | None = None
        for key in (lambda b: (-b.size, b.first, b.tensor), lambda b: (b.first, -b.size, b.tensor)):
            placed = _first_fit(sorted(bufs.values(), key=key))
            if best is None or _end(placed) < best[0]:
                best = (_end(placed), placed, bufs, merged, within)
        assert best is not None
        return best

    chosen: frozenset[int] = frozenset()
    best = plan(chosen)
    if inplace:
        for i, step in enumerate(program.steps):  # each step that can grow in place, kept where it helps
            if tail_inplace(program, step):
                trial = plan(chosen | {i})
                if trial[0] < best[0]:
                    chosen, best = chosen | {i}, trial
    end, placed, bufs, merged, within = best
    return MemoryPlan({p.tensor: p for p in placed}, _align(end), _naive_bytes(program),
                      _peak(bufs, len(program.steps)), merged, "greedy", within)


def _end(placed: list[Buffer]) -> int:
    return max((p.offset + p.size for p in placed), default=0)


def _first_fit(order: list[Buffer]) -> list[Buffer]:
    """Each buffer in ``order`` at the lowest offset free while it is live."""
    placed: list[Buffer] = []
    for b in order:
        # [start, end) of every placed buffer's bytes while both live, and the part of b in use then
        busy = []
        for p in placed:
            lo, hi = max(p.first, b.first), min(p.last, b.last)
            if lo <= hi:
                (p0, p1), (b0, b1) = p.extent(lo, hi), b.extent(lo, hi)
                if p1 > p0 and b1 > b0:
                    busy.append((p.offset + p0, p.offset + p1, b0, b1))
        offset = 0
        for start in sorted({0} | {_align(max(end - b0, 0)) for _, end, b0, _ in busy}):
            if all(start + b1 <= s0 or start + b0 >= e0 for s0, e0, b0, b1 in busy):
                offset = start
                break
        placed.append(dataclasses.replace(b, offset=offset))
    return placed


def overlaps(plan: MemoryPlan) -> list[tuple[int, int]]:
    """Pairs of buffers of ``plan`` that are live at the same step and share bytes (empty for a valid plan)."""
    bad = []
    items = sorted(plan.buffers.values(), key=lambda b: b.offset)
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            if b.offset >= a.offset + a.size:
                break
            lo, hi = max(a.first, b.first), min(a.last, b.last)
            if lo > hi:
                continue
            (a0, a1), (b0, b1) = a.extent(lo, hi), b.extent(lo, hi)
            if a1 > a0 and b1 > b0 and a.offset + a0 < b.offset + b1 and b.offset + b0 < a.offset + a1:
                bad.append((a.tensor, b.tensor))
    return bad
