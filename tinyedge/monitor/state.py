"""What a dashboard shows, as one thread-safe object fed by the monitor loop.

:class:`MonitorState` holds the device facts (``te-info``), a rolling window of telemetry records,
the confidence histogram, the link health counters and the connection status. Every view (rich
terminal, ``--plain`` lines, the web page) renders :meth:`MonitorState.snapshot`, a plain dict that
is also what the web page receives as JSON, so all views show the same figures.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from ..score.figures import Timing  # the tick rules of tinyedge score
from ..score.metrics import percentiles

#: Connection states shown by the views.
CONNECTING = "connecting"
CONNECTED = "connected"
DISCONNECTED = "disconnected"
STOPPED = "stopped"

HIST_BINS = 10
SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 40) -> str:
    """The last ``width`` values as block characters scaled between their min and max."""
    vals = values[-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-12:
        return SPARK[3] * len(vals)
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / (hi - lo) * len(SPARK)))] for v in vals)


class MonitorState:
    """Thread-safe dashboard state. The monitor loop calls the ``on_*`` methods; views call :meth:`snapshot`.

    ``window`` records feed the rolling percentiles, ``recent`` the latency chart and sparkline,
    ``last`` the list of last predictions. ``clock`` is injectable for tests of the state alone.
    """

    def __init__(self, *, url: str = "", window: int = 1000, recent: int = 300, last: int = 10,
                 labels: list[str] | None = None, model_sha256: str | None = None, model_name: str | None = None,
                 output_scale: float = 1 / 256, output_zero_point: int = -128,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.window = window
        self.labels = list(labels or [])
        self.model_sha256 = model_sha256
        self.model_name = model_name
        self.output_scale = output_scale
        self.output_zero_point = output_zero_point
        self._clock = clock
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)  # notified on every update (the web page waits on it)
        self.version = 0
        self.started = clock()
        self.status = CONNECTING
        self.status_since = self.started
        self.status_detail = ""
        self.paused = False
        self.info: dict[str, Any] = {}
        self.timing: Timing | None = None
        self.record_dir: str | None = None
        # link health: survives resets of the statistics (it describes the link, not the numbers)
        self.crc_errors = 0
        self.lost = 0
        self.resyncs = 0
        self.reconnects = 0
        self.bytes_in = 0
        self.total = 0          # records received since start (= lines in records.jsonl)
        self.last_good: float | None = None
        self._recent_n = recent
        self._last_n = last
        self._reset_stats()

    # ------------------------------------------------------------------ updates (monitor loop)

    def _reset_stats(self) -> None:
        self.count = 0
        self.count_since = self._clock()
        self._lat: deque[float] = deque(maxlen=self.window)
        self._recent: deque[float] = deque(maxlen=self._recent_n)
        self._arrivals: deque[tuple[float, int]] = deque()  # (time, count) to compute inferences/s
        self._preds: deque[dict[str, Any]] = deque(maxlen=self._last_n)
        self.hist = [0] * HIST_BINS
        self.correct = 0
        self.labelled = 0

    def _touch(self) -> None:
        self.version += 1
        self.changed.notify_all()

    def class_name(self, index: int) -> str:
        return self.labels[index] if 0 <= index < len(self.labels) else str(index)

    def confidence(self, score_q: int | float) -> float:
        """The top score dequantized with the model's output scale/zero point (int8 softmax: 1/256, -128); a
        float score (a model with a float32 output) is the confidence itself."""
        if isinstance(score_q, float):
            return score_q
        return (score_q - self.output_zero_point) * self.output_scale

    def on_status(self, status: str, detail: str = "") -> None:
        with self._lock:
            if status != self.status:
                self.status_since = self._clock()
            self.status = status
            self.status_detail = detail
            self._touch()

    def on_info(self, info: dict[str, Any]) -> None:
        with self._lock:
            self.info = dict(info)
            self.timing = Timing(int(info.get("timer_hz") or 0), int(info.get("clock_hz") or 0),
                                 bool(info.get("emulated")))
            self._touch()

    def on_reconnect(self) -> None:
        with self._lock:
            self.reconnects += 1
            self._touch()

    def on_link(self, *, crc_errors: int = 0, lost: int = 0, resyncs: int = 0, bytes_in: int = 0) -> None:
        """Add link events (deltas)."""
        with self._lock:
            self.crc_errors += crc_errors
            self.lost += lost
            self.resyncs += resyncs
            self.bytes_in += bytes_in
            self._touch()

    def make_record(self, stream: dict[str, int], *, index: int, t_s: float) -> dict[str, Any]:
        """One records.jsonl row for a ``te-s-`` line (``stream`` from ``parse_te_stream``)."""
        rec: dict[str, Any] = {"index": index, "ok": True, "seq": stream["seq"], "t": round(t_s, 6),
                               "ticks": stream["ticks"]}
        timing = self.timing
        if timing is not None and timing.emulated:
            rec["instructions"] = timing.instructions(stream["ticks"])
        rec["latency_ms"] = timing.latency_ms(stream["ticks"]) if timing is not None else None
        rec["pred"] = stream["top"]
        rec["class"] = self.class_name(stream["top"])
        rec["score_q"] = stream["score"]
        rec["confidence"] = round(self.confidence(stream["score"]), 6)
        return rec

    def on_records(self, records: list[dict[str, Any]]) -> None:
        """Account for records already written to records.jsonl."""
        if not records:
            return
        with self._lock:
            now = self._clock()
            for rec in records:
                if rec.get("latency_ms") is not None:
                    self._lat.append(float(rec["latency_ms"]))
                    self._recent.append(float(rec["latency_ms"]))
                conf = rec["confidence"]  # NaN only from a float32 output: counted in the lowest bin
                b = int(min(max(conf, 0.0), 0.999999) * HIST_BINS) if conf == conf else 0
                self.hist[b] += 1
                self._preds.append(rec)
                if "correct" in rec:
                    self.labelled += 1
                    self.correct += bool(rec["correct"])
            self.count += len(records)
            self.total += len(records)
            self._arrivals.append((now, self.count))
            self.last_good = now
            self._touch()

    def reset(self) -> None:
        """Forget the statistics (percentiles, rate, histogram, predictions); link counters stay."""
        with self._lock:
            self._reset_stats()
            self._touch()

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self.paused = paused
            self._touch()

    def wait_change(self, version: int, timeout: float) -> int:
        """Block until the state's version differs from ``version`` (or ``timeout``); return the version."""
        with self._lock:
            if self.version == version:
                self.changed.wait(timeout)
            return self.version

    # ------------------------------------------------------------------ reading (views)

    def _rate(self, now: float, span: float = 2.0) -> float:
        arr = self._arrivals
        while len(arr) > 2 and now - arr[1][0] > span:
            arr.popleft()
        if not arr or now - arr[-1][0] > span:
            return 0.0
        t0, c0 = arr[0]
        if len(arr) == 1 or now - t0 <= 0:
            # One batch seen so far: its records over the time since the statistics (re)started.
            dt = now - self.count_since
            return self.count / dt if dt > 0 else 0.0
        # records that arrived after the first entry, over the time since it
        return (self.count - c0) / (now - t0)

    def snapshot(self, *, recent: int | None = None) -> dict[str, Any]:
        """Everything a view shows, as JSON-able values."""
        with self._lock:
            now = self._clock()
            info = dict(self.info)
            fw_sha = str(info.get("model_sha256", "")) or None
            mismatch = bool(self.model_sha256 and fw_sha and fw_sha.lower() != self.model_sha256.lower())
            timing = self.timing
            lat = percentiles(np.asarray(self._lat, dtype=np.float64))
            recent_vals = list(self._recent)[-(recent or self._recent_n):]
            preds = [{"index": r["index"], "pred": r["pred"], "class": r["class"], "confidence": r["confidence"],
                      "latency_ms": r.get("latency_ms"), **({"label": r["label"], "correct": r["correct"]}
                                                            if "correct" in r else {})}
                     for r in reversed(self._preds)]
            fresh = None if self.last_good is None else now - self.last_good
            status = self.status
            if status == CONNECTED and self.paused:
                status_text = "paused"
            elif status == CONNECTED and not self.paused and fresh is not None and fresh > 2.0:
                status_text = "stalled"
            else:
                status_text = status
            return {
                "version": self.version,
                "url": self.url,
                "status": status_text,
                "link_status": status,
                "status_detail": self.status_detail,
                "status_for_s": now - self.status_since,
                "paused": self.paused,
                "uptime_s": now - self.started,
                "board": info.get("board"),
                "device": info,
                "model": info.get("model"),
                "firmware_model_sha256": fw_sha,
                "model_sha256": self.model_sha256,
                "model_file": self.model_name,
                "model_mismatch": mismatch,
                "emulated": bool(timing.emulated) if timing else None,
                "count": self.count,
                "total": self.total,
                "rate": 0.0 if self.paused and (fresh is None or fresh > 0.5) else self._rate(now),
                "window": len(self._lat),
                "latency_ms": lat,
                "latency_estimate": bool(timing.emulated) if timing else False,
                "instructions": (timing.instructions(self._last_ticks()) if timing and timing.emulated
                                 and self._preds else None),
                "recent_ms": recent_vals,
                "sparkline": sparkline(recent_vals),
                "predictions": preds,
                "hist": list(self.hist),
                "accuracy": (self.correct / self.labelled) if self.labelled else None,
                "labelled": self.labelled,
                "link": {"crc_errors": self.crc_errors, "lost": self.lost, "resyncs": self.resyncs,
                         "reconnects": self.reconnects, "bytes_in": self.bytes_in,
                         "freshness_s": fresh},
                "record_dir": self.record_dir,
            }

    def _last_ticks(self) -> int:
        return int(self._preds[-1]["ticks"]) if self._preds and "ticks" in self._preds[-1] else 0
