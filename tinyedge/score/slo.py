"""SLO gate: expressions like ``accuracy>=0.95``, ``latency_ms.p95<=50``, ``parity==1``."""

from __future__ import annotations

import difflib
import operator
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SLOError

#: Every report figure an SLO may name (dotted keys into report.json).
SLO_KEYS: tuple[str, ...] = (
    "accuracy", "parity", "roc_auc", "success_rate",
    "latency_ms.p50", "latency_ms.p95", "latency_ms.p99", "latency_ms.max", "latency_ms.mean",
    "throughput_ips", "instructions", "energy_uj_per_inference", "energy.model_uj", "energy.trace_uj",
    "ram_bytes", "flash_bytes", "samples", "samples_ok",
    "psi", "confidence.p50", "confidence.mean", "freshness_s", "max_record_gap_s",
    "link.corrupt_lines", "link.unknown_lines", "link.truncated_lines", "link.retries", "link.timeouts",
    "link.resyncs", "link.reconnects", "profile.total_ms",
)

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
}
_SLO = re.compile(r"\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*")


@dataclass(frozen=True)
class Slo:
    """One parsed SLO: ``key op target``."""

    expr: str
    key: str
    op: str
    target: float


@dataclass(frozen=True)
class SloResult:
    """An SLO checked against a report. ``value`` is None when the figure was not measured."""

    slo: Slo
    value: float | None
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return {"slo": self.slo.expr, "key": self.slo.key, "op": self.slo.op, "target": self.slo.target,
                "value": self.value, "passed": self.passed}


def parse_slo(expr: str) -> Slo:
    """Parse ``key op number``; raise SLOError naming the problem and the valid keys."""
    m = _SLO.fullmatch(expr)
    if m is None:
        raise SLOError(
            f"cannot parse SLO {expr!r}",
            "write KEY OP NUMBER with OP one of >= <= > < == != (e.g. 'accuracy>=0.9', 'latency_ms.p95<=50')",
        )
    key, op, target = m.groups()
    if key not in SLO_KEYS:
        close = difflib.get_close_matches(key, SLO_KEYS, n=2)
        raise SLOError(f"SLO {expr!r} names unknown key '{key}'" + (f" (did you mean {' or '.join(close)}?)"
                                                                     if close else ""),
                       "use one of: " + ", ".join(SLO_KEYS))
    return Slo(expr.strip(), key, op, float(target))


def parse_slos(exprs: Iterable[str]) -> list[Slo]:
    """Parse several SLOs; the same expression given twice is kept once."""
    out: list[Slo] = []
    for e in exprs:
        slo = parse_slo(e)
        if all((s.key, s.op, s.target) != (slo.key, slo.op, slo.target) for s in out):
            out.append(slo)
    return out


def load_project_slos(path: str | Path | None = None) -> tuple[list[str], Path | None]:
    """SLO expressions from the ``[slo]`` table of a ``tinyedge.toml`` project file.

    ``path`` None looks for ``./tinyedge.toml`` and returns ``([], None)`` when there is none. The
    table maps report keys to ``"OP NUMBER"`` strings or bare numbers (meaning ``>=``), or holds a list
    ``checks = ["accuracy>=0.9", ...]``::

        [slo]
        accuracy = ">=0.9"
        "latency_ms.p95" = "<=50"
        parity = "==1"
    """
    if path is None:
        path = Path.cwd() / "tinyedge.toml"
        if not path.is_file():
            return [], None
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SLOError(f"cannot read project file {path}: {exc.strerror}", "check the --config path") from None
    except tomllib.TOMLDecodeError as exc:
        raise SLOError(f"project file {path} is not valid TOML: {exc}", "fix the TOML syntax") from None
    table = doc.get("slo", {})
    if not isinstance(table, dict):
        raise SLOError(f"[slo] in {path} must be a table", 'write e.g. [slo] then accuracy = ">=0.9"')
    exprs: list[str] = []
    for key, value in table.items():
        if key == "checks" and isinstance(value, list):
            exprs += [str(v) for v in value]
        elif isinstance(value, bool):
            raise SLOError(f"[slo] {key} in {path} is a boolean", f'write {key} = ">=0.9" (an operator and a number)')
        elif isinstance(value, (int, float)):
            exprs.append(f"{key}>={value}")
        elif isinstance(value, str):
            exprs.append(f"{key}{value.strip()}")
        else:
            raise SLOError(f"[slo] {key} in {path} has an unusable value {value!r}",
                           f'write {key} = ">=0.9" (an operator and a number)')
    try:
        parse_slos(exprs)  # fail early, naming the file
    except SLOError as exc:
        raise SLOError(f"{path}: {exc.problem}", exc.hint) from None
    return exprs, path


def lookup(report: Mapping[str, Any], key: str) -> Any:
    """The value at dotted ``key`` in ``report`` (None when absent)."""
    value: Any = report
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def evaluate(slos: Iterable[Slo], report: Mapping[str, Any]) -> list[SloResult]:
    """Check each SLO; a figure that was not measured (None) fails its SLO."""
    results = []
    for slo in slos:
        value = lookup(report, slo.key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            results.append(SloResult(slo, None, False))
        else:
            results.append(SloResult(slo, float(value), bool(_OPS[slo.op](float(value), slo.target))))
    return results
