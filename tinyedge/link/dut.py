"""The device under test as a Python object: MLPerf Tiny commands plus tinyedge's te- extensions.

:class:`DutClient` sends one command at a time and reads lines until ``m-ready``. Timeouts are per
line, like the MLPerf runner: a slow ``infer`` is fine as long as the device keeps talking.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import LinkError
from . import protocol as P
from .transport import Transport

log = logging.getLogger("tinyedge.link")

#: Bytes per ``db`` line, as the MLPerf runner sends them (31 bytes = 62 hex digits + "db " < 80).
DB_CHUNK = 31
COMMAND_TIMEOUT = 5.0
INFER_TIMEOUT = 30.0


class DeviceError(LinkError):
    """The device answered a command with an ``e-[...]`` line."""


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
    """``te-results``: the int8 outputs of the last inference and its timer ticks."""

    out: np.ndarray
    ticks: int


class DutClient:
    """Drive a DUT over a :class:`Transport` (or anything with ``read(timeout)``/``write(bytes)``/``url``)."""

    def __init__(self, transport: Transport, *, retries: int = 2) -> None:
        self.transport = transport
        self.parser = P.LineParser()
        self.retries = retries
        self._pending: list[P.Line] = []
        self.banner: list[str] = []

    @property
    def url(self) -> str:
        return getattr(self.transport, "url", "<transport>")

    # ------------------------------------------------------------------ low level

    def _next_line(self, timeout: float) -> P.Line | None:
        """The next complete line, or None when nothing completes a line within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.transport.read(min(left, 0.5))
            if data:
                self._pending.extend(self.parser.feed(data))
        return self._pending.pop(0)

    def wait_ready(self, timeout: float = 10.0, *, quiet: float = 1.0) -> list[str]:
        """Wait for the boot banner's ``m-ready``; return the banner lines.

        A device that booted before we connected sends no banner: after ``quiet`` seconds of
        silence, probe it with ``name%`` (harmless, answered by any MLPerf firmware).
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
            line = self._next_line(min(left, quiet) if not probed else left)
            if line is None:
                if not probed:
                    log.info("no banner from %s; probing with name%%", self.url)
                    self.transport.write(b"name%")
                    probed = True
                continue
            if line.kind == P.READY:
                if probed:
                    self._drain()  # a late banner may still be on its way
                self.banner = lines
                return lines
            if line.ok:
                lines.append(line.text)

    def _drain(self, wait: float = 0.05) -> None:
        """Drop lines that arrive unasked (e.g. a late banner) so they are not taken as an answer."""
        while True:
            line = self._next_line(wait)
            if line is None:
                return
            log.debug("dropped unsolicited line %r", line.text)

    def command(self, text: str, timeout: float = COMMAND_TIMEOUT, *, check: bool = True) -> list[P.Line]:
        """Send ``text%`` and return the reply lines before ``m-ready`` (corrupt lines included, marked).

        ``timeout`` is per line. With ``check``, an ``e-[...]`` reply raises DeviceError.
        """
        if len(text) > 80:
            raise LinkError(f"command {text[:20]!r}... is {len(text)} characters long",
                            "MLPerf commands are at most 80 characters before '%'")
        stale = [ln for ln in self._pending]
        self._pending.clear()
        for ln in stale:
            log.debug("dropped stale line %r before %r", ln.text, text)
        self.transport.write(text.encode("ascii") + b"%")
        lines: list[P.Line] = []
        while True:
            line = self._next_line(timeout)
            if line is None:
                raise LinkError(
                    f"device at {self.url} did not answer `{text}%` within {timeout:g} s",
                    "check the port/baud, that the firmware is running, and that nothing else holds the port",
                )
            if line.kind == P.READY:
                break
            lines.append(line)
        if check:
            for ln in lines:
                if ln.kind == P.ERROR:
                    raise DeviceError(
                        f"device at {self.url} rejected `{text}%`: {P.error_message(ln.text)}",
                        "check the command against docs/protocol.md",
                    )
        return lines

    def _te(self, text: str, prefix: str, timeout: float = COMMAND_TIMEOUT) -> list[str]:
        """A te- command whose reply is idempotent: retried while any line fails its CRC."""
        for attempt in range(self.retries + 1):
            lines = self.command(text, timeout)
            bad = [ln for ln in lines if ln.kind == P.CORRUPT]
            good = [ln.text for ln in lines if ln.kind == P.TE and ln.text.startswith(prefix)]
            if not bad and good:
                return good
            log.warning("`%s%%` reply %s (attempt %d)", text,
                        f"had {len(bad)} corrupt line(s)" if bad else "had no te- line", attempt + 1)
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

    def infer(self, n: int = 1, warmup: int = 0, timeout: float = INFER_TIMEOUT) -> InferResult:
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
        """``te-info%`` -> board, clock, timer, memory and model facts (see docs/protocol.md)."""
        return P.parse_te_info(self._te("te-info", "te-info-")[0])

    def te_results(self) -> TeResults:
        """``te-results%`` -> int8 outputs and ticks of the last inference."""
        d = P.parse_te_results(self._te("te-results", "te-results-")[0])
        return TeResults(np.asarray(d["out"], dtype=np.int8), int(d["ticks"]))  # type: ignore[arg-type]

    def profile(self, timeout: float = INFER_TIMEOUT) -> dict[str, object]:
        """``te-profile%`` -> per-layer ticks of one inference."""
        return P.parse_te_profile(self._te("te-profile", "te-profile-", timeout))

    def stream(self, n: int, timeout: float = INFER_TIMEOUT) -> list[dict[str, int]]:
        """``te-stream N`` -> one dict per inference; lines lost to corruption are simply missing."""
        lines = self.command(f"te-stream {int(n)}", timeout)
        return [P.parse_te_stream(ln.text) for ln in lines if ln.kind == P.TE and ln.text.startswith("te-s-")]

    def close(self) -> None:
        self.transport.close()
