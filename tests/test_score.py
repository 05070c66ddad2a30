"""Scoring end to end against the host-compiled firmware (real main.c, fake model) over socket://."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tinyedge.oracle
from helpers import build_host_dut, build_model_dut, fake_outputs, host_dut
from tinyedge.boards import get_board
from tinyedge.cli import cli
from tinyedge.data import quantize_inputs
from tinyedge.errors import DataError, SLOError
from tinyedge.link import DutClient, Transport
from tinyedge.score import ModelMismatchError, evaluate, parse_slo, score

KWS = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "kws_ref_model.tflite"
pytestmark = pytest.mark.skipif(not KWS.is_file(), reason="needs ../shared/models/kws_ref_model.tflite")

IN_SCALE, IN_ZP = 0.5847029, 83  # kws_ref_model input quantization


def _exe(tmp_path_factory, sha: str) -> Path:
    return build_host_dut(tmp_path_factory.mktemp("scoredut"), input_bytes=490, output_count=12, sha=sha,
                          out_scale=0.00390625, out_zp=-128, board="qemu-mps2-an386", emulated=1)


@pytest.fixture(scope="module")
def kws_sha() -> str:
    return hashlib.sha256(KWS.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def exe(tmp_path_factory, kws_sha) -> Path:
    return _exe(tmp_path_factory, kws_sha)


@pytest.fixture(scope="module")
def exe_other(tmp_path_factory) -> Path:
    return _exe(tmp_path_factory, "ab" * 32)


@pytest.fixture()
def data(tmp_path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Float inputs and labels; labels agree with the fake model for about half the samples."""
    rng = np.random.default_rng(1)
    x = rng.normal(0, 10, size=(12, 49, 10, 1)).astype(np.float32)

    xq = quantize_inputs(x, IN_SCALE, IN_ZP)
    pred = np.argmax(fake_outputs(xq.reshape(12, -1), 12), axis=1)
    y = np.where(np.arange(12) % 2 == 0, pred, (pred + 1) % 12).astype(np.int64)
    path = tmp_path / "data.npz"
    np.savez(path, x=x, y=y)
    return path, xq, y


@pytest.fixture()
def fake_oracle(monkeypatch):
    """Make the TFLM oracle compute the fake model, so parity is checkable."""
    monkeypatch.setattr(tinyedge.oracle, "run_tflm", lambda model, x: fake_outputs(x.reshape(len(x), -1), 12))


@pytest.mark.unit
def test_score_report_files_and_figures(exe, data, tmp_path, fake_oracle):
    path, xq, y = data
    out = tmp_path / "out"
    with host_dut(exe) as url:
        report = score(url, path, KWS, out_dir=out, slos=["accuracy>=0.4", "parity==1", "latency_ms.p95<=0.000001"])
    d = report.data
    assert d["samples"] == 12 and d["board"] == "qemu-mps2-an386" and d["emulated"] is True
    assert d["accuracy"] == pytest.approx(0.5)
    assert d["parity"] == 1.0
    assert d["model_sha256"] == hashlib.sha256(KWS.read_bytes()).hexdigest() and d["model_mismatch"] is False
    lat = d["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    # host timer is 1 GHz, so instructions == ticks; latency = instructions / 25 MHz
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 12
    assert records[0]["instructions"] == records[0]["ticks"]
    assert records[0]["latency_ms"] == pytest.approx(records[0]["ticks"] / 25e6 * 1e3)
    assert d["instructions"] == pytest.approx(np.median([r["ticks"] for r in records]), abs=1)
    assert all(r["parity"] for r in records)
    assert [r["out"] for r in records] == fake_outputs(xq.reshape(12, -1), 12).tolist()
    board = get_board("qemu-mps2-an386")
    assert d["energy_uj_per_inference"] == pytest.approx(board.run_power_mw * lat["p50"])
    assert "ESTIMATE" in d["measurement"]["latency_ms"]
    assert "STM32L4R5" in d["measurement"]["energy_uj_per_inference"]
    assert [(r.slo.key, r.passed) for r in report.slo_results] == [
        ("accuracy", True), ("parity", True), ("latency_ms.p95", False)]
    assert not report.passed
    raw = (out / "raw.log").read_bytes()
    assert raw.startswith(b"m-timestamp-mode-performance\r\nm-init-done\r\nm-ready\r\n") and b"te-info-board=" in raw
    saved = json.loads((out / "report.json").read_text())
    assert saved["slo"][2] == {"slo": "latency_ms.p95<=0.000001", "key": "latency_ms.p95", "op": "<=",
                               "target": 1e-6, "value": lat["p95"], "passed": False}
    md = (out / "report.md").read_text()
    assert "| `latency_ms.p95<=0.000001` |" in md and "MISS" in md


@pytest.mark.unit
def test_score_with_real_oracle_and_open_client(exe, data, tmp_path):
    """The real TFLM oracle on the kws model disagrees with the fake firmware: parity is measured, not 1."""
    path, _, _ = data
    with host_dut(exe) as url:
        client = DutClient(Transport(url, connect_timeout=5))
        client.wait_ready(5)
        try:
            report = score(client, path, KWS, out_dir=tmp_path / "o", limit=3)
            assert client.name() == "dut-[tinyedge]"  # left open for the caller
        finally:
            client.close()
    assert report["samples"] == 3
    assert 0.0 <= report["parity"] < 1.0


@pytest.mark.unit
def test_model_mismatch_is_refused_unless_allowed(exe_other, data, tmp_path, kws_sha, fake_oracle):
    path, _, _ = data
    with host_dut(exe_other) as url:
        with pytest.raises(ModelMismatchError) as exc:
            score(url, path, KWS, out_dir=tmp_path / "a")
    msg = str(exc.value)
    assert "ab" * 32 in msg and kws_sha in msg and "--allow-model-mismatch" in msg
    with host_dut(exe_other) as url:
        report = score(url, path, KWS, out_dir=tmp_path / "b", limit=2, allow_model_mismatch=True)
    assert report["model_mismatch"] is True and report["allow_model_mismatch"] is True
    assert "MISMATCH" in report["measurement"]["model"]


@pytest.mark.unit
def test_data_errors_come_before_the_device(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, inputs=np.zeros((2, 490)))
    with pytest.raises(DataError, match="no array 'x'"):
        score("socket://127.0.0.1:1", bad, KWS, out_dir=tmp_path / "o")
    with pytest.raises(SLOError):
        score("socket://127.0.0.1:1", bad, KWS, out_dir=tmp_path / "o", slos=["speed>3"])


@pytest.mark.unit
@pytest.mark.parametrize("expr, key, op, target", [
    ("accuracy>=0.95", "accuracy", ">=", 0.95),
    (" latency_ms.p95 <= 50 ", "latency_ms.p95", "<=", 50.0),
    ("parity==1", "parity", "==", 1.0),
    ("ram_bytes<1e5", "ram_bytes", "<", 1e5),
    ("instructions!=0", "instructions", "!=", 0.0),
    ("samples>-1", "samples", ">", -1.0),
])
def test_parse_slo(expr, key, op, target):
    s = parse_slo(expr)
    assert (s.key, s.op, s.target) == (key, op, target)


@pytest.mark.unit
def test_slo_errors_name_key_and_valid_keys():
    with pytest.raises(SLOError, match="unknown key 'latency.p95'.*latency_ms.p95"):
        parse_slo("latency.p95<=3")
    for bad in ["accuracy", "accuracy=>0.9", "accuracy>=abc", ">=3", "accuracy>=0.9 and parity==1"]:
        with pytest.raises(SLOError, match="cannot parse SLO"):
            parse_slo(bad)


@pytest.mark.unit
def test_slo_evaluation_on_report_dict():
    report = {"accuracy": 0.9, "latency_ms": {"p95": 12.0}, "instructions": None}
    res = evaluate([parse_slo("accuracy>=0.95"), parse_slo("latency_ms.p95<13"), parse_slo("instructions<5")], report)
    assert [(r.value, r.passed) for r in res] == [(0.9, False), (12.0, True), (None, False)]


@pytest.mark.unit
def test_cli_exits_1_and_lists_missed_slos(exe, data, tmp_path, fake_oracle):
    path, _, _ = data
    with host_dut(exe) as url:
        result = CliRunner().invoke(cli, ["score", "--port", url, "--data", str(path), "--model", str(KWS),
                                          "--limit", "4", "--slo", "parity==1", "--slo", "accuracy>=1.01",
                                          "-o", str(tmp_path / "cli")])
    assert result.exit_code == 1, result.output
    assert "SLOs missed" in result.output and "accuracy>=1.01" in result.output
    assert (tmp_path / "cli" / "report.md").is_file()
    with host_dut(exe) as url:
        ok = CliRunner().invoke(cli, ["score", "--port", url, "--data", str(path), "--model", str(KWS),
                                      "--limit", "2", "--slo", "parity==1", "-o", str(tmp_path / "cli2")])
    assert ok.exit_code == 0, ok.output
    assert "all 1 SLOs met" in ok.output


@pytest.mark.unit
def test_cli_bad_slo_is_one_line_error(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((1, 490), np.float32), y=np.zeros(1, np.int64))
    r = CliRunner().invoke(cli, ["score", "--port", "socket://127.0.0.1:1", "--data", str(tmp_path / "d.npz"),
                                 "--model", str(KWS), "--slo", "acc>1", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "unknown key 'acc'" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_real_kws_model_on_host_has_parity_1(tmp_path):
    """main.c with the real generated KWS model code (host build): outputs equal TFLM's exactly."""
    pytest.importorskip("tinyedge.model.program")

    exe = build_model_dut(tmp_path, KWS.read_bytes(), mlperf_id="kws01", opt="-O2",
                          what="host build with the KWS model")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(0, 20, size=(8, 49, 10, 1)).astype(np.float32),
             y=rng.integers(0, 12, 8))
    with host_dut(exe) as url:
        report = score(url, tmp_path / "d.npz", KWS, out_dir=tmp_path / "out", slos=["parity==1"])
    assert report.passed and report["parity"] == 1.0
    assert report["device"]["mlperf_model"] == "kws01" and report["device"]["layers"] == 12
