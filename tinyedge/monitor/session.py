"""The monitor loop: connect, read ``te-info``, stream ``te-stream`` batches, record, reconnect.

:class:`Monitor` runs the link in a background thread and feeds a :class:`MonitorState` that the
views render. It talks through the one link implementation (``tinyedge.link``: Transport →
LineParser → DutClient) and records a session folder in the layout of ``tinyedge score``:
``raw.log`` (every received byte, written before parsing), ``records.jsonl`` (one row per
inference), ``report.json`` and ``report.md`` (rewritten every few seconds and at the end, so a
session that dies keeps its figures). :func:`session_report` recomputes the report from
``records.jsonl`` alone, so a monitored session can be scored afterwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..boards import Board
from ..data import check_labels, fit_shape, load_npz
from ..errors import DataError, DeviceStalled, LinkError, ModelError
from ..link import protocol as P
from ..link.dut import CommandTimeout, DeviceError, DutClient
from ..link.transport import Transport
from ..score.core import STALL_MAX_S, model_io
from ..score.figures import (
    CLASSIFICATION,
    DeviceInfo,
    ModelFacts,
    ModelIO,
    Record,
    ScoreResult,
    Session,
    Tally,
    detect_task,
    figures,
    lookup_board,
)
from ..score.report import monitor_markdown
from .labels import load_labels, model_labels
from .state import CONNECTED, CONNECTING, DISCONNECTED, STOPPED, MonitorState

log = logging.getLogger("tinyedge.monitor")

SESSION_FILES = ("raw.log", "records.jsonl", "report.json", "report.md")
REPORT_EVERY_S = 2.0

#: A monitored session's report.md (the writer lives with score's writers).
report_markdown = monitor_markdown

_LOOKUP: Any = object()  # build_report's default: look the board up from te-info


# ---------------------------------------------------------------------------------------- report


def build_result(records: Iterable[dict[str, Any]] | Tally, info: dict[str, Any], *, url: str = "",
                 model_name: str | None = None, model_sha256: str | None = None,
                 link: dict[str, Any] | None = None, duration_s: float | None = None,
                 board: Board | None = _LOOKUP) -> ScoreResult:
    """A monitored session's figures, from the shared :func:`tinyedge.score.figures.figures`.
    ``records`` are the rows of records.jsonl, or a :class:`Tally` of them (constant memory);
    ``board`` defaults to the board file te-info names."""
    tally = records if isinstance(records, Tally) else Tally().extend(Record.from_row(r) for r in records)
    device = DeviceInfo.from_info(info)
    if board is _LOOKUP:
        board = lookup_board(device.board)
    return figures(tally, device, board, model=ModelFacts(model_name, model_sha256), source="monitor",
                   session=Session(link={"url": url, **(link or {})}, duration_s=duration_s))


def build_report(records: Iterable[dict[str, Any]] | Tally, info: dict[str, Any], *, url: str = "",
                 model_name: str | None = None, model_sha256: str | None = None,
                 link: dict[str, Any] | None = None, duration_s: float | None = None,
                 board: Board | None = _LOOKUP) -> dict[str, Any]:
    """report.json for a monitored session: the keys of ``tinyedge score``'s report that a stream can
    measure (so the same SLO expressions apply), plus the stream's own figures."""
    return build_result(records, info, url=url, model_name=model_name, model_sha256=model_sha256, link=link,
                        duration_s=duration_s, board=board).to_dict()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def iter_records(session_dir: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of ``records.jsonl`` one by one (a partial last line, from a crash, is skipped)."""
    with open(Path(session_dir) / "records.jsonl") as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def read_records(session_dir: str | Path) -> list[dict[str, Any]]:
    """All rows of ``records.jsonl``."""
    return list(iter_records(session_dir))


def session_report(session_dir: str | Path, *, write: bool = True) -> dict[str, Any]:
    """Recompute a monitored session's report from its records.jsonl (and the device facts kept in
    report.json); rewrite report.json/report.md when ``write``."""
    session_dir = Path(session_dir)
    old: dict[str, Any] = {}
    if (session_dir / "report.json").is_file():
        old = json.loads((session_dir / "report.json").read_text())
    records = iter_records(session_dir)
    link = dict(old.get("link", {}))
    url = link.pop("url", "")
    data = build_report(records, old.get("device", {}), url=url, model_name=old.get("model"),
                        model_sha256=old.get("model_sha256"), link=link, duration_s=old.get("duration_s"))
    if write:
        _atomic_write(session_dir / "report.json", json.dumps(data, indent=2) + "\n")
        _atomic_write(session_dir / "report.md", report_markdown(data))
    return data


# ---------------------------------------------------------------------------------------- monitor


class Monitor:
    """A live session with one device: a background thread streams, records and reconnects.

    >>> with Monitor("socket://127.0.0.1:4444", record_dir="session") as mon:
    ...     mon.wait_for(lambda s: s["total"] >= 100, timeout=30)
    ...     print(mon.state.snapshot()["latency_ms"])

    ``model`` (the .tflite the firmware should run) enables the hash check, class names from its
    metadata and the output scale for confidences; ``labels`` (a file) overrides class names;
    ``data`` (.npz with x, optional y; needs ``model``) sends one input per inference, cycling, and
    records accuracy. ``max_count`` stops after that many recorded inferences. ``stall_timeout``
    (default 60 s) is how long the device may send no valid byte before it counts as stalled: the
    monitor then shows it disconnected and keeps trying to reconnect, each attempt bounded by it.
    """

    def __init__(self, url: str, *, record_dir: str | Path, model: str | Path | None = None,
                 labels: str | Path | None = None, data: str | Path | None = None, baud: int | None = None,
                 connect_timeout: float = 5.0, ready_timeout: float = 10.0, batch_seconds: float = 0.25,
                 max_count: int | None = None, window: int = 1000, stall_timeout: float | None = None) -> None:
        self.url = url
        self.stall_timeout = stall_timeout if stall_timeout is not None else STALL_MAX_S
        self.baud = baud
        self.connect_timeout = connect_timeout
        self.ready_timeout = ready_timeout
        self.batch_seconds = batch_seconds
        self.max_count = max_count
        self.record_dir = Path(record_dir)
        model_sha = model_name = None
        class_names: list[str] = []
        scale, zp = 1 / 256, -128
        self._inputs: np.ndarray | None = None
        self._labels_y: np.ndarray | None = None
        if model is not None:
            model = Path(model)
            try:
                buf = model.read_bytes()
            except OSError as exc:
                raise ModelError(f"cannot read model {model}: {exc.strerror}",
                                 "check the path to the .tflite") from None
            io = model_io(buf, model)
            model_sha, model_name = hashlib.sha256(buf).hexdigest(), model.name
            scale, zp = (io.output_scale or scale), (io.output_zero_point if io.output_scale else zp)
            class_names = model_labels(buf)
            if data is not None:
                self._inputs, self._labels_y = _load_inputs(data, io)
        elif data is not None:
            raise DataError("--data needs --model", "pass the .tflite the firmware was generated from with --model "
                            "(its input scale and zero point quantize the data)")
        if labels is not None:
            class_names = load_labels(labels)
        self.state = MonitorState(url=url, window=window, labels=class_names, model_sha256=model_sha,
                                  model_name=model_name, output_scale=scale, output_zero_point=zp)
        self.state.record_dir = str(self.record_dir)
        self._client: DutClient | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self._index = 0
        self._next_input = 0
        self._rate_hint = 0.0
        self._started = time.monotonic()
        self._tally = Tally()  # the report's figures, in constant memory
        self._boards: dict[str | None, Board | None] = {}  # board files by te-info's id, looked up once
        self._last_report = 0.0
        self.error: BaseException | None = None
        self.record_dir.mkdir(parents=True, exist_ok=True)
        (self.record_dir / "raw.log").write_bytes(b"")
        self._records_f = open(self.record_dir / "records.jsonl", "w")
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._corrupt_seen = self._resyncs_seen = self._bytes_seen = 0
        self._connected = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Monitor:
        """Connect (LinkError if the device cannot be reached now), read te-info, start streaming."""
        self.state.on_status(CONNECTING)
        self._started = time.monotonic()
        try:
            self._connect(self.connect_timeout)
            size = int(self.state.info.get("input_bytes") or 0)
            if self._inputs is not None and size and size != self._inputs[0].nbytes:
                self._close_client()
                raise DataError(f"the firmware at {self.url} takes {size} input bytes; the inputs in --data have "
                                f"{self._inputs[0].nbytes}",
                                "pass the model the firmware was generated from and its data")
        except BaseException:
            self._records_f.close()
            raise
        self._write_report()
        self._thread = threading.Thread(target=self._run, name="tinyedge-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop streaming, close the link and write the final report (safe to call twice).

        Any wait on the device ends at once (a stalled device does not hold up a --duration)."""
        self._stop.set()
        client = self._client
        if client is not None:
            client.cancel()
        if self._thread is not None:
            self._thread.join(10)
        self._close_client()
        with self._lock:
            if not self._records_f.closed:
                self._records_f.close()
                self._write_report()
        self.state.on_status(STOPPED)

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def finished(self) -> bool:
        """True once the loop ended (max_count reached, stopped, or a device error)."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the loop ends (see :attr:`finished`); True if it did."""
        return self._done.wait(timeout)

    def wait_for(self, cond: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        """Wait until ``cond(snapshot)`` holds; return that snapshot (LinkError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        version = -1
        while True:
            snap = self.state.snapshot()
            if cond(snap):
                return snap
            if self.finished:
                raise LinkError(f"the monitor ended before reaching the expected state ({snap['total']} records)"
                                + (f": {self.error}" if self.error else ""), "see raw.log")
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkError(f"the monitor did not reach the expected state within {timeout:g} s "
                                f"(status {snap['status']}, {snap['total']} records)", "see raw.log")
            version = self.state.wait_change(snap["version"] if version != snap["version"] else version, min(left, 0.2))

    # ------------------------------------------------------------------ controls (keys q/p/r)

    def pause(self) -> None:
        """Send no new batch; the one in flight completes (:meth:`wait_idle` waits for it)."""
        self._idle.clear()
        self._paused.set()
        self.state.set_paused(True)

    def resume(self) -> None:
        self._paused.clear()
        self.state.set_paused(False)

    def toggle_pause(self) -> bool:
        """Pause or resume; returns True when now paused."""
        if self._paused.is_set():
            self.resume()
            return False
        self.pause()
        return True

    def reset(self) -> None:
        """Reset the statistics shown (recording is not affected).

        While paused, the batch still in flight is let in first, so a paused view really shows zero.
        """
        if self._paused.is_set():
            self.wait_idle(timeout=8 * self.batch_seconds + 2.0)
        self.state.reset()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """After :meth:`pause`: wait until the batch in flight has ended (all its records are in)."""
        deadline = time.monotonic() + timeout
        while not self._idle.is_set() and time.monotonic() < deadline and not self._done.is_set():
            time.sleep(0.02)

    # ------------------------------------------------------------------ link

    def _connect(self, connect_timeout: float) -> None:
        transport = Transport(self.url, baud=self.baud, raw_log=self.record_dir / "raw.log",
                              connect_timeout=connect_timeout)
        client = DutClient(transport, stall_timeout=self.stall_timeout)
        try:
            client.wait_ready(self.ready_timeout)
            info = client.info()
        except BaseException:
            transport.close()
            raise
        self._client = client
        self._connected = True
        self.state.on_info(info)
        self.state.on_status(CONNECTED)
        log.info("monitoring %s: %s", self.url, info)

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            self._account(client)
            try:
                client.close()
            except Exception:  # noqa: BLE001 - the link is gone anyway
                pass

    def _reconnect(self) -> None:
        """Reopen the port with DutClient.reconnect's backoff until the device answers (or we are stopped);
        then read te-info again (the board may have been flashed with another model meanwhile)."""
        client = self._client
        assert client is not None
        while not self._stop.is_set():
            client.restart_stall_clock()  # each attempt gets the whole stall deadline
            try:
                client.reconnect(max_wait=1.0, ready_timeout=self.ready_timeout)
                info = client.info()
            except LinkError as exc:
                self.state.on_status(DISCONNECTED, str(exc.problem))
                self._stop.wait(0.1)
                continue
            self._connected = True
            self.state.on_info(info)
            self.state.on_reconnect()
            self.state.on_status(CONNECTED)
            log.info("reconnected to %s", self.url)
            return

    def _account(self, client: DutClient) -> None:
        """Move the parser's corrupt-line count, the client's resyncs and the byte count into the state."""
        corrupt = client.parser.stats.corrupt
        resyncs = client.counters.resyncs
        bytes_in = int(getattr(client.transport, "bytes_in", 0))
        crc, self._corrupt_seen = corrupt - self._corrupt_seen, corrupt
        rs, self._resyncs_seen = resyncs - self._resyncs_seen, resyncs
        delta_bytes, self._bytes_seen = bytes_in - self._bytes_seen, bytes_in
        if crc or rs or delta_bytes:
            self.state.on_link(crc_errors=crc, resyncs=rs, bytes_in=delta_bytes)

    # ------------------------------------------------------------------ loop

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._connected:
                    self._idle.set()
                    self._reconnect()
                    continue
                if self._paused.is_set():
                    self._idle.set()
                    self._stop.wait(0.05)
                    continue
                self._idle.clear()
                client = self._client
                assert client is not None  # connected: the client is there until stop() closes it
                try:
                    self._batch(client)
                except LinkError as exc:
                    if isinstance(exc, (DeviceError, P.ProtocolError)):
                        raise
                    # ConnectionLost (port gone), or a device that stopped answering even a resync
                    log.warning("link lost: %s", exc)
                    self._connected = False
                    detail = (f"stalled: no valid byte for {client.silent_for:.0f} s; reconnecting"
                              if isinstance(exc, DeviceStalled) else str(exc.problem))
                    self.state.on_status(DISCONNECTED, detail)
                self._idle.set()
                if time.monotonic() - self._last_report > REPORT_EVERY_S:
                    with self._lock:
                        if not self._records_f.closed:
                            self._write_report()
                if self.max_count is not None and self._index >= self.max_count:
                    break
        except BaseException as exc:  # noqa: BLE001 - reported through .error and the status line
            self.error = exc
            log.error("monitor stopped: %s", exc)
            self.state.on_status(STOPPED, str(getattr(exc, "problem", exc)))
        finally:
            self._idle.set()
            self._done.set()

    def _batch_size(self) -> int:
        if self._inputs is not None:
            return 1
        if self.max_count is not None:
            left = self.max_count - self._index
        else:
            left = 10**9
        n = int(self._rate_hint * self.batch_seconds) if self._rate_hint else 10
        return max(1, min(n, 2000, left))

    def _batch(self, client: DutClient) -> None:
        """One ``te-stream N`` batch, recorded line by line as it arrives (DutClient.iter_stream)."""
        extra: dict[str, Any] = {}
        if self._inputs is not None:
            i = self._next_input % len(self._inputs)
            self._next_input += 1
            client.load(self._inputs[i].tobytes())
            extra["input"] = i
            if self._labels_y is not None:
                extra["label"] = int(self._labels_y[i])
        n = self._batch_size()
        t0 = last_flush = time.monotonic()
        got = 0
        pending: list[dict[str, Any]] = []
        # per-line timeout: a device that stops mid-batch (or whose m-ready was lost) is resynchronised
        # after 20 inference times (at least 1 s) instead of waited for
        timeout = max(1.0, 20.0 / self._rate_hint) if self._rate_hint else 10.0
        stream = cast(Generator[dict[str, int], None, None], client.iter_stream(n, timeout))  # closed below
        try:
            for s in stream:
                now = time.monotonic()
                rec = self.state.make_record(s, index=self._index, t_s=now - self._started)
                rec.update(extra)
                if "label" in extra:
                    rec["correct"] = rec["pred"] == extra["label"]
                self._index += 1
                got += 1
                pending.append(rec)
                if now - last_flush > 0.05:
                    self._emit(client, pending)
                    pending, last_flush = [], now
                if self._stop.is_set():
                    return
        except CommandTimeout:
            log.warning("te-stream batch stalled: resynchronising")
            self._emit(client, pending)
            pending = []
            client.resync()
        finally:
            stream.close()
            self._emit(client, pending)
        if self._stop.is_set():
            return
        if got < n:
            self.state.on_link(lost=n - got)
        if got and self._inputs is None:
            rate = got / max(time.monotonic() - t0, 1e-3)
            self._rate_hint = rate if not self._rate_hint else 0.5 * self._rate_hint + 0.5 * rate

    def _emit(self, client: DutClient, recs: list[dict[str, Any]]) -> None:
        """Append records to records.jsonl (flushed), then show them."""
        if recs:
            with self._lock:
                if not self._records_f.closed:
                    for rec in recs:
                        self._records_f.write(json.dumps(rec) + "\n")
                    self._records_f.flush()
            for rec in recs:
                self._tally.add(Record.from_row(rec))
            self.state.on_records(recs)
        self._account(client)

    # ------------------------------------------------------------------ report

    def _write_report(self) -> None:
        self._last_report = time.monotonic()
        snap = self.state.snapshot(recent=1)
        link = {"corrupt_lines": snap["link"]["crc_errors"], "lost_records": snap["link"]["lost"],
                "resyncs": snap["link"]["resyncs"], "reconnects": snap["link"]["reconnects"],
                "bytes_in": snap["link"]["bytes_in"]}
        board_id = snap["device"].get("board")
        if board_id not in self._boards:
            self._boards[board_id] = lookup_board(board_id)
        data = build_report(self._tally, snap["device"], url=self.url, model_name=snap["model_file"],
                            model_sha256=snap["model_sha256"], link=link,
                            duration_s=round(time.monotonic() - self._started, 3), board=self._boards[board_id])
        _atomic_write(self.record_dir / "report.json", json.dumps(data, indent=2) + "\n")
        _atomic_write(self.record_dir / "report.md", report_markdown(data))


def _load_inputs(data: str | Path, io: ModelIO) -> tuple[np.ndarray, np.ndarray | None]:
    x, y = load_npz(data)
    if len(x) == 0:
        raise DataError(f"{data} has no samples", "pass a data file with at least one row in x")
    x = fit_shape(x, io.input_shape[1:], data)
    xq = io.device_inputs(x)
    # int8, or int16 sent two bytes a value, little-endian (an int16x8 model with int16 I/O); float32 four
    xq = np.ascontiguousarray(xq.reshape(len(xq), -1)).astype(np.dtype(io.input_type).newbyteorder("<"))
    classifier = y is not None and detect_task(io.input_size, io.output_size) == CLASSIFICATION
    check_labels(y, data, num_classes=io.output_size if classifier else None)
    return xq, (np.asarray(y).astype(np.int64) if classifier else None)


__all__ = ["Monitor", "SESSION_FILES", "Tally", "build_report", "build_result", "iter_records", "read_records",
           "report_markdown", "session_report", "CONNECTED", "CONNECTING", "DISCONNECTED", "STOPPED"]
