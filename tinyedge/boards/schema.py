"""Schema of a board file (``boards/*.yaml``) and a small validator that reports every problem with its path.

Kept as data so that docs and error messages can show it; the validator knows dicts, lists and scalars.
"""

from __future__ import annotations

import re
from typing import Any

from .cores import CORES, FPUS

# A field spec is (type, required) where type is a python type, a tuple of types, a nested dict spec,
# or a list of allowed literal values.
INT = (int,)
NUM = (int, float)
STR = (str,)
OPT_STR = (str, type(None))

MEM_REGION = {"base": (INT, True), "size": (INT, True)}

#: ``emulator.qemu`` and ``emulator.renode`` when they are not null.
QEMU = {"machine": (STR, True)}
RENODE = {"platform": (STR, True), "uart": (STR, True)}

#: Uploaders that flash a real board without PlatformIO's vendor platform (tinyedge/firmware/upload.py).
FLASH_TOOLS = ["pyocd", "openocd", "uf2", "esptool"]

#: ``flash``: the default ``tool`` and, per tool, its facts. ``pyocd.target`` is a name from
#: ``pyocd list --targets``; the ``openocd`` entries are scripts under OpenOCD's scripts folder (a
#: ``board`` script, or an ``interface`` and a ``target``); ``uf2.family_id`` is the UF2 family.
FLASH = {
    "tool": (FLASH_TOOLS, True),
    "pyocd": ({"target": (STR, True)}, False),
    "openocd": ({"board": (STR, False), "interface": (STR, False), "target": (STR, False)}, False),
    "uf2": ({"family_id": (INT, True), "drive": (STR, False)}, False),
    "esptool": ({"chip": (STR, True),
                 "offsets": ({"bootloader": (INT, False), "partitions": (INT, False), "app": (INT, True)}, True)},
                False),
}

#: ``mlperf``: MLPerf Tiny energy mode on a real board. ``timestamp_gpio.pin`` is the pin the Arduino port
#: pulses per ``timestamp`` (the Arduino pin number, as ``digitalWrite`` takes it), ``mcu`` the MCU's name for
#: it (for wiring); ``energy_baud`` the UART baud in energy mode (default 9600, the energy runner's).
MLPERF = {
    "timestamp_gpio": ({"pin": (INT, True), "mcu": (STR, False)}, False),
    "energy_baud": (INT, False),
}

SCHEMA: dict[str, tuple[Any, bool]] = {
    "id": (STR, True),
    "name": (STR, True),
    "core": (list(CORES), True),  # the cores table (tinyedge/boards/cores.py)
    "fpu": (list(FPUS), True),
    "dsp": ((bool,), True),
    "clock_hz": (INT, True),
    "memory": ({"flash": (MEM_REGION, True), "ram": (MEM_REGION, True)}, True),
    # ``port`` names the Arduino Serial object (driver "arduino"); ``base`` the bare-metal UART's address.
    "uart": ({"driver": (["cmsdk", "stm32", "pl011", "nrf51", "arduino"], True), "base": (INT, False),
              "baud": (INT, True), "port": (STR, False)}, True),
    "timer": ({"driver": (["systick", "dwt", "micros"], True), "hz": (INT, True)}, True),
    "platformio": ({"platform": (STR, True), "board": (STR, True), "framework": (OPT_STR, False),
                    "upload_protocol": (OPT_STR, False), "monitor_speed": (INT, False)}, True),
    "emulator": ({"qemu": ((dict, type(None)), False), "renode": ((dict, type(None)), False)}, False),
    "flash": (FLASH, False),
    "mlperf": (MLPERF, False),
    # ``source`` names the datasheet, ``table`` the table in it the figure comes from.
    "power": ({"run_current_ma_per_mhz": (NUM, False), "run_current_ma": (NUM, False),
               "voltage_v": (NUM, True), "source": (STR, True), "table": (STR, False)}, True),
}


def validate(data: Any, spec: dict[str, tuple[Any, bool]] = SCHEMA, path: str = "") -> list[str]:
    """Return a list of human-readable problems (empty when ``data`` matches ``spec``)."""
    if not isinstance(data, dict):
        return [f"{path or 'board'}: expected a mapping, got {type(data).__name__}"]
    problems: list[str] = []
    for key, (kind, required) in spec.items():
        where = f"{path}.{key}" if path else key
        if key not in data:
            if required:
                problems.append(f"{where}: missing (required)")
            continue
        value = data[key]
        if isinstance(kind, dict):
            problems += validate(value, kind, where)
        elif isinstance(kind, list):
            if value not in kind:
                problems.append(f"{where}: {value!r} is not one of {', '.join(map(str, kind))}")
        elif isinstance(value, bool) and bool not in kind:
            problems.append(f"{where}: expected {'/'.join(t.__name__ for t in kind)}, got bool")
        elif not isinstance(value, kind):
            problems.append(f"{where}: expected {'/'.join(t.__name__ for t in kind)}, got {type(value).__name__}")
    for key in data:
        if key not in spec:
            problems.append(f"{path + '.' if path else ''}{key}: unknown field")
    if spec is SCHEMA and not problems:
        power = data["power"]
        if "run_current_ma" not in power and "run_current_ma_per_mhz" not in power:
            problems.append("power: needs run_current_ma or run_current_ma_per_mhz")
        for region in ("flash", "ram"):
            if data["memory"][region]["size"] <= 0:
                problems.append(f"memory.{region}.size: must be positive")
        problems += _cross_checks(data)
    return problems


def _cross_checks(data: dict[str, Any]) -> list[str]:
    """Rules that tie fields together (only run once every field has the right type)."""
    problems: list[str] = []
    emulator = data.get("emulator") or {}
    for name, spec in (("qemu", QEMU), ("renode", RENODE)):
        if emulator.get(name) is not None:
            problems += validate(emulator[name], spec, f"emulator.{name}")
    driver = data["uart"]["driver"]
    framework = data["platformio"].get("framework")
    if driver == "arduino" and framework != "arduino":
        problems.append("uart.driver: 'arduino' needs platformio.framework: arduino")
    if driver != "arduino" and framework:
        problems.append(f"platformio.framework: {framework!r} needs uart.driver: arduino "
                        f"(the bare-metal '{driver}' port runs without a framework)")
    if driver == "arduino" and emulator.get("qemu") is not None:
        problems.append("emulator.qemu: an Arduino-framework board cannot run in QEMU (use a bare-metal UART driver)")
    core = CORES[data["core"]]
    if data["timer"]["driver"] == "dwt" and core.cortex_m and not core.dwt:
        problems.append(f"timer.driver: {data['core']} has no DWT cycle counter (use systick or micros)")
    if data["timer"]["driver"] == "micros" and driver != "arduino":
        problems.append("timer.driver: 'micros' is the Arduino port's timer (use systick for bare metal)")
    if data["timer"]["hz"] <= 0 or data["clock_hz"] <= 0:
        problems.append("clock_hz and timer.hz: must be positive")
    if "flash" in data:
        problems += _flash_checks(data["flash"], core.cortex_m)
    if "mlperf" in data:
        problems += _mlperf_checks(data["mlperf"], arduino=driver == "arduino")
    return problems


def _mlperf_checks(mlperf: dict[str, Any], *, arduino: bool) -> list[str]:
    """The ``mlperf`` section's rules: a pin the Arduino port can drive, a usable energy baud."""
    problems: list[str] = []
    gpio = mlperf.get("timestamp_gpio")
    if gpio is not None:
        if not arduino:
            problems.append("mlperf.timestamp_gpio: only the Arduino port drives a timestamp GPIO "
                            "(the bare-metal port runs emulated boards)")
        if not 0 <= gpio["pin"] <= 255:
            problems.append(f"mlperf.timestamp_gpio.pin: {gpio['pin']} is not an Arduino pin number (0-255)")
        if "mcu" in gpio and not re.fullmatch(r"[A-Za-z0-9_.]+", gpio["mcu"]):
            problems.append(f"mlperf.timestamp_gpio.mcu: {gpio['mcu']!r} is not a pin name (e.g. PF13, P1.11, GPIO4)")
    baud = mlperf.get("energy_baud")
    if baud is not None and not 300 <= baud <= 4_000_000:
        problems.append(f"mlperf.energy_baud: {baud} is not a UART baud (the energy runner uses 9600)")
    return problems


def _flash_checks(flash: dict[str, Any], cortex_m: bool) -> list[str]:
    """The ``flash`` section's rules: the default tool has its facts, and each tool suits the core."""
    problems: list[str] = []
    if flash["tool"] not in flash:
        problems.append(f"flash.{flash['tool']}: missing for flash.tool: {flash['tool']}")
    for tool in ("pyocd", "openocd", "uf2"):
        if tool in flash and not cortex_m:
            problems.append(f"flash.{tool}: {tool} flashes Cortex-M parts only (use esptool for Espressif chips)")
    if "esptool" in flash:
        if cortex_m:
            problems.append("flash.esptool: esptool flashes Espressif chips, not a Cortex-M part")
        if not re.fullmatch(r"esp(8266|32[a-z0-9]*)", flash["esptool"]["chip"]):
            problems.append(f"flash.esptool.chip: {flash['esptool']['chip']!r} is not an esptool chip name "
                            "(e.g. esp32s3)")
    if "pyocd" in flash and not re.fullmatch(r"[a-z0-9_]+", flash["pyocd"]["target"]):
        problems.append(f"flash.pyocd.target: {flash['pyocd']['target']!r} is not a pyOCD target name "
                        "(lower case, as `pyocd list --targets` prints it)")
    openocd = flash.get("openocd")
    if openocd is not None:
        for key, value in openocd.items():
            if not (value.endswith(".cfg") and value.startswith(f"{key}/")):
                problems.append(f"flash.openocd.{key}: {value!r} is not an OpenOCD script "
                                f"({key}/NAME.cfg under OpenOCD's scripts folder)")
        if "board" not in openocd and not {"interface", "target"} <= set(openocd):
            problems.append("flash.openocd: needs a board script, or an interface and a target script")
    uf2 = flash.get("uf2")
    if uf2 is not None and not 0 < uf2["family_id"] <= 0xFFFFFFFF:
        problems.append("flash.uf2.family_id: must be a 32-bit family id (e.g. 0xe48bff56 for the RP2040)")
    return problems
