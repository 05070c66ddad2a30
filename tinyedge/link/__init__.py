"""Talking to a device: byte transport (:mod:`.transport`), line parser (:mod:`.protocol`), DUT client (:mod:`.dut`)."""

from __future__ import annotations

from pathlib import Path

from .dut import CommandTimeout, DeviceError, DutClient, InferResult, LinkCounters, TeResults
from .protocol import LineParser, ProtocolError, cobs_decode, cobs_encode, crc16_ccitt_false
from .transport import ConnectionLost, Transport

__all__ = ["CommandTimeout", "ConnectionLost", "DeviceError", "DutClient", "InferResult", "LineParser", "LinkCounters",
           "ProtocolError", "TeResults", "Transport", "cobs_decode", "cobs_encode", "crc16_ccitt_false", "connect"]


def connect(url: str, *, baud: int | None = None, raw_log: str | Path | None = None, connect_timeout: float = 5.0,
            ready_timeout: float = 10.0) -> DutClient:
    """Open ``url`` and wait until the device is ready; the caller closes the client."""
    transport = Transport(url, baud=baud, raw_log=raw_log, connect_timeout=connect_timeout)
    client = DutClient(transport)
    try:
        client.wait_ready(ready_timeout)
    except BaseException:
        transport.close()
        raise
    return client
