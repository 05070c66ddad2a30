"""The firmware command loop for real: tinyedge/runtime/main.c (with a rendered te_version.h), compiled for
the host with a fake model and a TCP port, driven by DutClient over pyserial ``socket://``.

The fake model's outputs are a deterministic function of the input (``fake_model`` below mirrors it),
and its invoke clobbers the input buffer, as a memory planner that reuses the input tensor would.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers import CFLAGS, FAKE_MODEL_H, HOST_PORT_H, build_host_dut, fake_outputs, host_dut, read_until
from tinyedge.errors import LinkError
from tinyedge.link import DeviceError, DutClient, Transport
from tinyedge.link import protocol as P
from tinyedge.paths import runtime_dir
from tinyedge.proc import run
from tinyedge.render import render

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def dut_exe(tmp_path_factory) -> Path:
    return build_host_dut(tmp_path_factory.mktemp("hostdut"))


@pytest.fixture()
def dut(dut_exe, tmp_path) -> Iterator[DutClient]:
    with host_dut(dut_exe) as url:
        transport = Transport(url, raw_log=tmp_path / "raw.log", connect_timeout=5)
        client = DutClient(transport)
        client.raw_log_path = tmp_path / "raw.log"  # type: ignore[attr-defined]
        try:
            yield client
        finally:
            client.close()


def texts(lines):
    return [ln.text for ln in lines]


def test_boot_banner(dut):
    assert dut.wait_ready(5) == ["m-timestamp-mode-performance", "m-init-done"]


def test_mlperf_basic_commands(dut):
    dut.wait_ready(5)
    assert dut.name() == "dut-[tinyedge]"
    assert dut.mlperf_profile() == {"profile": "ULPMark for tinyML Firmware V0.0.1", "model": "kws01"}
    t0 = dut.timestamp()
    time.sleep(0.01)
    assert dut.timestamp() > t0
    help_lines = texts(dut.command("help"))
    assert help_lines[0] == "ULPMark for tinyML Firmware V0.0.1"
    assert any(t.startswith("te-stream") for t in help_lines)
    assert texts(dut.command("frobnicate 3", check=False)) == ["e-[Unknown command: frobnicate]"]
    with pytest.raises(DeviceError, match="Unknown command: frobnicate"):
        dut.command("frobnicate")
    assert dut.command("") == []  # empty command: only m-ready


def test_db_commands_and_errors(dut):
    dut.wait_ready(5)
    c = lambda s: texts(dut.command(s, check=False))  # noqa: E731
    assert c("db") == ["e-[Command 'db' requires a subcommand]"]
    assert c("db load") == ["e-[Command 'db load' requires the # of bytes]"]
    assert c("db load 0") == ["e-[Command 'db load' must be >0 bytes]"]
    assert c("db load 41") == ["e-[Supplied buffer size 41 exceeds maximum of 40]"]
    assert c("db 00") == ["e-[No bytes expected: send 'db load N' first]"]
    assert c("db load 10") == ["m-[Expecting 10 bytes]"]
    assert c("db 0a0") == ["e-[Insufficent number of hex digits]"]
    assert c("db 01zz") == ["e-[Invalid hex digit 'zz']"]
    assert c("db 00010203") == []
    assert c("db 0405060708090A0B0C") == ["m-load-done"]  # extra digits are disregarded
    assert c("db print") == ["m-buffer-00-01-02-03-04-05-06-07", "m-buffer-08-09"]
    with pytest.raises(LinkError, match="81 characters"):  # the client refuses to send it ...
        dut.command("x" * 81)
    dut.transport.write(b"x" * 81 + b"%")  # ... and the firmware refuses it too
    assert dut._next_line(5).text == "e-[Command too long: at most 80 characters before '%']"
    assert dut._next_line(5).kind == P.READY
    # \r and \n between characters are not part of a command
    dut.transport.write(b"na\r\nme%")
    assert dut._next_line(5).text == "m-name-dut-[tinyedge]"
    assert dut._next_line(5).kind == P.READY


def test_infer_and_results_match_fake_model(dut):
    dut.wait_ready(5)
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=40, dtype=np.int8)
    dut.load_input(x.tobytes())
    r = dut.infer(3, 2)
    assert r.lines[:3] == ["m-warmup-start-2", "m-warmup-done", "m-infer-start-3"]
    assert r.lines[-2] == "m-infer-done"
    assert r.laps_us[1] >= r.laps_us[0]
    want = fake_outputs(x[None], 4)[0]
    deq = (want.astype(np.float64) + 128) * 0.00390625
    assert np.allclose(r.results, deq, atol=0.0015)
    assert all(re.fullmatch(r"-?\d+\.\d{3}", v) for v in r.lines[-1][len("m-results-["):-1].split(","))
    assert dut.results() == r.results
    te = dut.te_results()
    assert te.out.dtype == np.int8 and np.array_equal(te.out, want)  # input reloaded every inference
    assert te.ticks > 0
    # defaults of the reference: N=1, W=10
    assert texts(dut.command("infer"))[:3] == ["m-warmup-start-10", "m-warmup-done", "m-infer-start-1"]
    assert texts(dut.command("infer 0", check=False)) == ["e-[Inference iterations must be >0]"]
    assert texts(dut.command("infer 1 -1", check=False)) == ["e-[Inference warmup must be >=0]"]


def test_te_results_before_inference_is_an_error(dut):
    dut.wait_ready(5)
    with pytest.raises(DeviceError, match="No inference has run yet"):
        dut.te_results()


def test_te_info(dut):
    dut.wait_ready(5)
    info = dut.info()
    assert info == {
        "board": "host", "clock_hz": 25000000, "timer": "clock_gettime", "timer_hz": 1000000000,
        "emulated": False, "arena_bytes": 4096, "input_bytes": 40, "output_count": 4, "layers": 3,
        "flash_bytes": 0, "ram_bytes": 0, "model": "fake", "mlperf_model": "kws01",
        "model_sha256": "ab" * 32, "version": "9.9.9-test", "protocol": 2,
        "selftest": "none",  # the fake model has no golden data (TE_HAS_SELFTEST undefined)
        "timestamp": "timer",  # not emulated: m-lap-us is the timer's microseconds
        "baud": 0,  # the host port has no UART (TE_UART_BAUD undefined)
    }
    assert dut.protocol == 2 and dut.layers == 3
    raw = dut.raw_log_path.read_bytes()
    lines = [ln for ln in raw.split(b"\r\n") if ln.startswith(b"te-info-")]
    assert (len(lines) == 20 and lines[0].startswith(b"te-info-board=host*")
            and lines[-1].startswith(b"te-info-keys=20*"))
    for line in lines:  # one key per line, each with its own CRC
        payload, crc = line.rsplit(b"*", 1)
        assert int(crc, 16) == P.crc16_ccitt_false(payload) and crc == crc.upper()


def test_te_load_cobs_frame_with_crc(dut):
    dut.wait_ready(5)
    x = np.array([0, 1, 0, 0, 255, 37, 10, 13] * 5, dtype=np.uint8)  # NULs, '%', CR, LF inside the frame
    dut.load(x.tobytes())
    assert texts(dut.command("db print")) == ["m-buffer-" + "-".join(f"{b:02x}" for b in x[i:i + 8])
                                              for i in range(0, 40, 8)]
    crc = P.crc16_ccitt_false(x.tobytes())
    r = dut.te_infer(crc)
    assert r.in_crc == crc and np.array_equal(r.out, fake_outputs(x.astype(np.int8)[None], 4)[0])
    assert dut.te_results().in_crc == crc
    # db hex changes the buffer: the input CRC follows
    dut.load_input(bytes(40))
    assert dut.te_infer().in_crc == P.crc16_ccitt_false(bytes(40))
    with pytest.raises(P.ProtocolError, match="expected"):
        dut.te_infer(crc)

    def raw(payload: bytes) -> list[str]:
        return texts(dut._exchange("raw", payload, 5, False, None))

    frame = P.cobs_encode(bytes(range(1, 11)))
    good = P.crc16_ccitt_false(bytes(range(1, 11)))
    assert raw(b"te-load 10 %04X%%" % good + frame + b"\x00") == [f"te-load-10,{good:04X}"]
    # wrong CRC, short frame, frame cut inside a block: refused, and the frame never read as commands
    assert raw(b"te-load 10 %04X%%" % (good ^ 1) + frame + b"\x00") == [
        f"e-[te-load: frame gave 10 bytes, CRC {good:04X}, expected 10 bytes, CRC {good ^ 1:04X}]"]
    assert raw(b"te-load 11 %04X%%" % good + frame + b"\x00")[0].startswith("e-[te-load: frame gave 10 bytes")
    assert raw(b"te-load 10 %04X%%" % good + frame[:5] + b"\x00")[0].startswith("e-[te-load: frame gave")
    assert raw(b"te-load 41 0000%" + frame + b"\x00") == ["e-[te-load: 41 bytes exceed the input size 40]"]
    assert raw(b"te-load 10 XYZ%" + frame + b"\x00")[0].startswith("e-[te-load needs a byte count")
    # NUL outside a frame is ignored by the command loop
    assert raw(b"\x00na\x00me%") == ["m-name-dut-[tinyedge]"]


def test_te_profile_and_stream(dut):
    dut.wait_ready(5)
    x = np.arange(40, dtype=np.int8)
    dut.load_input(x.tobytes())
    prof = dut.profile()
    assert [la["name"] for la in prof["layers"]] == ["conv_2d", "weird_na_me", "softmax"]
    assert prof["layers"][1]["ticks"] == 7
    assert prof["total_ticks"] >= prof["layers"][0]["ticks"]
    rows = dut.stream(5)
    want = fake_outputs(x[None], 4)[0]
    assert [r["seq"] for r in rows] == [0, 1, 2, 3, 4]
    assert all(r["top"] == int(np.argmax(want)) and r["score"] == int(want.max()) for r in rows)
    assert texts(dut.command("te-stream", check=False)) == ["e-[te-stream needs a count >0, e.g. 'te-stream 10']"]


def test_parser_counts_no_garbage_on_a_clean_link(dut):
    dut.wait_ready(5)
    dut.load_input(bytes(40))
    dut.infer(1, 0)
    dut.te_results()
    dut.info()
    assert dut.parser.stats.corrupt == 0 and dut.parser.stats.truncated == 0


def test_no_answer_names_the_url(tmp_path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    conns = []
    threading.Thread(target=lambda: conns.append(srv.accept()), daemon=True).start()
    client = DutClient(Transport(f"socket://127.0.0.1:{port}"))
    try:
        with pytest.raises(Exception) as exc:
            client.command("name", timeout=0.5)
        assert f"device at socket://127.0.0.1:{port} did not answer `name%` within 0.5 s" in str(exc.value)
        assert "nothing else holds the port" in str(exc.value)
    finally:
        client.close()
        srv.close()


# The same port contract, as the mps2-an386 port defines its board macros.
ARM_PORT_H = '#define TE_BOARD_ID "qemu-mps2-an386"\n#define TE_EMULATED 1\n' + HOST_PORT_H


def test_main_compiles_for_cortex_m4_without_libc_printf(tmp_path):
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc not available")
    (tmp_path / "main.c").write_text((runtime_dir() / "main.c").read_text())
    (tmp_path / "te_version.h").write_text(render("te_version.h.j2", version="0.1.0"))
    (tmp_path / "te_port.h").write_text(ARM_PORT_H)
    (tmp_path / "te_model.h").write_text(FAKE_MODEL_H.format(
        input_bytes=490, output_count=12, sha="cd" * 32, out_scale="0.00390625", out_zp=-128))
    obj = tmp_path / "main.o"
    run([gcc, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", *CFLAGS, "-Os",
         "-ffunction-sections", "-I", tmp_path, "-c", tmp_path / "main.c", "-o", obj], what="arm build of main.c")
    nm = run([shutil.which("arm-none-eabi-nm") or "arm-none-eabi-nm", "-u", obj], what="nm").stdout
    undefined = {ln.split()[-1] for ln in nm.splitlines() if ln.strip()}
    # Only the two C contracts, the linker symbols, libgcc helpers and the mem/str builtins GCC may
    # emit for loops: no printf, no libm.
    allowed = re.compile(r"(te_\w+|__te_(flash|ram)_(start|end)|__aeabi_\w+|mem(cpy|set|move)|strlen)$")
    assert all(allowed.match(s) for s in undefined), undefined


# ------------------------------------------------------------------ limits, break byte, rejected input (issue 11)
NO_INPUT = "e-[No valid input: the last te-load was rejected; load the input again]"



def test_iteration_counts_over_the_maximum_are_refused(dut):
    dut.wait_ready(5)
    dut.load_input(bytes(40))
    c = lambda s: texts(dut.command(s, check=False, timeout=5))  # noqa: E731
    # 99999999 inferences used to lock the device for hours: refused at once, the device answers on
    assert c("infer 99999999") == ["e-[Inference iterations must be <=1000000]"]
    assert c("infer 1000001 0") == ["e-[Inference iterations must be <=1000000]"]
    assert c("infer 1 1000001") == ["e-[Inference warmup must be <=1000000]"]
    assert c("te-stream 1000001") == ["e-[te-stream count must be <=1000000]"]
    assert c("infer 99999999999999999999") == ["e-[Inference iterations must be <=1000000]"]  # saturates
    assert dut.name() == "dut-[tinyedge]"
    assert dut.infer(2, 1).results  # counts within the maximum still run


def test_break_byte_stops_a_long_infer_and_the_device_answers_next(dut):
    dut.wait_ready(5)
    dut.load_input(bytes(40))
    # timed phase: stopped promptly, with how far it got; bytes after the break are the next command
    dut.transport.write(b"infer 1000000 0%")
    assert read_until(dut, lambda t: t.startswith("m-lap-us-"))[:1] == ["m-warmup-start-0"]
    t0 = time.monotonic()
    dut.transport.write(b"\x03name%")
    got = read_until(dut, lambda t: t.startswith("e-["), timeout=5)
    m = re.fullmatch(r"e-\[infer interrupted after (\d+) of 1000000\]", got[-1])
    assert m and 0 < int(m.group(1)) < 1000000, got
    assert time.monotonic() - t0 < 2.0
    assert read_until(dut, lambda t: True) == ["m-ready"]  # no second lap, no results: the reply ends
    assert read_until(dut, lambda t: True) == ["m-name-dut-[tinyedge]"]
    assert read_until(dut, lambda t: True) == ["m-ready"]
    # warmup phase
    dut.transport.write(b"infer 1 1000000%")
    read_until(dut, lambda t: t == "m-warmup-start-1000000")
    dut.transport.write(b"\x03")
    assert re.fullmatch(r"e-\[infer warmup interrupted after \d+ of 1000000\]",
                        read_until(dut, lambda t: t.startswith("e-["))[-1])
    assert read_until(dut, lambda t: True) == ["m-ready"]
    # the client's way: interrupt() then resync; a break at an idle device is ignored
    dut.transport.write(b"infer 1000000 0%")
    read_until(dut, lambda t: t.startswith("m-infer-start-"))
    dut.interrupt()
    dut.interrupt()
    assert dut.infer(1, 0).results and dut.name() == "dut-[tinyedge]"


def test_break_byte_stops_a_long_te_stream(dut):
    dut.wait_ready(5)
    dut.load_input(bytes(40))
    dut.transport.write(b"te-stream 1000000%")
    read_until(dut, lambda t: t.startswith("te-s-2,"))
    dut.transport.write(b"\x03")
    got = read_until(dut, lambda t: t.startswith("e-["))
    assert all(t.startswith("te-s-") for t in got[:-1])
    m = re.fullmatch(r"e-\[te-stream interrupted after (\d+) of 1000000\]", got[-1])
    assert m and int(m.group(1)) >= 3
    assert read_until(dut, lambda t: True) == ["m-ready"]
    assert len(dut.stream(3)) == 3


def test_no_inference_on_a_rejected_te_load(dut):
    dut.wait_ready(5)
    x = np.arange(40, dtype=np.int8)
    crc = P.crc16_ccitt_false(x.tobytes())
    dut.load(x.tobytes())
    assert dut.te_infer(crc).in_crc == crc
    bad = b"te-load 40 %04X%%" % (crc ^ 1) + P.cobs_encode(x.tobytes()) + b"\x00"
    assert texts(dut._exchange("raw", bad, 5, False, None))[0].startswith("e-[te-load: frame gave 40 bytes")
    # every command that infers refuses instead of running on the rejected bytes
    for cmd in ("te-infer", "infer 1 0", "infer", "te-profile", "te-stream 3"):
        assert texts(dut.command(cmd, check=False, timeout=5)) == [NO_INPUT], cmd
    with pytest.raises(DeviceError, match="No valid input"):
        dut.te_infer()
    assert dut.te_results().in_crc == crc  # the last real result is still there, with its input's CRC
    # a good te-load makes the buffer valid again ...
    y = np.full(40, 3, dtype=np.int8)
    dut.load(y.tobytes())
    assert np.array_equal(dut.te_infer(P.crc16_ccitt_false(y.tobytes())).out, fake_outputs(y[None], 4)[0])
    # ... and so does a complete MLPerf db load
    assert texts(dut._exchange("raw", bad, 5, False, None))[0].startswith("e-[te-load: frame gave")
    assert texts(dut.command("infer 1 0", check=False, timeout=5)) == [NO_INPUT]
    dut.load_input(x.tobytes())
    r = dut.infer(1, 0)
    assert np.allclose(r.results, (fake_outputs(x[None], 4)[0].astype(np.float64) + 128) * 0.00390625, atol=0.0015)
    # a te-load refused for its arguments stores nothing and leaves the input valid
    assert texts(dut._exchange("raw", b"te-load 41 0000%\x02\x01\x00", 5, False, None))[0].startswith(
        "e-[te-load: 41 bytes")
    assert dut.te_infer().in_crc == crc
