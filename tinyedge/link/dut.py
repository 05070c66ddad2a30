"""The device under test as a Python object: MLPerf Tiny commands plus tinyedge's te- extensions.

:class:`DutClient` sends one command at a time and reads lines until ``m-ready``. Timeouts are per
line and per command (``timeouts``), like the MLPerf runner: a slow ``infer`` is fine as long as the
device keeps talking. On a noisy link a client can :meth:`~DutClient.resync` (end any half-sent
command or te-load frame and wait for ``m-ready``) and :meth:`~DutClient.reconnect` (reopen the port
with backoff after it disappeared); the idempotent te- commands are re-sent while their CRC fails.

A client with a ``stall_timeout`` bounds all of this: once the device has sent no valid line for that
long, waits stop early so the caller can resync or reconnect, and after half as long again
(:data:`STALL_GRACE`) without a valid line every wait raises :class:`~tinyedge.errors.DeviceStalled`.
A frozen device therefore ends a conversation within 1.5 x the stall timeout of its last valid line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DeviceStalled, LinkError
from . import protocol as P
from .transport import Transport

log = logging.getLogger("tinyedge.link")

#: Bytes per ``db`` line, as the MLPerf runner sends them (31 bytes = 62 hex digits + "db " < 80).
DB_CHUNK = 31
COMMAND_TIMEOUT = 5.0
INFER_TIMEOUT = 30.0
#: Once a reply's data lines have all arrived, how long to wait for its ``m-ready`` before resyncing.
TAIL_TIMEOUT = 0.5
#: Stops a running ``infer N``/``te-stream N`` between two inferences (ignored by an idle device).
BREAK = b"\x03"
#: After ``stall_timeout`` seconds without a valid line, recovery (resync/reconnect) gets this fraction of
#: it again before the client gives up with DeviceStalled.
STALL_GRACE = 0.5

#: Per-command timeouts (seconds without a new line), by the command's first word; "*" for the rest.
DEFAULT_TIMEOUTS: dict[str, float] = {
    "*": COMMAND_TIMEOUT,
    "infer": INFER_TIMEOUT,
    "te-infer": INFER_TIMEOUT,
    "te-profile": INFER_TIMEOUT,
    "te-stream": INFER_TIMEOUT,
}


class DeviceError(LinkError):
    """The device answered a command with an ``e-[...]`` line."""


class CommandTimeout(LinkError):
    """The device did not finish a reply (``m-ready``) in time: lost bytes or a busy device."""


@dataclass
class InferResult:
    """What ``infer N W`` returns: the two laps (µs), the dequantized outputs and the raw lines."""

    laps_us: list[int]
    results: list[float]
    lines: list[str] = field(default_factory=list)

    @property
    def elapsed_us(self) -> int:
        return self.laps_us[-1] - self.laps_us[0] if len(self.laps_us) >= 2 else 0


@dataclass
class TeResults:
    """``te-results``: the outputs of the last inference (int8, int16 for a model with an int16 output, float32
    for a float32 output: the exact floats), its timer ticks and the CRC-16 of the input it ran on (None from
    protocol-1 firmware)."""

    out: np.ndarray
    ticks: int
    in_crc: int | None = None


@dataclass
class LinkCounters:
    """What the client had to do to get clean answers."""

    retries: int = 0      # te- commands re-sent after a corrupt or missing reply
    timeouts: int = 0     # replies that did not end in time
    resyncs: int = 0
    reconnects: int = 0


class DutClient:
    """Drive a DUT over a :class:`Transport` (or anything with ``read(timeout)``/``write(bytes)``/``url``).

    ``timeouts`` overrides :data:`DEFAULT_TIMEOUTS` per command word; ``retries`` is how often an
    idempotent te- command is re-sent when its reply is corrupt.
    """

    def __init__(self, transport: Transport, *, retries: int = 2, timeouts: dict[str, float] | None = None,
                 tail_timeout: float = TAIL_TIMEOUT, stall_timeout: float | None = None) -> None:
        self.transport = transport
        self.parser = P.LineParser()
        self.retries = retries
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self.tail_timeout = tail_timeout
        self.counters = LinkCounters()
        self.protocol: int | None = None  # te- protocol version, known after info()
        self.layers: int | None = None  # layer count, known after info()
        self._pending: list[P.Line] = []
        self.banner: list[str] = []
        #: monotonic time of the last line received (telemetry freshness)
        self.last_line_at: float | None = None
        #: seconds without a valid line before the device counts as stalled (None: no stall deadline)
        self.stall_timeout = stall_timeout
        # start of the current silence: the last valid line, or the send that opened a new exchange
        self._silent_since: float | None = None
        self._answered = False  # the last valid line was m-ready: the device is idle, not silent
        self._cancelled = threading.Event()

    @property
    def url(self) -> str:
        return getattr(self.transport, "url", "<transport>")

    def timeout_for(self, text: str) -> float:
        """The per-line timeout of command ``text`` (by its first word)."""
        word = text.split(" ", 1)[0]
        return float(self.timeouts.get(word, self.timeouts["*"]))

    # ------------------------------------------------------------------ low level

    def _send(self, payload: bytes) -> None:
        """Write ``payload``; a send to an idle device (its last line was m-ready) starts a new silence."""
        if self._answered or self._silent_since is None:
            self._silent_since = time.monotonic()
            self._answered = False
        self.transport.write(payload)

    def _stall_limits(self) -> tuple[float, float] | None:
        """(stalled from, give up at) as monotonic times, or None without a stall deadline."""
        if self.stall_timeout is None:
            return None
        if self._silent_since is None:
            self._silent_since = time.monotonic()
        since = self._silent_since
        return since + self.stall_timeout, since + self.stall_timeout * (1 + STALL_GRACE)

    @property
    def silent_for(self) -> float:
        """Seconds since the last valid line (or since the send that opened the current exchange)."""
        return time.monotonic() - self._silent_since if self._silent_since is not None else 0.0

    @property
    def stalled(self) -> bool:
        """True once the device has been silent for the stall timeout (recovery is under way)."""
        limits = self._stall_limits()
        return limits is not None and time.monotonic() >= limits[0]

    def stall_error(self) -> DeviceStalled:
        """The DeviceStalled that ends a conversation with this silent device."""
        return DeviceStalled(
            f"device at {self.url} sent no valid byte for {self.silent_for:.1f} s (stall deadline "
            f"{self.stall_timeout:g} s); {self.counters.resyncs} resync(s) and {self.counters.reconnects} "
            "reconnect(s) did not bring it back",
            "check that the device (or emulator) is still running: reset the board or restart the emulator; "
            "raise --stall-timeout if an answer legitimately takes longer",
        )

    def restart_stall_clock(self) -> None:
        """Count the silence from now (a long-running monitor starting a new reconnect attempt)."""
        self._silent_since = time.monotonic()
        self._answered = False

    def cancel(self) -> None:
        """Make every wait of this client end at once with LinkError (another thread stopping it)."""
        self._cancelled.set()

    def _cancel_error(self) -> LinkError:
        return LinkError(f"the conversation with {self.url} was cancelled", "nothing to do: its owner is stopping")

    def _next_line(self, timeout: float) -> P.Line | None:
        """The next complete line, or None when nothing completes a line within ``timeout``.

        With a stall timeout the wait also ends when the device has been silent that long (None: the
        caller recovers), and raises DeviceStalled once recovery's grace has run out too.
        """
        start = time.monotonic()
        deadline = start + timeout
        limits = self._stall_limits()
        if limits is not None:
            stalled_at, give_up_at = limits
            if start >= give_up_at:
                raise self.stall_error()
            # a wait that began before the stall ends there (the caller recovers); one that began after it,
            # during recovery, ends at the give-up time
            deadline = min(deadline, stalled_at if start < stalled_at else give_up_at)
        while not self._pending:
            if self._cancelled.is_set():
                raise self._cancel_error()
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                if limits is not None and now >= limits[1]:
                    raise self.stall_error()
                return None
            data = self.transport.read(min(left, 0.5))
            if data:
                self._pending.extend(self.parser.feed(data))
        now = time.monotonic()
        self.last_line_at = now
        line = self._pending.pop(0)
        if line.kind != P.CORRUPT:
            self._silent_since = now
            self._answered = line.kind == P.READY
        return line

    def wait_ready(self, timeout: float = 10.0, *, quiet: float = 1.0) -> list[str]:
        """Wait for the boot banner's ``m-ready``; return the banner lines.

        A device that booted before we connected sends no banner: after ``quiet`` seconds of
        silence, probe it with ``name%`` (harmless, answered by any MLPerf firmware), again after
        every further quiet period (a probe's answer may be lost on a noisy link).
        """
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        probed = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkError(
                    f"device at {self.url} did not print its boot banner (m-ready) within {timeout:g} s",
                    "check the port/baud, that the firmware is running (reset the board or restart the "
                    "emulator), and that nothing else holds the port",
                )
            line = self._next_line(min(left, quiet))
            if line is None:
                log.info("no banner from %s; probing with name%%", self.url)
                self._send(b"\x00name%" if probed else b"name%")
                probed = True
                continue
            if line.kind == P.READY:
                if probed:
                    self._drain()  # a late banner may still be on its way
                self.banner = lines
                return lines
            if line.ok:
                lines.append(line.text)

    def _drain(self, wait: float = 0.1) -> None:
        """Drop lines that arrive unasked (e.g. a late banner) so they are not taken as an answer."""
        while True:
            line = self._next_line(wait)
            if line is None:
                return
            log.debug("dropped unsolicited line %r", line.text)

    def resync(self, attempts: int = 4) -> None:
        """Bring the conversation back to a known state after a lost or garbled reply.

        Sends ``0x00`` (ends a te-load frame whose terminator was lost; ignored otherwise) and ``%``
        (ends a half-received command), waits for ``m-ready`` and drops whatever else arrives.
        """
        self.counters.resyncs += 1
        self._pending.clear()
        timeout = self.timeouts["*"]
        for _ in range(attempts):
            self._send(b"\x00%")
            while True:
                line = self._next_line(timeout)
                if line is None:
                    break
                if line.kind == P.READY:
                    self._drain()
                    return
        if self.stalled:
            raise self.stall_error()
        raise LinkError(f"device at {self.url} did not answer a resynchronisation ('%') {attempts} times",
                        "check that the firmware is still running (reset the board or restart the emulator)")

    def reconnect(self, max_wait: float = 30.0, ready_timeout: float = 10.0) -> None:
        """Reopen the port after it disappeared (USB re-enumeration, socket closed), with exponential
        backoff (0.1 s doubling to 2 s) for up to ``max_wait`` seconds, then wait until the device answers.

        The raw logs stay open; a partial line from before the gap is counted as truncated.
        """
        self.counters.reconnects += 1
        self.parser.flush()
        self._pending.clear()
        deadline = time.monotonic() + max_wait
        limits = self._stall_limits()
        capped = limits is not None and limits[1] < deadline
        if limits is not None:
            deadline = min(deadline, limits[1])  # a silent device gets no longer than the stall deadline
        delay = 0.1
        while True:
            if self._cancelled.is_set():
                raise self._cancel_error()
            try:
                self.transport.reopen(0.0)
                break
            except LinkError as exc:
                if time.monotonic() + delay > deadline:
                    if capped or self.stalled:
                        raise self.stall_error() from None
                    raise LinkError(f"could not reconnect to {self.url} within {max_wait:g} s: {exc.problem}",
                                    exc.hint) from None
                log.info("reconnect to %s failed (%s); retrying in %.1f s", self.url, exc.problem, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        log.info("reconnected to %s", self.url)
        self.wait_ready(ready_timeout, quiet=0.5)

    def command(self, text: str, timeout: float | None = None, *, check: bool = True,
                done: Callable[[list[P.Line]], bool] | None = None) -> list[P.Line]:
        """Send ``text%`` and return the reply lines before ``m-ready`` (corrupt lines included, marked).

        ``timeout`` is per line (default: :meth:`timeout_for`). With ``check``, an ``e-[...]`` reply
        raises DeviceError. ``done(lines)`` says when every line the caller needs has arrived: from then
        on ``m-ready`` is awaited only ``tail_timeout`` seconds, and if it was lost the client resyncs
        instead of failing. Without it, a missing ``m-ready`` raises CommandTimeout.
        """
        if len(text) > 80:
            raise LinkError(f"command {text[:20]!r}... is {len(text)} characters long",
                            "MLPerf commands are at most 80 characters before '%'")
        return self._exchange(text, text.encode("ascii") + b"%", timeout, check, done)

    def _exchange(self, text: str, payload: bytes, timeout: float | None, check: bool,
                  done: Callable[[list[P.Line]], bool] | None) -> list[P.Line]:
        timeout = self.timeout_for(text) if timeout is None else timeout
        stale = [ln for ln in self._pending]
        self._pending.clear()
        for ln in stale:
            log.debug("dropped stale line %r before %r", ln.text, text)
        self._send(payload)
        lines: list[P.Line] = []
        complete = False
        while True:
            line = self._next_line(self.tail_timeout if complete else timeout)
            if line is None:
                self.counters.timeouts += 1
                if complete:
                    log.info("`%s%%`: m-ready lost; resynchronising", text)
                    self.resync()
                    break
                raise CommandTimeout(
                    f"device at {self.url} did not answer `{text}%` within {timeout:g} s",
                    "check the port/baud, that the firmware is running, and that nothing else holds the port",
                )
            if line.kind == P.READY:
                break
            lines.append(line)
            if done is not None and not complete and done(lines):
                complete = True
        if check:
            for ln in lines:
                if ln.kind == P.ERROR:
                    raise DeviceError(
                        f"device at {self.url} rejected `{text}%`: {P.error_message(ln.text)}",
                        "check the command against docs/protocol.md",
                    )
        return lines

    def _te(self, text: str, prefix: str, timeout: float | None = None) -> list[str]:
        """A te- command whose reply is one idempotent line: re-sent while it fails its CRC."""
        done = lambda ls: any(ln.kind == P.TE and ln.text.startswith(prefix) for ln in ls)  # noqa: E731
        for attempt in range(self.retries + 1):
            if attempt:
                self.counters.retries += 1
            try:
                lines = self.command(text, timeout, done=done)
            except CommandTimeout:
                self.resync()
                continue
            good = [ln.text for ln in lines if ln.kind == P.TE and ln.text.startswith(prefix)]
            if good:
                return good
            bad = sum(ln.kind == P.CORRUPT for ln in lines)
            log.info("`%s%%` reply %s (attempt %d)", text,
                     f"had {bad} corrupt line(s)" if bad else "had no te- line", attempt + 1)
        raise P.ProtocolError(
            f"device at {self.url} did not give a valid `{text}%` reply in {self.retries + 1} attempts "
            f"(corrupt lines so far: {self.parser.stats.corrupt})",
            "check the baud rate and the cable; see raw.log for what was received",
        )

    def _messages(self, lines: list[P.Line]) -> list[str]:
        return [ln.text for ln in lines if ln.kind in (P.MESSAGE, P.OTHER)]

    # ------------------------------------------------------------------ MLPerf Tiny commands

    def name(self) -> str:
        """``name%`` -> the text in ``m-name-dut-[...]``."""
        for text in self._messages(self.command("name")):
            if text.startswith("m-name-"):
                return text[len("m-name-"):]
        raise P.ProtocolError(f"device at {self.url} answered `name%` without an m-name line",
                              "check that an MLPerf Tiny firmware is running")

    def mlperf_profile(self) -> dict[str, str]:
        """``profile%`` -> ``{"profile": "ULPMark ...", "model": "kws01"}``."""
        found: dict[str, str] = {}
        for text in self._messages(self.command("profile")):
            for key in ("profile", "model"):
                if text.startswith(f"m-{key}-[") and text.endswith("]"):
                    found[key] = text[len(key) + 4:-1]
        return found

    def timestamp(self) -> int:
        """``timestamp%`` -> microseconds."""
        for text in self._messages(self.command("timestamp")):
            if text.startswith("m-lap-us-"):
                return P.parse_lap(text)
        raise P.ProtocolError(f"device at {self.url} answered `timestamp%` without m-lap-us",
                              "the device may be in energy mode; use a performance-mode firmware")

    def load_input(self, data: bytes) -> None:
        """Send one input: ``db load N`` then ``db <hex>`` lines of 31 bytes, as the MLPerf runner does."""
        data = bytes(data)
        if not data:
            raise LinkError("no input bytes to send", "pass a non-empty input")
        lines = self._messages(self.command(f"db load {len(data)}"))
        if f"m-[Expecting {len(data)} bytes]" not in lines:
            raise P.ProtocolError(f"device at {self.url} did not accept `db load {len(data)}`: {lines}",
                                  "check that the input size matches the model the firmware was built for")
        for i in range(0, len(data), DB_CHUNK):
            reply = self._messages(self.command("db " + data[i:i + DB_CHUNK].hex()))
            last = i + DB_CHUNK >= len(data)
            if last and "m-load-done" not in reply:
                raise P.ProtocolError(f"device at {self.url} did not confirm the input (no m-load-done)",
                                      "see raw.log; the link may drop bytes at this baud rate")

    def infer(self, n: int = 1, warmup: int = 0, timeout: float | None = None) -> InferResult:
        """``infer N W`` -> the two laps (µs) and the dequantized outputs."""
        lines = self._messages(self.command(f"infer {int(n)} {int(warmup)}", timeout))
        laps = [P.parse_lap(t) for t in lines if t.startswith("m-lap-us-")]
        res = [P.parse_results(t) for t in lines if t.startswith("m-results-")]
        if len(laps) != 2 or not res:
            raise P.ProtocolError(f"device at {self.url} gave an incomplete `infer` reply: {lines}",
                                  "see raw.log")
        return InferResult(laps, res[-1], lines)

    def results(self) -> list[float]:
        """``results%`` -> the dequantized outputs of the last inference."""
        for text in self._messages(self.command("results")):
            if text.startswith("m-results-"):
                return P.parse_results(text)
        raise P.ProtocolError(f"device at {self.url} answered `results%` without m-results", "see raw.log")

    # ------------------------------------------------------------------ tinyedge extensions

    def info(self) -> dict[str, str | int]:
        """``te-info%`` -> board, clock, timer, memory and model facts (see docs/protocol.md).

        Protocol-2 firmware sends one key per line: lines lost to corruption are asked for again and
        the valid ones merged until every key is there.
        """
        merged: dict[str, str | int] = {}
        done = lambda ls: P.te_info_complete(  # noqa: E731
            {**merged, **{k: v for ln in ls if ln.kind == P.TE and ln.text.startswith("te-info-")
                          for k, v in P.te_info_items(ln.text).items()}})
        for attempt in range(self.retries + 1):
            if attempt:
                self.counters.retries += 1
            try:
                lines = self.command("te-info", done=done)
            except CommandTimeout:
                self.resync()
                continue
            for ln in lines:
                if ln.kind == P.TE and ln.text.startswith("te-info-"):
                    merged.update(P.te_info_items(ln.text))
            if P.te_info_complete(merged):
                info = P.parse_te_info([f"te-info-{k}={v}" for k, v in merged.items()])
                self.protocol = int(info.get("protocol", 1))
                self.layers = int(info["layers"]) if "layers" in info else None
                return info
        raise P.ProtocolError(
            f"device at {self.url} did not give a complete `te-info%` reply in {self.retries + 1} attempts "
            f"(have {sorted(merged)}; corrupt lines so far: {self.parser.stats.corrupt})",
            "check the baud rate and the cable; see raw.log for what was received",
        )

    def te_results(self) -> TeResults:
        """``te-results%`` -> outputs (int8 or int16) and ticks of the last inference."""
        return _te_results(P.parse_te_results(self._te("te-results", "te-results-")[0]))

    def load(self, data: bytes) -> None:
        """Load one input with ``te-load`` (a COBS frame with CRC: one round trip) when the firmware
        speaks protocol 2, else with MLPerf's ``db`` commands. Raises ProtocolError/DeviceError when the
        device did not receive exactly these bytes."""
        data = bytes(data)
        if not data:
            raise LinkError("no input bytes to send", "pass a non-empty input")
        if self.protocol is not None and self.protocol < 2:
            self.load_input(data)
            return
        crc = P.crc16_ccitt_false(data)
        text = f"te-load {len(data)} {crc:04X}"
        lines = self._exchange(text, text.encode("ascii") + b"%" + P.cobs_encode(data) + b"\x00", None, True,
                               lambda ls: any(ln.kind == P.TE and ln.text.startswith("te-load-") for ln in ls))
        for ln in lines:
            if ln.kind == P.TE and ln.text.startswith("te-load-"):
                ack = P.parse_te_load(ln.text)
                if ack == {"bytes": len(data), "crc": crc}:
                    return
                raise P.ProtocolError(f"device at {self.url} acknowledged te-load of {ack['bytes']} bytes with "
                                      f"CRC {ack['crc']:04X}, sent {len(data)} bytes with CRC {crc:04X}",
                                      "send the input again")
        raise P.ProtocolError(f"device at {self.url} gave no valid te-load acknowledgement",
                              "send the input again; see raw.log")

    def te_infer(self, in_crc: int | None = None) -> TeResults:
        """One inference on the loaded input (``te-infer``); a corrupt reply is re-asked with the
        idempotent ``te-results``, never by running again. With ``in_crc``, a reply for another input
        (a lost te-load) raises ProtocolError."""
        done = lambda ls: any(ln.kind == P.TE and ln.text.startswith("te-results-") for ln in ls)  # noqa: E731
        good: list[str] = []
        try:
            lines = self.command("te-infer", done=done)
            good = [ln.text for ln in lines if ln.kind == P.TE and ln.text.startswith("te-results-")]
        except CommandTimeout:
            self.resync()
        if not good:
            self.counters.retries += 1
            good = self._te("te-results", "te-results-")
        res = _te_results(P.parse_te_results(good[0]))
        if in_crc is not None and res.in_crc is not None and res.in_crc != in_crc:
            raise P.ProtocolError(f"device at {self.url} ran an input with CRC {res.in_crc:04X}, "
                                  f"expected {in_crc:04X}", "load the input again")
        return res

    def profile(self, timeout: float | None = None, *, layers: int | None = None) -> dict[str, object]:
        """``te-profile%`` -> per-layer ticks of one inference.

        Layer lines lost to corruption are asked for again and merged by layer index (each attempt is
        a new profiled inference: on real hardware merged figures may come from different runs). The
        layer count is ``layers``, else te-info's (after :meth:`info`), else that of a clean reply.
        """
        layers = layers if layers is not None else self.layers
        got: dict[int, str] = {}
        total: str | None = None

        def merge(lines: list[P.Line], got: dict[int, str], total: str | None) -> tuple[dict[int, str], str | None]:
            got = dict(got)
            for ln in lines:
                if ln.kind == P.TE and ln.text.startswith("te-profile-total-"):
                    total = ln.text
                elif ln.kind == P.TE and ln.text.startswith("te-profile-"):
                    head = ln.text.split("-", 3)
                    if len(head) > 2 and head[2].isdigit():
                        got[int(head[2])] = ln.text
            return got, total

        def complete(got: dict[int, str], total: str | None, n: int | None) -> bool:
            return total is not None and n is not None and all(i in got for i in range(n))

        for attempt in range(self.retries + 1):
            if attempt:
                self.counters.retries += 1

            def done(ls: list[P.Line], got: dict[int, str] = got, total: str | None = total,
                     n: int | None = layers) -> bool:
                return complete(*merge(ls, got, total), n)  # this attempt's lines on top of what we have

            try:
                lines = self.command("te-profile", timeout, done=done)
            except CommandTimeout:
                self.resync()
                continue
            if layers is None and lines and not any(ln.kind == P.CORRUPT for ln in lines):
                layers = sum(ln.kind == P.TE and ln.text.startswith("te-profile-")
                             and not ln.text.startswith("te-profile-total-") for ln in lines)
            got, total = merge(lines, got, total)
            if total is not None and layers is not None and complete(got, total, layers):
                return P.parse_te_profile([got[i] for i in range(layers)] + [total])
        raise P.ProtocolError(
            f"device at {self.url} did not give a complete `te-profile%` reply in {self.retries + 1} attempts "
            f"(have layers {sorted(got)} of {layers if layers is not None else '?'})",
            "check the baud rate and the cable; see raw.log for what was received",
        )

    def iter_stream(self, n: int, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """``te-stream N``, yielded record by record as the lines arrive (for live monitors; ``score`` is a float
        for a model with a float32 output, see :func:`protocol.parse_te_stream`).

        Lines lost to corruption are skipped (``seq`` shows the gap); ends at the reply's ``m-ready``.
        An ``e-[...]`` reply raises DeviceError; no end within ``timeout`` per line, CommandTimeout.
        """
        text = f"te-stream {int(n)}"
        timeout = self.timeout_for(text) if timeout is None else timeout
        self._pending.clear()
        self._send(text.encode("ascii") + b"%")
        while True:
            line = self._next_line(timeout)
            if line is None:
                self.counters.timeouts += 1
                raise CommandTimeout(f"device at {self.url} stopped streaming (`{text}%`) for {timeout:g} s",
                                     "check that the firmware is still running; resync or reconnect")
            if line.kind == P.READY:
                return
            if line.kind == P.ERROR:
                if line.text.startswith("e-["):
                    raise DeviceError(f"device at {self.url} rejected `{text}%`: {P.error_message(line.text)}",
                                      "check the command against docs/protocol.md")
                # "e-s-..." is a te-s line that lost its leading byte on the link: noise (the seq gap shows it)
                log.debug("garbled stream line %r", line.text)
                continue
            if line.kind == P.TE and line.text.startswith("te-s-"):
                yield P.parse_te_stream(line.text)

    def stream(self, n: int, timeout: float | None = None) -> list[dict[str, Any]]:
        """``te-stream N`` -> one dict per inference; lines lost to corruption are simply missing."""
        return list(self.iter_stream(n, timeout))

    def interrupt(self) -> None:
        """Stop a running ``infer``/``te-stream`` with the break byte (0x03, docs/protocol.md), then
        :meth:`resync`. The firmware stops between two inferences and answers
        ``e-[... interrupted after K of N]``; an idle one ignores the byte."""
        self.transport.write(BREAK)
        self.resync()

    def close(self) -> None:
        self.transport.close()


def _te_results(d: P.TeResultsFields) -> TeResults:
    if "out_bits" in d:  # float32 outputs: rebuilt from their IEEE bits, so even NaN payloads are the device's
        return TeResults(np.asarray(d["out_bits"], dtype=np.uint32).view(np.float32), d["ticks"], d["in_crc"])
    return TeResults(np.asarray(d["out"], dtype=np.int16 if d.get("bits") == 16 else np.int8), d["ticks"], d["in_crc"])
