"""Fuse residual blocks into one banded step (``te_resblock_s8``, tinyedge/runtime/te_kernels_fused.c).

A residual block ``ADD(shortcut, B(A(x)))``, whose shortcut is ``x`` itself or a convolution ``S(x)``, holds
``x``, ``A(x)`` and ``B(A(x))`` (and ``S(x)``) at once when run layer by layer: for ResNet-8's 32x32x16
stage that is three 16 KiB tensors. Run a band of output rows at a time instead, only a window of A's
rows and one band of B's (and S's) rows exist besides ``x``, and the block's output can be written over
``x`` as its rows die: the block needs little more than ``x`` itself (MCUNetV2's patch-based inference,
by rows, without recomputation).

Each convolution keeps the kernel the target pass chose for it and runs it on a range of output rows with
the padding that range has in the full layer, and the ADD keeps its kernel and parameters, so every value
is computed by the same arithmetic as before: the fused block is bit-exact with the unfused layers.

The fused step takes the place of the block's first step; its other layers become ``te_fused_nop``
placeholders, so the firmware still has one layer per original step (``te-profile``, ``tinyedge.tune``
count layers): the fused layer's count covers the whole block.

Costs: a band's calls waste part of a pixel-blocked kernel's last pass, so the band height is chosen to
waste least (:func:`pixels_a_pass`); per-band calls and the window's row moves add a little. Only the
blocks the arena's peak needs are fused (:func:`fuse_residual_blocks`). ResNet-8 (MLPerf Tiny IC), DSP
kernels, in QEMU: arena 51,408 -> 26,144 bytes for +0.2 % instructions and +1.1 KB flash (the driver), two
of its three blocks fused.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..model.ir import Program, Step
from ..model.lower.common import CONV_ARGS
from ..model.memplan import plan_memory

#: The driver (and the placeholder for the layers it absorbed).
FUSED_KERNEL = "te_resblock_s8"
NOP_KERNEL = "te_fused_nop"
#: Argument lists of the convolution kernels the driver can call on row ranges.
DSP_CONV_ARGS = ["params", "in0", "const:filter", "const:rq@te_rq", "out0", "scratch"]
_DSP_CONV = re.compile(r"te_conv2d_s8_dsp(_[a-z]+[0-9]*)*_m[0-7]")  # every te_dsp_conv_params variant
#: Most output rows per band (a bigger band: fewer calls and whole pixel blocks; a bigger window).
MAX_BAND = 4
_PASS = re.compile(r"_px([0-9]+)_")


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


@dataclass(frozen=True)
class _Geom:
    """Row geometry of one convolution: input rows, output rows, kernel height, stride, top padding."""

    in_h: int
    out_h: int
    k: int
    s: int
    pad: int
    in_row: int  # bytes
    out_row: int

    def rows(self, o0: int, o1: int) -> tuple[int, int]:
        """Input rows [lo, hi) that output rows [o0, o1) read."""
        return max(0, o0 * self.s - self.pad), min(self.in_h, (o1 - 1) * self.s - self.pad + self.k)


def _conv_ok(s: Step) -> bool:
    """A convolution the driver can run on row ranges: a known kernel and argument list, one batch, no
    vertical dilation."""
    if s.op.opcode != "CONV_2D" or len(s.inputs) != 1 or len(s.outputs) != 1:
        return False
    p = s.params
    if p.get("batches") != 1 or p.get("dil_h") != 1:
        return False
    if s.kernel == "te_conv2d_s8":
        return s.args == CONV_ARGS and s.struct == "te_conv_params"
    return bool(_DSP_CONV.fullmatch(s.kernel)) and s.args == DSP_CONV_ARGS and s.struct == "te_dsp_conv_params"


def _geom(s: Step) -> _Geom:
    p = s.params
    return _Geom(p["in_h"], p["out_h"], p["k_h"], p["stride_h"], p["pad_h"], p["in_w"] * p["in_c"],
                 p["out_w"] * p["out_c"])


@dataclass(frozen=True)
class Block:
    """A residual block found in a Program: step indices of A, B, S (or None) and the ADD."""

    a: int
    b: int
    s: int | None
    add: int
    sc_first: bool  # the shortcut is the ADD's first operand

    @property
    def first(self) -> int:
        """The block's first step (the fused step goes there; the others are consecutive after it)."""
        return min(self.a, self.s if self.s is not None else self.a)

    @property
    def last(self) -> int:
        return self.add


def find_blocks(program: Program) -> list[Block]:
    """The residual blocks ``ADD(S(x) or x, B(A(x)))`` whose steps are consecutive and whose inner tensors
    nothing else reads."""
    steps = program.steps
    root = program.root
    producer: dict[int, int] = {}
    readers: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(steps):
        for t in s.outputs:
            producer[root(t)] = i
        for t in s.inputs:
            readers[root(t)].append(i)
    out_root = root(program.output)

    def private(i: int, reader: int) -> bool:  # step i's output is read by `reader` only
        r = root(steps[i].outputs[0])
        return r != out_root and readers[r] == [reader]

    blocks = []
    for j, add in enumerate(steps):
        if (add.kernel != "te_binary_s8" or add.op.opcode != "ADD" or add.params.get("broadcast") != 0
                or len(add.inputs) != 2 or len(add.outputs) != 1):
            continue
        ins = [root(t) for t in add.inputs]
        for k in (0, 1):
            bi = producer.get(ins[k])
            if bi is None or not _conv_ok(steps[bi]) or not private(bi, j):
                continue
            ai = producer.get(root(steps[bi].inputs[0]))
            if ai is None or not _conv_ok(steps[ai]) or not private(ai, bi):
                continue
            x = root(steps[ai].inputs[0])
            other = ins[1 - k]
            si = None
            if other != x:
                si = producer.get(other)
                if si is None or not _conv_ok(steps[si]) or not private(si, j) or root(steps[si].inputs[0]) != x:
                    continue
            members = sorted(i for i in (ai, bi, si, j) if i is not None)
            if members != list(range(members[0], members[-1] + 1)):
                continue
            blocks.append(Block(ai, bi, si, j, sc_first=k == 1))
            break
    return blocks


def pixels_a_pass(s: Step) -> int:
    """Output pixels the conv kernel computes together (``te_conv2d_s8_dsp_pxP``: P; the im2col DSP
    kernel: 4; the portable one: 1): a call whose pixel count is not a multiple pays for a whole last pass."""
    if s.kernel == "te_conv2d_s8":
        return 1
    m = _PASS.search(s.kernel)
    return int(m.group(1)) if m else 4


def _band(convs: list[tuple[Step, int]], out_h: int) -> int:
    """Output rows per band: the fewest (up to MAX_BAND) whose calls waste the least of their kernels'
    pixel passes; ``convs`` pairs each conv with its output rows per band row."""
    def waste(band: int) -> float:
        total = 0.0
        for s, rows in convs:
            pix = band * rows * s.params["out_w"]
            n = pixels_a_pass(s)
            total += (-(-pix // n) * n - pix) / pix * s.macs
        return total

    return min(range(1, max(1, min(MAX_BAND, out_h)) + 1), key=lambda b: (waste(b), b))


def schedule(a: _Geom, b: _Geom, s: _Geom | None, band: int) -> list[dict[str, Any]]:
    """The driver's passes, as ``te_resblock_s8`` runs them: per band of output rows [r0, r1), the A rows
    it computes [a0, a1), the window's rows [wlo, whi) afterwards, and the block-input rows each pass reads
    (A's and S's inputs, or the identity shortcut's)."""
    passes = []
    wlo = whi = 0
    for r0 in range(0, b.out_h, band):
        r1 = min(b.out_h, r0 + band)
        lo, hi = b.rows(r0, r1)
        if lo > wlo:
            whi = max(whi, lo)
            wlo = lo
        a0, a1 = whi, max(whi, hi)
        reads = []
        if a1 > a0:
            reads.append(a.rows(a0, a1))
        whi = a1
        reads.append(s.rows(r0, r1) if s is not None else (r0, r1))
        passes.append(dict(r0=r0, r1=r1, a0=a0, a1=a1, wlo=wlo, whi=whi, reads=reads))
    return passes


def inplace_safe(passes: list[dict[str, Any]], in_row: int, out_row: int, identity: bool) -> bool:
    """Whether writing each pass's output rows over the block input (same base address) never overwrites
    an input row a later pass reads (the identity shortcut reads its own pass's rows element by element,
    exactly where their sums go, which is safe)."""
    written = 0  # bytes [0, written) of the input buffer hold outputs
    for p in passes:
        for lo, hi in p["reads"]:
            if hi > lo and lo * in_row < written:
                return False
        end = p["r1"] * out_row
        if identity and in_row != out_row:
            return False
        written = max(written, end)
    return True


def _designated(fields: dict[str, Any]) -> str:
    return "{" + ", ".join(f".{k} = {v}" for k, v in fields.items()) + "}"


def _conv_init(s: Step | None) -> str:
    if s is None:
        return "{.fn = 0}"
    g = _geom(s)
    dsp = int(s.kernel != "te_conv2d_s8")
    inner = _designated(dict(s.params))
    return _designated(dict(fn=f"(te_fused_fn){s.kernel}", dsp=dsp, in_h=g.in_h, out_h=g.out_h, k_h=g.k,
                            stride_h=g.s, pad_h=g.pad, in_row=g.in_row, out_row=g.out_row,
                            u="{." + ("d" if dsp else "p") + " = " + inner + "}"))


def _const_args(s: Step | None, tag: str, consts: dict[str, Any]) -> list[str]:
    """The 5 constant arguments of one conv, its arrays added to ``consts`` as ``<tag>_<name>``."""
    out = []
    if s is not None:
        for token in s.args:
            if token.startswith("const:"):
                name, _, ctype = token[6:].partition("@")
                if name in s.consts:
                    consts[f"{tag}_{name}"] = s.consts[name]
                out.append(f"const:{tag}_{name}" + (f"@{ctype}" if ctype else ""))
    return out + ["=0"] * (5 - len(out))


def fuse_block(program: Program, blk: Block) -> tuple[Step, list[Step]]:
    """The fused step for ``blk`` and the placeholders for the block's other steps (in step order)."""
    steps = program.steps
    a, b, add = steps[blk.a], steps[blk.b], steps[blk.add]
    s = steps[blk.s] if blk.s is not None else None
    ga, gb = _geom(a), _geom(b)
    gs = _geom(s) if s is not None else None
    band = _band([(a, gb.s), (b, 1)] + ([(s, 1)] if s is not None else []), gb.out_h)
    passes = schedule(ga, gb, gs, band)
    win_rows = max(p["whi"] - p["wlo"] for p in passes)
    conv_scratch = max(int(x.scratch) for x in (a, b, s) if x is not None)
    win_off = _align4(conv_scratch)
    bbuf_off = win_off + _align4(win_rows * ga.out_row)
    sbuf_off = bbuf_off + _align4(band * gb.out_row)
    scratch = sbuf_off + (_align4(band * gb.out_row) if s is not None else 0)
    in_row = ga.in_row
    safe = inplace_safe(passes, in_row, gb.out_row, s is None)
    consts: dict[str, Any] = {}
    args = (["params", "in0", "out0", "scratch"] + _const_args(a, "a", consts) + _const_args(b, "b", consts)
            + _const_args(s, "s", consts))
    params = dict(a=_conv_init(a), b=_conv_init(b), s=_conv_init(s), add=_designated(dict(add.params)),
                  band=band, sc_first=int(blk.sc_first), win_off=win_off, bbuf_off=bbuf_off, sbuf_off=sbuf_off)
    members = [x for x in (a, b, s, add) if x is not None]
    kernels = ", ".join(x.kernel for x in members)
    fused = Step(steps[blk.first].op, FUSED_KERNEL, list(a.inputs), list(add.outputs), params, consts,
                 sum(x.macs for x in members), "te_resblock_params", args, scratch=scratch, inplace=safe,
                 variant=a.variant,
                 why=(f"residual block fused by rows ({band} output row{'s' if band > 1 else ''} per pass; "
                      f"{kernels})" + ("; written over its input" if safe else "")))
    first = blk.first
    nops = [Step(steps[i].op, NOP_KERNEL, [], list(add.outputs), {}, {}, 0, None, [],
                 variant=steps[i].variant, why=f"computed by the fused block of step {first}")
            for i in range(first + 1, blk.last + 1)]
    return fused, nops


def fuse_residual_blocks(program: Program) -> Program:
    """``program`` with the residual blocks :func:`find_blocks` finds run as banded steps where that makes
    the memory plan's arena smaller (the fewest blocks that reach the smallest arena)."""
    blocks = find_blocks(program)
    if not blocks:
        return program
    # Every block fused, then each one put back layer by layer where that costs no memory: a block off
    # the arena's peak runs as before (no band overhead), and one small next to its scratch never pays.
    fused = {blk.first: fuse_block(program, blk) for blk in blocks}

    def build(keep: set[int]) -> Program:
        steps = list(program.steps)
        for blk in blocks:
            if blk.first in keep:
                step, nops = fused[blk.first]
                steps[blk.first:blk.last + 1] = [step, *nops]
        return dataclasses.replace(program, steps=steps)

    keep = set(fused)
    arena = min(plan_memory(build(keep)).arena_bytes, plan_memory(program).arena_bytes)
    for first in sorted(fused, reverse=True):
        if plan_memory(build(keep - {first})).arena_bytes <= arena:
            keep.discard(first)
    return build(keep) if keep else program


__all__ = ["Block", "find_blocks", "fuse_block", "fuse_residual_blocks", "inplace_safe", "schedule"]
