"""The measurement model shared by score and monitor (tinyedge.score.figures): hand-made records give
exact figures, and the same records through score's path and monitor's path give the same report figures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import tinyedge.oracle
from helpers import build_host_dut, fake_outputs, host_dut
from tinyedge.boards import board_ids, get_board
from tinyedge.model import load_model
from tinyedge.monitor import MonitorState, build_report, session_report
from tinyedge.score import BoardMismatchError, score
from tinyedge.score.figures import (
    ANOMALY_DETECTION,
    CLASSIFICATION,
    OTHER,
    DeviceInfo,
    Distribution,
    ModelFacts,
    ModelIO,
    Record,
    Tally,
    Timing,
    detect_task,
    figures,
)

BOARD = "qemu-mps2-an386"
SHA = "ab" * 32
IO = ModelIO((1, 4), 1.0, 0, 4, 1 / 256, -128, 3)  # 4 int8 inputs, 3 classes (int8 softmax quantization)


def _info(**kw: object) -> dict[str, object]:
    info: dict[str, object] = {"board": BOARD, "emulated": 0, "timer_hz": 1_000_000, "timer": "dwt",
                               "clock_hz": 25_000_000, "model_sha256": SHA, "model": "m", "version": "0.1.0",
                               "protocol": 2, "input_bytes": 4, "output_count": 3, "layers": 2,
                               "ram_bytes": 1234, "flash_bytes": 5678}
    info.update(kw)
    return info


def _records() -> list[Record]:
    """Five accepted inferences of 1..5 ms on a 1 MHz timer and one failed sample; 3 of 4 labelled right."""
    outs = [(100, -128, -128), (-128, 90, -128), (-128, -128, 127), (120, -100, -128), (0, 10, 20)]
    labels = [0, 1, 2, 1, 2]
    parity = [True, True, True, False, True]
    recs = [Record(index=i, ticks=1000 * (i + 1), t=0.1 * (i + 1), label=labels[i], out=outs[i], parity=parity[i])
            for i in range(5)]
    return [*recs[:3], Record(index=5, ok=False, error="no reply"), *recs[3:]]


# ------------------------------------------------------------------------------------------ unit


@pytest.mark.unit
def test_figures_from_hand_made_records_are_exact():
    board = get_board(BOARD)
    r = figures(_records(), DeviceInfo.from_info(_info()), board, model=ModelFacts("m.tflite", SHA, IO),
                session=None)
    d = r.to_dict()
    assert r.task == CLASSIFICATION and d["samples"] == 6 and d["samples_ok"] == 5
    assert d["success_rate"] == 5 / 6 and d["failures"] == [{"index": 5, "error": "no reply"}]
    lat = [1.0, 2.0, 3.0, 4.0, 5.0]  # ticks / 1 MHz, in ms
    assert d["latency_ms"] == {"p50": 3.0, "p95": float(np.percentile(lat, 95)), "p99": float(np.percentile(lat, 99)),
                               "max": 5.0, "mean": 3.0}
    assert d["latency_ms"]["p95"] == pytest.approx(4.8) and d["latency_ms"]["p99"] == pytest.approx(4.96)
    assert d["throughput_ips"] == pytest.approx(1000 / 3)
    assert d["instructions"] is None and "not measured" in d["measurement"]["instructions"]
    assert d["latency_source"] == "device timer (dwt)" and "DWT cycle counter" in d["measurement"]["latency_ms"]
    assert d["accuracy"] == 4 / 5  # record 3 (120 > -100: class 0, labelled 1) is wrong
    assert d["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 2]]
    assert d["parity"] == 4 / 5
    assert d["energy_uj_per_inference"] == board.run_power_mw * 3.0 and d["energy_source"] == "power_model"
    assert d["energy"]["model_uj"] == d["energy_uj_per_inference"] and d["energy"]["trace_uj"] is None
    assert d["confidence"]["p50"] == pytest.approx((100 + 128) / 256) and d["psi"] is None
    assert d["max_record_gap_s"] == pytest.approx(0.1) and d["freshness_s"] is None
    assert (d["ram_bytes"], d["flash_bytes"], d["clock_hz"], d["timer_hz"]) == (1234, 5678, 25_000_000, 1_000_000)
    assert d["model"] == "m.tflite" and d["model_mismatch"] is False and "model" not in d["measurement"]
    assert list(r.series["latency_ms"]) == lat


@pytest.mark.unit
def test_emulated_tick_rules_and_mismatch():
    """Under QEMU ticks are instructions (1 ns each): median instruction count, latency an estimate at
    the board clock (te-info's, else the board file's)."""
    board = get_board(BOARD)
    recs = [Record(index=i, ticks=t, out=(0, 1, 2)) for i, t in enumerate([500, 500, 600])]
    info = _info(emulated=1, timer_hz=25_000_000, clock_hz=0, model_sha256="cd" * 32)
    r = figures(recs, DeviceInfo.from_info(info), board, model=ModelFacts("m.tflite", SHA, IO),
                allow_model_mismatch=True)
    assert r.instructions == 500 * 40 and r.clock_hz == board.clock_hz == 25_000_000
    assert r.latency_ms["p50"] == 500 * 40 / 25e6 * 1e3 and r.latency_ms["max"] == 600 * 40 / 25e6 * 1e3
    assert "ESTIMATE" in r.measurement["latency_ms"] and r.latency_source == "emulator instruction count"
    assert r.model_mismatch and "MISMATCH allowed" in r.measurement["model"]
    assert r.accuracy is None and r.confusion_matrix is None  # no labels
    # no clock anywhere: instructions are still counted, latency is not estimated
    r2 = figures(recs, DeviceInfo.from_info(info), None, model=ModelFacts("m", SHA, IO))
    assert r2.instructions == 20_000 and r2.latency_ms["p50"] is None and r2.energy.per_inference_uj is None
    assert "no board file" in r2.measurement["energy_uj_per_inference"]


@pytest.mark.unit
def test_timing_task_and_counted_percentiles():
    t = Timing(timer_hz=25_000_000, clock_hz=50_000_000, emulated=True)
    assert t.instructions(1000) == 40_000 and t.latency_ms(1000) == pytest.approx(0.8)
    assert Timing(1_000_000, 0, False).latency_ms(2500) == 2.5 and Timing(1_000_000, 0, False).instructions(9) is None
    assert Timing(25_000_000, 0, True).latency_ms(1) is None
    assert detect_task(640, 640) == ANOMALY_DETECTION and detect_task(490, 12) == CLASSIFICATION
    assert detect_task(10, 1) == OTHER
    # constant memory: counts of distinct values, percentiles equal numpy's on the expanded values
    rng = np.random.default_rng(4)
    for n in (1, 2, 7, 100, 1001):
        values = rng.integers(900, 1100, n)
        dist = Distribution()
        for v in values:
            dist.add(int(v))
        got = dist.percentiles(lambda v: v / 7.0)
        want = np.percentile(values / 7.0, [50, 95, 99])
        assert [got["p50"], got["p95"], got["p99"]] == [float(w) for w in want]
        assert got["max"] == float(np.max(values / 7.0)) and got["mean"] == pytest.approx(float(np.mean(values / 7.0)))
    tally = Tally().extend(Record(index=i, ticks=1000) for i in range(10_000))
    assert len(tally.ticks.counts) == 1 and tally.n == 10_000


# ------------------------------------------------------------------------------------------ score vs monitor

SHARED = ("board", "emulated", "model", "model_sha256", "firmware_model_sha256", "model_mismatch", "samples",
          "accuracy", "parity", "latency_ms", "instructions", "energy_uj_per_inference", "ram_bytes", "flash_bytes",
          "clock_hz", "timer_hz", "timer")


def _monitor_rows(records: list[Record], info: dict[str, object]) -> list[dict]:
    """The records.jsonl rows the monitor writes for the same inferences (te-s lines: ticks, top, score)."""
    st = MonitorState(model_sha256=SHA, model_name="m.tflite")
    st.on_info(info)
    rows = []
    for r in records:
        assert r.out is not None and r.ticks is not None
        top = int(np.argmax(r.out))
        row = st.make_record({"seq": r.index, "ticks": r.ticks, "top": top, "score": r.out[top]}, index=r.index,
                             t_s=r.t or 0.0)
        if r.label is not None:
            row.update(label=r.label, correct=top == r.label)
        rows.append(row)
    return rows


@pytest.mark.unit
@pytest.mark.parametrize("emulated", [False, True])
def test_same_records_same_figures_in_score_and_monitor(tmp_path: Path, emulated: bool):
    info = _info(emulated=int(emulated), timer_hz=25_000_000 if emulated else 1_000_000)
    rng = np.random.default_rng(7)
    records = [Record(index=i, ticks=int(rng.choice([25_000, 25_001, 25_040, 31_000])), t=0.01 * i,
                      label=int(rng.integers(0, 3)), out=tuple(int(v) for v in rng.integers(-128, 128, 3)))
               for i in range(500)]
    board = get_board(BOARD)
    device = DeviceInfo.from_info(info)
    scored = figures(records, device, board, model=ModelFacts("m.tflite", SHA, IO)).to_dict()
    # the monitor's path: its rows, its constant-memory tally fed record by record, its report builder
    rows = _monitor_rows(records, info)
    tally = Tally()
    for row in rows:
        tally.add(Record.from_row(row))
    monitored = build_report(tally, info, url="loop://", model_name="m.tflite", model_sha256=SHA, duration_s=5.0)
    assert monitored["source"] == "monitor" and monitored["samples"] == 500
    assert {k: monitored[k] for k in SHARED if k != "parity"} == {k: scored[k] for k in SHARED if k != "parity"}
    assert monitored["parity"] is None  # a te-s line has no outputs to compare with the host reference
    assert monitored["accuracy"] is not None and monitored["latency_ms"]["p50"] is not None
    assert (monitored["instructions"] is not None) == emulated
    assert sum(monitored["predictions"].values()) == 500 and sum(monitored["confidence_hist"]) == 500
    for key in ("latency_ms", "energy_uj_per_inference", "accuracy"):
        assert key in monitored["measurement"] or key == "energy_uj_per_inference"
    assert monitored["measurement"]["latency_ms"].split(":")[0] == scored["measurement"]["latency_ms"].split(":")[0]
    # and recomputed afterwards from records.jsonl (monitor's session_report) it is the same again
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "report.json").write_text(json.dumps(monitored))
    again = session_report(tmp_path, write=False)
    assert {k: again[k] for k in SHARED} == {k: monitored[k] for k in SHARED}
    # score's records.jsonl rows, read back as records, give score's figures exactly
    timing = device.timing(board)
    back = [Record.from_row(json.loads(json.dumps(r.row(timing, CLASSIFICATION)))) for r in records]
    assert {k: figures(back, device, board, model=ModelFacts("m.tflite", SHA, IO)).to_dict()[k] for k in SHARED} == {
        k: scored[k] for k in SHARED}


@pytest.mark.unit
def test_score_on_host_dut_and_its_records_through_monitor(tmp_path_factory, tmp_path, monkeypatch):
    """End to end: score() over socket:// against the host-built firmware, then its records.jsonl fed to the
    monitor's report builder row by row: the figures both can measure are equal."""
    kws = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "kws_ref_model.tflite"
    if not kws.is_file():
        pytest.skip("needs ../shared/models/kws_ref_model.tflite")
    monkeypatch.setattr(tinyedge.oracle, "run_tflm", lambda model, x: fake_outputs(x.reshape(len(x), -1), 12))
    graph = load_model(kws)
    sha = hashlib.sha256(kws.read_bytes()).hexdigest()
    assert graph.sha256 == sha
    exe = build_host_dut(tmp_path_factory.mktemp("figdut"), input_bytes=490, output_count=12, sha=sha,
                         out_scale=0.00390625, out_zp=-128, board=BOARD, emulated=1)
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "d.npz", x=rng.normal(0, 10, size=(20, 49, 10, 1)).astype(np.float32),
             y=rng.integers(0, 12, 20))
    with host_dut(exe) as url:  # an in-memory Graph and a Board object: nothing is looked up again
        report = score(url, tmp_path / "d.npz", graph, board=get_board(BOARD), out_dir=tmp_path / "o",
                       step_summary=False, profile=False)
    d = report.data
    assert d["model"] == graph.name and d["model_sha256"] == sha and d["samples_ok"] == 20 and d["parity"] == 1.0
    rows = [json.loads(line) for line in (tmp_path / "o" / "records.jsonl").read_text().splitlines()]
    monitored = build_report(rows, d["device"], model_name=d["model"], model_sha256=sha)
    assert {k: monitored[k] for k in SHARED} == {k: d[k] for k in SHARED}
    # a device that names another board than the one given is refused
    other = next(b for b in board_ids() if b != BOARD)
    with host_dut(exe) as url, pytest.raises(BoardMismatchError, match=f"board {BOARD}.*{other}"):
        score(url, tmp_path / "d.npz", graph, board=other, out_dir=tmp_path / "o2", step_summary=False)

