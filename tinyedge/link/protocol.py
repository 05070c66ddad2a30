"""Line parser for the DUT protocol (MLPerf Tiny lines plus CRC-checked ``te-`` lines).

The parser never raises on what the device sends: bytes are split into lines on ``\\n`` (a ``\\r``
before it is dropped), each line is classified, and a line that cannot be trusted (a ``te-`` line
with a missing or wrong CRC, non-printable bytes) is counted as corrupt and never handed out as
valid. The next line starts afresh, so one bad line costs exactly that line.

The ``parse_*`` helpers turn verified payloads into dicts and raise :class:`ProtocolError`
(a LinkError) when a payload does not match the grammar in docs/protocol.md.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from ..errors import LinkError

#: Lines longer than this without a newline are cut and counted as truncated (te-results of a
#: 640-output model is ~3.3 kB; this leaves room for models with large outputs).
MAX_LINE = 64 * 1024

# Kinds of lines
READY = "ready"      # m-ready: ends every reply
MESSAGE = "m"        # m-...
ERROR = "e"          # e-[...]
TE = "te"            # te-... with a verified CRC; .text holds the payload without "*XXXX"
OTHER = "other"      # printable text with no known prefix (e.g. the help listing)
CORRUPT = "corrupt"  # never to be trusted

_CRC_TAIL = re.compile(r"\*([0-9A-F]{4})$")  # upper case only: a flipped case bit is an error too


class ProtocolError(LinkError):
    """The device answered, but not in the grammar tinyedge expects."""


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR (check 0x29B1)."""
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: ``data`` with no 0x00 bytes (the frame delimiter is added by
    the caller). At most one byte of overhead per 254 bytes, plus one."""
    out = bytearray()
    block = bytearray()
    for b in data:
        if b == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(frame: bytes) -> bytes:
    """Inverse of :func:`cobs_encode` (``frame`` without its 0x00 delimiter); ValueError when malformed."""
    out = bytearray()
    i, n = 0, len(frame)
    while i < n:
        code = frame[i]
        end = i + code
        if code == 0 or end > n:
            raise ValueError(f"malformed COBS frame at byte {i}")
        block = frame[i + 1:end]
        if 0 in block:
            raise ValueError(f"malformed COBS frame: 0x00 inside the block at byte {i}")
        out += block
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


def with_crc(text: str) -> str:
    """``text`` followed by ``*XXXX``, as the firmware sends te- lines (for tests and simulators)."""
    return f"{text}*{crc16_ccitt_false(text.encode('ascii')):04X}"


@dataclass(frozen=True)
class Line:
    """One received line. ``text`` is the line without the line ending (for te-: without CRC)."""

    kind: str
    text: str
    raw: bytes = b""
    reason: str = ""  # why a line is corrupt

    @property
    def ok(self) -> bool:
        return self.kind != CORRUPT


@dataclass
class Stats:
    lines: int = 0
    corrupt: int = 0
    unknown: int = 0
    truncated: int = 0
    crc_ok: int = 0


@dataclass
class LineParser:
    """Incremental parser: :meth:`feed` bytes, get back the complete lines they finish."""

    max_line: int = MAX_LINE
    stats: Stats = field(default_factory=Stats)
    _buf: bytearray = field(default_factory=bytearray)
    _skipping: bool = False  # inside an over-long line: drop bytes until its newline

    def feed(self, data: bytes) -> list[Line]:
        out: list[Line] = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            chunk = data[start:] if nl < 0 else data[start:nl]
            if self._skipping:
                if nl >= 0:
                    self._skipping = False
            else:
                self._buf += chunk
                if len(self._buf) > self.max_line:
                    self._buf.clear()
                    self.stats.truncated += 1
                    self._skipping = nl < 0
                elif nl >= 0:
                    raw = bytes(self._buf)
                    self._buf.clear()
                    line = self.classify(raw)
                    if line is not None:
                        out.append(line)
            if nl < 0:
                return out
            start = nl + 1

    def flush(self) -> Line | None:
        """End of stream: a pending partial line is counted as truncated and dropped."""
        if self._buf:
            self._buf.clear()
            self.stats.truncated += 1
        self._skipping = False
        return None

    @property
    def pending(self) -> bytes:
        """Bytes of the line being received (no newline yet)."""
        return bytes(self._buf)

    def classify(self, raw: bytes) -> Line | None:
        """Classify one line (without ``\\n``); None for an empty line, which is not counted."""
        body = raw.rstrip(b"\r")
        # UART noise at reset (NUL, 0xFF) often precedes the first line: it is not part of a line.
        body = body.lstrip(b"\x00\xff")
        if not body.strip():
            return None
        self.stats.lines += 1
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            return self._corrupt(raw, "non-ASCII bytes")
        if any(not (32 <= ord(c) < 127) for c in text):
            return self._corrupt(raw, "control characters")
        if text.startswith("te-"):
            m = _CRC_TAIL.search(text)
            if m is None:
                return self._corrupt(raw, "te- line without *CRC")
            payload = text[: m.start()]
            got = int(m.group(1), 16)
            want = crc16_ccitt_false(payload.encode("ascii"))
            if got != want:
                return self._corrupt(raw, f"CRC {got:04X} != {want:04X}")
            self.stats.crc_ok += 1
            return Line(TE, payload, raw)
        if text == "m-ready":
            return Line(READY, text, raw)
        if text.startswith("m-"):
            return Line(MESSAGE, text, raw)
        if text.startswith("e-"):
            return Line(ERROR, text, raw)
        self.stats.unknown += 1
        return Line(OTHER, text, raw)

    def _corrupt(self, raw: bytes, reason: str) -> Line:
        self.stats.corrupt += 1
        return Line(CORRUPT, raw.decode("ascii", "replace"), raw, reason)


# ---------------------------------------------------------------------------------------- helpers


def _bad(what: str, text: str) -> ProtocolError:
    return ProtocolError(
        f"unexpected {what} line from the device: {text[:120]!r}",
        "check that the firmware was generated by this tinyedge version (tinyedge generate) and rebuild it",
    )


def error_message(text: str) -> str:
    """``e-[Unknown command: x]`` -> ``Unknown command: x``."""
    m = re.fullmatch(r"e-\[(.*)\]", text)
    return m.group(1) if m else text[2:]


_INT_KEYS = {"clock_hz", "timer_hz", "emulated", "arena_bytes", "input_bytes", "output_count",
             "layers", "flash_bytes", "ram_bytes", "protocol", "baud", "keys"}
#: Keys without which a te-info reply is useless to a host.
INFO_REQUIRED = ("board", "model_sha256", "timer_hz", "output_count", "input_bytes")


def te_info_items(text: str) -> dict[str, str | int]:
    """The ``key=value`` items of one te-info line (protocol 2 sends one per line, protocol 1 all in one)."""
    if not text.startswith("te-info-"):
        raise _bad("te-info", text)
    info: dict[str, str | int] = {}
    for item in text[len("te-info-"):].split(","):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _bad("te-info", text)
        if key in _INT_KEYS:
            try:
                info[key] = int(value)
            except ValueError:
                raise _bad("te-info", text) from None
        else:
            info[key] = value
    return info


def te_info_complete(info: dict[str, str | int]) -> bool:
    """True when merged te-info items hold every key the device announced (``keys``) or, for a
    protocol-1 device (one line, no ``keys``), every required key."""
    if "keys" in info:
        return len(info) >= int(info["keys"]) and all(k in info for k in INFO_REQUIRED)
    return all(k in info for k in INFO_REQUIRED) and "version" in info


def parse_te_info(text: str | list[str]) -> dict[str, str | int]:
    """te-info line(s) -> dict; numeric fields as int, ``emulated`` as bool.

    Accepts the one-line reply of protocol 1 (``te-info-board=x,clock_hz=25000000,...``) or the lines
    of protocol 2 (``te-info-board=x``, ``te-info-clock_hz=25000000``, ..., ``te-info-keys=20``).
    """
    texts = [text] if isinstance(text, str) else list(text)
    info: dict[str, str | int] = {}
    for t in texts:
        info.update(te_info_items(t))
    for key in INFO_REQUIRED:
        if key not in info:
            raise _bad("te-info", texts[-1] if texts else "<nothing>")
    info.pop("keys", None)
    info["emulated"] = bool(info.get("emulated", 0))
    return info


_RESULTS = re.compile(r"te-results-ticks=(\d+),out(16)?=\[(-?\d+(?:,-?\d+)*)?\](?:,in_crc=([0-9A-F]{4}))?")
_RESULTS_F = re.compile(r"te-results-ticks=(\d+),outf=\[([0-9A-F]{8}(?:,[0-9A-F]{8})*)?\],in_crc=([0-9A-F]{4})")


def float32_from_bits(word: int) -> float:
    """The float32 whose IEEE-754 bits are ``word`` (``0x3F800000`` -> 1.0), as a Python float (exact)."""
    value: float = struct.unpack("<f", struct.pack("<I", word))[0]
    return value


class TeResultsFields(TypedDict):
    """A parsed ``te-results`` line; ``bits`` is 16 for the ``out16=[...]`` of a model with an int16 output,
    32 for the ``outf=[...]`` of a float32 output (absent for int8 outputs). A float32 output's ``out`` holds the
    floats and ``out_bits`` their IEEE-754 bits as sent (rebuild the exact float32 array from these)."""

    ticks: int
    out: list[int] | list[float]
    in_crc: int | None
    bits: NotRequired[int]
    out_bits: NotRequired[list[int]]


def parse_te_results(text: str) -> TeResultsFields:
    """``te-results-ticks=T,out=[q0,q1,...],in_crc=XXXX`` -> ``{"ticks": T, "out": [q0, ...], "in_crc": int}``.

    ``in_crc`` (the CRC-16 of the input the inference ran on) is None from protocol-1 firmware. A model with
    an int16 output sends ``out16=[...]``: its values span int16 and the result has ``"bits": 16``. A float32
    output sends ``outf=[...]``, each float as its 8 upper-case hex IEEE-754 bits: ``"bits": 32``.
    """
    mf = _RESULTS_F.fullmatch(text)
    if mf is not None:
        words = [int(w, 16) for w in mf.group(2).split(",")] if mf.group(2) else []
        return {"ticks": int(mf.group(1)), "out": [float32_from_bits(w) for w in words],
                "in_crc": int(mf.group(3), 16), "bits": 32, "out_bits": words}
    m = _RESULTS.fullmatch(text)
    if m is None:
        raise _bad("te-results", text)
    bits = 16 if m.group(2) else 8
    out = [int(v) for v in m.group(3).split(",")] if m.group(3) else []
    lim = 1 << (bits - 1)
    if any(not -lim <= v < lim for v in out):
        raise _bad("te-results", text)
    fields: TeResultsFields = {"ticks": int(m.group(1)), "out": out,
                               "in_crc": int(m.group(4), 16) if m.group(4) else None}
    if bits == 16:
        fields["bits"] = 16
    return fields


_LOAD = re.compile(r"te-load-(\d+),([0-9A-F]{4})")


def parse_te_load(text: str) -> dict[str, int]:
    """``te-load-N,XXXX`` -> ``{"bytes": N, "crc": 0xXXXX}`` (the device's acknowledgement of te-load)."""
    m = _LOAD.fullmatch(text)
    if m is None:
        raise _bad("te-load", text)
    return {"bytes": int(m.group(1)), "crc": int(m.group(2), 16)}


_PROFILE = re.compile(r"te-profile-(\d+)-(.*)-(\d+)")
_PROFILE_TOTAL = re.compile(r"te-profile-total-(\d+)")


def parse_te_profile(texts: list[str]) -> dict[str, object]:
    """te-profile lines -> ``{"layers": [{"index", "name", "ticks"}], "total_ticks", "sum_ticks"}``."""
    layers: list[dict[str, Any]] = []
    total: int | None = None
    for text in texts:
        m = _PROFILE_TOTAL.fullmatch(text)
        if m:
            total = int(m.group(1))
            continue
        m = _PROFILE.fullmatch(text)
        if m is None:
            raise _bad("te-profile", text)
        layers.append({"index": int(m.group(1)), "name": m.group(2), "ticks": int(m.group(3))})
    if total is None:
        raise _bad("te-profile", texts[-1] if texts else "<nothing>")
    layers.sort(key=lambda d: d["index"])
    return {"layers": layers, "total_ticks": total, "sum_ticks": sum(d["ticks"] for d in layers)}


_STREAM = re.compile(r"te-s-(\d+),(\d+),(\d+),(-?\d+|f[0-9A-F]{8})")


def parse_te_stream(text: str) -> dict[str, Any]:
    """``te-s-<seq>,<ticks>,<top class>,<top score q>`` -> dict with those four ints; a model with a float32
    output sends its top score as ``f`` and the float's 8 hex IEEE-754 bits: ``score`` is then that float."""
    m = _STREAM.fullmatch(text)
    if m is None:
        raise _bad("te-stream", text)
    seq, ticks, top = (int(g) for g in m.groups()[:3])
    raw = m.group(4)
    score: int | float = float32_from_bits(int(raw[1:], 16)) if raw.startswith("f") else int(raw)
    return {"seq": seq, "ticks": ticks, "top": top, "score": score}


_RESULTS_M = re.compile(r"m-results-\[(.*)\]")


def parse_results(text: str) -> list[float]:
    """``m-results-[0.000,-1.250,...]`` -> floats."""
    m = _RESULTS_M.fullmatch(text)
    if m is None:
        raise _bad("m-results", text)
    if not m.group(1):
        return []
    try:
        return [float(v) for v in m.group(1).split(",")]
    except ValueError:
        raise _bad("m-results", text) from None


def parse_lap(text: str) -> int:
    """``m-lap-us-123`` -> 123 (microseconds)."""
    m = re.fullmatch(r"m-lap-us-(\d+)", text)
    if m is None:
        raise _bad("m-lap-us", text)
    return int(m.group(1))
