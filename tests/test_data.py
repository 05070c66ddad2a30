"""Data checks (tinyedge.data, issue 11): every malformed .npz is one DataError naming the file, the array, the
first offending index/value and what to try, before anything runs; NaN/inf only on purpose (--allow-nonfinite)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tflite_builder import ACT, ModelBuilder, options
from tinyedge.cli import cli
from tinyedge.data import check_labels, fit_shape, load_npz, quantize_inputs
from tinyedge.errors import DataError
from tinyedge.score.core import read_inputs
from tinyedge.score.figures import ModelIO


def npz(tmp_path: Path, name: str = "d.npz", **arrays) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def good_x(n: int = 4) -> np.ndarray:
    return np.arange(n * 6, dtype=np.float32).reshape(n, 2, 3)


# ------------------------------------------------------------------------------ x: non-finite values
@pytest.mark.unit
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_x_is_one_error_naming_file_array_index_and_value(tmp_path, bad):
    x = good_x()
    x[2, 1, 0] = bad
    x[3, 0, 0] = bad
    path = npz(tmp_path, x=x, y=np.arange(4))
    with pytest.raises(DataError) as exc:
        load_npz(path)
    msg = str(exc.value)
    assert f"'x' in {path}" in msg and "2 non-finite values (NaN or inf) in 2 of 4 samples" in msg
    assert f"the first is x[2, 1, 0] = {bad!r}" in msg
    assert "--allow-nonfinite" in exc.value.hint and "isfinite" in exc.value.hint


@pytest.mark.unit
def test_float64_too_large_for_float32_is_non_finite(tmp_path):
    x = good_x().astype(np.float64)
    x[1, 0, 2] = 1e300
    with pytest.raises(DataError, match=r"the first is x\[1, 0, 2\] = 1e\+300, which is inf as float32"):
        load_npz(npz(tmp_path, x=x, y=np.arange(4)))


@pytest.mark.unit
def test_allow_nonfinite_keeps_them_and_quantizes_them_to_defined_values(tmp_path):
    x = np.array([[np.nan, np.inf, -np.inf, 1.0]], dtype=np.float32)
    got, _ = load_npz(npz(tmp_path, x=x, y=[0]), allow_nonfinite=True)
    assert got.dtype == np.float32 and np.isnan(got[0, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in cast"
        q = quantize_inputs(got, 0.5, -3)
    assert q.tolist() == [[-3, 127, -128, -1]]  # NaN -> zero point, +-inf -> int8 limits


# ------------------------------------------------------------------------------ x: dtype, shape, emptiness
@pytest.mark.parametrize("x, what", [
    (np.array([["a", "b"]] * 3), "text"),
    (np.ones((3, 2), dtype=np.complex64), "complex numbers"),
    (np.ones((3, 2), dtype=bool), "booleans"),
    (np.array([[b"ab"]] * 3), "bytes"),
])
@pytest.mark.unit
def test_non_numeric_x_is_refused(tmp_path, x, what):
    path = npz(tmp_path, x=x, y=np.arange(3))
    with pytest.raises(DataError, match=f"'x' in .*d.npz holds {what} \\(dtype .*\\), not numbers"):
        load_npz(path)


@pytest.mark.unit
def test_complex_x_hint_names_the_real_part(tmp_path):
    with pytest.raises(DataError) as exc:
        load_npz(npz(tmp_path, x=np.ones((3, 2), dtype=np.complex128), y=np.arange(3)))
    assert "x.real" in exc.value.hint


@pytest.mark.unit
@pytest.mark.parametrize("key", ["x", "y"])
def test_object_arrays_are_named_not_a_raw_pickle_error(tmp_path, key):
    arrays = {"x": good_x(3), "y": np.arange(3)}
    arrays[key] = np.array([1, "two", None], dtype=object)
    path = npz(tmp_path, **arrays)
    with pytest.raises(DataError, match=f"'{key}' in .*d.npz is an array of Python objects"):
        load_npz(path)


@pytest.mark.unit
def test_empty_and_scalar_x_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"'x' in .*d.npz has no samples \(shape \(0, 2, 3\)\)"):
        load_npz(npz(tmp_path, x=np.zeros((0, 2, 3), np.float32), y=np.zeros(0, np.int64)))
    with pytest.raises(DataError, match="is a single number"):
        load_npz(npz(tmp_path, "s.npz", x=np.float32(3.0), y=np.arange(1)))
    with pytest.raises(DataError, match="has no samples"):
        fit_shape(np.zeros((0, 6), np.float32), (2, 3), "d.npz")


@pytest.mark.unit
def test_not_an_npz(tmp_path):
    np.save(tmp_path / "a.npy", good_x())
    with pytest.raises(DataError, match=r"holds a single array \(.npy\), not an .npz archive"):
        load_npz(tmp_path / "a.npy")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 30)
    with pytest.raises(DataError, match="cannot read .*broken.npz as .npz"):
        load_npz(broken)
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")
    with pytest.raises(DataError, match="has no array 'y'"):
        load_npz(npz(tmp_path, x=good_x()))
    assert load_npz(npz(tmp_path, "nolabels.npz", x=good_x()), need_labels=False)[1] is None


# ------------------------------------------------------------------------------ y
@pytest.mark.unit
def test_labels_must_be_integers(tmp_path):
    with pytest.raises(DataError, match=r"'y' in .*d.npz must hold integer class labels, but y\[2\] = 0.5"):
        load_npz(npz(tmp_path, x=good_x(), y=np.array([0, 1, 0.5, 2])))
    with pytest.raises(DataError, match=r"y\[1\] = nan"):
        load_npz(npz(tmp_path, x=good_x(), y=np.array([0, np.nan, 1, 2])))
    with pytest.raises(DataError, match="holds whole numbers as float64") as exc:
        load_npz(npz(tmp_path, x=good_x(), y=np.array([0.0, 1.0, 2.0, 3.0])))
    assert "astype('int64')" in exc.value.hint
    with pytest.raises(DataError, match=r"'y' in .*d.npz holds text \(dtype <U3\), not integer labels"):
        load_npz(npz(tmp_path, x=good_x(), y=np.array(["cat", "dog", "cat", "dog"])))
    with pytest.raises(DataError, match=r"has shape \(4, 3\): labels must be a 1-D array") as exc:
        load_npz(npz(tmp_path, x=good_x(), y=np.eye(4, 3, dtype=np.int64)))
    assert "argmax" in exc.value.hint


@pytest.mark.unit
def test_x_and_y_of_different_lengths(tmp_path):
    with pytest.raises(DataError, match="'y' in .*d.npz has 3 labels but 'x' has 4 samples"):
        load_npz(npz(tmp_path, x=good_x(), y=np.arange(3)))


@pytest.mark.unit
def test_labels_outside_the_models_classes():
    y = np.array([0, 3, 11, 12, -1])
    with pytest.raises(DataError) as exc:
        check_labels(y, "kws.npz", num_classes=12)
    assert str(exc.value).startswith("'y' in kws.npz: label y[3] = 12 is outside the model's 12 classes (0..11); "
                                     "2 of 5 labels are")
    assert "belongs to this model" in exc.value.hint
    with pytest.raises(DataError, match=r"y\[0\] = -1"):
        check_labels(np.array([-1, 0]), "kws.npz", num_classes=12)
    check_labels(np.arange(12), "kws.npz", num_classes=12)
    check_labels(None, "kws.npz", num_classes=12)
    check_labels(np.array([5, 900]), "any.npz")  # nothing known about the classes: nothing to check


@pytest.mark.unit
def test_anomaly_detection_labels_are_0_or_1():
    check_labels(np.array([0, 1, 1, 0]), "ad.npz", num_classes=640, anomaly=True)  # not "640 classes"
    with pytest.raises(DataError, match=r"label y\[2\] = 2, but an anomaly-detection model's labels are 0 \(normal\) "
                                        r"or 1 \(anomalous\)"):
        check_labels(np.array([0, 1, 2]), "ad.npz", num_classes=640, anomaly=True)


# ------------------------------------------------------------------------------ the score path
CLASSIFIER = ModelIO(input_shape=(1, 2, 3), input_scale=0.5, input_zero_point=0, input_size=6,
                     output_scale=1 / 256, output_zero_point=-128, output_size=4)
AUTOENCODER = ModelIO(input_shape=(1, 6), input_scale=0.5, input_zero_point=0, input_size=6,
                      output_scale=0.5, output_zero_point=0, output_size=6)


@pytest.mark.unit
def test_score_inputs_check_labels_against_the_model(tmp_path):
    path = npz(tmp_path, x=good_x(), y=np.array([0, 1, 4, 3]))
    with pytest.raises(DataError, match=r"y\[2\] = 4 is outside the model's 4 classes \(0..3\)"):
        read_inputs(path, CLASSIFIER, None)
    with pytest.raises(DataError, match=r"y\[2\] = 4"):  # the whole file is checked, also with --limit
        read_inputs(path, CLASSIFIER, 2)
    ok = npz(tmp_path, "ok.npz", x=good_x(), y=np.array([0, 1, 3, 3]))
    assert read_inputs(ok, CLASSIFIER, 2).y.tolist() == [0, 1]
    ad = npz(tmp_path, "ad.npz", x=good_x(), y=np.array([0, 1, 1, 0]))
    assert read_inputs(ad, AUTOENCODER, None).y.tolist() == [0, 1, 1, 0]
    with pytest.raises(DataError, match="anomaly-detection"):
        read_inputs(npz(tmp_path, "ad2.npz", x=good_x(), y=np.array([0, 1, 3, 0])), AUTOENCODER, None)


@pytest.mark.unit
def test_score_inputs_refuse_nonfinite_unless_allowed(tmp_path):
    x = good_x()
    x[1, 1, 1] = np.nan
    path = npz(tmp_path, x=x, y=np.arange(4))
    with pytest.raises(DataError, match=r"x\[1, 1, 1\] = nan"):
        read_inputs(path, CLASSIFIER, None)
    got = read_inputs(path, CLASSIFIER, None, allow_nonfinite=True)
    assert got.xq[1, 1, 1] == 0 and got.xq.dtype == np.int8


def _tiny_model(path: Path) -> Path:
    b = ModelBuilder()
    ti = b.tensor((1, 6), scale=0.5, zero_point=0)
    tw = b.tensor((4, 6), data=np.ones((4, 6), dtype=np.int8), scale=0.01, zero_point=0)
    tb = b.tensor((4,), "INT32", data=np.zeros(4, dtype=np.int32), scale=0.005, zero_point=0)
    to = b.tensor((1, 4), scale=1 / 256, zero_point=-128)
    b.op("FULLY_CONNECTED", [ti, tw, tb], [to],
         options("FullyConnectedOptions", fusedActivationFunction=ACT["NONE"]), "FullyConnectedOptions")
    path.write_bytes(b.build([ti], [to]))
    return path


@pytest.mark.slow  # waits out the connection attempts to a closed port
def test_cli_score_refuses_nan_before_touching_the_device(tmp_path):
    """The port is a closed TCP port: a data error must come first, and --allow-nonfinite gets past it."""
    model = _tiny_model(tmp_path / "m.tflite")
    x = np.zeros((3, 6), np.float32)
    x[0, 5] = np.inf
    data = npz(tmp_path, x=x, y=np.arange(3))
    args = ["score", "--port", "socket://127.0.0.1:9", "--data", str(data), "--model", str(model),
            "-o", str(tmp_path / "out"), "--no-profile"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    assert "x[0, 5] = inf" in res.output and "--allow-nonfinite" in res.output
    assert not (tmp_path / "out" / "raw.log").exists()  # nothing ran
    res = CliRunner().invoke(cli, [*args, "--allow-nonfinite"])
    assert res.exit_code != 0 and "x[0, 5]" not in res.output and "127.0.0.1:9" in res.output


@pytest.mark.unit
def test_cli_run_refuses_nan_before_generating_or_building(tmp_path):
    model = _tiny_model(tmp_path / "m.tflite")
    x = np.zeros((3, 6), np.float32)
    x[2, 0] = np.nan
    data = npz(tmp_path, x=x, y=np.arange(3))
    res = CliRunner().invoke(cli, ["run", str(model), "--board", "qemu-mps2-an386", "--data", str(data),
                                   "-o", str(tmp_path / "out")])
    if "qemu-system-arm" in res.output and "x[2, 0]" not in res.output:
        pytest.skip("QEMU is not installed: run stops at the runner check first")
    assert res.exit_code == 2 and "x[2, 0] = nan" in res.output, res.output
    assert not (tmp_path / "out" / "project").exists()
