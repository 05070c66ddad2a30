"""Schema of a board file (``boards/*.yaml``) and a small validator that reports every problem with its path.

Kept as data so that docs and error messages can show it; the validator knows dicts, lists and scalars.
"""

from __future__ import annotations

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
    return problems
