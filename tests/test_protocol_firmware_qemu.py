"""The firmware's edges on the emulated board (issue 11): tinyedge/runtime/main.c built for mps2-an386 and run in
QEMU, so the CMSDK UART's non-blocking receive check (te_port_poll) is exercised for real. The host-compiled
DUT in test_protocol_firmware.py covers the same grammar in detail."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers import QEMU_BOARD, read_until
from tflite_builder import ACT, ModelBuilder, options
from tinyedge.link import DeviceError, DutClient, Transport
from tinyedge.link import protocol as P
from tinyedge.runners import Deployment, deploy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
        reason="needs arm-none-eabi-gcc and qemu-system-arm",
    ),
]

IN, OUT = 256, 64  # 16k MACs per inference: a million of them take minutes in QEMU, never done before the break


def fc_model() -> bytes:
    rng = np.random.default_rng(11)
    b = ModelBuilder()
    ti = b.tensor((1, IN), scale=0.05, zero_point=-3)
    tw = b.tensor((OUT, IN), data=rng.integers(-127, 128, size=(OUT, IN), dtype=np.int8), scale=0.01, zero_point=0)
    tb = b.tensor((OUT,), "INT32", data=rng.integers(-500, 500, size=OUT).astype(np.int32), scale=0.0005,
                  zero_point=0)
    to = b.tensor((1, OUT), scale=0.5, zero_point=2)
    b.op("FULLY_CONNECTED", [ti, tw, tb], [to],
         options("FullyConnectedOptions", fusedActivationFunction=ACT["NONE"]), "FullyConnectedOptions")
    return b.build([ti], [to])


@pytest.fixture(scope="module")
def firmware(tmp_path_factory, pio_core) -> Iterator[Deployment]:
    model = tmp_path_factory.mktemp("fc") / "fc.tflite"
    model.write_bytes(fc_model())
    with deploy(model, QEMU_BOARD, tmp_path_factory.mktemp("fc-fw") / "project", core_dir=pio_core) as dep:
        yield dep


@pytest.fixture()
def dut(firmware: Deployment, tmp_path: Path) -> Iterator[DutClient]:
    client = DutClient(Transport(firmware.url, raw_log=tmp_path / "raw.log", connect_timeout=10))
    try:
        client.wait_ready(20)
        yield client
    finally:
        client.close()



def test_limits_break_and_rejected_load_on_the_emulated_uart(dut):
    x = np.random.default_rng(0).integers(-128, 128, size=IN, dtype=np.int8).tobytes()
    crc = P.crc16_ccitt_false(x)
    dut.load(x)
    assert dut.te_infer(crc).in_crc == crc
    # over the maximum: refused at once
    assert [ln.text for ln in dut.command("infer 99999999", check=False, timeout=5)] == [
        "e-[Inference iterations must be <=1000000]"]
    # a long infer stops at the break byte, read from the CMSDK UART between two inferences
    dut.transport.write(b"infer 1000000 0%")
    read_until(dut, lambda t: t.startswith("m-lap-us-"), timeout=10.0)
    time.sleep(0.3)
    t0 = time.monotonic()
    dut.transport.write(b"\x03")
    last = read_until(dut, lambda t: t.startswith("e-["), timeout=5)[-1]
    m = re.fullmatch(r"e-\[infer interrupted after (\d+) of 1000000\]", last)
    assert m and 0 < int(m.group(1)) < 1000000, last
    assert time.monotonic() - t0 < 3.0
    assert read_until(dut, lambda t: True, timeout=5) == ["m-ready"]
    assert dut.name() == "dut-[tinyedge]"
    # a te-load rejected for its CRC leaves no input to infer on, until a good load
    bad = b"te-load %d %04X%%" % (IN, crc ^ 1) + P.cobs_encode(x) + b"\x00"
    assert dut._exchange("raw", bad, 5, False, None)[0].text.startswith(f"e-[te-load: frame gave {IN} bytes")
    with pytest.raises(DeviceError, match="No valid input: the last te-load was rejected"):
        dut.te_infer()
    dut.load(x)
    assert dut.te_infer(crc).in_crc == crc
