"""The cores tinyedge knows, in one table: architecture, DWT cycle counter, DSP extension, FPU, and the
instructions per MAC its int8 kernels take (what ``tinyedge matrix`` estimates latency with).

A board file names its core (``core:``, validated against this table) and says whether its part has the
DSP extension (``dsp:``) and which FPU (``fpu:``); the core ids are GCC's ``-mcpu`` names, which the
offline platform passes to the compiler as they are (with ``-mfpu=<fpu> -mfloat-abi=hard`` when the board
has an FPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..errors import BoardError


@dataclass(frozen=True)
class Core:
    """Facts about one core that the port, the code generator and the estimates depend on."""

    name: str
    arch: str  # "armv6-m", "armv7-m", "armv7e-m", "armv8-m.main", "armv8.1-m.main", "xtensa", "host"
    cortex_m: bool  # an Arm Cortex-M core (tinyedge's bare-metal port supports only these)
    dwt: bool  # has the DWT cycle counter (ARMv7-M and ARMv8-M Mainline; not ARMv6-M)
    dsp: bool  # can have the DSP extension (SMLAD/SXTB16, ``__ARM_FEATURE_DSP``)
    fpu: bool  # can have a floating-point unit (the board's ``fpu:`` says which one)
    #: Instructions per multiply-accumulate of tinyedge's int8 kernels (see :data:`CORES`); None: no figure.
    instr_per_mac: float | None

    @property
    def armv6m(self) -> bool:
        """ARMv6-M (Cortex-M0/M0+): no DWT, no unaligned access, a reduced Thumb instruction set."""
        return self.arch == "armv6-m"


#: Every core a board file may name, in the order the schema lists them.
#:
#: ``instr_per_mac``: instructions per multiply-accumulate of tinyedge's int8 kernels, measured in QEMU
#: (``-icount shift=0``) on the MLPerf Tiny KWS model (DS-CNN, 2,656,768 MACs), everything included (layer
#: calls, padding, requantization), with ``tinyedge matrix kws_ref_model.tflite --boards <board> --run``:
#: 19.25 M instructions per inference on the Cortex-M3 (an385, portable C kernels), 4.84 M on the M4 (an386),
#: 4.87 M on the M7 (an500), 4.88 M on the M33 (an505), 4.81 M on the M55 (an547) (the DSP kernels). KWS does
#: not fit the Cortex-M0 board; its figure scales the M3's by the ratio the digits model measures there
#: (495,312 vs 266,360 instructions). Latency is estimated as MACs x this / clock, i.e. one instruction per
#: cycle, the assumption the emulated scores make too. Cores QEMU does not emulate borrow the nearest figure.
#: Re-measure when the kernels change; ``tinyedge matrix --run`` always measures.
CORES: dict[str, Core] = {c.name: c for c in (
    Core("cortex-m0", "armv6-m", cortex_m=True, dwt=False, dsp=False, fpu=False, instr_per_mac=13.47),
    Core("cortex-m0plus", "armv6-m", cortex_m=True, dwt=False, dsp=False, fpu=False, instr_per_mac=13.47),
    Core("cortex-m3", "armv7-m", cortex_m=True, dwt=True, dsp=False, fpu=False, instr_per_mac=7.24),
    Core("cortex-m4", "armv7e-m", cortex_m=True, dwt=True, dsp=True, fpu=True, instr_per_mac=1.82),
    Core("cortex-m7", "armv7e-m", cortex_m=True, dwt=True, dsp=True, fpu=True, instr_per_mac=1.83),
    Core("cortex-m33", "armv8-m.main", cortex_m=True, dwt=True, dsp=True, fpu=True, instr_per_mac=1.84),
    Core("cortex-m55", "armv8.1-m.main", cortex_m=True, dwt=True, dsp=True, fpu=True, instr_per_mac=1.81),
    # No measurement (no ESP32-S3 emulator here): the portable C kernels, like the M3.
    Core("xtensa-lx7", "xtensa", cortex_m=False, dwt=False, dsp=False, fpu=True, instr_per_mac=7.24),
    Core("host", "host", cortex_m=False, dwt=False, dsp=False, fpu=True, instr_per_mac=None),
)}

#: The FPUs a board file may name (``fpu:``); GCC's ``-mfpu`` values, ``none``, or ``auto`` (the core's default).
FPUS: tuple[str, ...] = ("none", "fpv4-sp-d16", "fpv5-sp-d16", "fpv5-d16", "auto")

#: The core whose figure a core without one borrows for estimates.
DEFAULT_ESTIMATE_CORE = "cortex-m4"


class _HasCore(Protocol):
    """What the helpers read from a board (a :class:`tinyedge.boards.Board`)."""

    @property
    def core(self) -> str: ...
    @property
    def fpu(self) -> str: ...
    @property
    def dsp(self) -> bool: ...


def core_info(name: str) -> Core:
    """The table entry of core ``name``; BoardError for a core tinyedge does not know."""
    try:
        return CORES[name]
    except KeyError:
        raise BoardError(f"unknown core '{name}'", f"use one of {', '.join(CORES)}") from None


def cortex_m_cores() -> tuple[str, ...]:
    """The Cortex-M cores, the ones tinyedge's bare-metal port supports."""
    return tuple(c.name for c in CORES.values() if c.cortex_m)


def has_dwt(board: _HasCore) -> bool:
    """True when the board's core has the DWT cycle counter."""
    return core_info(board.core).dwt


def is_armv6m(board: _HasCore) -> bool:
    """True for an ARMv6-M core (Cortex-M0/M0+)."""
    return core_info(board.core).armv6m


def has_dsp(board: _HasCore) -> bool:
    """True when the DSP kernels apply: the board says its part has the extension and its core can have it."""
    return bool(board.dsp) and core_info(board.core).dsp


def has_fpu(board: _HasCore) -> bool:
    """True when the board has a floating-point unit (``fpu`` other than ``none``)."""
    return board.fpu != "none"


def instr_per_mac(core: str) -> float:
    """Instructions per MAC to estimate latency on ``core`` with (the default core's for one without a figure)."""
    info = CORES.get(core)
    if info is not None and info.instr_per_mac is not None:
        return info.instr_per_mac
    figure = CORES[DEFAULT_ESTIMATE_CORE].instr_per_mac
    assert figure is not None
    return figure
