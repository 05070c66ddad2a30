"""The CLI through click's CliRunner: commands, and bad input giving one clear line and a non-zero exit."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from conftest import shared_model
from tflite_builder import ModelBuilder, options
from tinyedge.boards import get_board
from tinyedge.cli import cli


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_clean_error(result, *needles: str) -> None:
    """Non-zero exit, no traceback, one 'error:' line that names the problem."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.output
    for n in needles:
        assert n in result.output, f"{n!r} not in {result.output!r}"


@pytest.mark.unit
def test_help_does_not_import_tensorflow():
    code = ("import sys; from tinyedge.cli import cli; cli(['--help'], standalone_mode=False); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False"), out


@pytest.mark.unit
def test_boards_lists_the_default_board_as_table_and_json():
    r = invoke("boards")
    assert r.exit_code == 0 and "qemu-mps2-an386" in r.output
    data = json.loads(invoke("boards", "--json").output)
    b = next(x for x in data if x["id"] == "qemu-mps2-an386")
    assert b["core"] == "cortex-m4" and b["emulator"]["qemu"]["machine"] == "mps2-an386"
    assert b["power"]["source"]


@pytest.mark.slow
def test_unknown_board_suggests_the_closest(digits_tflite, tmp_path):
    r = invoke("generate", digits_tflite, "--board", "qemu-mps2-an368", "-o", tmp_path / "p")
    assert_clean_error(r, "unknown board 'qemu-mps2-an368'", "did you mean qemu-mps2-an386")
    assert not (tmp_path / "p").exists()


def _float_fc_model() -> bytes:
    b = ModelBuilder()
    x = b.tensor((1, 4), "FLOAT32")
    w = b.tensor((3, 4), "FLOAT32", data=np.ones((3, 4), np.float32))
    y = b.tensor((1, 3), "FLOAT32")
    b.op("FULLY_CONNECTED", [x, w, -1], [y], options("FullyConnectedOptions"), "FullyConnectedOptions")
    return b.build([x], [y])


def _unsupported_op_model() -> bytes:
    b = ModelBuilder()
    x = b.tensor((1, 8), scale=0.1, zero_point=0)
    y = b.tensor((1,), "INT32")
    axis = b.tensor((1,), "INT32", data=np.array([1], np.int32))
    b.op("ARG_MAX", [x, axis], [y], options("ArgMaxOptions", outputType=2), "ArgMaxOptions")
    return b.build([x], [y])


@pytest.mark.unit
def test_float_model_is_told_to_quantize_first(tmp_path):
    m = tmp_path / "float.tflite"
    m.write_bytes(_float_fc_model())
    r = invoke("generate", m, "--board", "qemu-mps2-an386", "-o", tmp_path / "p")
    assert_clean_error(r, "tinyedge quantize", "FLOAT32")
    assert not (tmp_path / "p").exists()


@pytest.mark.unit
def test_unsupported_op_names_index_op_and_supported_list(tmp_path):
    m = tmp_path / "argmax.tflite"
    m.write_bytes(_unsupported_op_model())
    for cmd in (["generate", m, "--board", "qemu-mps2-an386", "-o", tmp_path / "p"], ["inspect", m, "--no-tflm"]):
        r = invoke(*cmd)
        assert_clean_error(r, "op 0 ARG_MAX", "(INT8,INT32 -> INT32)", "supported ops:", "CONV_2D")
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_keras_model_given_to_generate_is_told_to_quantize(digits, tmp_path):
    r = invoke("generate", digits["model"], "--board", "qemu-mps2-an386", "-o", tmp_path / "p")
    assert_clean_error(r, "tinyedge quantize")


@pytest.mark.unit
def test_model_too_large_for_board_names_bytes_needed_and_available(tmp_path, monkeypatch):
    kws = shared_model("kws_ref_model.tflite")
    boards = tmp_path / "myboards"
    boards.mkdir()

    raw = dict(get_board("qemu-mps2-an386").raw)
    raw["id"] = "tiny-ram"
    raw["memory"] = {"flash": {"base": 0, "size": 1 << 20}, "ram": {"base": 0x20000000, "size": 8 * 1024}}
    (boards / "tiny-ram.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("TINYEDGE_BOARDS_DIR", str(boards))
    r = invoke("generate", kws, "--board", "tiny-ram", "-o", tmp_path / "p")
    assert_clean_error(r, "does not fit tiny-ram", "RAM: needs", "tiny-ram has 8192")

    needed = int(re.search(r"RAM: needs (\d+) bytes", r.output).group(1))
    assert needed > 8192 and f"({needed - 8192} over)" in r.output
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_generate_refuses_to_overwrite_a_foreign_folder_and_replaces_its_own(digits_tflite, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    r = invoke("generate", digits_tflite, "--board", "qemu-mps2-an386", "-o", foreign)
    assert_clean_error(r, "refusing to overwrite")
    assert (foreign / "notes.txt").read_text() == "keep me"

    proj = tmp_path / "proj"
    assert invoke("generate", digits_tflite, "--board", "qemu-mps2-an386", "-o", proj).exit_code == 0
    (proj / "src" / "stale.c").write_text("int stale;")
    assert invoke("generate", digits_tflite, "--board", "qemu-mps2-an386", "-o", proj).exit_code == 0
    assert (proj / "src" / "stale.c").read_text() == "int stale;"  # a file the user added is kept (issue 11)
    manifest = json.loads((proj / "tinyedge.json").read_text())
    assert manifest["board"] == "qemu-mps2-an386" and len(manifest["model_sha256"]) == 64


def _int8_fc_model() -> bytes:
    b = ModelBuilder()
    x = b.tensor((1, 8), scale=0.1, zero_point=0)
    w = b.tensor((3, 8), scale=0.02, zero_point=0, data=np.ones((3, 8), np.int8))
    y = b.tensor((1, 3), scale=0.2, zero_point=0)
    b.op("FULLY_CONNECTED", [x, w, -1], [y], options("FullyConnectedOptions"), "FullyConnectedOptions")
    return b.build([x], [y])


@pytest.mark.unit
def test_inspect_a_directory(tmp_path):
    # A plain folder: one clear error, not "does not exist".
    r = invoke("inspect", tmp_path, "--no-tflm")
    assert_clean_error(r, f"{tmp_path} is a directory, not a .tflite file", "Try:")
    assert "does not exist" not in r.output
    # A generated project folder: its model.tflite, under the model's name.
    m = tmp_path / "fc8.tflite"
    m.write_bytes(_int8_fc_model())
    proj = tmp_path / "proj"
    assert invoke("generate", m, "--board", "qemu-mps2-an386", "-o", proj).exit_code == 0
    r = invoke("inspect", proj, "--no-tflm", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["model"] == "fc8"


@pytest.mark.slow
def test_inspect_json_reports_plan_macs_and_fit(digits_tflite):
    r = invoke("inspect", digits_tflite, "--board", "qemu-mps2-an386", "--json")
    assert r.exit_code == 0, r.output
    a = json.loads(r.output)
    kernels = [layer for layer in a["layers"] if layer["kind"] == "kernel"]
    assert [layer["op"] for layer in kernels] == ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "FULLY_CONNECTED", "SOFTMAX"]
    assert a["macs"] == sum(layer["macs"] for layer in a["layers"]) > 0
    assert a["ram_bytes"] <= a["naive_ram_bytes"] and a["tflm_arena_bytes"] > 0
    assert a["fits"][0]["fits"] is True and a["code_measured"] is False


@pytest.mark.slow
def test_score_with_data_missing_labels(digits, digits_tflite, tmp_path):
    with np.load(digits["test"]) as f:
        np.savez(tmp_path / "nolabels.npz", x=f["x"])
    r = invoke("score", "--port", "socket://127.0.0.1:9", "--data", tmp_path / "nolabels.npz", "--model", digits_tflite,
               "-o", tmp_path / "s")
    assert_clean_error(r, "no array 'y'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_score_port_that_refuses(digits, digits_tflite, tmp_path):
    r = invoke("score", "--port", f"socket://127.0.0.1:{_free_port()}", "--data", digits["test"], "--model",
               digits_tflite, "--limit", "3", "-o", tmp_path / "s")
    assert_clean_error(r, "127.0.0.1")


@pytest.mark.slow
def test_score_port_that_does_not_answer(digits, digits_tflite, tmp_path):
    """A port that accepts the connection but never says anything (wrong firmware, hung board)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    conns = []
    threading.Thread(target=lambda: conns.append(srv.accept()), daemon=True).start()
    try:
        r = invoke("score", "--port", f"socket://127.0.0.1:{srv.getsockname()[1]}", "--data", digits["test"],
                   "--model", digits_tflite, "--limit", "3", "-o", tmp_path / "s")
        assert_clean_error(r, "did not", "127.0.0.1")
    finally:
        for c, _ in conns:
            c.close()
        srv.close()
