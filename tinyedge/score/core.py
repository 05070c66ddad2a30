"""Stream a labelled test set to a device and score it: accuracy, parity, latency, energy, drift, memory.

The harvest survives a bad link: every sample is loaded with a CRC (te-load) and its result carries
the CRC of the input it ran on (te-infer), so a record is accepted only when both match. A corrupt
or missing reply is asked for again (te-results is idempotent), a lost ``m-ready`` costs a resync,
and a port that disappears is reopened with backoff; the harvest then resumes at the first sample
without an accepted record, so nothing is counted twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import numpy as np

from .. import __version__
from ..data import fit_shape, load_npz, quantize_inputs
from ..errors import BoardError, DataError, LinkError, ModelError
from ..link import protocol as P
from ..link.dut import DutClient
from ..link.transport import ConnectionLost, Transport
from . import metrics
from .energy import TraceEnergy, integrate_trace, model_energy_uj
from .report import Report
from .slo import Slo, evaluate, parse_slos

log = logging.getLogger("tinyedge.score")

T = TypeVar("T")

#: Attempts per sample before it is recorded as failed (each after a resync or reconnect).
MAX_ATTEMPTS = 8


class ModelMismatchError(LinkError):
    """The firmware on the device was generated from a different model than the one given."""


class HarvestAborted(LinkError):
    """The port is gone for good (reconnecting failed): the harvest stops instead of failing every sample."""


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


def model_io(model_bytes: bytes, path: Path) -> ModelIO:
    """Input/output shapes and quantization from the model reader; ModelError unless int8 in and out."""
    from ..model import read_model_bytes

    g = read_model_bytes(model_bytes, name=path.name)
    if g.input.dtype != "INT8" or g.output.dtype != "INT8":
        raise ModelError(
            f"{path} has a {g.input.dtype.lower()} input and a {g.output.dtype.lower()} output; "
            "tinyedge scores int8 models",
            "quantize it to full-integer int8 (tinyedge quantize)",
        )
    (isc, izp), (osc, ozp) = g.input.q(), g.output.q()
    shape = tuple(int(d) for d in g.input.shape)
    return ModelIO(shape, isc, izp, int(np.prod(shape[1:])) if len(shape) > 1 else int(np.prod(shape)),
                   osc, ozp, int(np.prod(g.output.shape[1:])) if len(g.output.shape) > 1 else int(np.prod(g.output.shape)))


def _load_board(board_id: str):
    from ..boards import get_board

    try:
        return get_board(board_id)
    except BoardError as exc:
        log.warning("no board file for %s (%s): energy is not estimated", board_id, exc)
        return None


def _oracle(model_bytes: bytes, xq: np.ndarray) -> tuple[np.ndarray | None, str]:
    try:
        from ..oracle import run_tflm

        return np.asarray(run_tflm(model_bytes, xq)).reshape(len(xq), -1).astype(np.int8), ""
    except Exception as exc:  # the oracle is a measurement aid: scoring goes on without it
        log.warning("tflite_micro could not run the model: %s", exc)
        return None, f"not measured: tflite_micro could not run the model ({exc})"


class _Harvester:
    """Runs device steps with recovery: resync after a garbled exchange, reconnect after a lost port."""

    def __init__(self, client: DutClient, *, max_attempts: int, reconnect_wait: float, ready_timeout: float) -> None:
        self.client = client
        self.max_attempts = max_attempts
        self.reconnect_wait = reconnect_wait
        self.ready_timeout = ready_timeout

    def recover(self, exc: LinkError) -> None:
        """After ``exc``: reconnect when the port went away, else resynchronise (which may itself find
        the port gone)."""
        for _ in range(3):
            try:
                if isinstance(exc, ConnectionLost):
                    log.warning("%s; reconnecting", exc.problem)
                    try:
                        self.client.reconnect(self.reconnect_wait, self.ready_timeout)
                    except ConnectionLost:
                        raise
                    except LinkError as fatal:
                        raise HarvestAborted(fatal.problem, fatal.hint) from None
                else:
                    self.client.resync()
                return
            except ConnectionLost as again:
                exc = again
        raise exc

    def run(self, what: str, step: Callable[[], T]) -> T:
        """``step()`` with up to ``max_attempts`` tries; the last error propagates."""
        last: LinkError | None = None
        for attempt in range(self.max_attempts):
            try:
                return step()
            except (ModelMismatchError, HarvestAborted):
                raise
            except LinkError as exc:
                last = exc
                log.info("%s, attempt %d: %s", what, attempt + 1, exc.problem)
                self.recover(exc)
        assert last is not None
        raise last


def score(
    port: str | Transport | DutClient,
    data: str | Path,
    model: str | Path,
    *,
    out_dir: str | Path,
    limit: int | None = None,
    slos: Iterable[str] = (),
    allow_model_mismatch: bool = False,
    baud: int | None = None,
    progress: bool = False,
    ready_timeout: float = 10.0,
    power_trace: str | Path | None = None,
    voltage_v: float | None = None,
    timeouts: dict[str, float] | None = None,
    retries: int = 10,
    max_attempts: int = MAX_ATTEMPTS,
    reconnect_wait: float = 30.0,
    profile: bool = True,
    step_summary: bool = True,
) -> Report:
    """Score the firmware on ``port`` with the labelled ``data`` (.npz: x, y) for ``model`` (.tflite).

    ``port`` is a pyserial URL (opened and closed here), or an already-open Transport/DutClient
    (left open: the caller owns it). Writes raw.log (every byte received, before parsing),
    records.jsonl (one accepted record per sample, in order), report.json, report.md, summary.md,
    junit.xml and report.html into ``out_dir``. Raises ModelMismatchError when the firmware was built
    from another model, unless ``allow_model_mismatch`` (recorded in the report).

    ``power_trace`` (CSV, see :mod:`tinyedge.score.energy`) makes energy a measurement instead of the
    board's power model; ``timeouts`` overrides per-command timeouts; ``retries`` re-asks per te-
    command; ``max_attempts`` per sample before it counts as a failed inference.
    """
    parsed_slos: list[Slo] = parse_slos(slos)  # fail on a typo before any device time is spent
    out_dir = Path(out_dir)
    model = Path(model)
    try:
        model_bytes = model.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model {model}: {exc.strerror}", "check the path to the .tflite") from None
    sha = hashlib.sha256(model_bytes).hexdigest()
    io = model_io(model_bytes, model)
    trace = integrate_trace(power_trace, voltage_v=voltage_v) if power_trace is not None else None
    x, y = load_npz(data)
    if limit is not None:
        x, y = x[:limit], (y[:limit] if y is not None else None)
    if len(x) == 0:
        raise DataError(f"{data} has no samples", "pass a data file with at least one row in x")
    x = fit_shape(x, io.input_shape[1:], data)
    xq = quantize_inputs(x, io.input_scale, io.input_zero_point)
    oracle_out, oracle_note = _oracle(model_bytes, xq)

    out_dir.mkdir(parents=True, exist_ok=True)
    raw_log = out_dir / "raw.log"
    raw_log.write_bytes(b"")
    own = isinstance(port, str)
    if isinstance(port, DutClient):
        client = port
    else:
        transport = Transport(port, baud=baud, connect_timeout=5.0) if own else port
        client = DutClient(transport)
    saved = (client.retries, dict(client.timeouts))
    client.retries = max(client.retries, retries)
    client.timeouts.update(timeouts or {})
    client.transport.add_raw_log(raw_log)
    try:
        if not isinstance(port, DutClient):
            client.wait_ready(ready_timeout)
        harvester = _Harvester(client, max_attempts=max_attempts, reconnect_wait=reconnect_wait,
                               ready_timeout=ready_timeout)
        report = _score_on_device(client, harvester, io, x, xq, y, oracle_out, oracle_note, model, sha, out_dir,
                                  allow_model_mismatch, progress, trace, profile)
    finally:
        client.retries, client.timeouts = saved[0], saved[1]
        if own:
            client.close()
        else:
            client.transport.remove_raw_logs()
    report.slo_results = evaluate(parsed_slos, report.data)
    report.data["slo"] = [r.as_dict() for r in report.slo_results]
    report.write(out_dir, step_summary=step_summary)
    return report


def _score_on_device(
    client: DutClient,
    harvester: _Harvester,
    io: ModelIO,
    x: np.ndarray,
    xq: np.ndarray,
    y: np.ndarray | None,
    oracle_out: np.ndarray | None,
    oracle_note: str,
    model: Path,
    sha: str,
    out_dir: Path,
    allow_model_mismatch: bool,
    progress: bool,
    trace: TraceEnergy | None,
    do_profile: bool,
) -> Report:
    info = harvester.run("te-info", client.info)
    fw_sha = str(info["model_sha256"])
    mismatch = fw_sha.lower() != sha
    if mismatch and not allow_model_mismatch:
        raise ModelMismatchError(
            f"the firmware at {client.url} was generated from model sha256 {fw_sha} "
            f"({info.get('model', '?')}), but {model.name} has sha256 {sha}",
            "flash firmware generated from this model (tinyedge generate/build), pass the model it was "
            "built from, or add --allow-model-mismatch to score anyway (recorded in the report)",
        )
    if int(info["input_bytes"]) != io.input_size or int(info["output_count"]) != io.output_size:
        raise ModelMismatchError(
            f"the firmware at {client.url} takes {info['input_bytes']} input bytes and gives "
            f"{info['output_count']} outputs; {model.name} takes {io.input_size} and gives {io.output_size}",
            "score with the model the firmware was generated from",
        )
    board = _load_board(str(info["board"]))
    emulated = bool(info["emulated"])
    timer_hz = int(info["timer_hz"])
    clock_hz = int(info.get("clock_hz") or (board.clock_hz if board else 0))
    autoencoder = io.output_size == io.input_size and io.output_size > 1
    classifier = not autoencoder and io.output_size > 1
    task = "anomaly_detection" if autoencoder else "classification" if classifier else "other"
    protocol = int(info.get("protocol", 1))

    def to_ms(ticks: np.ndarray | float) -> np.ndarray | float:
        """Ticks -> ms: instruction count / clock under an emulator, timer ticks / timer_hz on hardware."""
        if emulated:
            return (np.asarray(ticks, dtype=np.float64) * 1e9 / timer_hz) / clock_hz * 1e3 if clock_hz else ticks * 0.0
        return np.asarray(ticks, dtype=np.float64) / timer_hz * 1e3

    def sample_step(i: int) -> Any:
        data = np.ascontiguousarray(xq[i]).astype(np.int8).tobytes()
        if protocol >= 2:
            def step() -> Any:
                client.load(data)
                return client.te_infer(P.crc16_ccitt_false(data))
        else:
            def step() -> Any:
                client.load_input(data)
                client.infer(1, 0)
                return client.te_results()
        return step

    n = len(xq)
    ticks = np.zeros(n, dtype=np.int64)
    outs = np.zeros((n, io.output_size), dtype=np.int8)
    ok = np.zeros(n, dtype=bool)
    received_at = np.full(n, np.nan)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   disable=not progress, transient=True)
    start = time.time()
    failures: list[dict[str, Any]] = []
    with bar, open(out_dir / "records.jsonl", "w") as records:
        task_id = bar.add_task("score", total=n)
        for i in range(n):  # the next sample without an accepted record: resume point after any failure
            rec: dict[str, Any] = {"index": i}
            try:
                res = harvester.run(f"sample {i}", sample_step(i))
            except LinkError as exc:
                if isinstance(exc, (ModelMismatchError, HarvestAborted)):
                    raise
                rec.update(ok=False, error=exc.problem)
                failures.append({"index": i, "error": exc.problem})
                log.warning("sample %d failed: %s", i, exc.problem)
            else:
                ticks[i], outs[i], ok[i] = res.ticks, res.out, True
                received_at[i] = time.time()
                rec.update(ok=True, ticks=int(res.ticks), t=round(received_at[i] - start, 6))
                if emulated:
                    rec["instructions"] = int(round(res.ticks * 1e9 / timer_hz))
                rec["latency_ms"] = float(to_ms(res.ticks)) if (clock_hz or not emulated) else None
                if y is not None:
                    rec["label"] = int(y[i])
                if classifier:
                    rec["pred"] = int(np.argmax(res.out))
                    if y is not None:
                        rec["correct"] = rec["pred"] == int(y[i])
                if oracle_out is not None:
                    rec["parity"] = bool(np.array_equal(res.out, oracle_out[i]))
                rec["out"] = [int(v) for v in res.out]
            records.write(json.dumps(rec) + "\n")
            records.flush()
            bar.advance(task_id)
    harvest_s = time.time() - start

    prof = None
    prof_note = "not measured (profile disabled)"
    if do_profile and ok.any():
        last_ok = int(np.flatnonzero(ok)[-1])
        try:
            data_last = np.ascontiguousarray(xq[last_ok]).astype(np.int8).tobytes()
            if protocol >= 2:
                harvester.run("te-load for te-profile", lambda: client.load(data_last))
            prof = harvester.run("te-profile", lambda: client.profile(layers=int(info.get("layers", 0)) or None))
            prof_note = ""
        except LinkError as exc:
            prof_note = f"not measured: {exc.problem}"

    # ------------------------------------------------------------------ figures
    good = ok
    n_ok = int(good.sum())
    tk = ticks[good]
    if emulated:
        instr = tk.astype(np.float64) * 1e9 / timer_hz
        lat_ms = np.asarray(to_ms(tk)) if clock_hz else np.zeros(0)
        instructions: int | None = int(round(float(np.median(instr)))) if n_ok else None
    else:
        lat_ms = np.asarray(to_ms(tk))
        instructions = None
    latency = metrics.percentiles(lat_ms)
    throughput = 1e3 / latency["mean"] if latency["mean"] else None

    y_ok = y[good] if y is not None else None
    out_ok = outs[good]
    accuracy = confusion = roc_auc = None
    dev_conf = ref_conf = np.zeros(0)
    if classifier:
        pred = np.argmax(out_ok, axis=1)
        if y_ok is not None and n_ok:
            accuracy = float(np.mean(pred == y_ok))
            confusion = metrics.confusion_matrix(y_ok, pred, max(io.output_size, int(y_ok.max()) + 1))
        dev_conf = metrics.dequantize(out_ok.max(axis=1), io.output_scale, io.output_zero_point) if n_ok else dev_conf
        if oracle_out is not None:
            ref_conf = metrics.dequantize(oracle_out.max(axis=1), io.output_scale, io.output_zero_point)
        conf_what = "top score (dequantized output of the arg-max class)"
    elif autoencoder:
        errors = metrics.reconstruction_errors(x[good], out_ok, io.output_scale, io.output_zero_point)
        dev_conf = errors
        if y_ok is not None and n_ok:
            roc_auc = metrics.roc_auc(y_ok, errors)
        if oracle_out is not None:
            ref_conf = metrics.reconstruction_errors(x, oracle_out, io.output_scale, io.output_zero_point)
        conf_what = "anomaly score (reconstruction MSE)"
    else:
        conf_what = "output"
    parity = (float(np.mean(np.all(out_ok == oracle_out[good], axis=1))) if oracle_out is not None and n_ok
              else None)
    psi = metrics.psi(ref_conf, dev_conf) if ref_conf.size and dev_conf.size else None
    stamps = received_at[good]
    now = time.time()
    freshness = float(now - np.nanmax(stamps)) if n_ok else None
    max_gap = float(np.max(np.diff(np.concatenate([[start], stamps])))) if n_ok else None

    energy_model = (model_energy_uj(board.run_power_mw, latency["p50"])
                    if board is not None and latency["p50"] is not None else None)
    energy_trace = trace.mean_uj if trace is not None else None
    energy_source = "trace" if trace is not None else ("power_model" if energy_model is not None else None)
    energy = energy_trace if trace is not None else energy_model

    profile_data = None
    if prof is not None:
        total = int(prof["total_ticks"])  # type: ignore[arg-type]
        layers = [{**la, "ms": float(to_ms(la["ticks"])) if (clock_hz or not emulated) else None,
                   "share": (la["ticks"] / prof["sum_ticks"]) if prof["sum_ticks"] else 0.0}  # type: ignore[operator]
                  for la in prof["layers"]]  # type: ignore[union-attr]
        profile_data = {"layers": layers, "total_ticks": total, "sum_ticks": int(prof["sum_ticks"]),  # type: ignore[arg-type]
                        "total_ms": float(to_ms(total)) if (clock_hz or not emulated) else None}

    timer = info.get("timer", "?")
    m: dict[str, str] = {}
    if emulated:
        m["instructions"] = (
            f"median over samples of the ticks of one inference (te-infer/te-results) x 1e9 / timer_hz "
            f"({timer_hz} Hz, {timer}); under QEMU -icount shift=0 one instruction takes 1 ns of virtual time "
            f"(emulator instruction count)")
        m["latency_ms"] = (
            f"ESTIMATE from the emulator instruction count, not a measurement: instructions / clock_hz "
            f"({clock_hz} Hz), assuming one instruction per cycle on the emulated board")
    else:
        m["instructions"] = "not measured: real hardware counts time, not instructions"
        m["latency_ms"] = (f"measured by the device timer: ticks of one inference (te-infer) / timer_hz "
                           f"({timer_hz} Hz, {timer}: {'DWT cycle counter' if timer == 'dwt' else timer})")
    m["throughput_ips"] = "1000 / mean latency_ms (inferences per second back to back, same source as latency)"
    m["profile"] = prof_note or (
        f"te-profile: per-layer {timer} ticks of one profiled inference on the last sample's input, "
        f"converted like latency_ms ({'emulator instruction count' if emulated else 'device timer'}); the total "
        f"includes the profiling overhead")
    if board is not None:
        p = board.power
        model_text = (f"power model, not a measurement: {board.run_power_mw:.3f} mW (run current "
                      f"{board.run_current_ma:.3f} mA x {p['voltage_v']} V) x median latency; source: "
                      f"{p.get('source', 'board file')}")
    else:
        model_text = f"not estimated: no board file for '{info['board']}'"
    if trace is not None:
        m["energy_uj_per_inference"] = (
            f"MEASURED from power trace {Path(trace.source).name}: mean over {trace.windows} inference windows "
            f"(gpio marker high) of the trapezoidal integral of power ({trace.column}); the power-model figure "
            f"is energy.model_uj ({model_text})")
    else:
        m["energy_uj_per_inference"] = model_text
    if classifier:
        m["accuracy"] = "top-1: arg-max of the device's int8 outputs vs y; confusion matrix rows are labels"
    elif autoencoder:
        m["accuracy"] = ("not applicable: anomaly detection is scored by roc_auc of the reconstruction error "
                         "(mean squared error of input and dequantized output, as MLPerf Tiny's AD benchmark)")
    else:
        m["accuracy"] = "not measured: no labels, or a single-output model"
    m["parity"] = oracle_note or (
        "fraction of samples whose int8 outputs equal tflite_micro's (tinyedge.oracle.run_tflm) exactly")
    m["psi"] = (f"population stability index of the device's {conf_what} against the host reference run "
                f"(tflite_micro on the same inputs), 10 reference-decile bins" if psi is not None
                else "not measured: no host reference run")
    m["success_rate"] = (f"samples with an accepted record (CRC-checked te-load acknowledgement and te-results "
                         f"whose input CRC matches) / samples sent; a sample fails after {harvester.max_attempts} "
                         f"attempts")
    m["freshness_s"] = "seconds between the last accepted record and the report; max_record_gap_s the longest wait"
    m["memory"] = "from te-info: flash and RAM between the linker symbols __te_*_start and __te_*_end"
    if mismatch:
        m["model"] = f"MISMATCH allowed (--allow-model-mismatch): firmware model sha256 {fw_sha}, scored against {sha}"

    stats = client.parser.stats
    cnt = client.counters
    data = {
        "tinyedge_version": __version__,
        "board": str(info["board"]),
        "emulated": emulated,
        "model": model.name,
        "model_sha256": sha,
        "firmware_model_sha256": fw_sha,
        "firmware_version": info.get("version"),
        "protocol": protocol,
        "model_mismatch": mismatch,
        "allow_model_mismatch": allow_model_mismatch,
        "task": task,
        "samples": n,
        "samples_ok": n_ok,
        "success_rate": n_ok / n,
        "failures": failures,
        "accuracy": accuracy,
        "confusion_matrix": confusion,
        "roc_auc": roc_auc,
        "parity": parity,
        "latency_ms": latency,
        "latency_source": "emulator instruction count" if emulated else f"device timer ({timer})",
        "throughput_ips": throughput,
        "instructions": instructions,
        "profile": profile_data,
        "energy_uj_per_inference": energy,
        "energy_source": energy_source,
        "energy": {"model_uj": energy_model, "trace_uj": energy_trace,
                   "trace_windows": trace.windows if trace else None,
                   "trace_file": str(trace.source) if trace else None,
                   "trace_mean_power_mw": trace.mean_power_mw if trace else None},
        "confidence": {"what": conf_what, **{k: v for k, v in metrics.percentiles(dev_conf).items()},
                       "reference_p50": metrics.percentiles(ref_conf)["p50"]},
        "psi": psi,
        "freshness_s": freshness,
        "max_record_gap_s": max_gap,
        "harvest_s": harvest_s,
        "ram_bytes": int(info.get("ram_bytes", 0)) or None,
        "flash_bytes": int(info.get("flash_bytes", 0)) or None,
        "clock_hz": clock_hz,
        "timer_hz": timer_hz,
        "timer": timer,
        "measurement": m,
        "device": {k: v for k, v in info.items()},
        "link": {"url": client.url, "corrupt_lines": stats.corrupt, "unknown_lines": stats.unknown,
                 "truncated_lines": stats.truncated, "retries": cnt.retries, "timeouts": cnt.timeouts,
                 "resyncs": cnt.resyncs, "reconnects": cnt.reconnects,
                 "bytes_in": getattr(client.transport, "bytes_in", None)},
    }
    series = {"latency_ms": lat_ms, "confidence": dev_conf, "confidence_reference": ref_conf}
    return Report(data, out_dir=out_dir, series=series)
