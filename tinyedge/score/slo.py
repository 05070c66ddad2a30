"""SLO gate: expressions like ``accuracy>=0.95``, ``latency_ms.p95<=50``, ``parity==1``."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ..errors import SLOError

#: Every report figure an SLO may name (dotted keys into report.json).
SLO_KEYS: tuple[str, ...] = (
    "accuracy", "parity",
    "latency_ms.p50", "latency_ms.p95", "latency_ms.p99", "latency_ms.max",
    "instructions", "energy_uj_per_inference", "ram_bytes", "flash_bytes", "samples",
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
        raise SLOError(f"SLO {expr!r} names unknown key '{key}'", "use one of: " + ", ".join(SLO_KEYS))
    return Slo(expr.strip(), key, op, float(target))


def parse_slos(exprs: Iterable[str]) -> list[Slo]:
    return [parse_slo(e) for e in exprs]


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
