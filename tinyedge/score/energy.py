"""Energy per inference: from the board's power model, or measured from a power-monitor trace.

A trace is a CSV file with a header row (``#`` comment lines allowed):

* a time column: ``time_s`` / ``time_ms`` / ``time_us`` (``time``, ``t`` or ``timestamp`` mean seconds);
* either power (``power_w``, ``power_mw``, ``power_uw``; ``power`` means W) or current (``current_a``,
  ``current_ma``, ``current_ua``; ``current`` means A) times a supply voltage (a ``voltage_v`` column,
  or the ``voltage_v`` argument, by default the board's);
* markers: a ``gpio`` / ``marker`` column, nonzero while an inference runs (the firmware or a test
  jig raises a pin around each inference). Every maximal run of nonzero samples is one inference window.

Energy of a window is the trapezoidal integral of power over [first, last] marked sample; the
figure is the mean over windows. This is what Joulescope / Otii / PPK2 exports look like once a
column is renamed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

_TIME = {"time_s": 1.0, "time_ms": 1e-3, "time_us": 1e-6, "time": 1.0, "t": 1.0, "timestamp": 1.0,
         "timestamp_s": 1.0, "seconds": 1.0}
_POWER = {"power_w": 1.0, "power_mw": 1e-3, "power_uw": 1e-6, "power": 1.0}
_CURRENT = {"current_a": 1.0, "current_ma": 1e-3, "current_ua": 1e-6, "current": 1.0, "i": 1.0}
_VOLT = {"voltage_v": 1.0, "voltage": 1.0, "v": 1.0, "voltage_mv": 1e-3}
_MARK = ("gpio", "marker", "markers", "trigger", "d0")


@dataclass(frozen=True)
class TraceEnergy:
    """The result of integrating a trace: per-window energy (µJ) and duration (ms)."""

    source: str
    windows: int
    energy_uj: list[float]
    duration_ms: list[float]
    column: str  # which column the power came from

    @property
    def mean_uj(self) -> float:
        return float(np.mean(self.energy_uj))

    @property
    def mean_power_mw(self) -> float:
        return float(np.sum(self.energy_uj) / np.sum(self.duration_ms)) if np.sum(self.duration_ms) else 0.0


def model_energy_uj(run_power_mw: float, latency_ms: float) -> float:
    """Power model: run-mode power (mW) x time (ms) = energy (µJ)."""
    return run_power_mw * latency_ms


def _pick(columns: dict[str, int], table: dict[str, float]) -> tuple[str, float] | None:
    for name, factor in table.items():
        if name in columns:
            return name, factor
    return None


def read_trace(path: str | Path, *, voltage_v: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(time s, power W, marker bool, power column description) from a trace CSV; DataError when unusable."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(line for line in f if line.strip() and not line.lstrip().startswith("#"))]
    except OSError as exc:
        raise DataError(f"cannot read power trace {path}: {exc.strerror}", "check the path to the CSV") from None
    if len(rows) < 3:
        raise DataError(f"power trace {path} has fewer than two samples",
                        "export the trace as CSV with a header row (time_s, current_a or power_w, gpio)")
    header = {h.strip().lower(): i for i, h in enumerate(rows[0])}
    hint = "name the columns time_s (or time_ms/time_us), power_w/power_mw or current_a/current_ma, and gpio"
    t = _pick(header, _TIME)
    if t is None:
        raise DataError(f"power trace {path} has no time column (columns: {', '.join(header)})", hint)
    p = _pick(header, _POWER)
    c = _pick(header, _CURRENT) if p is None else None
    if p is None and c is None:
        raise DataError(f"power trace {path} has neither a power nor a current column (columns: {', '.join(header)})",
                        hint)
    mark = next((m for m in _MARK if m in header), None)
    if mark is None:
        raise DataError(f"power trace {path} has no marker column (gpio/marker) to find the inference windows",
                        "record a GPIO pin that is high during each inference and name its column gpio")
    try:
        data = np.array([[float(r[header[k]]) for k in (t[0], (p or c)[0], mark)] for r in rows[1:]],  # type: ignore[index]
                        dtype=np.float64)
    except (ValueError, IndexError) as exc:
        raise DataError(f"power trace {path} has a non-numeric or missing value ({exc})",
                        "remove text rows other than the header; comments may start with #") from None
    time_s = data[:, 0] * t[1]
    if np.any(np.diff(time_s) < 0):
        raise DataError(f"power trace {path}: time goes backwards", "sort the trace by time")
    if p is not None:
        power = data[:, 1] * p[1]
        desc = f"column {p[0]}"
    else:
        v = _pick(header, _VOLT)
        if v is not None:
            volts = np.array([float(r[header[v[0]]]) for r in rows[1:]]) * v[1]
            desc = f"columns {c[0]} x {v[0]}"  # type: ignore[index]
        elif voltage_v is not None:
            volts = np.full(len(data), float(voltage_v))
            desc = f"column {c[0]} x {voltage_v:g} V"  # type: ignore[index]
        else:
            raise DataError(f"power trace {path} has current but no voltage",
                            "add a voltage_v column or pass --voltage")
        power = data[:, 1] * c[1] * volts  # type: ignore[index]
    return time_s, power, data[:, 2] != 0, desc


def integrate_trace(path: str | Path, *, voltage_v: float | None = None) -> TraceEnergy:
    """Energy per inference window of a power trace (see the module docstring for the CSV format)."""
    time_s, power_w, marked, desc = read_trace(path, voltage_v=voltage_v)
    edges = np.diff(np.concatenate([[0], marked.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1  # inclusive
    energy, duration = [], []
    for a, b in zip(starts, ends):
        if b <= a:
            continue  # a single marked sample spans no time
        seg_t, seg_p = time_s[a:b + 1], power_w[a:b + 1]
        energy.append(float(np.sum((seg_p[1:] + seg_p[:-1]) * np.diff(seg_t)) / 2.0) * 1e6)
        duration.append(float(seg_t[-1] - seg_t[0]) * 1e3)
    if not energy:
        raise DataError(f"power trace {path} has no inference window (no run of nonzero gpio samples)",
                        "check that the marker pin toggles around each inference")
    return TraceEnergy(str(path), len(energy), energy, duration, desc)
