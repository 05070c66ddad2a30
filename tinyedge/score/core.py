"""Stream a labelled test set to a device and score it: accuracy, parity, latency, energy, drift, memory.

The harvest survives a bad link: every sample is loaded with a CRC (te-load) and its result carries
the CRC of the input it ran on (te-infer), so a record is accepted only when both match. A corrupt
or missing reply is asked for again (te-results is idempotent), a lost ``m-ready`` costs a resync,
and a port that disappears is reopened with backoff; the harvest then resumes at the first sample
without an accepted record, so nothing is counted twice.

The harvest is bounded: a device that sends no valid byte for the stall deadline (``stall_timeout``;
by default :data:`STALL_FACTOR` x the slowest sample so far, between :data:`STALL_MIN_S` and
:data:`STALL_MAX_S`) is resynchronised or reconnected, and when that does not bring it back within
half the deadline again the run stops with :class:`~tinyedge.errors.DeviceStalled` (exit code 3),
after writing the report of the samples harvested so far, marked incomplete.

The flow: read the inputs (model, data, trace) → te-info and its checks → harvest (one
:class:`~tinyedge.score.figures.Record` per sample) → te-profile → :func:`~tinyedge.score.figures.figures`
→ the writers of :mod:`.report` → the SLO gate.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .. import oracle
from ..boards import Board, get_board
from ..data import check_labels, fit_shape, load_npz
from ..errors import DataError, DeviceStalled, LinkError, ModelError
from ..link import protocol as P
from ..link.dut import DutClient, TeResults
from ..link.transport import ConnectionLost, Transport
from ..model import Graph, read_model_bytes
from .energy import TraceEnergy, integrate_trace
from .figures import (
    ANOMALY_DETECTION,
    CLASSIFICATION,
    DeviceInfo,
    ModelFacts,
    ModelIO,
    Record,
    ScoreResult,
    Session,
    Timing,
    detect_task,
    figures,
    graph_io,
    lookup_board,
)
from .report import Report
from .slo import Slo, evaluate, parse_slos

log = logging.getLogger("tinyedge.score")

T = TypeVar("T")

#: Attempts per sample before it is recorded as failed (each after a resync or reconnect).
MAX_ATTEMPTS = 8
#: The default stall deadline: STALL_FACTOR x the slowest sample so far, clamped to [STALL_MIN_S, STALL_MAX_S]
#: (STALL_MAX_S until the first sample is in).
STALL_FACTOR = 10.0
STALL_MIN_S = 10.0
STALL_MAX_S = 60.0


def default_stall_timeout(slowest_s: float | None) -> float:
    """The stall deadline when none is given: a small multiple of the slowest answer seen, at most 60 s."""
    if slowest_s is None:
        return STALL_MAX_S
    return min(STALL_MAX_S, max(STALL_MIN_S, STALL_FACTOR * slowest_s))


class ModelMismatchError(LinkError):
    """The firmware on the device was generated from a different model than the one given."""


class BoardMismatchError(LinkError):
    """The device says it is another board than the one given."""


class HarvestAborted(LinkError):
    """The port is gone for good (reconnecting failed): the harvest stops instead of failing every sample."""


def _oracle(model_bytes: bytes, xq: np.ndarray,
            out_type: type[np.number[Any]] = np.int8) -> tuple[np.ndarray | None, str]:
    """tflite_micro's outputs (int8, int16 or float32 as the model's output) on ``xq`` (the host reference), or
    None and why not."""
    try:
        return np.asarray(oracle.run_tflm(model_bytes, xq)).reshape(len(xq), -1).astype(out_type), ""
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
                    except (ConnectionLost, DeviceStalled):
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
            except (ModelMismatchError, HarvestAborted, DeviceStalled):
                raise
            except LinkError as exc:
                last = exc
                log.info("%s, attempt %d: %s", what, attempt + 1, exc.problem)
                self.recover(exc)
        assert last is not None
        raise last


def read_model(model: Graph | str | Path) -> Graph:
    """The model to score: an in-memory Graph as is, or a .tflite read (ModelError when unreadable)."""
    if isinstance(model, Graph):
        return model
    path = Path(model)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc.strerror}", "check the path to the .tflite") from None
    return read_model_bytes(buf, name=path.name)


def model_io(model_bytes: bytes, path: Path) -> ModelIO:
    """Input/output shapes and quantization from the model reader; ModelError unless int8 in and out."""
    return graph_io(read_model_bytes(model_bytes, name=path.name), path)


@dataclass(frozen=True)
class Inputs:
    """The test set as the device gets it: float ``x``, its quantization ``xq`` (int8, or int16 for an int16
    input; float32 ``x`` itself for a float32 input), labels ``y``."""

    x: np.ndarray
    xq: np.ndarray
    y: np.ndarray | None


def read_inputs(data: str | Path, io: ModelIO, limit: int | None, *, allow_nonfinite: bool = False) -> Inputs:
    """The labelled test set, cut to ``limit``, shaped and quantized for the model (DataError when unusable:
    NaN/inf unless ``allow_nonfinite``, labels outside the model's classes, see :mod:`tinyedge.data`)."""
    x, y = load_npz(data, allow_nonfinite=allow_nonfinite)
    task = detect_task(io.input_size, io.output_size)
    check_labels(y, data, num_classes=io.output_size if task == CLASSIFICATION else None,
                 anomaly=task == ANOMALY_DETECTION)
    if limit is not None:
        x, y = x[:limit], (y[:limit] if y is not None else None)
    if len(x) == 0:
        raise DataError(f"{data} has no samples", "pass a data file with at least one row in x")
    x = fit_shape(x, io.input_shape[1:], data)
    return Inputs(x, io.device_inputs(x), y)


def input_bytes(row: np.ndarray) -> bytes:
    """One quantized input (a row of ``Inputs.xq``) as the device takes it: one byte per int8 value, two
    (little-endian) per int16 value, four (IEEE-754, little-endian) per float32 value."""
    return np.ascontiguousarray(row).astype(row.dtype.newbyteorder("<")).tobytes()


def same_outputs(device: np.ndarray, reference: np.ndarray) -> bool:
    """Parity of one sample: equal values, and for float32 outputs equal bits (NaN equals the same NaN,
    -0.0 differs from 0.0: the kernels are bit-exact, so any difference is a finding)."""
    if device.dtype == np.float32 or reference.dtype == np.float32:
        if device.dtype != reference.dtype or device.shape != reference.shape:
            return False
        return bool(np.array_equal(device.view(np.uint32), reference.view(np.uint32)))
    return bool(np.array_equal(device, reference))


def resolve_board(board: Board | str | None) -> Board | None:
    """A board given by id is looked up now (BoardError when unknown: the caller named it)."""
    return get_board(board) if isinstance(board, str) else board


@contextmanager
def _client_for(port: str | Transport | DutClient, *, baud: int | None, raw_log: Path,
                timeouts: dict[str, float] | None, retries: int, ready_timeout: float,
                stall_timeout: float) -> Iterator[DutClient]:
    """A DutClient on ``port`` with the score's retries and timeouts, logging raw bytes to ``raw_log``;
    opened and closed here for a URL, left open (settings restored) for the caller's client."""
    own = isinstance(port, str)
    if isinstance(port, DutClient):
        client = port
    else:
        client = DutClient(Transport(port, baud=baud, connect_timeout=5.0) if isinstance(port, str) else port)
    saved = (client.retries, dict(client.timeouts), client.stall_timeout)
    client.retries = max(client.retries, retries)
    client.timeouts.update(timeouts or {})
    client.stall_timeout = stall_timeout
    client.transport.add_raw_log(raw_log)
    try:
        if not isinstance(port, DutClient):
            client.wait_ready(ready_timeout)
        yield client
    finally:
        client.retries, client.timeouts, client.stall_timeout = saved
        if own:
            client.close()
        else:
            client.transport.remove_raw_logs()


def check_device(device: DeviceInfo, graph: Graph, io: ModelIO, board: Board | None, url: str,
                 allow_model_mismatch: bool) -> None:
    """Refuse firmware built from another model (unless allowed), with other tensor sizes, or for
    another board than the one given."""
    fw_sha = device.model_sha256
    if fw_sha.lower() != graph.sha256 and not allow_model_mismatch:
        raise ModelMismatchError(
            f"the firmware at {url} was generated from model sha256 {fw_sha} "
            f"({device.model or '?'}), but {graph.name} has sha256 {graph.sha256}",
            "flash firmware generated from this model (tinyedge generate/build), pass the model it was "
            "built from, or add --allow-model-mismatch to score anyway (recorded in the report)",
        )
    if device.input_bytes != io.input_bytes or device.output_count != io.output_size:
        raise ModelMismatchError(
            f"the firmware at {url} takes {device.input_bytes} input bytes and gives "
            f"{device.output_count} outputs; {graph.name} takes {io.input_bytes} and gives {io.output_size}",
            "score with the model the firmware was generated from",
        )
    if board is not None and device.board != board.id:
        raise BoardMismatchError(
            f"the firmware at {url} says it runs on board {device.board}, but it is scored as {board.id}",
            f"pass the board the firmware was built for ({device.board}), or flash firmware built for {board.id}",
        )


def _sample_step(client: DutClient, device: DeviceInfo, data: bytes) -> Callable[[], TeResults]:
    """One inference on ``data``: te-load + te-infer (protocol 2, CRC-checked), or the v1 sequence."""
    if device.protocol >= 2:
        def step() -> TeResults:
            client.load(data)
            return client.te_infer(P.crc16_ccitt_false(data))
    else:
        def step() -> TeResults:
            client.load_input(data)
            client.infer(1, 0)
            return client.te_results()
    return step


@dataclass
class _Harvest:
    """What the harvest got: the records in order, when it started, how long it took, and the stall
    that ended it early (None when every sample was sent)."""

    records: list[Record] = field(default_factory=list)
    start: float = 0.0
    seconds: float = 0.0
    stall: DeviceStalled | None = None


def _harvest(client: DutClient, harvester: _Harvester, device: DeviceInfo, inputs: Inputs,
             reference: np.ndarray | None, timing: Timing, task: str, out_dir: Path,
             progress: bool, stall_timeout: float | None) -> _Harvest:
    """Every sample through the device, one accepted (or failed) record each, appended to records.jsonl
    as it comes; a stalled device ends it early (the records so far are kept). Without a fixed
    ``stall_timeout`` the deadline follows the slowest sample (:func:`default_stall_timeout`)."""
    n = len(inputs.xq)
    bar = Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   disable=not progress, transient=True)
    got = _Harvest(start=time.time())
    records = got.records
    slowest: float | None = None
    with bar, open(out_dir / "records.jsonl", "w") as f:
        task_id = bar.add_task("score", total=n)
        for i in range(n):  # the next sample without an accepted record: resume point after any failure
            label = int(inputs.y[i]) if inputs.y is not None else None
            data = input_bytes(inputs.xq[i])
            t0 = time.monotonic()
            try:
                res = harvester.run(f"sample {i}", _sample_step(client, device, data))
            except DeviceStalled as exc:
                log.warning("sample %d: %s", i, exc.problem)
                got.stall = exc
                break
            except LinkError as exc:
                if isinstance(exc, (ModelMismatchError, HarvestAborted)):
                    raise
                rec = Record(index=i, ok=False, error=exc.problem)
                log.warning("sample %d failed: %s", i, exc.problem)
            else:
                out = tuple(v.item() for v in res.out)  # Python ints, or floats for a float32 output
                rec = Record(index=i, ticks=int(res.ticks), t=time.time() - got.start, label=label, out=out,
                             parity=same_outputs(res.out, reference[i]) if reference is not None else None)
                took = time.monotonic() - t0
                slowest = took if slowest is None else max(slowest, took)
                if stall_timeout is None:
                    client.stall_timeout = default_stall_timeout(slowest)
            records.append(rec)
            f.write(json.dumps(rec.row(timing, task)) + "\n")
            f.flush()
            bar.advance(task_id)
    got.seconds = time.time() - got.start
    return got


def _profile(client: DutClient, harvester: _Harvester, device: DeviceInfo, inputs: Inputs,
             records: list[Record], enabled: bool) -> tuple[dict[str, Any] | None, str]:
    """te-profile on the last accepted sample's input: (answer, "" or why it was not measured)."""
    ok = [r.index for r in records if r.ok]
    if not enabled or not ok:
        return None, "not measured (profile disabled)"
    data = input_bytes(inputs.xq[ok[-1]])
    try:
        if device.protocol >= 2:
            harvester.run("te-load for te-profile", lambda: client.load(data))
        prof = harvester.run("te-profile", lambda: client.profile(layers=device.layers or None))
    except DeviceStalled:
        raise
    except LinkError as exc:
        return None, f"not measured: {exc.problem}"
    return dict(prof), ""


def _link(client: DutClient) -> dict[str, Any]:
    stats, cnt = client.parser.stats, client.counters
    return {"url": client.url, "corrupt_lines": stats.corrupt, "unknown_lines": stats.unknown,
            "truncated_lines": stats.truncated, "retries": cnt.retries, "timeouts": cnt.timeouts,
            "resyncs": cnt.resyncs, "reconnects": cnt.reconnects,
            "bytes_in": getattr(client.transport, "bytes_in", None)}


def score(
    port: str | Transport | DutClient,
    data: str | Path,
    model: Graph | str | Path,
    *,
    out_dir: str | Path,
    board: Board | str | None = None,
    limit: int | None = None,
    slos: Iterable[str] = (),
    allow_model_mismatch: bool = False,
    allow_nonfinite: bool = False,
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
    stall_timeout: float | None = None,
    plots: bool = True,
) -> Report:
    """Score the firmware on ``port`` with the labelled ``data`` (.npz: x, y) for ``model``.

    ``model`` is a .tflite path, or an in-memory :class:`~tinyedge.model.Graph` used as is (not
    re-read). ``board`` (a Board or board id) is the board the firmware was built for; by default
    the one te-info names is looked up (a device that names another board is refused).
    ``port`` is a pyserial URL (opened and closed here), or an already-open Transport/DutClient
    (left open: the caller owns it). Writes raw.log (every byte received, before parsing),
    records.jsonl (one accepted record per sample, in order), report.json, report.md, summary.md,
    junit.xml and report.html into ``out_dir``. Raises ModelMismatchError when the firmware was built
    from another model, unless ``allow_model_mismatch`` (recorded in the report), and DataError for NaN/inf
    inputs unless ``allow_nonfinite`` (NaN is then sent as the zero point, +-inf as the int8 limits).

    ``power_trace`` (CSV, see :mod:`tinyedge.score.energy`) makes energy a measurement instead of the
    board's power model; ``timeouts`` overrides per-command timeouts; ``retries`` re-asks per te-
    command; ``max_attempts`` per sample before it counts as a failed inference.

    ``stall_timeout`` is the stall deadline in seconds (default: :func:`default_stall_timeout` of the
    slowest sample so far). A device silent that long is resynchronised or reconnected; if that does
    not bring it back within half the deadline again, the report of the samples harvested so far is
    written (``"complete": false`` and why it ``"stopped"``) and DeviceStalled is raised (exit code 3;
    its ``report`` is that partial report): a frozen device ends the run within 2 x the deadline.

    Without ``plots`` report.html has the tables but no matplotlib plots (drawing them takes seconds of
    CPU; a caller that only needs the figures, such as the compatibility matrix, skips them).
    """
    parsed_slos: list[Slo] = parse_slos(slos)  # fail on a typo before any device time is spent
    out_dir = Path(out_dir)
    graph = read_model(model)
    io = graph_io(graph, model if not isinstance(model, Graph) else None)
    given_board = resolve_board(board)
    trace = integrate_trace(power_trace, voltage_v=voltage_v) if power_trace is not None else None
    inputs = read_inputs(data, io, limit, allow_nonfinite=allow_nonfinite)
    reference, reference_note = _oracle(graph.model_bytes, inputs.xq, io.output_type)

    out_dir.mkdir(parents=True, exist_ok=True)
    raw_log = out_dir / "raw.log"
    raw_log.write_bytes(b"")
    with _client_for(port, baud=baud, raw_log=raw_log, timeouts=timeouts, retries=retries,
                     ready_timeout=ready_timeout,
                     stall_timeout=stall_timeout if stall_timeout is not None else default_stall_timeout(None),
                     ) as client:
        harvester = _Harvester(client, max_attempts=max_attempts, reconnect_wait=reconnect_wait,
                               ready_timeout=ready_timeout)
        result, stall = _score_on_device(client, harvester, graph, io, given_board, inputs, reference,
                                         reference_note, trace, out_dir, allow_model_mismatch=allow_model_mismatch,
                                         progress=progress, do_profile=profile, stall_timeout=stall_timeout)
    report = Report.from_result(result)
    report.slo_results = evaluate(parsed_slos, report.data)
    report.data["slo"] = [r.as_dict() for r in report.slo_results]
    # after a stall, plotting would overrun the deadline
    report.write(out_dir, step_summary=step_summary, plots=plots and stall is None)
    if stall is not None:
        err = DeviceStalled(
            f"{result.stopped}: {stall.problem}",
            f"{stall.hint}. The {result.samples} sample(s) harvested are in {out_dir / 'report.json'} "
            "(marked incomplete), every byte received in raw.log",
        )
        err.report = report
        raise err
    return report


def _score_on_device(client: DutClient, harvester: _Harvester, graph: Graph, io: ModelIO, given_board: Board | None,
                     inputs: Inputs, reference: np.ndarray | None, reference_note: str, trace: TraceEnergy | None,
                     out_dir: Path, *, allow_model_mismatch: bool, progress: bool, do_profile: bool,
                     stall_timeout: float | None) -> tuple[ScoreResult, DeviceStalled | None]:
    """te-info and its checks → harvest → profile → figures; with the stall that ended the run early
    (the figures then cover the samples harvested before it)."""
    n = len(inputs.xq)
    model = ModelFacts(graph.name, graph.sha256, io)
    try:
        device = DeviceInfo.from_info(harvester.run("te-info", client.info))
    except DeviceStalled as early:
        (out_dir / "records.jsonl").write_text("")
        session = Session(link=_link(client), planned=n, stopped=f"device stalled before answering te-info (0 of {n} "
                          "samples)")
        known = DeviceInfo.from_info({"board": given_board.id} if given_board is not None else {})
        return figures([], known, given_board, model=model, source="score",
                       reference_note=reference_note, session=session), early
    check_device(device, graph, io, given_board, client.url, allow_model_mismatch)
    board = given_board if given_board is not None else lookup_board(device.board)
    timing = device.timing(board)
    task = detect_task(io.input_size, io.output_size)
    got = _harvest(client, harvester, device, inputs, reference, timing, task, out_dir, progress, stall_timeout)
    stall, stopped = got.stall, None
    prof, prof_note = None, "not measured: the device stalled before te-profile"
    if stall is None:
        try:
            prof, prof_note = _profile(client, harvester, device, inputs, got.records, do_profile)
        except DeviceStalled as exc:
            stall, prof_note = exc, "not measured: the device stalled during te-profile"
            stopped = f"device stalled during te-profile after {len(got.records)} of {n} samples"
    else:
        stopped = f"device stalled after {len(got.records)} of {n} samples"
    session = Session(link=_link(client), harvest_s=got.seconds, elapsed_s=time.time() - got.start,
                      max_attempts=harvester.max_attempts, planned=n, stopped=stopped)
    result = figures(got.records, device, board, model=model, source="score", inputs=inputs.x, reference=reference,
                     reference_note=reference_note, trace=trace, profile=prof, profile_note=prof_note or "",
                     session=session, allow_model_mismatch=allow_model_mismatch)
    return result, stall
