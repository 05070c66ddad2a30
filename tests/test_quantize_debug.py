"""``tinyedge quantize --debug``: per-layer figures checked against an independent computation, a layer with a
deliberately bad scale ranked worst, clean errors."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinyedge.cli import cli
from tinyedge.quantize.debug import sqnr_db

needs_tf = pytest.mark.skipif(not importlib.util.find_spec("tensorflow"), reason="needs tensorflow")


def _one_line_error(result, needle: str) -> None:
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0] and "Try:" in lines[0], lines
    assert "Traceback" not in result.output


@pytest.mark.unit
def test_sqnr_by_hand():
    f = np.array([1.0, 2.0, 3.0, 4.0])
    db, rmse = sqnr_db(f, f + np.array([0.1, -0.1, 0.1, -0.1]))
    assert db == pytest.approx(10 * math.log10(30 / 0.04))
    assert rmse == pytest.approx(0.1)
    assert sqnr_db(f, f) == (None, 0.0)  # exact: SQNR undefined, not infinite (JSON has no inf)
    assert sqnr_db(np.zeros(3), np.ones(3))[0] is None


@pytest.mark.unit
def test_help_and_debug_needs_eval(tmp_path):
    result = CliRunner().invoke(cli, ["quantize", "--help"])
    assert result.exit_code == 0 and "--debug" in result.output and "--debug-samples" in result.output
    out = tmp_path / "m.tflite"
    result = CliRunner().invoke(cli, ["quantize", str(tmp_path / "m.keras"), "--calib", str(tmp_path / "c.npz"),
                                      "-o", str(out), "--debug"])
    _one_line_error(result, "--eval")
    assert not out.exists()


# --- a model whose first layer has a deliberately bad output scale ---------------------------------------------
#
# x (8 features, x[7] always 0 in the evaluation data) -> wide: Dense(8, relu) -> mid: Dense(8, relu) -> Dense(4).
# Unit 0 of "wide" is 100 * x[7]; one calibration sample has x[7] = 1, so the calibrated range of wide's output is
# [0, 100] while on the evaluation data its values stay below ~2.2: about 5 of its 256 steps are used. "mid" ignores
# unit 0 (zero weights), so no other tensor's range is affected.


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    import tensorflow as tf  # noqa: PLC0415  (slow tier only)

    d = tmp_path_factory.mktemp("qdebug")
    keras = tf.keras
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((8,), name="x"), keras.layers.Dense(8, activation="relu", name="wide"),
                              keras.layers.Dense(8, activation="relu", name="mid"), keras.layers.Dense(4, name="out")])
    w1 = rng.normal(0, 0.5, (8, 8)).astype(np.float32)
    w1[7, :], w1[:, 0] = 0, 0
    w1[7, 0] = 100.0
    w2 = rng.normal(0, 0.5, (8, 8)).astype(np.float32)
    w2[0, :] = 0
    w3 = rng.normal(0, 0.5, (8, 4)).astype(np.float32)
    model.set_weights([w1, np.full(8, 0.1, np.float32), w2, np.zeros(8, np.float32), w3, np.zeros(4, np.float32)])
    x = rng.uniform(0, 1, (300, 8)).astype(np.float32)
    x[:, 7] = 0
    y = np.argmax(model.predict(x, verbose=0), axis=1)
    xc = rng.uniform(0, 1, (40, 8)).astype(np.float32)
    xc[:, 7] = 0
    xc[0, 7] = 1.0
    paths = {"model": d / "bad.keras", "calib": d / "calib.npz", "eval": d / "eval.npz", "out": d / "bad.tflite"}
    model.save(paths["model"])
    np.savez(paths["calib"], x=xc)
    np.savez(paths["eval"], x=x, y=y)
    return paths


@pytest.fixture(scope="module")
def debugged(bad) -> tuple[dict, str]:
    """The CLI run once: the debug JSON and what it printed."""
    result = CliRunner().invoke(cli, ["quantize", str(bad["model"]), "--calib", str(bad["calib"]), "--eval",
                                      str(bad["eval"]), "-o", str(bad["out"]), "--debug"])
    assert result.exit_code == 0, result.output
    return json.loads(bad["out"].with_suffix(".debug.json").read_text()), result.stdout


@needs_tf
@pytest.mark.slow
def test_bad_scale_is_ranked_worst(debugged, bad):
    report, printed = debugged
    layers = {ly["layer"]: ly for ly in report["layers"]}
    assert [ly["layer"] for ly in report["layers"]] == ["wide", "mid", "fully_connected"]
    wide = layers["wide"]
    assert report["worst"][0] == wide["index"] == 0
    assert wide["range_max"] == pytest.approx(100, rel=0.02) and wide["float_max"] < 3
    # Its own error is far worse than the others', which read the same coarse tensor but add little themselves.
    assert wide["sqnr_db_own"] < min(layers["mid"]["sqnr_db_own"], layers["fully_connected"]["sqnr_db_own"]) - 5
    # The first layer reads the model input: isolated and accumulated are the same measurement, and own differs
    # only by the rounding of the input (the float reference then reads the rounded input too).
    assert wide["sqnr_db"] == wide["sqnr_db_accumulated"]
    assert wide["sqnr_db_own"] == pytest.approx(wide["sqnr_db"], abs=0.1)
    # Int8 alone (everything else float), the bad layer costs accuracy; the int8 model loses it too.
    assert report["int8_accuracy"] < report["float_accuracy"]
    assert wide["accuracy_only_layer_int8"] < report["float_accuracy"]
    # The table, the advice (the badly scaled tensor is read by "mid": both at 16 bits) and both files.
    assert "worst" in printed and "wide" in printed
    assert "wider than" in report["advice"][0] and "--int16 wide,mid" in report["advice"][0]
    assert "--int16 wide,mid" in printed
    # ... and that recommendation, measured (the mixed int8/int16x8 model, TFLM), recovers most of the loss.
    assert wide["int16_layers"] == ["wide", "mid"] and wide["int16_accuracy"] > report["int8_accuracy"] + 0.03
    page = bad["out"].with_suffix(".debug.html").read_text()
    assert page.count("<img") == 1 + len(report["worst"]) and "Per-layer SQNR" in page


@needs_tf
@pytest.mark.slow
def test_figures_match_an_independent_computation(debugged, bad):
    """Float activations from Keras, int8 activations from tf.lite's interpreter (all tensors kept), SQNR, RMSE
    and the clipped fraction in numpy: a second implementation of every step."""
    import tensorflow as tf  # noqa: PLC0415  (slow tier only)

    report, _ = debugged
    int8 = bad["out"].read_bytes()
    assert hashlib.sha256(int8).hexdigest() == report["int8_sha256"]  # the model quantize wrote
    with np.load(bad["eval"]) as f:
        x = f["x"]
    model = tf.keras.models.load_model(bad["model"], compile=False)
    interp = tf.lite.Interpreter(model_content=int8, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    s_in, z_in = inp["quantization"]
    by_layer: dict[str, list[np.ndarray]] = {"wide": [], "mid": []}
    details = {name: next(t for t in interp.get_tensor_details() if f"/{name}" in t["name"]
                          and list(t["shape"]) == [1, 8])
               for name in by_layer}
    for row in x:
        q = np.clip(np.round(row / s_in) + z_in, -128, 127).astype(np.int8).reshape(inp["shape"])
        interp.set_tensor(inp["index"], q)
        interp.invoke()
        for name, t in details.items():
            s, z = t["quantization"]
            by_layer[name].append((interp.get_tensor(t["index"]).astype(np.float64) - z) * s)
    layers = {ly["layer"]: ly for ly in report["layers"]}
    for name, t in details.items():
        sub = tf.keras.Model(model.inputs, model.get_layer(name).output)
        f = np.asarray(sub(x, training=False), dtype=np.float64)
        q = np.concatenate(by_layer[name])
        noise = np.sum((f - q) ** 2)
        expected = 10 * np.log10(np.sum(f**2) / noise)
        assert layers[name]["sqnr_db_accumulated"] == pytest.approx(expected, abs=0.05), name
        assert layers[name]["rmse_accumulated"] == pytest.approx(np.sqrt(noise / f.size), rel=0.05), name
        s, z = t["quantization"]
        assert layers[name]["scale"] == pytest.approx(s) and layers[name]["zero_point"] == z
        lo, hi = s * (-128 - z), s * (127 - z)
        clipped = np.mean((f < lo - s / 2) | (f > hi + s / 2))
        assert layers[name]["clipped"] == pytest.approx(clipped, abs=0.003), name
    assert layers["mid"]["clipped"] > 0  # 40 calibration samples miss some of mid's range: a real clip to check


@needs_tf
@pytest.mark.slow
def test_library_call_and_bad_eval_shape(bad, tmp_path):
    from tinyedge.quantize.debug import debug_quantization  # noqa: PLC0415  (the library entry point)

    report = debug_quantization(bad["model"], bad["calib"], bad["eval"], max_samples=50, fallback=False,
                                int16=False)
    assert report.samples == 50 and report.worst[0] == 0
    assert all(ly.accuracy_layer_float is None and ly.int16_accuracy is None for ly in report.layers)
    paths = report.write(tmp_path / "d.json", tmp_path / "d.html", plots=False)
    assert json.loads(paths["json"].read_text())["worst"] == report.worst
    assert "<img" not in paths["html"].read_text()

    result = CliRunner().invoke(cli, ["quantize", str(bad["model"]), "--calib", str(bad["calib"]), "--eval",
                                      str(bad["eval"]), "-o", str(tmp_path / "j.tflite"), "--debug",
                                      "--debug-samples", "30", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)  # strict JSON: an exact layer's SQNR is null, never NaN/Infinity
    assert printed["debug"]["samples"] == 30 and printed["debug"]["worst"][0] == 0 and printed["samples"] == 300

    np.savez(tmp_path / "shape.npz", x=np.zeros((5, 7), np.float32), y=np.zeros(5, np.int64))
    out = tmp_path / "o.tflite"
    result = CliRunner().invoke(cli, ["quantize", str(bad["model"]), "--calib", str(bad["calib"]), "--eval",
                                      str(tmp_path / "shape.npz"), "-o", str(out), "--debug"])
    _one_line_error(result, "model input is (8,)")
    assert not out.exists()
