"""Scoring a device: accuracy, ROC AUC, parity with TFLM, latency, throughput, per-layer profile, energy
(power model or measured trace), confidence drift, telemetry health; reports and the SLO gate."""

from __future__ import annotations

from .core import HarvestAborted, ModelMismatchError, score
from .energy import TraceEnergy, integrate_trace, model_energy_uj
from .report import Report
from .slo import SLO_KEYS, Slo, SloResult, evaluate, load_project_slos, parse_slo, parse_slos

__all__ = ["HarvestAborted", "ModelMismatchError", "Report", "SLO_KEYS", "Slo", "SloResult", "TraceEnergy", "evaluate",
           "integrate_trace", "load_project_slos", "model_energy_uj", "parse_slo", "parse_slos", "score"]
