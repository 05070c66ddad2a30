"""``tinyedge quantize`` on the digits example: int8 in/out, supported ops, accuracy, clean errors."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from tinyedge.cli import cli
from tinyedge.data import quantize_inputs
from tinyedge.oracle import run_tflm

# Checked without importing them: collecting this module must not load TensorFlow (the unit tier runs without it).
pytestmark = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("tensorflow", "sklearn")),
                                reason="needs tensorflow and scikit-learn (pip install -e .[dev])")

ROOT = Path(__file__).resolve().parents[1]
SUPPORTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE", "SOFTMAX"}


@pytest.fixture(scope="module")
def quantized(digits, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("quantize") / "digits.tflite"
    result = CliRunner().invoke(
        cli,
        ["quantize", str(digits["model"]), "--calib", str(digits["calib"]), "--eval", str(digits["test"]),
         "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def _read(path: Path):
    return schema, schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)


@pytest.mark.unit
def test_cli_import_does_not_import_tensorflow():
    code = (
        "import sys, tinyedge.cli, tinyedge.commands.quantize, tinyedge.quantize; "
        "from tinyedge.cli import cli; cli.get_command(None, 'quantize'); "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.slow
def test_example_splits(digits):
    for name, low in (("train", 900), ("calib", 150), ("test", 300)):
        with np.load(digits[name]) as f:
            x, y = f["x"], f["y"]
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape[1:] == (8, 8, 1) and len(x) == len(y) >= low
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))


@pytest.mark.slow
def test_int8_in_out_and_supported_ops(quantized):
    out, _ = quantized
    schema, model = _read(out)
    sg = model.subgraphs[0]
    assert len(sg.inputs) == 1 and len(sg.outputs) == 1
    assert sg.tensors[sg.inputs[0]].type == schema.TensorType.INT8
    assert sg.tensors[sg.outputs[0]].type == schema.TensorType.INT8
    assert list(sg.tensors[sg.inputs[0]].shape) == [1, 8, 8, 1]  # fixed batch of 1
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = [names[max(c.builtinCode, c.deprecatedBuiltinCode)]
           for c in (model.operatorCodes[op.opcodeIndex] for op in sg.operators)]
    assert set(ops) <= SUPPORTED, ops
    assert ops.count("CONV_2D") == 2 and ops[-1] == "SOFTMAX"


@pytest.mark.slow
def test_accuracy_and_report(quantized, digits):
    out, output = quantized
    report = json.loads(out.with_suffix(".json").read_text())
    with np.load(digits["test"]) as f:
        n_test = len(f["y"])
    assert report["samples"] == n_test >= 300
    assert report["float_accuracy"] >= 0.95
    assert report["int8_accuracy"] >= report["float_accuracy"] - 0.01

    data = out.read_bytes()
    assert report["sha256"] == hashlib.sha256(data).hexdigest()
    assert report["size_bytes"] == len(data)
    assert report["input_zero_point"] == -128 and abs(report["input_scale"] - 1 / 255) < 1e-6
    assert report["output_scale"] == pytest.approx(1 / 256) and report["output_zero_point"] == -128
    assert "float" in output and "int8" in output and f"{report['int8_accuracy']:.4f}" in output


@pytest.mark.slow
def test_int8_accuracy_matches_tflm(quantized, digits):
    """The report's int8 accuracy is TFLM's, recomputed independently here."""
    out, _ = quantized
    report = json.loads(out.with_suffix(".json").read_text())
    with np.load(digits["test"]) as f:
        x, y = f["x"], f["y"]
    q = quantize_inputs(x, report["input_scale"], report["input_zero_point"])
    acc = float(np.mean(np.argmax(run_tflm(out.read_bytes(), q), axis=1) == y))
    assert acc == pytest.approx(report["int8_accuracy"])


@pytest.fixture()
def bad_files(tmp_path, digits) -> dict[str, Path]:
    with np.load(digits["calib"]) as f:
        x = f["x"]
    np.savez(tmp_path / "no_y.npz", x=x)
    np.savez(tmp_path / "shape.npz", x=np.zeros((20, 7, 7), np.float32), y=np.zeros(20, np.int64))
    (tmp_path / "junk.keras").write_text("not a model")
    return {"no_y": tmp_path / "no_y.npz", "shape": tmp_path / "shape.npz", "junk": tmp_path / "junk.keras"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing model", "does not exist"),
        ("eval without y", "no array 'y'"),
        ("calib shape mismatch", "model input is (8, 8, 1)"),
        ("not a model", "not a Keras model"),
    ],
)
def test_bad_inputs_fail_cleanly_and_keep_out(case, needle, digits, bad_files, tmp_path):
    out = tmp_path / "out" / "model.tflite"
    out.parent.mkdir()
    out.write_bytes(b"previous model")
    model, calib, extra = str(digits["model"]), str(digits["calib"]), []
    if case == "missing model":
        model = str(tmp_path / "nope.keras")
    elif case == "eval without y":
        extra = ["--eval", str(bad_files["no_y"])]
    elif case == "calib shape mismatch":
        calib = str(bad_files["shape"])
    elif case == "not a model":
        model = str(bad_files["junk"])
    result = CliRunner().invoke(cli, ["quantize", model, "--calib", calib, *extra, "-o", str(out)])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0] and "Try:" in lines[0], lines
    assert "Traceback" not in result.output
    assert out.read_bytes() == b"previous model"
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.tflite"]  # no temp file left behind


@pytest.mark.slow
def test_float_ops_are_rejected(tmp_path, digits):
    """Ops without int8 kernels are kept in float by the converter; quantize refuses that."""
    import tensorflow as tf  # noqa: PLC0415  (TensorFlow: only the slow tier loads it)

    class Sine(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)])
        def __call__(self, x):
            return {"out": tf.reshape(tf.math.sin(x), [-1, 64])}

    module = Sine()
    tf.saved_model.save(module, str(tmp_path / "sine"), signatures=module.__call__)
    out = tmp_path / "sine.tflite"
    result = CliRunner().invoke(cli, ["quantize", str(tmp_path / "sine"), "--calib", str(digits["calib"]),
                                      "-o", str(out)])
    assert result.exit_code != 0 and "not full-integer" in result.stderr and "SIN" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_saved_model_directory(tmp_path, digits):
    """A SavedModel export of the same network converts to the same ops and accuracy."""
    import tensorflow as tf  # noqa: PLC0415  (TensorFlow: only the slow tier loads it)

    tf.keras.models.load_model(digits["model"], compile=False).export(str(tmp_path / "sm"), verbose=False)
    out = tmp_path / "sm.tflite"
    result = CliRunner().invoke(
        cli, ["quantize", str(tmp_path / "sm"), "--calib", str(digits["calib"]), "--eval", str(digits["test"]),
              "-o", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["ops"]) <= SUPPORTED
    assert report["int8_accuracy"] >= report["float_accuracy"] - 0.01


@pytest.mark.slow
def test_tensorflow_missing_is_a_clear_error(monkeypatch, digits, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` raise ImportError
    result = CliRunner().invoke(
        cli, ["quantize", str(digits["model"]), "--calib", str(digits["calib"]), "-o", str(tmp_path / "m.tflite")]
    )
    assert result.exit_code != 0
    assert "TensorFlow is not installed" in result.stderr and "pip install 'tinyedge[tf]'" in result.stderr


@pytest.mark.unit
def test_help_lists_options():
    result = CliRunner().invoke(cli, ["quantize", "--help"])
    assert result.exit_code == 0
    for opt in ("--calib", "--eval", "--out", "--max-calib"):
        assert opt in result.output
