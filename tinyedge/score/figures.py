"""The measurement model shared by ``tinyedge score`` and ``tinyedge monitor``.

Both harvest per-inference :class:`Record` rows from a device; :func:`figures` turns them (a list,
or a constant-memory :class:`Tally` of them for a days-long monitor) plus what ``te-info`` said
(:class:`DeviceInfo`) and the board file into a typed :class:`ScoreResult`. Everything that decides
a figure lives here: how timer ticks become instructions and milliseconds (:class:`Timing`), which
task a model solves (:func:`detect_task`), percentiles, accuracy, parity, confusion matrix, ROC AUC,
PSI, energy, and the text saying how each figure was obtained (the :data:`HOW` table, next to the
figure definitions). The writers in :mod:`.report` only render a ScoreResult.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..boards import Board, get_board
from ..data import quantize_inputs
from ..errors import BoardError, ModelError
from ..model import Graph
from . import metrics
from .energy import TraceEnergy, model_energy_uj

log = logging.getLogger("tinyedge.score")

#: Bins of the monitor's confidence histogram (top score in [0, 1)).
CONFIDENCE_BINS = 10

CLASSIFICATION = "classification"
ANOMALY_DETECTION = "anomaly_detection"
OTHER = "other"


# ---------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ModelIO:
    """What scoring needs to know about the model's input and output tensors."""

    input_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    input_size: int
    output_scale: float
    output_zero_point: int
    output_size: int
    #: TFLite type names of the I/O tensors: INT8, INT16 (an int16x8 model converted with int16 I/O) or FLOAT32
    #: (converted without inference_input/output_type: its scale/zero point are then 1.0/0, the values as they are).
    input_dtype: str = "INT8"
    output_dtype: str = "INT8"

    @property
    def input_type(self) -> type[np.number[Any]]:
        """The numpy type the device takes its input values in (sent little-endian)."""
        return _NUMPY_TYPES.get(self.input_dtype, np.int8)

    @property
    def output_type(self) -> type[np.number[Any]]:
        """The numpy type of the device's output values (te-results)."""
        return _NUMPY_TYPES.get(self.output_dtype, np.int8)

    def device_inputs(self, x: np.ndarray) -> np.ndarray:
        """Float inputs ``x`` as the device takes them: quantized as TFLite's QUANTIZE does (int8/int16), or as
        float32 for a float32 input (the model quantizes them itself)."""
        if self.input_dtype == "FLOAT32":
            return np.asarray(x, dtype=np.float32)
        return quantize_inputs(x, self.input_scale, self.input_zero_point,
                               np.int16 if self.input_dtype == "INT16" else np.int8)

    @property
    def input_bytes(self) -> int:
        """Bytes per input sample on the wire (te-info's ``input_bytes``)."""
        return self.input_size * np.dtype(self.input_type).itemsize


def _size(shape: Sequence[int]) -> int:
    """Elements per sample: the batch dimension is left out when there is one."""
    return int(np.prod(shape[1:])) if len(shape) > 1 else int(np.prod(shape))


def graph_io(graph: Graph, where: str | Path | None = None) -> ModelIO:
    """Input/output shapes and quantization of ``graph``; ModelError unless each side is int8, int16 or float32."""
    if graph.input.dtype not in _NUMPY_TYPES or graph.output.dtype not in _NUMPY_TYPES:
        raise ModelError(
            f"{where or graph.name} has a {graph.input.dtype.lower()} input and a {graph.output.dtype.lower()} "
            "output; tinyedge scores int8, int16 and float32 model I/O",
            "quantize it to full-integer int8 (tinyedge quantize), or convert with inference_input_type and "
            "inference_output_type int8 (or int16 for an int16x8 model)",
        )
    # a float32 side is scored as the floats themselves: scale 1, zero point 0
    (isc, izp), (osc, ozp) = ((1.0, 0) if t.dtype == "FLOAT32" else t.q() for t in (graph.input, graph.output))
    shape = tuple(int(d) for d in graph.input.shape)
    return ModelIO(shape, isc, izp, _size(shape), osc, ozp, _size([int(d) for d in graph.output.shape]),
                   graph.input.dtype, graph.output.dtype)


#: The I/O tensor types score, monitor and the firmware's serial protocol move, and their numpy types.
_NUMPY_TYPES: dict[str, type[np.number[Any]]] = {"INT8": np.int8, "INT16": np.int16, "FLOAT32": np.float32}


@dataclass(frozen=True)
class ModelFacts:
    """The model the host thinks the device runs: file name, sha256 and (when known) its tensors."""

    name: str | None = None
    sha256: str | None = None
    io: ModelIO | None = None


@dataclass(frozen=True)
class Timing:
    """How timer ticks become figures (from ``te-info``; ``clock_hz`` falls back to the board file's).

    Under QEMU ``-icount shift=0`` one instruction takes 1 ns of virtual time, so ticks count
    instructions; the latency is then an ESTIMATE (one instruction per cycle at the board clock).
    On hardware ticks / timer_hz is a measurement.
    """

    timer_hz: int
    clock_hz: int
    emulated: bool

    @property
    def measures_latency(self) -> bool:
        """False when ticks cannot become milliseconds (an emulator without a clock, or no timer rate)."""
        return bool(self.timer_hz) and (bool(self.clock_hz) or not self.emulated)

    def instructions_f(self, ticks: float) -> float | None:
        """Instructions (unrounded) for ``ticks`` under an emulator; None on hardware."""
        return float(ticks) * 1e9 / self.timer_hz if self.emulated and self.timer_hz else None

    def instructions(self, ticks: int) -> int | None:
        """Emulator instruction count of an inference of ``ticks``; None on hardware."""
        ins = self.instructions_f(ticks)
        return int(round(ins)) if ins is not None else None

    def latency_ms(self, ticks: float) -> float | None:
        """Emulated: instructions / clock (an estimate); hardware: ticks / timer_hz (a measurement)."""
        if not self.measures_latency:
            return None
        if self.emulated:
            return (float(ticks) * 1e9 / self.timer_hz) / self.clock_hz * 1e3
        return float(ticks) / self.timer_hz * 1e3


def _int(v: Any) -> int:
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class DeviceInfo:
    """What ``te-info`` says about the device and its firmware (``raw`` keeps every key as received)."""

    board: str | None
    emulated: bool
    timer_hz: int
    timer: str | None
    clock_hz: int  # as te-info reports it; 0 when it does not
    model_sha256: str
    model: str | None
    version: str | None
    protocol: int
    input_bytes: int
    output_count: int
    layers: int
    ram_bytes: int | None
    flash_bytes: int | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> DeviceInfo:
        """From the ``te-info`` mapping (missing keys become 0/None: a monitor may know little)."""
        return cls(
            board=str(info["board"]) if info.get("board") else None,
            emulated=bool(info.get("emulated")),
            timer_hz=_int(info.get("timer_hz")),
            timer=str(info["timer"]) if info.get("timer") is not None else None,
            clock_hz=_int(info.get("clock_hz")),
            model_sha256=str(info.get("model_sha256") or ""),
            model=str(info["model"]) if info.get("model") is not None else None,
            version=str(info["version"]) if info.get("version") is not None else None,
            protocol=_int(info.get("protocol", 1)),
            input_bytes=_int(info.get("input_bytes")),
            output_count=_int(info.get("output_count")),
            layers=_int(info.get("layers")),
            ram_bytes=_int(info.get("ram_bytes")) or None,
            flash_bytes=_int(info.get("flash_bytes")) or None,
            raw=dict(info),
        )

    def timing(self, board: Board | None = None) -> Timing:
        """The tick rules for this device: te-info's clock, else the board file's."""
        return Timing(self.timer_hz, self.clock_hz or (board.clock_hz if board is not None else 0), self.emulated)


def lookup_board(board_id: str | None) -> Board | None:
    """The board file for te-info's board id; None (energy not estimated) when there is none."""
    if not board_id:
        return None
    try:
        return get_board(board_id)
    except BoardError as exc:
        log.warning("no board file for %s (%s): energy is not estimated", board_id, exc)
        return None


def detect_task(input_size: int, output_size: int) -> str:
    """What the model does, from its tensor sizes: an autoencoder (output as large as the input)
    does anomaly detection, several outputs classify, anything else is scored as raw outputs."""
    if output_size == input_size and output_size > 1:
        return ANOMALY_DETECTION
    return CLASSIFICATION if output_size > 1 else OTHER


@dataclass(frozen=True)
class Record:
    """One inference as harvested. ``ok`` means accepted: its CRC-checked input and result matched.

    ``out`` holds the outputs (score reads them with te-results: ints for int8/int16 outputs, floats for a
    float32 output); a te-stream line (monitor) carries only the device's arg-max ``top``, its ``score_q``
    (the output value: int, or float for a float32 output) and, dequantized, ``confidence``.
    ``parity`` is whether ``out`` equals the host reference (tflite_micro) on the same input.
    """

    index: int
    ok: bool = True
    ticks: int | None = None
    t: float | None = None  # seconds from the start of the harvest/session to acceptance
    label: int | None = None
    out: tuple[float, ...] | None = None
    top: int | None = None
    score_q: float | None = None
    confidence: float | None = None
    parity: bool | None = None
    error: str | None = None

    @property
    def pred(self) -> int | None:
        """The predicted class: the device's own arg-max, else the arg-max of the outputs."""
        if self.top is not None:
            return self.top
        # a single output is a score, not a class
        return int(np.argmax(self.out)) if self.out is not None and len(self.out) > 1 else None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Record:
        """From a records.jsonl row (score's or monitor's)."""
        out = row.get("out")
        return cls(
            index=int(row.get("index", 0)), ok=bool(row.get("ok", True)),
            ticks=int(row["ticks"]) if row.get("ticks") is not None else None,
            t=float(row["t"]) if row.get("t") is not None else None,
            label=int(row["label"]) if row.get("label") is not None else None,
            out=tuple(_number(v) for v in out) if out is not None else None,
            top=int(row["pred"]) if row.get("pred") is not None and out is None else None,
            score_q=_number(row["score_q"]) if row.get("score_q") is not None else None,
            confidence=float(row["confidence"]) if row.get("confidence") is not None else None,
            parity=bool(row["parity"]) if row.get("parity") is not None else None,
            error=row.get("error"),
        )

    def row(self, timing: Timing, task: str) -> dict[str, Any]:
        """The records.jsonl row ``tinyedge score`` writes for this record."""
        row: dict[str, Any] = {"index": self.index}
        if not self.ok:
            row.update(ok=False, error=self.error)
            return row
        ticks = int(self.ticks or 0)
        row.update(ok=True, ticks=ticks, t=round(self.t or 0.0, 6))
        if timing.emulated:
            row["instructions"] = timing.instructions(ticks)
        row["latency_ms"] = timing.latency_ms(ticks)
        if self.label is not None:
            row["label"] = self.label
        if task == CLASSIFICATION:
            row["pred"] = self.pred
            if self.label is not None:
                row["correct"] = row["pred"] == self.label
        if self.parity is not None:
            row["parity"] = self.parity
        if self.out is not None:
            row["out"] = list(self.out)
        return row


def _number(v: Any) -> float:
    """A records.jsonl output value: floats (a float32 output) stay floats, the rest are ints."""
    return v if isinstance(v, float) else int(v)


# ---------------------------------------------------------------------------------------- tally


class Distribution:
    """A multiset of ints (value -> occurrences) in constant memory: an inference's ticks take few
    distinct values. Percentiles use numpy's default linear interpolation, step by step as numpy
    does, so they equal ``np.percentile`` of the expanded values."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()

    def add(self, value: int, count: int = 1) -> None:
        self.counts[value] += count

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def percentiles(self, convert: Callable[[int], float | None]) -> dict[str, float | None]:
        """p50/p95/p99/max/mean of ``convert(value)`` over the multiset (Nones when empty or when a
        value cannot be converted)."""
        keys = sorted(self.counts)
        conv = [convert(k) for k in keys]
        none: dict[str, float | None] = {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
        if not keys or any(v is None for v in conv):
            return none
        pairs = sorted(zip((float(v) for v in conv if v is not None), (self.counts[k] for k in keys)))
        values = np.array([v for v, _ in pairs], dtype=np.float64)
        cum = np.cumsum([c for _, c in pairs])
        n = int(cum[-1])

        def at(rank: int) -> float:
            return float(values[int(np.searchsorted(cum, rank + 1))])

        out: dict[str, float | None] = {}
        for q in (50, 95, 99):
            h = (n - 1) * (q / 100)
            if h >= n - 1:
                out[f"p{q}"] = float(values[-1])
                continue
            lo = math.floor(h)
            gamma = h - lo
            a, b = at(lo), at(lo + 1)
            diff = b - a
            out[f"p{q}"] = b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma
        out["max"] = float(values[-1])
        out["mean"] = float(np.dot(values, cum - np.concatenate([[0], cum[:-1]])) / n)
        return out


class Tally:
    """The figures' inputs accumulated record by record in constant memory (counts, not rows), so a
    monitor can run for days; :func:`figures` reduces a list of records to one too."""

    def __init__(self) -> None:
        self.n = 0
        self.ok = 0
        self.ticks = Distribution()
        self.preds: Counter[int] = Counter()
        self.labelled = 0
        self.correct = 0
        self.confusion: Counter[tuple[int, int]] = Counter()
        self.max_label = -1
        self.parity_checked = 0
        self.parity_equal = 0
        self.hist = [0] * CONFIDENCE_BINS
        self.failures: list[dict[str, Any]] = []

    def add(self, rec: Record) -> None:
        self.n += 1
        if not rec.ok:
            self.failures.append({"index": rec.index, "error": rec.error})
            return
        self.ok += 1
        if rec.ticks is not None:
            self.ticks.add(int(rec.ticks))
        pred = rec.pred
        if pred is not None:
            self.preds[pred] += 1
            if rec.label is not None:
                self.labelled += 1
                self.correct += pred == rec.label
                self.confusion[(rec.label, pred)] += 1
                self.max_label = max(self.max_label, rec.label)
        if rec.parity is not None:
            self.parity_checked += 1
            self.parity_equal += rec.parity
        if rec.confidence is not None:
            self.hist[int(min(max(rec.confidence, 0.0), 0.999999) * CONFIDENCE_BINS)] += 1

    def extend(self, records: Iterable[Record]) -> Tally:
        for rec in records:
            self.add(rec)
        return self

    def confusion_matrix(self, n_classes: int) -> list[list[int]]:
        """``m[label][pred]``, ``n_classes`` wide or wider when a label is larger."""
        size = max(n_classes, self.max_label + 1)
        m = [[0] * size for _ in range(size)]
        for (t, p), c in self.confusion.items():
            if 0 <= t < size and 0 <= p < size:
                m[t][p] += c
        return m


# ---------------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class Energy:
    """Energy per inference: the board's power model and, when given, a measured power trace."""

    model_uj: float | None = None
    trace_uj: float | None = None
    trace_windows: int | None = None
    trace_file: str | None = None
    trace_mean_power_mw: float | None = None

    @property
    def source(self) -> str | None:
        return "trace" if self.trace_uj is not None else ("power_model" if self.model_uj is not None else None)

    @property
    def per_inference_uj(self) -> float | None:
        return self.trace_uj if self.trace_uj is not None else self.model_uj

    def to_dict(self) -> dict[str, Any]:
        return {"model_uj": self.model_uj, "trace_uj": self.trace_uj, "trace_windows": self.trace_windows,
                "trace_file": self.trace_file, "trace_mean_power_mw": self.trace_mean_power_mw}


@dataclass(frozen=True)
class Confidence:
    """The device's confidence (classifier: top score; autoencoder: anomaly score) and the host's."""

    what: str
    percentiles: dict[str, float | None]
    reference_p50: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, **self.percentiles, "reference_p50": self.reference_p50}


@dataclass(frozen=True)
class ScoreResult:
    """Every figure of one scored run or monitored session; :meth:`to_dict` is report.json."""

    source: str  # "score" or "monitor"
    board: str | None
    emulated: bool
    model: str | None
    model_sha256: str | None
    firmware_model_sha256: str | None
    firmware_version: str | None
    protocol: int
    model_mismatch: bool
    allow_model_mismatch: bool
    task: str
    samples: int
    samples_ok: int
    failures: list[dict[str, Any]]
    accuracy: float | None
    confusion_matrix: list[list[int]] | None
    roc_auc: float | None
    parity: float | None
    latency_ms: dict[str, float | None]
    latency_source: str
    throughput_ips: float | None
    instructions: int | None
    profile: dict[str, Any] | None
    energy: Energy
    confidence: Confidence
    psi: float | None
    freshness_s: float | None
    max_record_gap_s: float | None
    harvest_s: float | None
    duration_s: float | None
    ram_bytes: int | None
    flash_bytes: int | None
    clock_hz: int
    timer_hz: int
    timer: str | None
    measurement: dict[str, str]
    device: dict[str, Any]
    link: dict[str, Any]
    confidence_hist: list[int]
    predictions: dict[str, int]
    series: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    samples_planned: int | None = None  # samples the run set out to send (score)
    stopped: str | None = None  # why the run ended before sending them all (e.g. a stalled device)

    @property
    def complete(self) -> bool:
        """False when the run stopped early: its figures cover only the samples harvested."""
        return self.stopped is None

    @property
    def success_rate(self) -> float | None:
        return self.samples_ok / self.samples if self.samples else None

    @property
    def inferences_per_second(self) -> float | None:
        """Wall-clock rate of a monitored session."""
        return (self.samples / self.duration_s) if self.duration_s else None

    def to_dict(self) -> dict[str, Any]:
        """report.json: score's keys, or for a monitored session the keys a stream can measure (so
        the same SLO expressions apply) plus the stream's own."""
        if self.source == "monitor":
            return {
                "tinyedge_version": __version__, "source": "monitor", "board": self.board, "emulated": self.emulated,
                "model": self.model, "model_sha256": self.model_sha256,
                "firmware_model_sha256": self.firmware_model_sha256, "model_mismatch": self.model_mismatch,
                "samples": self.samples, "accuracy": self.accuracy, "parity": self.parity,
                "latency_ms": self.latency_ms, "instructions": self.instructions,
                "energy_uj_per_inference": self.energy.per_inference_uj, "ram_bytes": self.ram_bytes,
                "flash_bytes": self.flash_bytes, "clock_hz": self.clock_hz, "timer_hz": self.timer_hz,
                "timer": self.timer, "duration_s": self.duration_s,
                "inferences_per_second": self.inferences_per_second, "confidence_hist": list(self.confidence_hist),
                "predictions": dict(self.predictions), "measurement": dict(self.measurement),
                "device": dict(self.device), "link": dict(self.link),
            }
        return {
            "tinyedge_version": __version__, "board": self.board, "emulated": self.emulated, "model": self.model,
            "model_sha256": self.model_sha256, "firmware_model_sha256": self.firmware_model_sha256,
            "firmware_version": self.firmware_version, "protocol": self.protocol,
            "model_mismatch": self.model_mismatch, "allow_model_mismatch": self.allow_model_mismatch,
            "task": self.task, "complete": self.complete, "stopped": self.stopped,
            "samples_planned": self.samples_planned, "samples": self.samples, "samples_ok": self.samples_ok,
            "success_rate": self.success_rate, "failures": list(self.failures), "accuracy": self.accuracy,
            "confusion_matrix": self.confusion_matrix, "roc_auc": self.roc_auc, "parity": self.parity,
            "latency_ms": dict(self.latency_ms), "latency_source": self.latency_source,
            "throughput_ips": self.throughput_ips, "instructions": self.instructions, "profile": self.profile,
            "energy_uj_per_inference": self.energy.per_inference_uj, "energy_source": self.energy.source,
            "energy": self.energy.to_dict(), "confidence": self.confidence.to_dict(), "psi": self.psi,
            "freshness_s": self.freshness_s, "max_record_gap_s": self.max_record_gap_s, "harvest_s": self.harvest_s,
            "ram_bytes": self.ram_bytes, "flash_bytes": self.flash_bytes, "clock_hz": self.clock_hz,
            "timer_hz": self.timer_hz, "timer": self.timer, "measurement": dict(self.measurement),
            "device": dict(self.device), "link": dict(self.link),
        }


@dataclass(frozen=True)
class Session:
    """Facts of the harvest itself: link counters, how long it took, how hard it tried."""

    link: Mapping[str, Any] = field(default_factory=dict)
    harvest_s: float | None = None
    elapsed_s: float | None = None  # from the start to the report: freshness = elapsed_s - last record's t
    duration_s: float | None = None  # a monitored session's wall-clock length
    max_attempts: int | None = None
    planned: int | None = None  # samples the run set out to send
    stopped: str | None = None  # why it ended before sending them all (None: it did not)


# ---------------------------------------------------------------------------------------- how measured


@dataclass(frozen=True)
class _Facts:
    """What the how-measured texts are written from."""

    source: str
    device: DeviceInfo
    board: Board | None
    timing: Timing
    task: str
    labelled: bool
    trace: TraceEnergy | None
    profile_note: str
    reference_note: str
    conf_what: str
    psi: bool
    max_attempts: int | None
    mismatch: bool
    model_sha256: str | None

    @property
    def cmd(self) -> str:
        """The command that timed one inference."""
        return "te-s" if self.source == "monitor" else "te-infer/te-results"

    @property
    def timer(self) -> str:
        return self.device.timer or "?"


def _how_source(f: _Facts) -> str | None:
    if f.source != "monitor":
        return None
    return ("tinyedge monitor: te-stream N (N back-to-back inferences on the loaded input), one CRC-checked te-s "
            "line per inference; lines lost to corruption are counted as lost, never guessed")


def _how_instructions(f: _Facts) -> str:
    if not f.timing.emulated:
        return "not measured: real hardware counts time, not instructions"
    return (f"median over samples of the ticks of one inference ({f.cmd}) x 1e9 / timer_hz ({f.timing.timer_hz} Hz, "
            f"{f.timer}); under QEMU -icount shift=0 one instruction takes 1 ns of virtual time "
            "(emulator instruction count)")


def _how_latency(f: _Facts) -> str:
    if f.timing.emulated:
        return (f"ESTIMATE from the emulator instruction count, not a measurement: instructions / clock_hz "
                f"({f.timing.clock_hz} Hz), assuming one instruction per cycle on the emulated board")
    timer = "DWT cycle counter" if f.timer == "dwt" else f.timer
    return (f"measured by the device timer: ticks of one inference ({f.cmd.split('/')[0]}) / timer_hz "
            f"({f.timing.timer_hz} Hz, {f.timer}: {timer})")


def _how_throughput(f: _Facts) -> str | None:
    if f.source == "monitor":
        return None
    return "1000 / mean latency_ms (inferences per second back to back, same source as latency)"


def _how_profile(f: _Facts) -> str | None:
    if f.source == "monitor":
        return None
    return f.profile_note or (
        f"te-profile: per-layer {f.timer} ticks of one profiled inference on the last sample's input, converted "
        f"like latency_ms ({'emulator instruction count' if f.timing.emulated else 'device timer'}); the total "
        "includes the profiling overhead")


def _how_energy(f: _Facts) -> str | None:
    if f.board is not None:
        p = f.board.power
        model_text = (f"power model, not a measurement: {f.board.run_power_mw:.3f} mW (run current "
                      f"{f.board.run_current_ma:.3f} mA x {p['voltage_v']} V) x median latency; source: "
                      f"{p.get('source', 'board file')}")
    elif f.source == "monitor":
        return None
    else:
        model_text = f"not estimated: no board file for '{f.device.board}'"
    if f.trace is not None:
        return (f"MEASURED from power trace {Path(f.trace.source).name}: mean over {f.trace.windows} inference "
                f"windows (gpio marker high) of the trapezoidal integral of power ({f.trace.column}); the "
                f"power-model figure is energy.model_uj ({model_text})")
    return model_text


def _how_accuracy(f: _Facts) -> str:
    if f.task == ANOMALY_DETECTION:
        return ("not applicable: anomaly detection is scored by roc_auc of the reconstruction error "
                "(mean squared error of input and dequantized output, as MLPerf Tiny's AD benchmark)")
    if f.source == "monitor":
        return ("top-1 over the labelled inputs sent with --data" if f.labelled
                else "not measured: no labelled inputs (pass --data) ")
    if f.task == CLASSIFICATION:
        return "top-1: arg-max of the device's outputs vs y; confusion matrix rows are labels"
    return "not measured: no labels, or a single-output model"


def _how_parity(f: _Facts) -> str | None:
    if f.source == "monitor":
        return None
    return f.reference_note or (
        "fraction of samples whose outputs equal tflite_micro's (tinyedge.oracle.run_tflm) exactly (float32 "
        "outputs: bit for bit)")


def _how_psi(f: _Facts) -> str | None:
    if f.source == "monitor":
        return None
    return (f"population stability index of the device's {f.conf_what} against the host reference run "
            f"(tflite_micro on the same inputs), 10 reference-decile bins" if f.psi
            else "not measured: no host reference run")


def _score_only(text: str | Callable[[_Facts], str]) -> Callable[[_Facts], str | None]:
    def how(f: _Facts) -> str | None:
        if f.source == "monitor":
            return None
        return text(f) if callable(text) else text
    return how


#: Figure (report.json key) -> how it was obtained (None: the figure is not in this report). The
#: order is the order of report.json's "measurement" mapping.
HOW: dict[str, Callable[[_Facts], str | None]] = {
    "source": _how_source,
    "instructions": _how_instructions,
    "latency_ms": _how_latency,
    "throughput_ips": _how_throughput,
    "profile": _how_profile,
    "energy_uj_per_inference": _how_energy,
    "accuracy": _how_accuracy,
    "parity": _how_parity,
    "psi": _how_psi,
    "success_rate": _score_only(lambda f: (
        "samples with an accepted record (CRC-checked te-load acknowledgement and te-results whose input CRC "
        f"matches) / samples sent; a sample fails after {f.max_attempts} attempts")),
    "freshness_s": _score_only("seconds between the last accepted record and the report; max_record_gap_s the "
                               "longest wait"),
    "memory": _score_only("from te-info: flash and RAM between the linker symbols __te_*_start and __te_*_end"),
    "model": _score_only(lambda f: (
        f"MISMATCH allowed (--allow-model-mismatch): firmware model sha256 {f.device.model_sha256}, scored against "
        f"{f.model_sha256}") if f.mismatch else ""),
}


def how_measured(facts: _Facts) -> dict[str, str]:
    """The "how each figure was obtained" mapping of a report."""
    out: dict[str, str] = {}
    for key, how in HOW.items():
        text = how(facts)
        if text:
            out[key] = text
    return out


# ---------------------------------------------------------------------------------------- figures


def _profile_figures(prof: Mapping[str, Any], timing: Timing) -> dict[str, Any]:
    """te-profile's per-layer ticks with milliseconds and shares."""
    total, sum_ticks = int(prof["total_ticks"]), int(prof["sum_ticks"])
    layers = [{**la, "ms": timing.latency_ms(la["ticks"]), "share": (la["ticks"] / sum_ticks) if sum_ticks else 0.0}
              for la in prof["layers"]]
    return {"layers": layers, "total_ticks": total, "sum_ticks": sum_ticks, "total_ms": timing.latency_ms(total)}


def figures(
    records: Sequence[Record] | Tally,
    device: DeviceInfo,
    board: Board | None,
    *,
    model: ModelFacts | None = None,
    source: str = "score",
    inputs: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    reference_note: str = "",
    trace: TraceEnergy | None = None,
    profile: Mapping[str, Any] | None = None,
    profile_note: str = "not measured (profile disabled)",
    session: Session | None = None,
    allow_model_mismatch: bool = False,
) -> ScoreResult:
    """Every figure of a run, from its records (a list, or a :class:`Tally` of them).

    ``inputs`` (the float inputs, one row per record) and ``reference`` (tflite_micro's int8 outputs on
    them) give the per-sample figures only a list of records has: confidence, ROC AUC and PSI;
    a Tally gives the constant-memory ones (latency, instructions, accuracy, parity, energy).
    ``profile`` is te-profile's answer; ``trace`` a measured power trace. Pure: no I/O, no clock.
    """
    model = model or ModelFacts()
    session = session or Session()
    timing = device.timing(board)
    io = model.io
    task = detect_task(io.input_size, io.output_size) if io is not None else detect_task(device.input_bytes,
                                                                                          device.output_count)
    rows = None if isinstance(records, Tally) else list(records)
    tally = records if isinstance(records, Tally) else Tally().extend(rows or [])

    latency = tally.ticks.percentiles(timing.latency_ms)
    ins = tally.ticks.percentiles(lambda t: timing.instructions_f(t))["p50"]
    instructions = int(round(ins)) if ins is not None else None
    throughput = 1e3 / latency["mean"] if latency["mean"] else None
    accuracy = tally.correct / tally.labelled if tally.labelled and task != ANOMALY_DETECTION else None
    confusion = (tally.confusion_matrix(io.output_size if io is not None else device.output_count)
                 if task == CLASSIFICATION and tally.labelled else None)
    parity = tally.parity_equal / tally.parity_checked if tally.parity_checked else None

    # per-sample figures: need the rows
    good = [r for r in rows or [] if r.ok]
    dev_conf = ref_conf = np.zeros(0)
    roc_auc = None
    conf_what = ("top score (dequantized output of the arg-max class)" if task == CLASSIFICATION else
                 "anomaly score (reconstruction MSE)" if task == ANOMALY_DETECTION else "output")
    outs = (np.array([r.out for r in good], dtype=io.output_type if io is not None else None)
            if good and all(r.out is not None for r in good) else None)
    labels = np.array([r.label for r in good]) if good and all(r.label is not None for r in good) else None
    if io is not None and task == CLASSIFICATION:
        if outs is not None:
            dev_conf = metrics.dequantize(outs.max(axis=1), io.output_scale, io.output_zero_point)
        if reference is not None:
            ref_conf = metrics.dequantize(reference.max(axis=1), io.output_scale, io.output_zero_point)
    elif io is not None and task == ANOMALY_DETECTION and inputs is not None:
        if outs is not None:
            dev_conf = metrics.reconstruction_errors(inputs[[r.index for r in good]], outs, io.output_scale,
                                                     io.output_zero_point)
            if labels is not None:
                roc_auc = metrics.roc_auc(labels, dev_conf)
        if reference is not None:
            ref_conf = metrics.reconstruction_errors(inputs, reference, io.output_scale, io.output_zero_point)
    psi = metrics.psi(ref_conf, dev_conf) if ref_conf.size and dev_conf.size else None
    stamps = np.array([r.t for r in good if r.t is not None], dtype=np.float64)
    freshness = float(session.elapsed_s - stamps.max()) if stamps.size and session.elapsed_s is not None else None
    max_gap = float(np.max(np.diff(np.concatenate([[0.0], stamps])))) if stamps.size else None
    lat_series = (np.array([timing.latency_ms(r.ticks) for r in good if r.ticks is not None], dtype=np.float64)
                  if timing.measures_latency else np.zeros(0))

    energy = Energy(
        model_uj=(model_energy_uj(board.run_power_mw, latency["p50"])
                  if board is not None and latency["p50"] is not None else None),
        trace_uj=trace.mean_uj if trace is not None else None,
        trace_windows=trace.windows if trace is not None else None,
        trace_file=str(trace.source) if trace is not None else None,
        trace_mean_power_mw=trace.mean_power_mw if trace is not None else None,
    )
    fw_sha = device.model_sha256 or None
    sha = model.sha256 or fw_sha
    mismatch = bool(model.sha256 and fw_sha and fw_sha.lower() != model.sha256.lower())
    facts = _Facts(source=source, device=device, board=board, timing=timing, task=task, labelled=bool(tally.labelled),
                   trace=trace, profile_note=profile_note, reference_note=reference_note, conf_what=conf_what,
                   psi=psi is not None, max_attempts=session.max_attempts, mismatch=mismatch, model_sha256=sha)
    return ScoreResult(
        source=source, board=device.board, emulated=timing.emulated,
        model=model.name or device.model, model_sha256=sha, firmware_model_sha256=fw_sha,
        firmware_version=device.version, protocol=device.protocol, model_mismatch=mismatch,
        allow_model_mismatch=allow_model_mismatch, task=task, samples=tally.n, samples_ok=tally.ok,
        failures=list(tally.failures), accuracy=accuracy, confusion_matrix=confusion, roc_auc=roc_auc, parity=parity,
        latency_ms=latency,
        latency_source="emulator instruction count" if timing.emulated else f"device timer ({device.timer or '?'})",
        throughput_ips=throughput, instructions=instructions,
        profile=_profile_figures(profile, timing) if profile is not None else None,
        energy=energy,
        confidence=Confidence(conf_what, metrics.percentiles(dev_conf), metrics.percentiles(ref_conf)["p50"]),
        psi=psi, freshness_s=freshness, max_record_gap_s=max_gap, harvest_s=session.harvest_s,
        duration_s=session.duration_s, ram_bytes=device.ram_bytes, flash_bytes=device.flash_bytes,
        clock_hz=timing.clock_hz, timer_hz=timing.timer_hz,
        timer=(device.timer or "?") if source == "score" else device.timer,
        measurement=how_measured(facts), device=dict(device.raw), link=dict(session.link),
        confidence_hist=list(tally.hist), predictions={str(k): tally.preds[k] for k in sorted(tally.preds)},
        series={"latency_ms": lat_series, "confidence": dev_conf, "confidence_reference": ref_conf},
        samples_planned=session.planned, stopped=session.stopped,
    )
