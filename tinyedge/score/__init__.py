"""Scoring a device: accuracy, ROC AUC, parity with TFLM, latency, throughput, per-layer profile, energy
(power model or measured trace), confidence drift, telemetry health; reports and the SLO gate."""

from __future__ import annotations

from .core import BoardMismatchError, HarvestAborted, ModelMismatchError, score
from .energy import TraceEnergy, integrate_trace, model_energy_uj
from .figures import DeviceInfo, ModelFacts, Record, ScoreResult, Session, Tally, Timing, detect_task, figures
from .report import Report
from .slo import SLO_KEYS, Slo, SloResult, evaluate, load_project_slos, parse_slo, parse_slos

__all__ = ["BoardMismatchError", "DeviceInfo", "HarvestAborted", "ModelFacts", "ModelMismatchError", "Record", "Report",
           "SLO_KEYS", "ScoreResult", "Session", "Slo", "SloResult", "Tally", "Timing", "TraceEnergy", "detect_task",
           "evaluate", "figures", "integrate_trace", "load_project_slos", "model_energy_uj", "parse_slo", "parse_slos",
           "score"]
