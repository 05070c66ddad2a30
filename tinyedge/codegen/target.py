"""Target specialisation: map a Program's portable kernel steps to the fastest kernels a board has.

For cores with the DSP extension (``tinyedge.boards.cores.has_dsp``: the board file's ``dsp: true`` on a
core that can have it, Cortex-M4/M7/M33/M55, ``__ARM_FEATURE_DSP``) CONV_2D,
DEPTHWISE_CONV_2D and FULLY_CONNECTED become the SMLAD/SXTB16 kernels of ``te_kernels_dsp.c``. The work
that does not depend on the input is done here, at generation time:

* weights are re-ordered for the kernels' access pattern (rows padded to whole words; depthwise taps
  widened to the int16 pairs SMLABB/SMLATT read);
* the input zero point is folded into the bias (``bias + input_offset * sum(w)``) wherever padding
  allows it, so the inner loops multiply raw int8 values;
* TFLM's requantization (``MultiplyByQuantizedMultiplier``, double rounding) plus the output zero point
  becomes four per-channel constants ``{bias, m2, r, s1}`` (see ``te_kernels_dsp.h``; CONV_2D and
  DEPTHWISE_CONV_2D store them in 12 bytes, :func:`compact_rows`), with a per-layer mode that drops the
  negative-rounding fix-up and the clamp when they cannot change a result;
* a channel those constants cannot express exactly (a zero or tiny multiplier, a right shift above 29, a
  left shift other than the layer's, a constant that would overflow int32) keeps TFLM's own multiplier
  and shift in an "exact" row that the kernels requantize with TFLM's generic arithmetic; the mode's bit
  2 (``TE_MODE_EXACT``) is set only for layers that have such a channel, so the others pay nothing.

Every rewrite is exact. A layer keeps its portable kernel only when the DSP kernels do not cover its
shape, or when its requantization cannot be expressed at all (a folded bias beyond int32: its step's
``why`` says so, see :func:`requant_refusal`). The differential tests run both paths against the
tflite_micro interpreter (the DSP one in QEMU).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np

from ..boards import Board
from ..boards.cores import has_dsp
from ..model.ir import Program, Step
from .fuse import fuse_residual_blocks

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
#: An exact ``te_rq`` row's s1 is ``(out_zp - EXACT_ZP_OFFSET) * 32 + right shift``, always <= 0
#: (TE_RQ_EXACT_ZP and TE_RQ_EXACT_RIGHT in te_kernels_dsp_intrin.h).
EXACT_ZP_OFFSET = 256
#: te_dwconv3x3s2's buffer: the output rows of a band are chosen so their int16 input rows fit in this.
DW3S2_BAND_BYTES = 1024
#: The kernel families this pass knows how to specialise, by portable kernel name.
DSP_KERNELS = ("te_conv2d_s8", "te_dwconv2d_s8", "te_fc_s8")
#: The int16x8 kernels with DSP variants (te_kernels_dsp_s16.c), by portable kernel name.
S16_KERNELS = ("te_conv2d_s16", "te_dwconv2d_s16", "te_fc_s16")


def candidates(step: Step, board: Board | None) -> dict[str, Step]:
    """Every exact kernel the board can run ``step`` with, by variant name, the heuristic's choice first.

    ``"portable"`` (the step itself) is always there, last unless it is the only one. The autotuner
    (``tinyedge.tune``) measures them all; :func:`specialize` without ``choices`` takes the first.
    """
    found: dict[str, Step] = {}
    if board is not None and has_dsp(board):
        family = {"te_conv2d_s8": _conv_candidates, "te_dwconv2d_s8": _dw_candidates, "te_fc_s8": _fc_candidates,
                  **dict.fromkeys(S16_KERNELS, _s16_candidates)}
        if step.kernel in family:
            found.update(family[step.kernel](step))
            refused = "" if found else requant_refusal(step)
            if refused:
                step = dataclasses.replace(step, why=refused)
    found["portable"] = step
    return found


def _labelled(step: Step | None, name: str, why: str) -> dict[str, Step]:
    return {} if step is None else {name: dataclasses.replace(step, variant=name, why=why)}


def _unmarked(found: dict[str, Step]) -> dict[str, Step]:
    """``found`` without the heuristic's mark ("heuristic: ") on any variant's ``why``: another is its choice."""
    return {k: dataclasses.replace(v, why=v.why.replace("heuristic: ", "")) for k, v in found.items()}


def _lead_first(lead: dict[str, Step], rest: dict[str, Step]) -> dict[str, Step]:
    """``lead``'s variants before ``rest``'s (``rest`` as it is when ``lead`` is empty); after a lead, ``rest``
    no longer holds the heuristic's choice."""
    return {**lead, **_unmarked(rest)} if lead else rest


def _conv_candidates(step: Step) -> dict[str, Step]:
    """CONV_2D's DSP variants, the heuristic's choice first: a 1x1 conv on a 1x1 image runs the
    FULLY_CONNECTED kernels first (:func:`_conv1px_candidates`), then the pixel-blocked ones."""
    return _lead_first(_conv1px_candidates(step), _conv_px_candidates(step))


def _conv_px_candidates(step: Step) -> dict[str, Step]:
    """The pixel-blocked kernels (``dsp-px4``, ``dsp-px5``, ``dsp-px6``: 4, 5 or 6 pixels a pass, assembly
    loops) by estimated instructions, then ``dsp`` (im2col GEMM)."""
    base = _dsp_conv(step)
    if base is None:
        return {}
    p = base.params
    blocked = sorted((_px_estimate(p, n), n) for n, _, _ in _PX_COST)
    found: dict[str, Step] = {}
    for total, n in blocked:
        found.update(_labelled(_dsp_conv_px(base, n), f"dsp-px{n}",
                               f"heuristic: {n} pixels a pass, about {total:,} instructions"))
    found.update(_labelled(base, "dsp", "im2col GEMM, 4 pixels a pass in C"))
    return found


#: (pixels a pass, instructions per k-step, fixed instructions per output channel and pass) of
#: te_conv2d_s8_dsp_pxN: the heuristic's estimate (the k loop's count; the rest fitted to KWS's pointwise
#: layers in QEMU: 555,000 / 533,640 / 514,760 instructions for 4 / 5 / 6 pixels a pass).
_PX_COST = ((4, 13.5, 55), (5, 17.0, 61), (6, 19.5, 71))
def _px_estimate(p: dict[str, Any], n: int) -> int:
    """The heuristic's instructions for te_conv2d_s8_dsp_px{n} on a CONV_2D with params ``p``."""
    cost, fixed = next((c, f) for m, c, f in _PX_COST if m == n)
    npix, ksteps = p["out_h"] * p["out_w"], (p["kpad"] + 7) // 8 * 2
    return int(-(-npix // n) * (ksteps * cost + fixed) * p["out_c"] * p["batches"])


#: Output channels a pass of te_conv2d_s8_dsp_pxN's channel loop (TE_PX_CHUNK in te_kernels_dsp.c).
_PX_CHUNK = 16


def _dsp_conv_px(base: Step, n: int) -> Step:
    """``te_conv2d_s8_dsp_px{n}``: the ``dsp`` step's constants with filter rows padded to 8 bytes (the k
    loop runs two k-steps a pass), ``n`` pixels a pass."""
    p = base.params
    filt = base.consts["filter"]
    kpad = (filt.shape[1] + 7) // 8 * 8
    wide = np.zeros((filt.shape[0], kpad), dtype=np.int8)
    wide[:, :filt.shape[1]] = filt
    return dataclasses.replace(base, kernel=f"te_conv2d_s8_dsp_px{n}_m{p['mode']}", params={**p, "kpad": kpad},
                               consts={**base.consts, "filter": wide},
                               scratch=2 * n * kpad + 4 * n * _PX_CHUNK + (0 if p["pointwise"] else kpad))


#: The plane kernels (te_dwconv3x3s2, te_dwconv3x3v2: per-channel set-up, then a row's sums and their
#: requantization) against the generic one (4 channels a word), measured on VWW (MobileNetV1 0.25, te-profile):
#: they win from 6x6 outputs a channel (stride 2, 6x6x64: 137,800 instructions against 148,360; stride 1,
#: 6x6x128: 181,920 against 275,360) and lose on 3x3 planes (stride 2, 3x3x128: 118,400 against 69,160;
#: stride 1, 3x3x256: 138,720 against 120,000). Below this the heuristic puts the generic kernel first for
#: stride 2; for stride 1 it keeps the 3x3 kernel, whose int8 weights take 9 bytes a channel less flash.
DW_PLANE_MIN_OUTPUTS = 16


def _dw_candidates(step: Step) -> dict[str, Step]:
    """DEPTHWISE_CONV_2D's DSP variants, the heuristic's choice first: a 1-D signal's kernel
    (:func:`_dw1d_candidate`) where it applies (measured on SWW with te-profile, it wins on every one of its
    layers, from 28 outputs a channel, 3 taps: 57,480 instructions on te_dwconv2d against 28,320, to one, 15
    taps, 128 channels: 18,600 against 12,360), then the plane and generic kernels."""
    return _lead_first(_dw1d_candidate(step), _dw_plane_candidates(step))


def _dw_plane_candidates(step: Step) -> dict[str, Step]:
    """The 3x3 stride-2 kernel, then ``"dsp"`` (the 3x3 stride-1 kernel where it applies, else the generic
    one), then the generic one on its own; on stride-2 planes of fewer than DW_PLANE_MIN_OUTPUTS outputs the
    generic kernel first."""
    best, s2, generic = _dsp_dwconv(step), _dsp_dw3x3s2(step), _dsp_dwgeneric(step)
    small = generic is not None and step.params["out_h"] * step.params["out_w"] < DW_PLANE_MIN_OUTPUTS
    big = s2 is not None and not small
    found = _labelled(s2 if big else None, "dsp-dw3x3s2", "heuristic: 3x3 stride 2, channel planes widened once, "
                                                          "a row's sums in an assembly loop")
    found.update(_labelled(best, "dsp", "heuristic: the board has the DSP extension" + (
        f" (a plane of fewer than {DW_PLANE_MIN_OUTPUTS} outputs: no per-channel set-up)" if small and best is not None
        and best.kernel.startswith("te_dwconv2d_") else "")))
    if s2 is not None and not big:
        found.update(_labelled(s2, "dsp-dw3x3s2", "3x3 stride 2, channel planes widened once (small planes: "
                                                  "per-channel overhead)"))
    if best is not None and best.kernel.startswith("te_dwconv3x3_"):
        v2 = _dsp_dw3x3v2(best)
        # Measured (te-profile): never slower than te_dwconv3x3; KWS 25x5x64 322,800 -> 225,600 instructions
        # (walked down its columns), VWW's square planes 0.1-4% fewer (48x48x8 655,040 -> 636,240), same arena.
        why = ("walked down its columns (a plane taller than wide)" if v2.params["kpad"] & 1 else
               "row sums in an assembly loop, planes widened " + (
                   "four channels a word load" if v2.params["kpad"] & 2 else "two pixels a word"))
        plane = _labelled(v2, "dsp-dw3x3v2", f"heuristic: 3x3 stride 1, {why}")
        if v2.params["in_c"] % 4 == 0:  # the other widening, for the tuner (whose arena check weighs its RAM)
            alt = _dsp_dw3x3v2(best, four=not v2.params["kpad"] & 2)
            plane.update(_labelled(alt, "dsp-dw3x3v2x4", "3x3 stride 1, four channels widened at once: "
                                                         f"{alt.scratch - v2.scratch:,} B more scratch")
                         if alt.params["kpad"] & 2 else
                         _labelled(alt, "dsp-dw3x3v2x1", "3x3 stride 1, one channel widened at a time: "
                                                         f"{v2.scratch - alt.scratch:,} B less scratch"))
        found = {**plane, **found}
        if small:
            # Stride 1 keeps the 3x3 kernel: the generic one's int16 weights cost 9 more bytes a channel
            # (VWW's 3x3x256: 2,304 B) for about 73 fewer instructions a channel (138,720 -> 120,000).
            found.update(_labelled(generic, "dsp-generic", f"a plane of fewer than {DW_PLANE_MIN_OUTPUTS} outputs, "
                                                           "4 channels a word (no per-channel set-up), int16 weights"))
        else:
            found.update(_labelled(generic, "dsp-generic", "any kernel size, 4 channels a word"))
    return found


def _fc_candidates(step: Step) -> dict[str, Step]:
    """FULLY_CONNECTED's DSP variants, the heuristic's choice first: four rows a pass (``te_fc4``, 3
    instructions per 4 MACs) where its weights allow it, else two (``te_fc``)."""
    two = _dsp_fc(step)
    four = _dsp_fc4(two) if two is not None else None
    wide = None if four is None else dataclasses.replace(
        four, kernel=four.kernel.replace("te_fc4_s8", "te_fc4x_s8"), args=[*four.args, "scratch"],
        scratch=2 * four.params["kpad"])
    # The widened copy of the inputs costs 2 bytes an input of RAM: the heuristic takes it for short inputs only.
    small = wide is not None and wide.scratch <= 512
    fours = {**_labelled(wide, "dsp-fc4x", f"heuristic: four rows a pass on the inputs widened once into "
                                           f"{wide.scratch if wide else 0} bytes of scratch")} if small else {}
    fours.update(_labelled(four, "dsp-fc4", "heuristic: four rows a pass, row pairs sharing weight words"))
    if wide is not None and not small:
        fours.update(_labelled(wide, "dsp-fc4x", f"inputs widened once into scratch: fewer instructions, "
                                                 f"{wide.scratch} more bytes of RAM"))
    plain = _labelled(two, "dsp", "heuristic: the board has the DSP extension")
    if two is not None and two.params["in_depth"] * two.params["out_depth"] < 1024:
        # a small layer (a classifier head): te_fc4's extra ~1.6 KB of code saves a few hundred instructions
        return {**_labelled(two, "dsp", "heuristic: a small layer, where te_fc4's code costs more flash than "
                                        "its instructions save"), **fours}
    return {**fours, **plain}


def specialize(program: Program, board: Board | None = None, choices: dict[int, str] | None = None) -> Program:
    """The Program with every step the board has a faster exact kernel for replaced by it.

    ``board`` is a :class:`tinyedge.boards.Board` (or None: the portable program, unchanged).
    ``choices`` maps a step's index to the variant name to use (from :func:`model_candidates`, e.g. as
    measured by ``tinyedge.tune``); a step without one, or whose named variant does not exist, gets the first.
    Then steps on the same kernel share one entry point where only cheap mode bits differ
    (:func:`share_modes`).
    """
    if board is None:
        return program
    if not has_dsp(board):
        return fuse_residual_blocks(program)  # banded residual blocks: less RAM (codegen.fuse)
    steps = []
    for i, (s, found) in enumerate(zip(program.steps, model_candidates(program, board))):
        want = (choices or {}).get(i)
        chosen = found[want] if want in found else next(iter(found.values()))
        if chosen.variant == "portable" and not chosen.why and len(found) == 1 and s.kernel in DSP_KERNELS:
            chosen = dataclasses.replace(chosen, why="refused: no DSP kernel is exact for this layer "
                                                     "(its shape, or requantization constants they cannot take)")
        steps.append(chosen)
    return fuse_residual_blocks(dataclasses.replace(program, steps=share_modes(steps)))


# ------------------------------------------------------------------ flash: kernels shared across layers
#
# Every kernel variant and mode is its own entry point, and the linker keeps the ones a model calls: a
# layer that picks a variant no other layer uses pays its whole body in flash (measured in the SWW
# firmware: te_conv2d_s8_dsp_pxN 1.4-1.6 KB each, the four-row FULLY_CONNECTED code with its helpers
# 2.0 KB, an entry point of te_fc_s8 0.5 KB). The heuristic weighs that against the instructions saved.

#: The heuristic's exchange rate of flash for speed: it links more kernel code only where the instructions
#: saved (its estimate) are at least this many per byte of that code.
FLASH_INSTR_PER_BYTE = 16
#: A te_conv2d_s8_dsp_pxN entry point (1.4-1.6 KB in the SWW and VWW firmwares).
PX_SIZE_BYTES = 1536
#: Four-row FULLY_CONNECTED (te_fc4 / te_fc4x with their helpers: 2,038 B in the SWW firmware) saves about one
#: instruction a MAC (SWW's last 1x1 conv, 64 x 64 on a 1x1 image, te-profile: 4,920 instructions on te_fc4x
#: against 8,960 on te_fc), so it is the heuristic's choice where the model's layers on it have at least this
#: many MACs together; below, the two-row te_fc.
FC4_MIN_MACS = 2048 * FLASH_INSTR_PER_BYTE

_FC4_VARIANTS = ("dsp-fc4x", "dsp-fc4", "fc-fc4x", "fc-fc4")
#: Entry points that run another kernel's body (te_fc4_s8_dsp_mN calls te_fc4x_s8_dsp_mN without scratch):
#: their modes are shared with it.
_SAME_BODY = {"te_fc4_s8_dsp": "te_fc4x_s8_dsp"}
_MODE_NAME = re.compile(r"^(te_[a-z0-9]+_s8_dsp\w*?)_m([0-7])$")


def model_candidates(program: Program, board: Board | None) -> list[dict[str, Step]]:
    """Every step's :func:`candidates`, with the heuristic's first choice revised for the whole model so
    that layers share kernel code where the instructions saved would not pay for more flash:

    * pixel-block sizes for the pixel-blocked CONV_2D layers (``dsp-pxN``): first the N with the fewest
      estimated instructions over all of them, then another only where it saves at least
      ``PX_SIZE_BYTES * FLASH_INSTR_PER_BYTE`` estimated instructions (the sizes differ only in a layer's
      idle pixels of the last pass), each layer on the cheapest size linked;
    * the two-row FULLY_CONNECTED kernel (``dsp`` / ``fc``) instead of the four-row ones when those would
      run fewer than :data:`FC4_MIN_MACS` MACs in the whole model.

    The autotuner measures every candidate regardless and may still pick another per layer (it optimises
    instructions; the code it links is its trade)."""
    found = [candidates(s, board) for s in program.steps]
    firsts = [next(iter(f)) for f in found]
    px = [i for i, name in enumerate(firsts) if name.startswith("dsp-px")]
    if len({firsts[i] for i in px}) > 1:
        sizes = [n for n, _, _ in _PX_COST]
        est = {i: {n: _px_estimate(found[i][f"dsp-px{n}"].params, n) for n in sizes} for i in px}
        linked = [min(sizes, key=lambda n: (sum(est[i][n] for i in px), n))]
        need = PX_SIZE_BYTES * FLASH_INSTR_PER_BYTE
        while len(linked) < len(sizes):
            now = {i: min(est[i][n] for n in linked) for i in px}
            gain = {n: sum(max(0, now[i] - est[i][n]) for i in px) for n in sizes if n not in linked}
            more = max(gain, key=lambda n: (gain[n], -n))
            if gain[more] < need:
                break
            linked.append(more)
        sizes_linked = ", ".join(map(str, sorted(linked)))
        for i in px:
            n = min(linked, key=lambda m: (est[i][m], m))
            found[i] = _promote(found[i], f"dsp-px{n}", f"heuristic: {n} pixels a pass, about {est[i][n]:,} "
                                                        f"instructions (pixel-block sizes linked: {sizes_linked}; "
                                                        f"another would save fewer than {need:,} instructions, "
                                                        f"{FLASH_INSTR_PER_BYTE} a byte of its code)")
    fc4 = [i for i, name in enumerate(firsts) if name in _FC4_VARIANTS]
    macs = sum(_fc_macs(found[i][firsts[i]]) for i in fc4)
    if macs < FC4_MIN_MACS:
        for i in fc4:
            plain = "fc" if firsts[i].startswith("fc-") else "dsp"
            if plain in found[i]:
                found[i] = _promote(found[i], plain, f"heuristic: two rows a pass: the model's four-row "
                                                     f"FULLY_CONNECTED candidates have {macs:,} MACs in all, "
                                                     f"fewer than {FC4_MIN_MACS:,}, too few to pay for te_fc4's "
                                                     f"2 KB of code ({FLASH_INSTR_PER_BYTE} instructions a "
                                                     f"byte; it saves about one a MAC)")
    return found


def _promote(found: dict[str, Step], name: str, why: str) -> dict[str, Step]:
    """``found`` with ``name`` first, saying ``why``; the others no longer carry the heuristic's mark."""
    rest = _unmarked(found)
    del rest[name]
    return {name: dataclasses.replace(found[name], why=why), **rest}


def _fc_macs(s: Step) -> int:
    p = s.params
    return int(p["batches"]) * int(p["in_depth"]) * int(p["out_depth"])


def share_modes(steps: list[Step]) -> list[Step]:
    """Steps on the same int8 DSP kernel whose modes differ only in ``TE_MODE_CORR`` / ``TE_MODE_CLAMP``
    run one entry point with the union of those bits. Either bit only adds work that cannot change a result
    (the rounding fix-up where the clamp swallows it, a clamp to the int8 range): a few instructions an
    output, against an entry point's whole body in flash. ``TE_MODE_EXACT`` is never added (it puts a test
    on every output row)."""
    # (entry point's name without the mode, its mode, the body it runs with the EXACT bit), or None
    parsed = [(m.group(1), int(m.group(2)), (_SAME_BODY.get(m.group(1), m.group(1)), int(m.group(2)) & 4))
              if (m := _MODE_NAME.match(s.kernel)) and "mode" in s.params else None for s in steps]
    union: dict[tuple[str, int], int] = {}
    for entry in parsed:
        if entry:
            union[entry[2]] = union.get(entry[2], 0) | entry[1]
    out = []
    for s, entry in zip(steps, parsed):
        if entry and union[entry[2]] != entry[1]:
            mode = union[entry[2]]
            s = dataclasses.replace(s, kernel=f"{entry[0]}_m{mode}", params={**s.params, "mode": mode})
        out.append(s)
    return out


def variant(program: Program) -> str:
    """``"dsp"`` when any step runs a DSP kernel, else ``"portable"``."""
    return "dsp" if any("_dsp" in s.kernel for s in program.steps) else "portable"


def _x_max(in_offset: int) -> int:
    """Largest |x + input_offset| over int8 x."""
    return max(127 + in_offset, 128 - in_offset)


def requant_constants(bias: np.ndarray, mult: np.ndarray, shift: np.ndarray, acc_bound: np.ndarray, out_zp: int,
                      act_min: int, act_max: int, *, lsh_in_acc: bool = False,
                      max_lsh: int = 31) -> tuple[np.ndarray, int, int] | None:
    """Per-channel ``te_rq`` rows, the layer's left shift and mode; None when a channel cannot be exact.

    ``bias`` is what the kernel starts each accumulator with (folded or not) and ``acc_bound`` bounds
    |accumulator| (bias included) per channel. Ordinary channels get the fast row ``{bias, m2, r, s1}``:
    with ``t = SRDHM(acc << lsh, m)`` computed as ``SMMLAR(acc << lsh, 2m - 2^32, acc << lsh)`` (exact for m
    in [2^30, 2^31)), TFLM's ``RoundingDivideByPOT(t, s) + zp`` equals
    ``(2^s + (zp << (s+1)) + 2t - (t < 0)) >> (s+1)`` while none of it overflows int32. Every other channel
    (a zero or tiny multiplier, a right shift above 29, a left shift other than the layer's, a constant that
    would overflow) gets an exact row ``{bias, m2, 2^left, (zp - 256) * 32 + right}`` (0 for 2^left when
    m = 0; s1 <= 0 marks the row) that the kernels requantize with TFLM's generic arithmetic on the raw
    accumulator; only then does the mode get bit 2 (``TE_MODE_EXACT``). The layer's left shift is the one
    most fast channels share (<= ``max_lsh``).

    ``lsh_in_acc``: the kernel hands the exact path ``acc << lsh`` (the 3x3 depthwise kernel folds the left
    shift into its weights), so exact rows hold ``2^(shift - lsh)``; when an exact channel has a nonzero
    multiplier and a smaller shift, that cannot be undone and the layer's left shift becomes 0.

    None (the layer stays portable, :func:`requant_refusal` says why) only when a bias does not fit int32,
    a shift is outside [-31, 31] or a multiplier outside {0} and [2^30, 2^31) (TFLM's QuantizeMultiplier
    gives no other for positive scales).
    """
    n = len(bias)
    bias = np.asarray(bias, dtype=np.int64)
    mult = np.broadcast_to(np.asarray(mult, dtype=np.int64), (n,))
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), (n,))
    if (np.any(bias > INT32_MAX) or np.any(bias < INT32_MIN) or np.any(np.abs(shift) > 31)
            or np.any((mult != 0) & ((mult < 2**30) | (mult >= 2**31)))):
        return None
    lsh = np.maximum(shift, 0)
    s = np.maximum(-shift, 0)
    r = (np.int64(1) << s) + (np.int64(out_zp) << (s + 1))
    bound = np.asarray(acc_bound, dtype=np.int64)
    usable = (mult >= 2**30) & (mult < 2**31) & (s <= 29) & (lsh <= max_lsh)

    def fast_at(left: int) -> np.ndarray:
        shifted = np.minimum(bound, INT32_MAX >> left) << left
        fits = bound <= INT32_MAX >> left
        ok: np.ndarray = usable & (lsh == left) & fits & (2 * (shifted + 1) + np.abs(r) + 1 <= INT32_MAX)
        return ok

    options = [(fast_at(k), k) for k in sorted(set(lsh[usable].tolist()))] or [(np.zeros(n, dtype=bool), 0)]
    fast, left = max(options, key=lambda o: (int(o[0].sum()), -o[1]))
    if lsh_in_acc and left and np.any(~fast & (mult != 0) & (shift < left)):
        fast, left = fast_at(0), 0
    exact_left = np.maximum(shift - (left if lsh_in_acc else 0), 0)
    pow2_left = np.where(mult == 0, 0, (np.int64(1) << exact_left) - ((exact_left == 31) << 32))  # int32 bits
    m2 = np.where(mult == 0, 0, mult * 2 - 2**32)
    rows = np.where(fast[:, None], np.stack([bias, m2, r, s + 1], axis=1),
                    np.stack([bias, m2, pow2_left, (out_zp - EXACT_ZP_OFFSET) * 32 + s], axis=1))
    corr = act_min < out_zp  # a negative t can only matter when the clamp does not swallow it
    clamp = act_min > -128 or act_max < 127
    return rows.astype(np.int32), left, int(corr) | (int(clamp) << 1) | (int(not fast.all()) << 2)


def compact_rows(rows: np.ndarray) -> np.ndarray:
    """:func:`requant_constants`' rows ``{bias, m2, r, s1}`` as CONV_2D and DEPTHWISE_CONV_2D keep them: ``te_rq``
    ``{bias, m2, int16 k, int16 s1}`` (12 bytes a channel, 4 fewer) as int32 words ``bias, m2, k | s1 << 16``.
    A fast row's r is ``k << (s1 - 1)`` with k = 2 zp + 1; an exact row keeps its left shift as k (2^left, or 0
    for a zero multiplier, which te_rq_pow2_left rebuilds from m2 = 0)."""
    rows = np.asarray(rows, dtype=np.int64)
    bias, m2, r, s1 = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    fast = s1 > 0
    k = np.where(fast, r >> np.maximum(s1 - 1, 0), 0)
    pow2 = r & 0xFFFFFFFF  # an exact row's 2^left as int32 bits (2^31 is negative)
    left = np.where(pow2 > 0, np.log2(np.maximum(pow2, 1)).astype(np.int64), 0)
    k = np.where(fast, k, left)
    if (np.any(fast & ((k << np.maximum(s1 - 1, 0)) != r)) or np.any(~fast & (m2 != 0) & ((1 << left) != pow2))
            or np.any(np.abs(k) > 32767) or np.any(s1 < -32768)):
        raise AssertionError("a requantization row has no compact form")  # requant_constants never gives one
    word = (k & 0xFFFF) | ((s1 & 0xFFFF) << 16)
    return np.stack([bias, m2, word], axis=1).astype(np.uint32).view(np.int32)


def requant_refusal(step: Step) -> str:
    """Why the DSP kernels cannot requantize ``step`` (a portable CONV_2D, DEPTHWISE_CONV_2D or
    FULLY_CONNECTED step) exactly, as a sentence for its ``why``; "" when nothing in its requantization stops
    them (:func:`requant_constants` then has a row for every channel)."""
    if step.kernel not in DSP_KERNELS or "shift" not in step.consts:
        return ""
    shift = np.asarray(step.consts["shift"], dtype=np.int64).reshape(-1)
    for c, k in enumerate(shift.tolist()):
        if abs(k) > 31:
            return (f"refused: channel {c}'s requantization shift is {k}, beyond the 31 bits TFLM's arithmetic can "
                    "shift an int32 by, so the layer keeps the portable kernel")
    mult = np.asarray(step.consts["mult"], dtype=np.int64).reshape(-1)
    for c, m in enumerate(mult.tolist()):
        if m != 0 and not 2**30 <= m < 2**31:
            return (f"refused: channel {c}'s requantization multiplier {m} is outside [2^30, 2^31), which "
                    "TFLM's QuantizeMultiplier never gives for a positive scale")
    if step.kernel == "te_dwconv2d_s8":
        return ""  # its DSP kernels add the input offset to every input: the bias is not folded
    w = step.consts["filter"].astype(np.int64)
    sums = w.reshape(w.shape[0], -1).sum(axis=1)
    raw = _bias(step, len(sums))
    in_off = int(step.params["in_offset"])
    folded = raw + in_off * sums
    bad = np.flatnonzero((folded > INT32_MAX) | (folded < INT32_MIN))
    if len(bad):
        c = int(bad[0])
        return (f"refused: channel {c}'s bias with the input zero point folded in ({int(raw[c])} + {in_off} * "
                f"{int(sums[c])} = {int(folded[c])}) does not fit int32, and the DSP kernels start every "
                "accumulator from it")
    return ""


def _bias(step: Step, n: int) -> np.ndarray:
    b = step.consts.get("bias")
    return np.zeros(n, dtype=np.int64) if b is None else b.astype(np.int64)


def _conv_params(p: dict[str, Any], **extra: Any) -> dict[str, Any]:
    keys = ("batches", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h", "stride_w",
            "dil_h", "dil_w", "pad_h", "pad_w")
    out = {k: p[k] for k in keys}
    out.update(extra)
    return out


def _dsp_conv(s: Step) -> Step | None:
    p = s.params
    w = s.consts["filter"].astype(np.int64)  # (oc, kh, kw, ic)
    oc, ic = p["out_c"], p["in_c"]
    patch = p["k_h"] * p["k_w"] * ic
    pointwise = (p["k_h"] == p["k_w"] == 1 and p["stride_h"] == p["stride_w"] == 1 and p["pad_h"] == p["pad_w"] == 0
                 and p["in_h"] == p["out_h"] and p["in_w"] == p["out_w"] and ic % 4 == 0)
    kpad = (patch + 3) // 4 * 4
    if kpad > 8000:
        return None
    flat = w.reshape(oc, patch)
    filt = np.zeros((oc, kpad), dtype=np.int8)
    filt[:, :patch] = flat
    in_off = int(p["in_offset"])
    bias = _bias(s, oc) + in_off * flat.sum(axis=1)  # padding is filled with the zero point: exact
    bound = np.abs(_bias(s, oc)) + np.abs(flat).sum(axis=1) * _x_max(in_off)
    rq = requant_constants(bias, s.consts["mult"], s.consts["shift"], bound, p["out_offset"], p["act_min"],
                           p["act_max"])
    if rq is None:
        return None
    rows, lsh, mode = rq
    params = _conv_params(p, kpad=kpad, pointwise=int(pointwise), lsh=lsh, mode=mode, in_zp=-in_off, in_off=in_off,
                          act_min=p["act_min"], act_max=p["act_max"])
    return dataclasses.replace(
        s, kernel=f"te_conv2d_s8_dsp_m{mode}", struct="te_dsp_conv_params", params=params,
        consts={"filter": filt, "rq": compact_rows(rows)},
        args=["params", "in0", "const:filter", "const:rq@te_rq", "out0", "scratch"],
        scratch=8 * kpad + (0 if pointwise else kpad), inplace=pointwise and oc <= ic)


def _dw_requant(s: Step, flat: np.ndarray, lsh_in_acc: bool = False,
                max_lsh: int = 31) -> tuple[np.ndarray, int, int, dict[str, Any]] | None:
    """Requantization rows, left shift, mode and kernel params of a depthwise step with taps x channels
    weights ``flat``; None when the constants cannot be exact (``requant_constants``, whose keywords
    ``lsh_in_acc`` and ``max_lsh`` are passed on)."""
    p = s.params
    in_off = int(p["in_offset"])
    bias = _bias(s, p["in_c"])
    bound = np.abs(bias) + np.abs(flat).sum(axis=0) * _x_max(in_off)
    rq = requant_constants(bias, s.consts["mult"], s.consts["shift"], bound, p["out_offset"], p["act_min"],
                           p["act_max"], lsh_in_acc=lsh_in_acc, max_lsh=max_lsh)
    if rq is None:
        return None
    rows, lsh, mode = rq
    params = _conv_params(p, kpad=0, pointwise=0, lsh=lsh, mode=mode, in_zp=-in_off, in_off=in_off,
                          act_min=p["act_min"], act_max=p["act_max"])
    return rows, lsh, mode, params


def _dsp_dw3x3(s: Step) -> Step | None:
    """3x3, stride 1, no dilation: ``te_dwconv3x3`` (channel planes widened once, SMLAD on column pairs)."""
    p = s.params
    c = p["in_c"]
    if (p["depth_mult"] != 1 or p["out_c"] != c or p["k_h"] != 3 or p["k_w"] != 3 or p["stride_h"] != 1
            or p["stride_w"] != 1 or p["dil_h"] != 1 or p["dil_w"] != 1):
        return None
    if not (0 <= p["pad_h"] and p["in_h"] + p["pad_h"] <= p["out_h"] + 2 and 0 <= p["pad_w"]
            and p["in_w"] + p["pad_w"] <= p["out_w"] + 2):
        return None
    scratch = (p["out_h"] + 2) * ((p["out_w"] + 4) & ~1) * 2
    if scratch > max(4096, p["in_h"] * p["in_w"] * c // 2):
        return None  # a large plane: the row-buffer kernel needs less memory
    w = s.consts["filter"].astype(np.int64)  # (1, 3, 3, c)
    flat = w.reshape(9, c)
    rq = _dw_requant(s, flat, lsh_in_acc=True, max_lsh=7)  # the kernel folds the left shift into int16 weights
    if rq is None:
        return None
    rows, lsh, mode, params = rq
    if lsh > 7:
        return None
    return dataclasses.replace(
        s, kernel=f"te_dwconv3x3_s8_dsp_m{mode}", struct="te_dsp_conv_params", params=params,
        consts={"filter": flat.astype(np.int8).reshape(-1), "rq": compact_rows(rows)},
        args=["params", "in0", "const:filter", "const:rq@te_rq", "out0", "scratch"],
        scratch=scratch, inplace=p["in_h"] == p["out_h"] and p["in_w"] == p["out_w"])


#: te_dwconv3x3v2 widens four channels at once (kpad bit 1) when their three extra int16 planes take at most
#: this many bytes of scratch. Measured on VWW (te-profile): 6x6x128 181,920 -> 157,760 instructions, 12x12x64
#: 286,200 -> 261,560, 24x24x32 511,560 -> 480,440 (4,368 B more), 48x48x8 545,000 -> 525,000 (15,600 B more:
#: left to the tuner, "dsp-dw3x3v2x4"). Transposed walks (KWS's tall planes, where it would raise the arena
#: peak) do not by default.
DW3V2_FOUR_BYTES = 4608


def _dsp_dw3x3v2(s: Step, four: bool | None = None) -> Step:
    """``te_dwconv3x3v2`` from the ``te_dwconv3x3`` step ``s`` (same constants): a plane taller than wide is
    walked transposed (``kpad`` bit 0: long rows, fewer row set-ups) unless its buffer would be larger; a small
    plane row by row with ``in_c % 4 == 0`` widens four channels at once (bit 1, :data:`DW3V2_FOUR_BYTES`); the
    scratch is the buffer (four of them) plus one buffer row's int32 sums. ``four`` (with ``in_c % 4 == 0``)
    overrides the choice of bit 1."""
    p = s.params
    oh, ow = p["out_h"], p["out_w"]
    tall = oh > ow and (ow + 2) * ((oh + 4) & ~1) * 2 <= s.scratch
    n = oh if tall else ow
    plane = (ow + 2) * ((oh + 4) & ~1) * 2 if tall else s.scratch
    four = p["in_c"] % 4 == 0 and (not tall and 3 * plane <= DW3V2_FOUR_BYTES if four is None else four)
    params = {**p, "kpad": (1 if tall else 0) | (2 if four else 0)}
    scratch = (4 if four else 1) * plane + 8 * ((n + 1) // 2)
    return dataclasses.replace(s, kernel=s.kernel.replace("te_dwconv3x3_", "te_dwconv3x3v2_"), params=params,
                               scratch=scratch)


def _dsp_dw3x3s2(s: Step) -> Step | None:
    """3x3, stride 2, no dilation: ``te_dwconv3x3s2`` (channel planes widened once, SMLAD + SMLABB a row)."""
    p = s.params
    c = p["in_c"]
    if (p["depth_mult"] != 1 or p["out_c"] != c or p["k_h"] != 3 or p["k_w"] != 3 or p["stride_h"] != 2
            or p["stride_w"] != 2 or p["dil_h"] != 1 or p["dil_w"] != 1):
        return None
    rows, cols = 2 * p["out_h"] + 1, 2 * p["out_w"] + 2
    if not (0 <= p["pad_h"] < rows and 0 <= p["pad_w"] < cols):
        return None
    # Output rows per band: as many as DW3S2_BAND_BYTES of int16 rows hold next to one row's int32 sums (at
    # least one), so a large plane needs a small buffer; each band costs one re-widened input row.
    sums = 8 * ((p["out_w"] + 1) // 2)
    band = max(1, min(p["out_h"], ((DW3S2_BAND_BYTES - sums) // (cols * 2) - 1) // 2))
    scratch = (2 * band + 1) * cols * 2 + sums
    flat = s.consts["filter"].astype(np.int64).reshape(9, c)
    rq = _dw_requant(s, flat, lsh_in_acc=True, max_lsh=7)  # the kernel folds the left shift into int16 weights
    if rq is None:
        return None
    rq_rows, lsh, mode, params = rq
    if lsh > 7:
        return None
    params["kpad"] = band
    return dataclasses.replace(
        s, kernel=f"te_dwconv3x3s2_s8_dsp_m{mode}", struct="te_dsp_conv_params", params=params,
        consts={"filter": flat.astype(np.int8).reshape(-1), "rq": compact_rows(rq_rows)},
        args=["params", "in0", "const:filter", "const:rq@te_rq", "out0", "scratch"], scratch=scratch, inplace=False)


def _dsp_dwconv(s: Step) -> Step | None:
    """The 3x3 stride-1 kernel where it applies, else the generic one."""
    return _dsp_dw3x3(s) or _dsp_dwgeneric(s)


def _dsp_dwgeneric(s: Step) -> Step | None:
    """Any kernel size, stride and dilation, channels a multiple of 4: ``te_dwconv2d`` (int16 weight pairs)."""
    p = s.params
    c = p["in_c"]
    if p["depth_mult"] != 1 or c % 4 or p["out_c"] != c:
        return None
    w = s.consts["filter"].astype(np.int64)  # (1, kh, kw, c)
    taps = p["k_h"] * p["k_w"]
    flat = w.reshape(taps, c)
    # int16 pairs per tap and group of 4 channels: (c0, c2), (c1, c3) as SXTAB16 widens the input word
    filt = flat.reshape(taps, c // 4, 4)[:, :, [0, 2, 1, 3]].astype(np.int16).reshape(-1)
    rq = _dw_requant(s, flat)
    if rq is None:
        return None
    rows, lsh, mode, params = rq
    inplace = (p["stride_h"] == 1 and p["in_h"] == p["out_h"] and p["in_w"] == p["out_w"])
    return dataclasses.replace(
        s, kernel=f"te_dwconv2d_s8_dsp_m{mode}", struct="te_dsp_conv_params", params=params,
        consts={"filter": filt, "rq": compact_rows(rows)},
        args=["params", "in0", "const:filter", "const:rq@te_rq", "out0", "scratch"],
        scratch=(p["pad_h"] + 1) * p["out_w"] * c, inplace=inplace)



def _dw1d_candidate(step: Step) -> dict[str, Step]:
    """``dsp-dw1d`` (``te_dwconv1d``) where it applies: a 1-D signal (a k x 1 filter on W = 1, or 1 x k on
    H = 1), the heuristic's choice there; else nothing."""
    return _labelled(_dsp_dw1d(step), "dsp-dw1d", "heuristic: a 1-D signal, each channel's column widened once, "
                                                   "tap pairs in SMLAD with the weights in registers")


def _dsp_dw1d(s: Step) -> Step | None:
    """``te_dwconv1d``: depth multiplier 1, no dilation, the filter and the signal along one axis (H with W = 1,
    or W with H = 1), any stride, padding and channel count. The input offset is folded into the bias (padding
    is the raw zero point), the weights widened to int16 per channel."""
    p = s.params
    c = p["in_c"]
    if p["depth_mult"] != 1 or p["out_c"] != c:
        return None
    if p["k_w"] == 1 and p["in_w"] == 1 and p["out_w"] == 1 and p["pad_w"] == 0 and p["dil_h"] == 1:
        alongw, n_in, n_out, k, stride, pad = 0, p["in_h"], p["out_h"], p["k_h"], p["stride_h"], p["pad_h"]
    elif p["k_h"] == 1 and p["in_h"] == 1 and p["out_h"] == 1 and p["pad_h"] == 0 and p["dil_w"] == 1:
        alongw, n_in, n_out, k, stride, pad = 1, p["in_w"], p["out_w"], p["k_w"], p["stride_w"], p["pad_w"]
    else:
        return None
    if pad < 0 or stride < 1 or n_out < 1:
        return None
    pairs = (k + 1) // 2
    flat = s.consts["filter"].astype(np.int64).reshape(k, c)
    in_off = int(p["in_offset"])
    raw = _bias(s, c)
    bound = np.abs(raw) + np.abs(flat).sum(axis=0) * _x_max(in_off)
    # the kernel starts from acc << lsh (weights and bias shifted here): int16 weights hold up to a shift of 7
    rq = requant_constants(raw + in_off * flat.sum(axis=0), s.consts["mult"], s.consts["shift"], bound,
                           p["out_offset"], p["act_min"], p["act_max"], lsh_in_acc=True, max_lsh=7)
    if rq is None or rq[1] > 7:
        return None
    rows, lsh, mode = rq
    # int16 [channel][tap] << lsh, one zero after it (an odd K's last word load reads one past the end)
    taps = np.concatenate([(flat.T << lsh).reshape(-1), [0]]).astype(np.int16)
    rows = rows.copy()
    rows[:, 0] = (rows[:, 0].astype(np.int64) << lsh).astype(np.uint32).view(np.int32)  # wraps as the kernel's sum
    params = _conv_params(p, kpad=alongw, pointwise=0, lsh=lsh, mode=mode, in_zp=-in_off, in_off=in_off,
                          act_min=p["act_min"], act_max=p["act_max"])
    elems = max(pad + n_in, (n_out - 1) * stride + 2 * pairs + 2)  # te_dwconv1d's E
    return dataclasses.replace(
        s, kernel=f"te_dwconv1d_s8_dsp_m{mode}", struct="te_dsp_conv_params", params=params,
        consts={"filter": taps, "rq": compact_rows(rows)},
        args=["params", "in0", "const:filter", "const:rq@te_rq", "out0", "scratch"],
        scratch=(2 * elems + 3) // 4 * 4, inplace=n_out <= n_in)



def _conv1px_candidates(step: Step) -> dict[str, Step]:
    """A CONV_2D with a 1x1 filter on a 1x1 image (no padding) is a FULLY_CONNECTED layer with per-channel
    requantization, the same arithmetic: the FULLY_CONNECTED kernels (``fc-*`` names: rows a pass instead of
    four pixels a pass, of which three would be idle), in :func:`_fc_candidates`' order; else nothing."""
    p = step.params
    if not (p["k_h"] == p["k_w"] == 1 and p["in_h"] == p["in_w"] == p["out_h"] == p["out_w"] == 1
            and p["pad_h"] == p["pad_w"] == 0):
        return {}
    oc, ic = p["out_c"], p["in_c"]
    fc = dataclasses.replace(step, params=dict(batches=p["batches"], filter_offset=0, in_offset=p["in_offset"],
                                               out_offset=p["out_offset"], act_min=p["act_min"],
                                               act_max=p["act_max"]),
                             consts={**step.consts, "filter": step.consts["filter"].reshape(oc, ic)})
    found = {}
    for k, v in _fc_candidates(fc).items():
        name = f"fc-{k.removeprefix('dsp-')}" if k != "dsp" else "fc"
        why = (v.why.replace("heuristic: ", "heuristic: a 1x1 image, as FULLY_CONNECTED: ", 1)
               if v.why.startswith("heuristic: ") else f"as FULLY_CONNECTED: {v.why}")
        found[name] = dataclasses.replace(v, variant=name, why=why)
    return found


def _dsp_fc(s: Step) -> Step | None:
    p = s.params
    if p["filter_offset"] != 0:
        return None
    w = s.consts["filter"].astype(np.int64)  # (out, in)
    n, depth = w.shape
    kpad = (depth + 3) // 4 * 4
    filt = np.zeros((n, kpad), dtype=np.int8)
    filt[:, :depth] = w
    in_off = int(p["in_offset"])
    bias = _bias(s, n) + in_off * w.sum(axis=1)
    bound = np.abs(_bias(s, n)) + np.abs(w).sum(axis=1) * _x_max(in_off)
    rq = requant_constants(bias, s.consts["mult"], s.consts["shift"], bound, p["out_offset"], p["act_min"],
                           p["act_max"])
    if rq is None:
        return None
    rows, lsh, mode = rq
    params = dict(batches=p["batches"], in_depth=depth, out_depth=n, kpad=kpad, lsh=lsh, mode=mode,
                  act_min=p["act_min"], act_max=p["act_max"])
    return dataclasses.replace(
        s, kernel=f"te_fc_s8_dsp_m{mode}", struct="te_dsp_fc_params", params=params,
        consts={"filter": filt, "rq": rows},
        args=["params", "in0", "const:filter", "const:rq@te_rq_fc", "out0"], scratch=0, inplace=False)


def _fc4_weights(w: np.ndarray) -> np.ndarray | None:
    """``te_fc4``'s weight bytes for int8 rows ``w`` (out, depth), as many as ``te_fc``'s; None when a pair's
    second row could overflow the 24 bits the kernel recovers it from (see te_kernels_dsp_fc.c).

    Pair (r, s) of a block, group g of 4 inputs: the word for lanes (x[4g], x[4g+2]) holds bytes
    ``e_r[4g], w_s[4g], e_r[4g+2], w_s[4g+2]`` with ``e = w + 128`` (unsigned), then the word for (x[4g+1],
    x[4g+3]). Padding bytes are 0 (e too: they must add nothing whatever the input bytes there are)."""
    n, depth = w.shape
    groups = (depth + 3) // 4
    pos = np.where(w > 0, w, 0).sum(axis=1)
    neg = np.where(w < 0, -w, 0).sum(axis=1)
    fits = (127 * pos + 128 * neg < 2**23) & (128 * pos + 127 * neg <= 2**23)  # -2^23 <= x.w_s < 2^23
    if not all(fits[o + 1] for o in range(0, n - 1, 2)):
        return None
    wp = np.zeros((n, groups * 4), dtype=np.int64)
    wp[:, :depth] = w
    ep = np.zeros_like(wp)
    ep[:, :depth] = w + 128

    def pair(r: int) -> np.ndarray:  # (groups, 2 words, 4 bytes)
        e, v = ep[r].reshape(groups, 4), wp[r + 1].reshape(groups, 4)
        return np.stack([np.stack([e[:, j], v[:, j], e[:, j + 2], v[:, j + 2]], axis=1) for j in (0, 1)], axis=1)

    blocks, o = [], 0
    for o in range(0, n - 3, 4):
        blocks.append(np.concatenate([pair(o), pair(o + 2)], axis=1).reshape(-1))
    o = n - n % 4
    if n - o >= 2:
        blocks.append(pair(o).reshape(-1))
        o += 2
    if o < n:
        blocks.append(wp[o])
    return (np.concatenate(blocks) & 0xFF).astype(np.uint8).view(np.int8)


def _dsp_fc4(two: Step) -> Step | None:
    """``te_fc4`` from the two-row DSP step (same constants, weights re-laid by :func:`_fc4_weights`)."""
    p = two.params
    w = two.consts["filter"][:, :p["in_depth"]].astype(np.int64)
    filt = _fc4_weights(w)
    if filt is None:
        return None
    return dataclasses.replace(two, kernel=two.kernel.replace("te_fc_s8_dsp", "te_fc4_s8_dsp"),
                               consts={**two.consts, "filter": filt})


# ------------------------------------------------------------------ int16x8 (te_kernels_dsp_s16.c)

#: SXTB16 gives bytes 0 and 2 of a word, SXTB16 ROR 8 bytes 1 and 3: each group of 4 weights is stored
#: w0 w2 w1 w3 so the two give the pairs (w0, w1) and (w2, w3) that two int16 input words meet in SMLAD.
_S16_GROUP_ORDER = [0, 2, 1, 3]
#: Largest sum(|w|) of a channel whose int32 accumulator of int16 inputs cannot overflow.
_S16_INT32_WSUM = INT32_MAX // 32768


def _s16_candidates(step: Step) -> dict[str, Step]:
    """The int16x8 DSP variant (``dsp``) of a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED step, where the
    kernel covers its shape and its requantization: :func:`_dsp_conv_s16`, :func:`_dsp_dw_s16`,
    :func:`_dsp_fc_s16`."""
    make = {"te_conv2d_s16": _dsp_conv_s16, "te_dwconv2d_s16": _dsp_dw_s16, "te_fc_s16": _dsp_fc_s16}[step.kernel]
    return _labelled(make(step), "dsp", "heuristic: int16 activations two a word straight into SMLAD")


def rq16_rows(bias: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray | None:
    """``te_rq16`` rows (int64 pairs ``{c, mul | post << 32}``, see te_kernels_dsp_s16.h) for TFLM's int64
    MultiplyByQuantizedMultiplier of ``acc + bias``: with m16 the multiplier rounded to 16 bits as TFLM rounds
    it and ``total = 15 - shift``, ``(int32_t)(((acc + bias) * m16 + 2^(total - 1)) >> total)`` is the high word
    of ``acc * mul + c`` (modulo 2^64) shifted right by ``post``: for total in [16, 32] everything is scaled by
    2^(32 - total) (mul then still fits int32) and post is 0; above 32, post = total - 32. None when a shift
    leaves ``total`` outside [16, 62] (a scale ratio of 1/2 or more: the layer keeps the portable kernel)."""
    rows = np.zeros((len(bias), 2), dtype=np.int64)
    mults = np.broadcast_to(np.asarray(mult, dtype=np.int64).reshape(-1), (len(bias),)).tolist()
    shifts = np.broadcast_to(np.asarray(shift, dtype=np.int64).reshape(-1), (len(bias),)).tolist()
    for i, (b, m, sh) in enumerate(zip(np.asarray(bias, dtype=np.int64).tolist(), mults, shifts)):
        total = 15 - sh
        if not 16 <= total <= 62 or m < 0 or abs(b) >= 2**40:
            return None
        m16 = (m + (1 << 15)) >> 16 if m < 0x7FFF0000 else 0x7FFF
        c = b * m16 + (1 << (total - 1))
        scale, post = (32 - total, 0) if total <= 32 else (0, total - 32)
        wrapped = (c << scale) & (2**64 - 1)
        rows[i, 0] = wrapped - 2**64 if wrapped >= 2**63 else wrapped
        rows[i, 1] = (m16 << scale) | (post << 32)  # little-endian: int32 mul, then int32 post
    return rows


def _s16_mode(wsum: np.ndarray) -> int:
    """Bit 0 (64-bit accumulators, SMLALD) when some channel's sum(|w|) * 32768 could overflow int32."""
    return int(bool(np.any(wsum > _S16_INT32_WSUM)))


def _s16_rows(w: np.ndarray, kpad: int) -> np.ndarray:
    """int8 rows (n, depth) padded with zeros to kpad (a multiple of 4), each group of 4 in SXTB16 order."""
    n, depth = w.shape
    wide = np.zeros((n, kpad), dtype=np.int8)
    wide[:, :depth] = w
    return np.ascontiguousarray(wide.reshape(n, kpad // 4, 4)[:, :, _S16_GROUP_ORDER]).reshape(n, kpad)


def _dsp_conv_s16(s: Step) -> Step | None:
    """``te_conv2d_s16_dsp``: two im2col columns (or, pointwise, the input pixels) against two filter rows."""
    p = s.params
    oc, ic = p["out_c"], p["in_c"]
    patch = p["k_h"] * p["k_w"] * ic
    kpad = (patch + 3) // 4 * 4
    if kpad > 8000:
        return None
    pointwise = (p["k_h"] == p["k_w"] == 1 and p["stride_h"] == p["stride_w"] == 1 and p["pad_h"] == p["pad_w"] == 0
                 and p["in_h"] == p["out_h"] and p["in_w"] == p["out_w"] and ic % 4 == 0)
    flat = s.consts["filter"].astype(np.int64).reshape(oc, patch)
    rows = rq16_rows(_bias(s, oc), s.consts["mult"], s.consts["shift"])
    if rows is None:
        return None
    mode = _s16_mode(np.abs(flat).sum(axis=1))
    params = _conv_params(p, kpad=kpad, pointwise=int(pointwise), lsh=0, mode=mode, in_zp=0, in_off=0,
                          act_min=p["act_min"], act_max=p["act_max"])
    # two pixels a pass: two im2col columns, or for pointwise layers only an odd last pixel's copy
    no_scratch = pointwise and p["batches"] * p["out_h"] * p["out_w"] % 2 == 0
    # the kernel reads a second row after an odd channel count's last: a zero row
    filt = _s16_rows(np.concatenate([flat, np.zeros((oc % 2, patch), dtype=np.int64)]), kpad)
    return dataclasses.replace(
        s, kernel=f"te_conv2d_s16_dsp_m{mode}", struct="te_dsp_conv_params", params=params,
        consts={"filter": filt, "rq": rows},
        args=["params", "in0", "const:filter", "const:rq@te_rq16", "out0", "=0" if no_scratch else "scratch"],
        scratch=0 if no_scratch else 4 * kpad, inplace=False)


def _dsp_dw_s16(s: Step) -> Step | None:
    """``te_dwconv2d_s16_dsp``: depth multiplier 1, weights widened to int16, two channels a word."""
    p = s.params
    c = p["in_c"]
    if p["depth_mult"] != 1 or p["out_c"] != c:
        return None
    flat = s.consts["filter"].astype(np.int64).reshape(p["k_h"] * p["k_w"], c)
    rows = rq16_rows(_bias(s, c), s.consts["mult"], s.consts["shift"])
    if rows is None:
        return None
    mode = _s16_mode(np.abs(flat).sum(axis=0))
    params = _conv_params(p, kpad=0, pointwise=0, lsh=0, mode=mode, in_zp=0, in_off=0,
                          act_min=p["act_min"], act_max=p["act_max"])
    return dataclasses.replace(
        s, kernel=f"te_dwconv2d_s16_dsp_m{mode}", struct="te_dsp_conv_params", params=params,
        consts={"filter": flat.astype(np.int16).reshape(-1), "rq": rows},
        args=["params", "in0", "const:filter", "const:rq@te_rq16", "out0"], scratch=0, inplace=False)


def _dsp_fc_s16(s: Step) -> Step | None:
    """``te_fc_s16_dsp``: two rows a pass (per-tensor multipliers repeated per row)."""
    p = s.params
    if p["filter_offset"] != 0:
        return None
    w = s.consts["filter"].astype(np.int64)  # (out, in)
    n, depth = w.shape
    kpad = (depth + 3) // 4 * 4
    rows = rq16_rows(_bias(s, n), s.consts["mult"], s.consts["shift"])
    if rows is None:
        return None
    mode = _s16_mode(np.abs(w).sum(axis=1))
    params = dict(batches=p["batches"], in_depth=depth, out_depth=n, kpad=kpad, lsh=0, mode=mode,
                  act_min=p["act_min"], act_max=p["act_max"])
    return dataclasses.replace(
        s, kernel=f"te_fc_s16_dsp_m{mode}", struct="te_dsp_fc_params", params=params,
        consts={"filter": _s16_rows(w, kpad), "rq": rows},
        args=["params", "in0", "const:filter", "const:rq@te_rq16", "out0"], scratch=0, inplace=False)
