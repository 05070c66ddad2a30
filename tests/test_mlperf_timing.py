"""What the official MLPerf Tiny runner sees, against firmware in QEMU (mps2-an386, the digits model).

On an emulated board ``m-lap-us`` is the board-clock estimate (instructions / clock_hz, the latency
report.json labels an estimate), not QEMU's virtual time (one instruction per ns under -icount shift=0), so
the runner's throughput N / (T1 - T0) equals tinyedge's estimate; and energy mode (``--energy-mode``) boots
with ``m-timestamp-mode-energy``, pulses instead of printing on ``timestamp`` and runs the UART at 9600.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from helpers import QEMU_BOARD, running
from tinyedge.boards import get_board
from tinyedge.firmware import build_project, generate_project
from tinyedge.link import DutClient, Transport
from tinyedge.runners import deploy
from tinyedge.runners.core import runner_for
from tinyedge.score.figures import Timing

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
                       reason="needs arm-none-eabi-gcc and qemu-system-arm"),
]

#: Work inside the timed window of `infer` beside te_model_invoke(), per inference: the input copy (the
#: memory planner may reuse the input's bytes; 64 bytes for digits), the two timer reads around the invoke,
#: keeping the outputs and the break-byte poll. About 107 instructions (2.7 ticks of 40) measured for digits;
#: te-results' ticks cover the invoke only.
LOOP_OVERHEAD_TICKS = 4


@pytest.fixture(scope="module")
def firmware(digits_tflite, pio_core, tmp_path_factory):
    with deploy(digits_tflite, QEMU_BOARD, tmp_path_factory.mktemp("mlperf-fw") / "proj", core_dir=pio_core) as dep:
        yield dep


def _client(url: str, tmp_path) -> DutClient:
    return DutClient(Transport(url, raw_log=tmp_path / "raw.log", connect_timeout=30))


def test_lap_differences_are_the_board_clock_estimate(firmware, tmp_path):
    """Two `infer N 0` windows through the MLPerf commands (db load / db hex, as the runner sends the input):
    the extra laps of the longer window, per extra inference, are instructions / clock_hz of one inference,
    with the instructions from te-infer's ticks as tinyedge computes them (score.figures.Timing)."""
    with running(firmware) as runner:
        dut = _client(runner.url, tmp_path)
        try:
            assert dut.wait_ready(30)[0] == "m-timestamp-mode-performance"
            info = dut.info()
            clock_hz = int(info["clock_hz"])
            assert info["emulated"] is True and info["timestamp"] == f"estimate@{clock_hz}"
            assert info["baud"] == 115200
            nbytes = int(info["input_bytes"])
            data = np.random.default_rng(0).integers(-128, 128, nbytes, dtype=np.int8).tobytes()
            dut.load_input(data)  # db load N + db <hex> lines of 31 bytes
            n1, n2 = 5, 25
            w1 = dut.infer(n1, 0, timeout=120)
            w2 = dut.infer(n2, 0, timeout=120)
            ticks = dut.te_infer().ticks
        finally:
            dut.close()
    timing = Timing(timer_hz=int(info["timer_hz"]), clock_hz=clock_hz, emulated=True)
    instructions = timing.instructions_f(ticks)
    assert instructions is not None and instructions > 10_000
    estimate_us = instructions / clock_hz * 1e6  # = timing.latency_ms(ticks) * 1e3: report.json's estimate
    assert estimate_us == pytest.approx(timing.latency_ms(ticks) * 1e3)
    per_inference_us = (w2.elapsed_us - w1.elapsed_us) / (n2 - n1)
    tick_us = 1e15 / (timing.timer_hz * clock_hz)  # one timer tick of estimated board time (1.6 us at 25 MHz)
    # Each lap is rounded down to a whole microsecond: 2 us over the four laps, spread over n2 - n1.
    slack_us = tick_us + LOOP_OVERHEAD_TICKS * tick_us + 2.0 / (n2 - n1)
    assert estimate_us - tick_us - 2.0 / (n2 - n1) <= per_inference_us <= estimate_us + slack_us, (
        per_inference_us, estimate_us, ticks)
    # QEMU's virtual time (what m-lap-us was before: one instruction per ns) is 1e9 / clock_hz = 40x shorter.
    emulator_us = instructions / 1e3
    assert per_inference_us / emulator_us == pytest.approx(1e9 / clock_hz, rel=0.02)
    # The runner's throughput is tinyedge's estimate.
    assert n2 / (w2.elapsed_us / 1e6) == pytest.approx(1e6 / estimate_us, rel=0.02)


def test_a_ten_second_window_fits_the_runner_timeout(firmware, tmp_path):
    """The runner's performance mode sizes N for a window of at least 10 s and waits 30 s for `infer`'s reply:
    with estimated time on the laps, such a window takes a fraction of that on the host (with QEMU's time it
    needed ~40x more inferences, beyond the timeout)."""
    with running(firmware) as runner:
        dut = _client(runner.url, tmp_path)
        try:
            dut.wait_ready(30)
            nbytes = int(dut.info()["input_bytes"])
            dut.load_input(bytes(nbytes))
            one = dut.infer(10, 0, timeout=30).elapsed_us / 10
            n = int(1.1 * 10e6 / one)  # a window of at least 10 s, as the runner sizes it
            t0 = time.monotonic()
            window = dut.infer(n, 0, timeout=30)  # the runner's timeout for infer
            host_s = time.monotonic() - t0
        finally:
            dut.close()
    assert window.elapsed_us >= 10e6
    assert host_s < 30, f"{n} inferences took {host_s:.1f} s on the host"


def test_energy_mode_in_qemu(digits_tflite, pio_core, tmp_path):
    """`generate --energy-mode`: the mode line at boot, `timestamp` answers only m-ready (the pulse has no
    text), infer has no laps, te-info and the generated config say energy and 9600 baud."""
    board = get_board(QEMU_BOARD)
    project = generate_project(digits_tflite, board, tmp_path / "proj", energy_mode=True)
    ini = (project.path / "platformio.ini").read_text()
    assert "build_flags = -D TE_ENERGY_MODE=1" in ini and "monitor_speed = 9600" in ini
    port_h = (project.path / "src" / "te_port.h").read_text()
    assert "#define TE_ENERGY_MODE 1" in port_h and "#define TE_ENERGY_BAUD      9600u" in port_h
    build_project(project.path, core_dir=pio_core)
    with runner_for(board, core_dir=pio_core) as runner:
        url = runner.start(project.path)
        dut = _client(url, tmp_path)
        try:
            assert dut.wait_ready(30) == ["m-timestamp-mode-energy", "m-init-done"]
            info = dut.info()
            assert info["timestamp"] == "energy" and info["baud"] == 9600
            assert [ln.text for ln in dut.command("timestamp")] == []
            dut.load_input(bytes(int(info["input_bytes"])))
            lines = [ln.text for ln in dut.command("infer 2 1", timeout=60)]
            assert lines[:4] == ["m-warmup-start-1", "m-warmup-done", "m-infer-start-2", "m-infer-done"]
            assert lines[4].startswith("m-results-[") and not any(t.startswith("m-lap-us-") for t in lines)
        finally:
            dut.close()
