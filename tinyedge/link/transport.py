"""Byte transport to a device: any pyserial URL (a tty, ``socket://``, ``rfc2217://``, ``loop://``).

The transport knows nothing about lines or commands. It appends every byte it receives to the raw
log(s) (flushed per chunk) *before* anything parses it, so a log survives a crash of the parser.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, BinaryIO

import serial

from ..errors import LinkError

log = logging.getLogger("tinyedge.link")

DEFAULT_BAUD = 115200


class ConnectionLost(LinkError):
    """The port went away (cable pulled, USB re-enumeration, emulator or proxy closed the socket).

    :meth:`Transport.reopen` (or :meth:`tinyedge.link.DutClient.reconnect`) opens it again.
    """


def _open_hint(url: str) -> str:
    if url.startswith("socket://"):
        return ("check that the emulator (tinyedge emulate) is running and listening on that TCP port, "
                "and that no other client is connected to it")
    if url.startswith("rfc2217://"):
        return "check that the RFC 2217 server is running and reachable"
    return ("check the port name (e.g. /dev/ttyACM0 or COM3), that the board is plugged in, "
            "that you may open it (dialout group), and that no serial monitor holds it")


def open_url(url: str, **kwargs: Any) -> serial.SerialBase:
    """``serial.serial_for_url(url, **kwargs)``, opened without dropping bytes that already arrived.

    pyserial's socket:// open() ends with reset_input_buffer(), which silently drops what already
    arrived: an emulator's boot banner, and bytes the raw log must keep.
    """
    port = serial.serial_for_url(url, do_not_open=True, **kwargs)
    port.reset_input_buffer = lambda: None
    port.open()
    return port


class Transport:
    """A byte pipe to a device over a pyserial URL, with raw logging of everything received.

    ``baud`` defaults to 115200 (the MLPerf Tiny performance-mode rate); socket URLs ignore it.
    ``connect_timeout`` keeps retrying a refused ``socket://`` connection for that long, because an
    emulator just started may not be listening yet.
    """

    def __init__(
        self,
        url: str,
        *,
        baud: int | None = None,
        raw_log: str | Path | None = None,
        connect_timeout: float = 0.0,
    ) -> None:
        self.url = url
        self.baud = int(baud or DEFAULT_BAUD)
        self._logs: list[BinaryIO] = []
        self._port = self._open(connect_timeout)
        self.bytes_in = 0
        self.bytes_out = 0
        self.reconnects = 0
        if raw_log is not None:
            self.add_raw_log(raw_log)

    def _open(self, connect_timeout: float) -> serial.SerialBase:
        deadline = time.monotonic() + max(0.0, connect_timeout)
        while True:
            try:
                port = open_url(self.url, baudrate=self.baud, timeout=0.1, write_timeout=10)
                log.info("opened %s at %d baud", self.url, self.baud)
                return port
            except (serial.SerialException, ValueError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise LinkError(f"cannot open {self.url}: {exc}", _open_hint(self.url)) from None
                time.sleep(0.1)

    def reopen(self, timeout: float = 0.0) -> None:
        """Close the port and open the same URL again (retrying for ``timeout`` seconds).

        The raw logs stay open, so they keep every byte across the gap. Raises LinkError when the
        port cannot be opened in time.
        """
        try:
            self._port.close()
        except (serial.SerialException, OSError):
            pass
        self._port = self._open(timeout)
        self.reconnects += 1

    def add_raw_log(self, path: str | Path) -> Path:
        """Also append every received byte to ``path`` (created with its folder; appended to)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._logs.append(open(path, "ab"))
        return path

    def remove_raw_logs(self) -> None:
        """Close and forget all raw logs."""
        for f in self._logs:
            f.close()
        self._logs.clear()

    def read(self, timeout: float) -> bytes:
        """Whatever arrives within ``timeout`` seconds (returns as soon as some bytes are there).

        Returns ``b""`` when nothing came; raises ConnectionLost when the connection is gone.
        """
        try:
            self._port.timeout = max(0.0, timeout)
            first = self._port.read(1)
            if not first:
                return b""
            # Then take what is already buffered without waiting.
            self._port.timeout = 0
            data: bytes = first + self._port.read(65536)
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            # (pyserial raises TypeError/AttributeError when reading a port that was closed under it)
            raise ConnectionLost(
                f"lost the connection to {self.url}: {exc}",
                "check that the device (or emulator) is still running and the cable is connected",
            ) from None
        self.bytes_in += len(data)
        for f in self._logs:
            f.write(data)
            f.flush()
        return data

    def write(self, data: bytes) -> None:
        """Send ``data`` (all of it)."""
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            raise ConnectionLost(
                f"cannot write to {self.url}: {exc}",
                "check that the device (or emulator) is still running and nothing else holds the port",
            ) from None
        self.bytes_out += len(data)

    def close(self) -> None:
        """Close the port and the raw logs; safe to call twice."""
        try:
            self._port.close()
        finally:
            self.remove_raw_logs()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
