"""A frozen device never hangs a run: score/run/monitor stop within a bounded time (the stall deadline),
score with exit code 3 and a partial report of what was harvested (issue 11, item 3).

The device is the real firmware main.c compiled for the host (tests/helpers.py) and frozen with SIGSTOP
mid-run; the slow test does the same to QEMU running the digits model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tinyedge.oracle
from helpers import QEMU_BOARD, build_host_dut, fake_outputs
from tflite_builder import ModelBuilder, options
from tinyedge.cli import cli
from tinyedge.data import quantize_inputs
from tinyedge.errors import DeviceStalled
from tinyedge.model import read_model_bytes
from tinyedge.runners import deploy
from tinyedge.score import score
from tinyedge.score.core import default_stall_timeout

IN_BYTES, OUT_COUNT, IN_SCALE, IN_ZP = 40, 4, 0.05, 3
SAMPLES = 2000
FREEZE_AFTER = 21


def _model(tmp_path: Path) -> Path:
    """A small int8 FULLY_CONNECTED model of the host DUT's tensor sizes (its hash is what the DUT reports)."""
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    ti = b.tensor((1, IN_BYTES), scale=IN_SCALE, zero_point=IN_ZP)
    tw = b.tensor((OUT_COUNT, IN_BYTES), data=rng.integers(-127, 128, size=(OUT_COUNT, IN_BYTES), dtype=np.int8),
                  scale=0.01)
    to = b.tensor((1, OUT_COUNT), scale=1 / 256, zero_point=-128)
    b.op("FULLY_CONNECTED", [ti, tw, -1], [to], options("FullyConnectedOptions"), "FullyConnectedOptions")
    path = tmp_path / "m.tflite"
    path.write_bytes(b.build([ti], [to]))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(host DUT executable, model, data with SAMPLES labelled rows)."""
    tmp = tmp_path_factory.mktemp("stall")
    model = _model(tmp)
    sha = read_model_bytes(model.read_bytes(), name=model.name).sha256
    exe = build_host_dut(tmp / "dut", input_bytes=IN_BYTES, output_count=OUT_COUNT, sha=sha, board=QEMU_BOARD,
                         emulated=1)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 3, size=(SAMPLES, IN_BYTES)).astype(np.float32)
    y = np.argmax(fake_outputs(quantize_inputs(x, IN_SCALE, IN_ZP), OUT_COUNT), axis=1)
    np.savez(tmp / "data.npz", x=x, y=y)
    return exe, model, tmp / "data.npz"


@pytest.fixture()
def fake_oracle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host reference computes the fake model the host DUT runs (and never loads TFLM)."""
    monkeypatch.setattr(tinyedge.oracle, "run_tflm", lambda model, x: fake_outputs(x.reshape(len(x), -1), OUT_COUNT))


@contextmanager
def dut_process(exe: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The host DUT running; (process, socket:// URL). Killed (after SIGCONT) on exit."""
    proc = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc, f"socket://127.0.0.1:{int(proc.stdout.readline())}"
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(5)


def freeze_after(pid: int, records: Path, n: int,
                 sig: signal.Signals = signal.SIGSTOP) -> tuple[threading.Thread, dict[str, float | int]]:
    """A thread that SIGSTOPs (or sends ``sig`` to) ``pid`` once ``records`` (records.jsonl) has ``n`` rows;
    the dict gets the time of the stop and the rows written by then."""
    seen: dict[str, float | int] = {}

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                rows = records.read_bytes().count(b"\n")
            except OSError:
                rows = 0
            if rows >= n:
                os.kill(pid, sig)
                seen["at"] = time.monotonic()
                time.sleep(0.3)  # a reply in flight when it stopped may still land
                seen["rows"] = records.read_bytes().count(b"\n")
                return
            time.sleep(0.001)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t, seen


def check_partial(out: Path, harvested: int) -> dict[str, object]:
    """The report of a stalled run: written, marked incomplete, holding exactly the records harvested."""
    for name in ("raw.log", "records.jsonl", "report.json", "report.md", "summary.md", "junit.xml", "report.html"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    d = json.loads((out / "report.json").read_text())
    assert d["complete"] is False and d["samples_planned"] == SAMPLES
    assert d["stopped"] == f"device stalled after {len(rows)} of {SAMPLES} samples"
    assert d["samples"] == len(rows) == harvested and FREEZE_AFTER <= harvested < SAMPLES
    assert d["samples_ok"] == sum(r["ok"] for r in rows) == harvested  # none counted as a failed inference
    assert d["accuracy"] == 1.0 and d["parity"] == 1.0
    assert b"m-ready" in (out / "raw.log").read_bytes()
    assert "INCOMPLETE: device stalled after" in (out / "report.md").read_text()
    assert "INCOMPLETE" in (out / "summary.md").read_text()
    assert 'type="Incomplete"' in (out / "junit.xml").read_text()
    return d


@pytest.mark.slow  # waits out real stall deadlines
def test_score_of_a_frozen_device_stops_within_twice_the_deadline(setup, fake_oracle, tmp_path):
    exe, model, data = setup
    deadline = 2.0
    out = tmp_path / "out"
    with dut_process(exe) as (proc, url):
        watcher, seen = freeze_after(proc.pid, out / "records.jsonl", FREEZE_AFTER)
        with pytest.raises(DeviceStalled) as info:
            score(url, data, model, out_dir=out, stall_timeout=deadline, step_summary=False)
        ended = time.monotonic()
        watcher.join(5)
    assert "at" in seen, "the device was never frozen"
    took = ended - float(seen["at"])
    assert took <= 2 * deadline, f"score ended {took:.1f} s after the device froze (deadline {deadline} s)"
    err = info.value
    assert err.exit_code == 3
    assert f"device stalled after {seen['rows']} of {SAMPLES} samples" in str(err)
    assert "no valid byte for" in str(err) and "report.json" in str(err)
    d = check_partial(out, int(seen["rows"]))
    assert err.report is not None and err.report.data["samples"] == d["samples"]  # type: ignore[attr-defined]
    assert d["link"]["resyncs"] >= 1  # the documented recovery was tried before giving up


@pytest.mark.slow  # waits out real stall deadlines
def test_score_cli_exits_3_with_a_partial_report(setup, fake_oracle, tmp_path):
    exe, model, data = setup
    out = tmp_path / "out"
    with dut_process(exe) as (proc, url):
        watcher, seen = freeze_after(proc.pid, out / "records.jsonl", FREEZE_AFTER)
        res = CliRunner().invoke(cli, ["score", "--port", url, "--data", str(data), "--model", str(model),
                                       "-o", str(out), "--stall-timeout", "1.5", "--no-profile"])
        ended = time.monotonic()
        watcher.join(5)
    assert res.exit_code == 3, res.output
    assert ended - float(seen["at"]) <= 2 * 1.5
    assert f"device stalled after {seen['rows']} of {SAMPLES} samples" in res.output
    assert "INCOMPLETE" in res.output and "--stall-timeout" in res.output
    check_partial(out, int(seen["rows"]))


@pytest.mark.slow  # waits out real stall deadlines
def test_score_of_a_device_that_died_stops_too(setup, fake_oracle, tmp_path):
    """A device whose port is gone for good (process killed: reconnecting is refused) ends the same way."""
    exe, model, data = setup
    out = tmp_path / "out"
    with dut_process(exe) as (proc, url):
        watcher, seen = freeze_after(proc.pid, out / "records.jsonl", FREEZE_AFTER, signal.SIGKILL)
        with pytest.raises(DeviceStalled) as info:
            score(url, data, model, out_dir=out, stall_timeout=2.0, step_summary=False, profile=False)
        ended = time.monotonic()
        watcher.join(5)
    assert ended - float(seen["at"]) <= 2 * 2.0
    assert f"device stalled after {seen['rows']} of {SAMPLES} samples" in str(info.value)
    check_partial(out, int(seen["rows"]))


@pytest.mark.unit
def test_default_stall_deadline_is_a_multiple_of_the_slowest_answer_at_most_60_s():
    assert default_stall_timeout(None) == 60.0  # nothing measured yet
    assert default_stall_timeout(0.002) == 10.0  # fast samples: the floor
    assert default_stall_timeout(2.5) == 25.0
    assert default_stall_timeout(30.0) == 60.0


@pytest.mark.slow  # waits out real stall deadlines
def test_monitor_of_a_frozen_device_ends_by_its_duration(setup, tmp_path):
    """A monitor keeps trying a stalled device (shown as disconnected) but --duration still ends it."""
    exe, model, _ = setup
    out = tmp_path / "mon"
    with dut_process(exe) as (proc, url):
        timer = threading.Timer(1.0, lambda: os.kill(proc.pid, signal.SIGSTOP))
        timer.start()
        t0 = time.monotonic()
        res = CliRunner().invoke(cli, ["monitor", url, "--plain", "--duration", "4", "--stall-timeout", "1",
                                       "--record", str(out)])
        took = time.monotonic() - t0
        timer.cancel()
    assert res.exit_code == 0, res.output
    assert took <= 4 + 2.0, f"monitor --duration 4 took {took:.1f} s"
    assert "disconnected" in res.output  # the plain line shows the stall
    d = json.loads((out / "report.json").read_text())
    assert d["samples"] > 0 and d["samples"] == len((out / "records.jsonl").read_text().splitlines())


def _children_with(text: str) -> list[int]:
    """Pids of this process's children whose command line contains ``text`` (the QEMU a runner started)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and text in cmdline:
            pids.append(int(d.name))
    return pids


@pytest.mark.slow
def test_score_of_a_frozen_qemu_exits_3_within_twice_the_deadline(digits, digits_tflite, pio_core, tmp_path):
    """The issue's case: QEMU stopped (SIGSTOP) after some samples of the digits model; `tinyedge score
    --stall-timeout 3` ends with exit 3 and a partial report within 2 x 3 s of the stop."""
    deadline = 3.0
    out = tmp_path / "score"
    with np.load(digits["test"]) as f:
        planned = len(f["x"])
    with deploy(digits_tflite, QEMU_BOARD, tmp_path / "proj", core_dir=pio_core) as dep:
        port = dep.url.rsplit(":", 1)[1]
        qemu = _children_with(f"tcp:127.0.0.1:{port},")
        assert len(qemu) == 1, f"QEMU serving port {port} not found among this process's children: {qemu}"
        watcher, seen = freeze_after(qemu[0], out / "records.jsonl", FREEZE_AFTER)
        try:
            res = CliRunner().invoke(cli, ["score", "--port", dep.url, "--data", str(digits["test"]), "--model",
                                           str(digits_tflite), "-o", str(out), "--stall-timeout", str(deadline)])
            ended = time.monotonic()
            watcher.join(5)
        finally:
            os.kill(qemu[0], signal.SIGCONT)  # let the runner stop it normally
    assert "at" in seen, f"QEMU was never stopped: {res.output}"
    assert res.exit_code == 3, res.output
    took = ended - float(seen["at"])
    print(f"QEMU stopped after {seen['rows']} samples; score ended {took:.2f} s later (deadline {deadline} s)")
    assert took <= 2 * deadline + 0.5, f"score ended {took:.1f} s after QEMU was stopped (deadline {deadline} s)"
    d = json.loads((out / "report.json").read_text())
    rows = (out / "records.jsonl").read_text().splitlines()
    assert d["complete"] is False and d["samples_planned"] == planned
    assert d["samples"] == len(rows) == seen["rows"] and FREEZE_AFTER <= d["samples"] < planned
    assert d["stopped"] == f"device stalled after {d['samples']} of {planned} samples"
    assert d["samples_ok"] == d["samples"] and d["parity"] == 1.0
    assert (out / "raw.log").stat().st_size > 0 and "INCOMPLETE" in (out / "report.md").read_text()


@pytest.mark.unit
@pytest.mark.parametrize("command", ["score", "run", "monitor"])
def test_stall_timeout_option_on_score_run_and_monitor(command):
    res = CliRunner().invoke(cli, [command, "--help"])
    assert res.exit_code == 0 and "--stall-timeout" in res.output
    bad = CliRunner().invoke(cli, [command, "--stall-timeout", "0", "x"])
    assert bad.exit_code == 2 and "stall-timeout" in bad.output
