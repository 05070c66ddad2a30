"""Scoring end to end on real firmware in QEMU: a fault-injecting proxy (corrupt + dropped bytes, one cut),
SLO pass/fail with JUnit output, and the model-hash refusal. One KWS firmware build per module."""

from __future__ import annotations

import hashlib
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import shared_model
from faultproxy import FaultProxy
from helpers import QEMU_BOARD, running
from tinyedge.cli import cli
from tinyedge.runners import deploy
from tinyedge.score import score

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
        reason="needs arm-none-eabi-gcc and qemu-system-arm",
    ),
]

BOARD = QEMU_BOARD
N = 10
FAST = {"*": 1.0, "te-infer": 3.0, "te-profile": 3.0}


@pytest.fixture(scope="module")
def kws() -> Path:
    return shared_model("kws_ref_model.tflite")


@pytest.fixture(scope="module")
def firmware(kws, pio_core, tmp_path_factory):
    """KWS deployed to the QEMU board (generate + pio build + QEMU), once per module; tests boot it anew."""
    with deploy(kws, BOARD, tmp_path_factory.mktemp("kws-fw") / "project", core_dir=pio_core) as dep:
        yield dep


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("kws-data") / "kws.npz"
    np.savez(path, x=rng.normal(0, 20, size=(N, 49, 10, 1)).astype(np.float32), y=rng.integers(0, 12, N))
    return path


@pytest.fixture(scope="module")
def clean(firmware, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    with running(firmware) as qemu:
        report = score(qemu.url, data, model=firmware.project.graph, board=firmware.project.board, out_dir=out,
                       step_summary=False)
    return report, out


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_clean_run_session_folder(clean):
    report, out = clean
    d = report.data
    assert {p.name for p in out.iterdir()} >= {"raw.log", "records.jsonl", "report.json", "report.md", "report.html",
                                                "junit.xml", "summary.md"}
    assert d["samples_ok"] == N and d["success_rate"] == 1.0 and d["parity"] == 1.0 and d["psi"] == 0.0
    assert d["protocol"] == 2 and d["task"] == "classification" and len(d["confusion_matrix"]) == 12
    assert sum(map(sum, d["confusion_matrix"])) == N
    assert d["link"]["corrupt_lines"] == 0 and d["link"]["reconnects"] == 0
    assert [la["name"] for la in d["profile"]["layers"]][0] == "CONV_2D" and d["profile"]["total_ms"] > 0
    assert d["energy_source"] == "power_model" and d["energy_uj_per_inference"] == d["energy"]["model_uj"]
    assert "emulator instruction count" in d["measurement"]["latency_ms"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "<link" not in html and "Source:" in html
    for title in ("Latency histogram", "Per-layer latency", "Confusion matrix", "Confidence distribution"):
        assert title in html


def test_fault_injection_proxy_loses_nothing(firmware, data, clean, tmp_path):
    """~1% corrupt bytes, dropped bytes and one cut connection: every corrupt line is rejected, the run
    resumes after reconnecting, raw.log holds every byte delivered, and the figures equal a clean run's."""
    clean_report, clean_out = clean
    raw_size = (clean_out / "raw.log").stat().st_size
    out = tmp_path / "fault"
    with running(firmware) as qemu, \
            FaultProxy(qemu.port, corrupt=0.01, drop=0.002, cut_after=raw_size // 2, seed=3) as proxy:
        report = score(proxy.url, data, model=firmware.project.graph, board=firmware.project.board, out_dir=out,
                       timeouts=FAST, step_summary=False)
    d, c = report.data, clean_report.data
    assert proxy.corrupted > 20 and proxy.dropped > 0 and proxy.cuts == 1 and proxy.connections == 2
    assert d["link"]["corrupt_lines"] > 0 and d["link"]["reconnects"] == 1
    assert (out / "raw.log").read_bytes() == bytes(proxy.delivered)
    assert d["samples_ok"] == N and d["success_rate"] == 1.0
    # no corrupt record accepted: every record equals the clean run's, sample by sample, once each.
    # Timing may differ by one SysTick tick when the timer's wrap interrupt (every 2^24 ticks of virtual
    # time, whose phase depends on host timing) lands inside one run's inference window and not the other's.
    exact = ("index", "ok", "label", "pred", "correct", "parity", "out")
    rec, ref = _records(out), _records(clean_out)
    assert [{k: r.get(k) for k in exact} for r in rec] == [{k: r.get(k) for k in exact} for r in ref]
    assert all(abs(a["ticks"] - b["ticks"]) <= 1 for a, b in zip(rec, ref))
    for key in ("accuracy", "parity", "confusion_matrix", "psi", "confidence", "samples", "roc_auc"):
        assert d[key] == c[key], key
    tick_ms = (1e9 / d["timer_hz"]) / d["clock_hz"] * 1e3  # one tick as estimated latency (40 instructions)
    for k, v in c["latency_ms"].items():
        assert d["latency_ms"][k] == pytest.approx(v, abs=tick_ms), k
    assert d["instructions"] == pytest.approx(c["instructions"], abs=1e9 / d["timer_hz"])
    assert d["energy_uj_per_inference"] == pytest.approx(c["energy_uj_per_inference"], rel=1e-4)
    # te-profile is one extra inference whose lines may be merged across re-asks; its per-layer and total
    # SysTick readings can differ by one tick (40 ns) from run to run even without faults
    assert [la["name"] for la in d["profile"]["layers"]] == [la["name"] for la in c["profile"]["layers"]]
    assert abs(d["profile"]["total_ticks"] - c["profile"]["total_ticks"]) <= 1
    assert all(abs(a["ticks"] - b["ticks"]) <= 1 for a, b in zip(d["profile"]["layers"], c["profile"]["layers"]))


def test_slo_pass_fail_junit_and_summary_in_qemu(firmware, kws, data, tmp_path, monkeypatch):
    summary = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (tmp_path / "tinyedge.toml").write_text('[slo]\nparity = "==1"\n"latency_ms.p95" = "<=5000"\n')
    monkeypatch.chdir(tmp_path)
    base = ["score", "--data", str(data), "--model", str(kws), "--limit", "3", "--no-profile"]
    with running(firmware) as qemu:
        ok = CliRunner().invoke(cli, [*base, "--port", qemu.url, "--slo", "success_rate>=1", "-o", "pass"])
    assert ok.exit_code == 0, ok.output
    assert "all 3 SLOs met" in ok.output and "tinyedge.toml" in ok.output
    suite = ET.parse(tmp_path / "pass" / "junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.iter("testcase")] == ["parity==1", "latency_ms.p95<=5000", "success_rate>=1"]
    with running(firmware) as qemu:
        miss = CliRunner().invoke(cli, [*base, "--port", qemu.url, "--slo", "energy_uj_per_inference<=0.001",
                                        "-o", "fail"])
    assert miss.exit_code == 1, miss.output
    assert "SLOs missed" in miss.output and "energy_uj_per_inference<=0.001" in miss.output
    suite = ET.parse(tmp_path / "fail" / "junit.xml").getroot().find("testsuite")
    assert suite.get("failures") == "1"
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["energy_uj_per_inference<=0.001"]
    assert "power model" in failed[0].find("failure").text
    text = summary.read_text()
    assert "all SLOs met" in text and "1 of 3 SLOs missed" in text and "| `energy_uj_per_inference<=0.001` |" in text


def test_model_hash_mismatch_refused_in_qemu(firmware, kws, tmp_path):
    """The firmware runs KWS; scoring it as another model is refused with both hashes, unless allowed."""
    other = tmp_path / "kws_copy.tflite"
    other.write_bytes(kws.read_bytes() + b"\0" * 8)  # same tensors, different file: a different build
    sha_fw = hashlib.sha256(kws.read_bytes()).hexdigest()
    sha_other = hashlib.sha256(other.read_bytes()).hexdigest()
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(0, 20, size=(2, 49, 10, 1)).astype(np.float32), y=np.zeros(2, np.int64))
    args = ["score", "--data", str(tmp_path / "d.npz"), "--model", str(other), "--no-profile"]
    with running(firmware) as qemu:
        refused = CliRunner().invoke(cli, [*args, "--port", qemu.url, "-o", str(tmp_path / "a")])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert sha_fw in refused.output and sha_other in refused.output and "--allow-model-mismatch" in refused.output
    with running(firmware) as qemu:
        allowed = CliRunner().invoke(cli, [*args, "--port", qemu.url, "--allow-model-mismatch",
                                           "-o", str(tmp_path / "b")])
    assert allowed.exit_code == 0, allowed.output
    d = json.loads((tmp_path / "b" / "report.json").read_text())
    assert d["model_mismatch"] is True and d["allow_model_mismatch"] is True
    assert d["firmware_model_sha256"] == sha_fw and d["model_sha256"] == sha_other
    assert "MISMATCH allowed" in (tmp_path / "b" / "report.md").read_text() or "mismatch allowed" in (
        tmp_path / "b" / "report.md").read_text().lower()
