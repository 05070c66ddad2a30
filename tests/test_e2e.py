"""End to end, as the README's first command runs it: Keras model -> int8 -> PlatformIO project ->
`pio run` (arm-none-eabi-gcc) -> QEMU mps2-an386 -> serial scoring. Nothing mocked."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tinyedge.cli import cli
from tinyedge.data import load_npz, quantize_inputs
from tinyedge.model import load_model
from tinyedge.oracle import run_tflm

pytestmark = pytest.mark.slow


def test_run_keras_digits_on_qemu_m4_twice(digits, pio_core, tmp_path, monkeypatch):
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(pio_core))
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["run", str(digits["model"]), "--board", "qemu-mps2-an386", "--calib",
                                 str(digits["calib"]), "--data", str(digits["test"]), "-o", str(out),
                                 "--slo", "parity==1", "--slo", "accuracy>=0.9"])
    assert r.exit_code == 0, r.output
    report = json.loads((out / "score" / "report.json").read_text())
    quant = json.loads((out / "model.json").read_text())

    # The report covers every held-out sample, computed on the device, bit-identical to TFLM.
    x, y = load_npz(digits["test"])
    assert report["samples"] == len(y) >= 300
    assert report["parity"] == 1.0
    g = load_model(out / "model.tflite")
    xq = quantize_inputs(x.reshape((len(x),) + g.input.shape[1:]), *g.input.q())
    tflm_acc = float((run_tflm(g.model_bytes, xq).argmax(axis=1) == y).mean())
    assert report["accuracy"] == tflm_acc
    assert abs(report["accuracy"] - quant["float_accuracy"]) <= 0.01
    assert report["model_sha256"] == report["firmware_model_sha256"] == g.sha256
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert report["instructions"] > 0 and report["energy_uj_per_inference"] > 0
    assert report["flash_bytes"] > 0 and report["ram_bytes"] > 0
    assert "estimate" in report["measurement"]["latency_ms"].lower()
    raw = (out / "score" / "raw.log").read_bytes()
    assert b"m-init-done" in raw and b"te-info-board=qemu-mps2-an386" in raw
    records = (out / "score" / "records.jsonl").read_text().splitlines()
    assert len(records) == len(y)

    # icount makes the emulated timing deterministic: a second run gives the same figures.
    out2 = tmp_path / "run2"
    r2 = CliRunner().invoke(cli, ["run", str(out / "model.tflite"), "--board", "qemu-mps2-an386",
                                  "--data", str(digits["test"]), "-o", str(out2)])
    assert r2.exit_code == 0, r2.output
    report2 = json.loads((out2 / "score" / "report.json").read_text())
    assert report2["latency_ms"] == lat
    assert report2["instructions"] == report["instructions"]
    assert report2["accuracy"] == report["accuracy"] and report2["parity"] == 1.0


def test_slo_miss_exits_1_with_a_table(digits_tflite, digits, pio_core, tmp_path, monkeypatch):
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(pio_core))
    r = CliRunner().invoke(cli, ["run", str(digits_tflite), "--board", "qemu-mps2-an386", "--data",
                                 str(digits["test"]), "--limit", "20", "-o", str(tmp_path / "r"),
                                 "--slo", "latency_ms.p95<=0.001"])
    assert r.exit_code == 1, r.output
    assert "SLOs missed" in r.output and "latency_ms.p95<=0.001" in r.output


def test_run_reads_slos_from_tinyedge_toml(digits_tflite, digits, pio_core, tmp_path, monkeypatch):
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(pio_core))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tinyedge.toml").write_text('[slo]\nparity = "==1"\n"latency_ms.p99" = "<=0.001"\n')
    r = CliRunner().invoke(cli, ["run", str(digits_tflite), "--board", "qemu-mps2-an386", "--data",
                                 str(digits["test"]), "--limit", "10", "-o", str(tmp_path / "r")])
    assert r.exit_code == 1, r.output
    assert "SLOs from" in r.output and "latency_ms.p99<=0.001" in r.output
    junit = (tmp_path / "r" / "score" / "junit.xml").read_text()
    assert junit.count("<testcase") == 2 and "<failure" in junit
