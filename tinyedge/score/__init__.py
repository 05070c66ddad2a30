"""Scoring a device: accuracy, parity with TFLM, latency, instructions, energy, memory; the SLO gate."""

from __future__ import annotations

from .core import ModelMismatchError, Report, score
from .slo import SLO_KEYS, Slo, SloResult, evaluate, parse_slo, parse_slos

__all__ = ["ModelMismatchError", "Report", "SLO_KEYS", "Slo", "SloResult", "evaluate", "parse_slo", "parse_slos",
           "score"]
