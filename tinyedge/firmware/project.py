"""The board-specific files of a firmware project: platformio.ini, board manifest, linker script, startup and port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..boards import Board
from ..boards.cores import cortex_m_cores, has_dwt, has_fpu, is_armv6m
from ..errors import BoardError
from ..render import render

#: The offline PlatformIO platform shipped inside this package (``platform = <this path>``).
PLATFORM_DIR = Path(__file__).resolve().parent / "platform"

#: UART drivers the bare-metal port implements (``board.uart.driver``), with their default base address.
PORT_DRIVERS: dict[str, int | None] = {"cmsdk": 0x40004000, "stm32": None, "pl011": 0x4000C000, "nrf51": 0x40002000}

#: Smallest stack the linker script leaves between the end of .bss and the top of RAM.
MIN_STACK_BYTES = 4096

#: The UART driver of boards built with the Arduino framework (stock PlatformIO platforms).
ARDUINO = "arduino"

#: The baud of MLPerf Tiny's energy mode (the runner talks through its interface board at 9600), unless the
#: board file names another (``mlperf.energy_baud``).
ENERGY_BAUD = 9600

# template name -> path it produces (relative to the project); "{id}" is the board id.
_FILES = {
    "platformio.ini.j2": "platformio.ini",
    "board.json.j2": "boards/{id}.json",
    "linker.ld.j2": "linker.ld",
    "startup.c.j2": "src/startup.c",
    "te_port.h.j2": "src/te_port.h",
    "te_port.c.j2": "src/te_port.c",
}

# Arduino-framework boards: the stock platform brings the board manifest, linker script and startup code.
_ARDUINO_FILES = {
    "platformio.ini.j2": "platformio.ini",
    "te_port.h.j2": "src/te_port.h",
    "te_port.cpp.j2": "src/te_port.cpp",
}


def is_arduino(board: Board) -> bool:
    """True when ``board`` is built with the Arduino framework on its stock PlatformIO platform."""
    return bool(board.uart["driver"] == ARDUINO)


def _nrf51_baudrate(baud: int) -> int:
    # BAUDRATE register = baud * 2^32 / 16 MHz, with the low 12 bits cleared (as Nordic's table).
    return ((baud << 32) // 16_000_000 + 0x800) & ~0xFFF


def mlperf_context(board: Board, *, energy_mode: bool) -> dict[str, Any]:
    """Template variables of the MLPerf Tiny timestamp mode: ``energy_mode``, the energy baud, the UART baud
    the firmware runs at, and the timestamp GPIO (``mlperf`` in the board file; Arduino boards only)."""
    mlperf = board.raw.get("mlperf") or {}
    energy_baud = int(mlperf.get("energy_baud", ENERGY_BAUD))
    gpio = mlperf.get("timestamp_gpio")
    pin = gpio["pin"] if gpio is not None and is_arduino(board) else None
    if energy_mode and is_arduino(board) and pin is None:
        raise BoardError(
            f"board '{board.id}' names no timestamp GPIO, which MLPerf Tiny's energy mode pulses",
            "add mlperf: {timestamp_gpio: {pin: N}} to the board file (a free pin; see boards/nucleo_l4r5zi.yaml)",
        )
    doc = None
    if gpio is not None:
        doc = f"Arduino pin {gpio['pin']}" + (f" ({gpio['mcu']})" if gpio.get("mcu") else "")
    return {
        "energy_mode": energy_mode,
        "energy_baud": energy_baud,
        "board_energy_baud": "energy_baud" in mlperf,
        "uart_baud": energy_baud if energy_mode else int(board.uart["baud"]),
        "timestamp_pin": pin,
        "timestamp_pin_doc": doc,
    }


def port_context(board: Board, *, project_name: str, energy_mode: bool = False) -> dict[str, Any]:
    """Template variables for the board files; BoardError when the port cannot support the board.

    ``energy_mode`` builds MLPerf Tiny's energy timestamp mode (:func:`mlperf_context`).
    """
    if is_arduino(board):
        return {**arduino_context(board, project_name=project_name), **mlperf_context(board, energy_mode=energy_mode)}
    if board.core not in cortex_m_cores():
        raise BoardError(
            f"board '{board.id}' has core {board.core}, but tinyedge's bare-metal port only supports Cortex-M",
            "pick a Cortex-M board (tinyedge boards)",
        )
    driver = board.uart["driver"]
    if driver not in PORT_DRIVERS:
        raise BoardError(
            f"board '{board.id}' uses UART driver '{driver}', which tinyedge's bare-metal port does not implement",
            f"use one of {', '.join(PORT_DRIVERS)} in the board file's uart.driver",
        )
    base = board.uart.get("base", PORT_DRIVERS[driver])
    if base is None:
        raise BoardError(f"board '{board.id}' has no uart.base",
                         f"add the {driver} UART's base address to the board file")
    timer_hz = int(board.timer["hz"])
    mlperf = mlperf_context(board, energy_mode=energy_mode)
    return {
        **mlperf,
        "board": board,
        "project_name": project_name,
        "platform_dir": PLATFORM_DIR.as_posix(),
        "emulated": board.qemu is not None,
        "upload_protocol": board.platformio.get("upload_protocol") or "custom",
        "mcu": board.platformio.get("board") or board.id,
        "fpu": board.fpu,
        "has_fpu": has_fpu(board),
        "armv6m": is_armv6m(board),
        "has_dwt": has_dwt(board),
        "uart": driver,
        "uart_base": base,
        "nrf_baudrate": _nrf51_baudrate(int(board.uart["baud"])),
        "nrf_energy_baudrate": _nrf51_baudrate(mlperf["energy_baud"]),
        # SysTick counts the CPU clock unless the board says its timer runs at another rate.
        "systick_cpu_clock": timer_hz == board.clock_hz or board.timer["driver"] != "systick",
        "systick_hz": timer_hz if board.timer["driver"] == "systick" else board.clock_hz,
        "min_stack_bytes": MIN_STACK_BYTES,
        "arduino": False,
    }


def arduino_context(board: Board, *, project_name: str) -> dict[str, Any]:
    """Template variables of an Arduino-framework board (stock platform, ``Serial``, ``micros()``/DWT)."""
    pio = board.platformio
    if pio.get("framework") != ARDUINO:
        raise BoardError(
            f"board '{board.id}' uses the Arduino port but platformio.framework is {pio.get('framework')!r}",
            "set platformio.framework: arduino in the board file",
        )
    timer = board.timer["driver"]
    if timer == "dwt" and not has_dwt(board):
        raise BoardError(f"board '{board.id}' asks for the DWT cycle counter, which {board.core} does not have",
                         "use timer.driver: micros in the board file")
    return {
        "board": board,
        "project_name": project_name,
        "arduino": True,
        "emulated": False,
        "platform": pio["platform"],
        "pio_board": pio["board"],
        "upload_protocol": pio.get("upload_protocol"),
        "serial": board.uart.get("port", "Serial"),
        "use_dwt": timer == "dwt",
        "timer_hz": int(board.timer["hz"]),
    }


def project_files(board: Board, *, project_name: str, energy_mode: bool = False) -> dict[str, str]:
    """Relative path -> content of the board files of a project for ``board``.

    ``platformio.ini``, ``boards/<id>.json``, ``linker.ld``, ``src/startup.c``, ``src/te_port.h`` and
    ``src/te_port.c``, each rendered from the template of the same name in ``firmware_templates/``.
    An Arduino-framework board (``uart.driver: arduino``) gets ``platformio.ini`` for its stock platform,
    ``src/te_port.h`` and ``src/te_port.cpp`` only: the platform brings startup code and linker script.
    The code generator adds ``src/main.c`` and the model files. ``energy_mode`` builds MLPerf Tiny's energy
    timestamp mode (``TE_ENERGY_MODE 1``: a GPIO pulse per ``timestamp``, the UART at the energy baud).
    """
    context = port_context(board, project_name=project_name, energy_mode=energy_mode)
    files = _ARDUINO_FILES if context["arduino"] else _FILES
    return {path.format(id=board.id): render(template, **context) for template, path in files.items()}
