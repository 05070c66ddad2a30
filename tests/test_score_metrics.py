"""Score figures without a device: ROC AUC, confusion matrix, PSI, energy (power model and a synthetic
trace with a known integral), the [slo] table of tinyedge.toml, JUnit rendering; the AD path on the host DUT."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conftest import shared_model
from helpers import build_host_dut, fake_outputs, host_dut
from tinyedge.boards import get_board
from tinyedge.data import quantize_inputs
from tinyedge.errors import DataError, SLOError
from tinyedge.score import integrate_trace, load_project_slos, metrics, model_energy_uj, parse_slos, score
from tinyedge.score.core import model_io

pytestmark = pytest.mark.unit


def test_roc_auc_and_confusion_match_scikit_learn():
    from sklearn.metrics import confusion_matrix, roc_auc_score  # noqa: PLC0415  (scikit-learn: heavy, one test)

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.normal(labels * 0.7, 1.0), 1)  # rounded: plenty of ties
    assert metrics.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert metrics.roc_auc(np.zeros(5), np.arange(5)) is None
    y, p = rng.integers(0, 4, 100), rng.integers(0, 4, 100)
    assert metrics.confusion_matrix(y, p, 4) == confusion_matrix(y, p, labels=range(4)).tolist()


def test_psi():
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 5000)
    assert metrics.psi(ref, ref) == 0.0
    assert metrics.psi(ref, rng.normal(0, 1, 5000)) < 0.02
    assert metrics.psi(ref, rng.normal(1.0, 1, 5000)) > 0.25
    assert metrics.psi(ref, np.array([])) is None


def test_energy_power_model():
    board = get_board("qemu-mps2-an386")
    # 0.112 mA/MHz x 25 MHz x 3.3 V = 9.24 mW; 10 ms -> 92.4 uJ
    assert board.run_power_mw == pytest.approx(9.24)
    assert model_energy_uj(board.run_power_mw, 10.0) == pytest.approx(92.4)


def _trace(path, rows, header="time_s,current_ma,gpio"):
    body = "\n".join(",".join(f"{v:.9g}" for v in r) for r in rows)
    path.write_text("# synthetic trace\n" + header + "\n" + body + "\n")
    return path


def test_energy_from_synthetic_trace_with_known_integral(tmp_path):
    """Three 2 ms inference windows at 10 mA (3.3 V) on a 1 mA idle floor, sampled every 0.1 ms:
    each window integrates to 10 mA x 3.3 V x 2 ms = 66 uJ exactly (flat power, trapezoids exact)."""
    t = np.arange(0, 0.03, 1e-4)
    gpio = np.zeros_like(t)
    current = np.full_like(t, 1.0)
    for start in (0.005, 0.012, 0.020):
        win = (t >= start - 1e-9) & (t <= start + 0.002 + 1e-9)
        gpio[win] = 1
        current[win] = 10.0
    path = _trace(tmp_path / "trace.csv", zip(t, current, gpio))
    e = integrate_trace(path, voltage_v=3.3)
    assert e.windows == 3
    assert e.energy_uj == pytest.approx([66.0] * 3, rel=1e-6)
    assert e.mean_uj == pytest.approx(66.0, rel=1e-6) and e.mean_power_mw == pytest.approx(33.0, rel=1e-6)
    # power column in mW, time in ms, a ramp: integral of 2t mW over [0, 4] ms = 16 uJ
    tm = np.linspace(0, 4, 401)
    ramp = _trace(tmp_path / "ramp.csv", zip(tm, 2 * tm, np.ones_like(tm)), header="time_ms,power_mw,marker")
    assert integrate_trace(ramp).energy_uj == pytest.approx([16.0], rel=1e-9)


def test_trace_errors_say_what_to_fix(tmp_path):
    with pytest.raises(DataError, match="no marker column"):
        integrate_trace(_trace(tmp_path / "a.csv", [(0, 1), (1, 1)], header="time_s,current_a"), voltage_v=3.3)
    with pytest.raises(DataError, match="no voltage"):
        integrate_trace(_trace(tmp_path / "b.csv", [(0, 1, 1), (1, 1, 1)]))
    with pytest.raises(DataError, match="no inference window"):
        integrate_trace(_trace(tmp_path / "c.csv", [(0, 1, 0), (1, 1, 0)]), voltage_v=3)
    with pytest.raises(DataError, match="time column"):
        integrate_trace(_trace(tmp_path / "d.csv", [(0, 1, 0), (1, 1, 0)], header="x,power_w,gpio"))


def test_project_file_slo_table(tmp_path, monkeypatch):
    cfg = tmp_path / "tinyedge.toml"
    cfg.write_text('[slo]\naccuracy = ">= 0.9"\n"latency_ms.p95" = "<=50"\nparity = 1\nchecks = ["psi<0.1"]\n')
    exprs, path = load_project_slos(cfg)
    assert exprs == ["accuracy>= 0.9", "latency_ms.p95<=50", "parity>=1", "psi<0.1"] and path == cfg
    assert [s.key for s in parse_slos(exprs)] == ["accuracy", "latency_ms.p95", "parity", "psi"]
    monkeypatch.chdir(tmp_path)
    assert load_project_slos()[1] == cfg
    cfg.write_text('[slo]\nacuracy = ">=0.9"\n')
    with pytest.raises(SLOError, match="tinyedge.toml.*did you mean accuracy"):
        load_project_slos(cfg)
    cfg.write_text("[slo\n")
    with pytest.raises(SLOError, match="not valid TOML"):
        load_project_slos(cfg)
    (tmp_path / "tinyedge.toml").unlink()
    assert load_project_slos() == ([], None)


def test_autoencoder_scored_by_roc_auc_on_host_dut(tmp_path_factory, tmp_path):
    """A 640-in/640-out firmware (host build, fake model) scored against the AD model: anomaly scores are the
    reconstruction MSE, ROC AUC over the labels; accuracy is not applicable."""

    ad = shared_model("ad01_int8.tflite")
    exe = build_host_dut(tmp_path_factory.mktemp("ad"), input_bytes=640, output_count=640, board="qemu-mps2-an386",
                         emulated=1)
    io = model_io(ad.read_bytes(), ad)
    assert (io.input_size, io.output_size) == (640, 640)
    rng = np.random.default_rng(3)
    x = rng.normal(0, 3, size=(8, 640)).astype(np.float32)
    y = np.array([0, 1] * 4)
    np.savez(tmp_path / "ad.npz", x=x, y=y)
    with host_dut(exe) as url:
        report = score(url, tmp_path / "ad.npz", ad, out_dir=tmp_path / "o", allow_model_mismatch=True,
                       step_summary=False)
    d = report.data
    assert d["task"] == "anomaly_detection" and d["accuracy"] is None and d["confusion_matrix"] is None

    outs = fake_outputs(quantize_inputs(x, io.input_scale, io.input_zero_point), 640)
    errors = metrics.reconstruction_errors(x, outs, io.output_scale, io.output_zero_point)
    assert d["roc_auc"] == pytest.approx(metrics.roc_auc(y, errors))
    assert d["confidence"]["what"].startswith("anomaly score") and d["psi"] is not None
    assert "roc_auc" in (tmp_path / "o" / "report.md").read_text()
    suite = ET.parse(tmp_path / "o" / "junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "0"
    assert json.loads((tmp_path / "o" / "report.json").read_text())["roc_auc"] == d["roc_auc"]
