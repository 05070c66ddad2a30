"""tinyedge monitor: the state model, labels, the rich terminal view and ``--plain`` against firmware in QEMU.

The figures the terminal view shows are read back from rich's recorded console and checked against
the session's records.jsonl (the same rows ``tinyedge score`` would write).
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

from faultproxy import FaultProxy
from helpers import QEMU_BOARD, running
from tinyedge.cli import cli
from tinyedge.monitor import Monitor, MonitorState, load_labels, model_labels, read_records, session_report, sparkline
from tinyedge.monitor.state import DISCONNECTED
from tinyedge.monitor.terminal import handle_key, plain_line, render, run_terminal
from tinyedge.runners import deploy
from tinyedge.runners.qemu import free_port
from tinyedge.score.metrics import percentiles
from tinyedge.score.slo import evaluate, parse_slos

BOARD = QEMU_BOARD
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


# ------------------------------------------------------------------------------------------ firmware
@pytest.fixture(scope="module")
def firmware(digits_tflite, pio_core, tmp_path_factory):
    """The digits model deployed to the QEMU board (generate + pio build + QEMU), once per module."""
    with deploy(digits_tflite, BOARD, tmp_path_factory.mktemp("monitor-fw") / "proj", core_dir=pio_core) as dep:
        yield dep


@pytest.fixture
def qemu(firmware):
    """A fresh boot of the firmware for each test (``.url``, ``.port``)."""
    with running(firmware) as runner:
        yield runner


@pytest.fixture
def labels_file(tmp_path) -> Path:
    p = tmp_path / "labels.txt"
    p.write_text("\n".join(DIGIT_NAMES) + "\n")
    return p


# ------------------------------------------------------------------------------------------ state alone
class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def feed(state: MonitorState, n: int, start: int = 0, ticks=lambda i: 25_000 + i) -> list[dict]:
    recs = [state.make_record({"seq": i, "ticks": ticks(i), "top": i % 3, "score": -128 + 25 * (i % 11)},
                              index=start + i, t_s=0.0) for i in range(n)]
    state.on_records(recs)
    return recs


@pytest.mark.unit
def test_state_figures_from_records():
    clock = FakeClock()
    st = MonitorState(url="loop://", window=50, labels=["cat", "dog"], model_sha256="ab" * 32, clock=clock)
    st.on_info({"board": "b1", "timer_hz": 1_000_000, "clock_hz": 0, "emulated": False, "model_sha256": "AB" * 32})
    recs = feed(st, 120)
    clock.t += 1.0
    snap = st.snapshot()
    assert snap["board"] == "b1" and not snap["model_mismatch"]
    assert snap["count"] == snap["total"] == 120 and snap["window"] == 50
    # hardware timer: ticks / timer_hz; the rolling window holds the last 50 inferences
    lat = [r["latency_ms"] for r in recs[-50:]]
    assert lat[-1] == pytest.approx((25_000 + 119) / 1e3)
    assert snap["latency_ms"]["p95"] == pytest.approx(float(np.percentile(lat, 95)))
    assert [p["class"] for p in snap["predictions"][:3]] == ["2", "dog", "cat"]  # newest first; class 2 has no name
    assert sum(snap["hist"]) == 120
    assert snap["hist"][0] == sum(1 for r in recs if r["confidence"] < 0.1)
    assert snap["link"]["freshness_s"] == pytest.approx(1.0)
    assert snap["status"] == "connecting"
    st.on_status("connected")
    clock.t += 2.5
    assert st.snapshot()["status"] == "stalled"  # connected, streaming, but nothing new for > 2 s
    st.on_link(crc_errors=2, lost=2, resyncs=1)
    st.reset()
    snap = st.snapshot()
    assert snap["count"] == 0 and snap["total"] == 120 and snap["latency_ms"]["p50"] is None and sum(snap["hist"]) == 0
    assert snap["link"]["crc_errors"] == 2 and snap["link"]["lost"] == 2  # link health survives a reset
    st.on_info({"board": "b1", "timer_hz": 1_000_000, "model_sha256": "cd" * 32})
    assert st.snapshot()["model_mismatch"]


@pytest.mark.unit
def test_state_rate_and_emulated_latency():
    clock = FakeClock()
    st = MonitorState(clock=clock)
    st.on_info({"board": "q", "timer_hz": 25_000_000, "clock_hz": 25_000_000, "emulated": True,
                "model_sha256": "0" * 64})
    for _ in range(10):  # 100 inferences per 0.1 s
        clock.t += 0.1
        feed(st, 100, ticks=lambda i: 15_000)
    snap = st.snapshot()
    assert snap["rate"] == pytest.approx(1000.0)
    # emulated: ticks -> instructions (1 ns each) -> ms at the board clock, an estimate
    assert snap["latency_ms"]["p50"] == pytest.approx(15_000 * 1e9 / 25e6 / 25e6 * 1e3)
    assert snap["latency_estimate"] and snap["instructions"] == 600_000
    assert sparkline([1.0, 1.0]) == "▄▄" and sparkline([0.0, 1.0]) == "▁█"


@pytest.mark.slow
def test_labels(tmp_path, digits_tflite):
    (tmp_path / "a.txt").write_text("0 zero\n1: one\n\ntwo words\n")
    assert load_labels(tmp_path / "a.txt") == ["zero", "one", "two words"]
    (tmp_path / "b.json").write_text('["x", "y"]')
    assert load_labels(tmp_path / "b.json") == ["x", "y"]
    buf = digits_tflite.read_bytes()
    assert model_labels(buf) == []
    # the TFLite metadata writer appends a zip with the associated files (labels.txt) to the model
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("labels.txt", "\n".join(DIGIT_NAMES))
    assert model_labels(buf + z.getvalue()) == DIGIT_NAMES


# ------------------------------------------------------------------------------------------ in QEMU
def _shown(text: str, key: str) -> str:
    m = re.search(rf"{key}\s+(\S+)", text)
    assert m, f"{key!r} not in the terminal view:\n{text}"
    return m.group(1)


@pytest.mark.slow
def test_terminal_view_against_qemu(qemu, digits_tflite, labels_file, tmp_path):
    session = tmp_path / "session"
    with Monitor(qemu.url, record_dir=session, model=digits_tflite, labels=labels_file, window=400) as mon:
        mon.wait_for(lambda s: s["total"] >= 600, timeout=60)
        mon.pause()
        mon.wait_idle()
        snap = mon.state.snapshot()
        console = Console(record=True, width=150, force_terminal=False, color_system=None)
        console.print(render(snap))
        text = console.export_text()
    records = read_records(session)
    assert len(records) == snap["total"] >= 600  # everything shown was recorded, nothing more

    assert re.search(rf"board\s+{BOARD}\s+\(emulated\)", text)
    assert f"matches {digits_tflite.name}" in text and "MISMATCH" not in text
    assert _shown(text, "inferences") == str(len(records))
    window = [r["latency_ms"] for r in records[-400:]]
    want = percentiles(np.array(window))
    for k in ("p50", "p95", "p99", "max"):
        assert _shown(text, k) == f"{want[k]:.3f}", k
    assert "(estimate)" in text
    assert f"last {len(window)} inferences" in text
    # the last predictions, newest first: index, class name from the labels file, confidence
    rows = re.findall(r"^\W*(\d+)\s+([a-z]+)\s+(\d\.\d{3})", text, re.M)
    assert rows[:8] == [(str(r["index"]), DIGIT_NAMES[r["pred"]], f"{r['confidence']:.3f}")
                        for r in reversed(records[-8:])]
    # confidence = the int8 top score dequantized with the model's output scale (softmax: 1/256, -128)
    assert records[-1]["confidence"] == pytest.approx((records[-1]["score_q"] + 128) / 256, abs=1e-6)
    # the histogram's share of the bin every record fell into
    top_bin = int(min(records[0]["confidence"], 0.999999) * 10)
    share = sum(int(min(r["confidence"], 0.999999) * 10) == top_bin for r in records) / len(records)
    assert re.search(rf"{top_bin / 10:.1f}-{(top_bin + 1) / 10:.1f}\s+█+\s+{100 * share:5.1f}%", text)
    assert _shown(text, "CRC errors") == "0" and _shown(text, "reconnects") == "0"
    assert re.search(r"freshness\s+\d+\.\d s", text)

    # the session is scoreable afterwards: the report recomputed from records.jsonl alone
    report = json.loads((session / "report.json").read_text())
    assert report["samples"] == len(records) and report["board"] == BOARD
    again = session_report(session, write=False)
    assert again["latency_ms"] == report["latency_ms"]
    assert report["latency_ms"] == pytest.approx(percentiles(np.array([r["latency_ms"] for r in records])))
    assert [r.passed for r in evaluate(parse_slos(["latency_ms.p99<=1000", "samples>=600"]), again)] == [True, True]
    raw = (session / "raw.log").read_bytes()
    assert raw.count(b"te-s-") >= len(records)  # every record's line is in the raw log


@pytest.mark.slow
def test_link_health_through_a_faulty_link(qemu, tmp_path):
    """Corrupted and dropped bytes and one cut cable between QEMU and the monitor: no corrupt record is
    accepted, the CRC errors and the reconnect are counted and shown, and recording goes on."""
    session = tmp_path / "session"
    with FaultProxy(qemu.port, corrupt=0.002, drop=0.0005, cut_after=40_000, seed=7) as proxy:
        with Monitor(proxy.url, record_dir=session) as mon:
            mon.wait_for(lambda s: s["total"] >= 3000 and s["link"]["reconnects"] >= 1, timeout=90)
            mon.pause()
            mon.wait_idle()
            snap = mon.state.snapshot()
            console = Console(record=True, width=150, color_system=None)
            console.print(render(snap))
            text = console.export_text()
    assert proxy.cuts == 1 and proxy.corrupted > 0
    records = read_records(session)
    assert len(records) == snap["total"]
    # every accepted record is a clean one: same input, so the same top class and score, ticks within 1
    assert len({(r["pred"], r["score_q"]) for r in records}) == 1
    ticks = sorted({r["ticks"] for r in records})
    assert ticks[-1] - ticks[0] <= 1, ticks
    link = snap["link"]
    assert link["reconnects"] == 1 and link["crc_errors"] > 0 and link["lost"] > 0
    for key, value in (("CRC errors", link["crc_errors"]), ("lost records", link["lost"]),
                       ("resyncs", link["resyncs"]), ("reconnects", 1)):
        assert _shown(text, key) == str(value), key
    # raw.log holds every byte the proxy delivered, corrupt ones included
    assert (session / "raw.log").read_bytes() == bytes(proxy.delivered)


class ScriptedKeys:
    """Stands in for the terminal: presses p, r, then q, one per read."""

    def __init__(self, keys: str) -> None:
        self.keys = list(keys)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def read(self, timeout: float):
        time.sleep(timeout)
        return self.keys.pop(0) if self.keys else None


@pytest.mark.slow
def test_live_terminal_keys(qemu, tmp_path):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with Monitor(qemu.url, record_dir=tmp_path / "s") as mon:
        mon.wait_for(lambda s: s["total"] > 0, timeout=60)
        run_terminal(mon, console, keys=ScriptedKeys("..p.r..q"), refresh=0.05)
        snap = mon.state.snapshot()
    assert snap["paused"] and snap["count"] == 0 < snap["total"]  # p paused, r reset the shown statistics
    assert "paused" in out.getvalue() and "q quit" in out.getvalue()
    assert handle_key(mon, "q") is False and handle_key(mon, "x") is True


@pytest.mark.slow
def test_cli_plain_with_data_and_labels(qemu, digits, digits_tflite, labels_file, tmp_path):
    session = tmp_path / "session"
    r = CliRunner().invoke(cli, ["monitor", qemu.url, "--model", str(digits_tflite), "--labels", str(labels_file),
                                 "--data", str(digits["test"]), "--record", str(session), "--plain", "--count", "40"])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("[")]
    assert lines and f"board={BOARD}" in lines[-1] and "n=40 " in lines[-1]
    records = read_records(session)
    assert [r["index"] for r in records] == list(range(40))
    # one test input per inference, cycling through the file, with its label
    y = np.load(digits["test"])["y"]
    assert [r["input"] for r in records] == list(range(40))
    assert [r["label"] for r in records] == [int(v) for v in y[:40]]
    assert all(r["class"] == DIGIT_NAMES[r["pred"]] for r in records)
    report = json.loads((session / "report.json").read_text())
    assert report["accuracy"] == pytest.approx(np.mean([r["correct"] for r in records]))
    assert report["accuracy"] > 0.8  # the digits model, on the device, on real inputs
    assert f"session: {session}" in r.output
    assert sorted(p.name for p in session.iterdir()) == ["raw.log", "records.jsonl", "report.json", "report.md"]


@pytest.mark.slow
def test_cli_model_mismatch_is_loud(qemu, digits_tflite, tmp_path):
    other = tmp_path / "other.tflite"
    other.write_bytes(digits_tflite.read_bytes() + b"\0" * 16)  # same model, another hash
    r = CliRunner().invoke(cli, ["monitor", qemu.url, "--model", str(other), "--record", str(tmp_path / "s"),
                                 "--plain", "--count", "5", "--web", "--http-port", "0"])
    assert r.exit_code == 0, r.output
    assert "MODEL-MISMATCH" in r.output and "MODEL MISMATCH" in r.output
    assert "dashboard: http://127.0.0.1:" in r.output
    assert json.loads((tmp_path / "s" / "report.json").read_text())["model_mismatch"] is True


@pytest.mark.unit
def test_plain_line_and_disconnected_status():
    st = MonitorState(url="socket://x")
    st.on_status(DISCONNECTED, "lost the connection")
    line = plain_line(st.snapshot())
    assert "disconnected" in line and "n=0" in line and "fresh=n/a" in line
    console = Console(record=True, width=120, color_system=None)
    console.print(render(st.snapshot()))
    assert "DISCONNECTED" in console.export_text()


@pytest.mark.slow  # waits out the 5 s connect timeout
def test_cli_unreachable_port_is_one_line(tmp_path):
    r = CliRunner().invoke(cli, ["monitor", f"socket://127.0.0.1:{free_port()}", "--record", str(tmp_path / "s"),
                                 "--plain"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "cannot open socket://" in r.output
