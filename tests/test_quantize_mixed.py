"""Mixed int8 / int16x8 models (``tinyedge quantize --int16``): the splice, layer names, the example's
recovered accuracy, and clean errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from tinyedge.cli import cli
from tinyedge.errors import ModelError
from tinyedge.quantize.mixed import op_layers, parse_spec, resolve_layers, splice_int16, units

ROOT = Path(__file__).resolve().parents[1]
needs_tf = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("tensorflow", "sklearn")),
                              reason="needs tensorflow and scikit-learn (pip install -e .[dev])")


@pytest.mark.unit
def test_parse_spec() -> None:
    assert parse_spec("conv1, dense") == ("layers", ["conv1", "dense"], None)
    assert parse_spec("auto") == ("auto", [], None)
    assert parse_spec("auto:16k") == ("auto", [], 16384)
    assert parse_spec("auto:2KiB") == ("auto", [], 2048)
    assert parse_spec("auto:300") == ("auto", [], 300)
    for bad in ("auto:lots", " , "):
        with pytest.raises(ModelError) as e:
            parse_spec(bad)
        assert "--int16" in str(e.value)


def _convert_both(tmp: Path) -> tuple[bytes, bytes]:
    """A small random-weight Keras model with every op family, converted int8 and int16x8."""
    import tensorflow as tf  # noqa: PLC0415

    tf.keras.utils.set_random_seed(3)
    inp = tf.keras.Input((8, 8, 3), batch_size=1)
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(x)
    y = tf.keras.layers.Conv2D(8, 1, name="pw")(x)
    x = tf.keras.layers.Add(name="add")([x, y])
    x = tf.keras.layers.AveragePooling2D(2, name="ap")(x)
    x = tf.keras.layers.Flatten(name="flat")(x)
    x = tf.keras.layers.Dense(4, name="fc")(x)
    x = tf.keras.layers.Softmax(name="sm")(x)
    model = tf.keras.Model(inp, x)
    path = tmp / "m.keras"
    model.save(path)
    rng = np.random.default_rng(0)
    np.savez(tmp / "cal.npz", x=rng.normal(size=(16, 8, 8, 3)).astype(np.float32))
    from tinyedge import quantize as q  # noqa: PLC0415 - the private converter, to get both conversions

    tfm = q._import_tf()
    loaded = q._load(tfm, path)
    x_cal = rng.normal(size=(16, 8, 8, 3)).astype(np.float32)
    return q._convert(tfm, loaded, x_cal), q._convert(tfm, loaded, x_cal, int16=True)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    if not importlib.util.find_spec("tensorflow"):
        pytest.skip("needs tensorflow")
    return _convert_both(tmp_path_factory.mktemp("mixed"))


@needs_tf
@pytest.mark.slow
def test_splice_runs_in_tflm_with_int16_tensors(both: tuple[bytes, bytes]) -> None:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema  # noqa: PLC0415

    from tinyedge.oracle import run_tflm  # noqa: PLC0415

    a, b = both
    names = [ly.layer for ly in op_layers(a)]
    assert names == ["c1", "dw", "pw", "add", "ap", "flat", "fc", "softmax"]  # the last output is "Identity"
    assert splice_int16(a, b, []) == a
    x = np.random.default_rng(1).integers(-128, 128, size=(6, 8, 8, 3), dtype=np.int8)
    y8 = run_tflm(a, x).astype(np.int32)
    for chosen in ([0], [1, 2], [3], [6, 7], list(range(8))):
        mixed = splice_int16(a, b, chosen)
        m = schema.ModelT.InitFromPackedBuf(mixed, 0)
        sg = m.subgraphs[0]
        ops = [max(m.operatorCodes[o.opcodeIndex].builtinCode, m.operatorCodes[o.opcodeIndex].deprecatedBuiltinCode)
               for o in sg.operators]
        computing = [o for o, c in zip(sg.operators, ops, strict=True) if c != schema.BuiltinOperator.QUANTIZE]
        assert len(computing) == 8
        for i, op in enumerate(computing):  # chosen ops read and write int16, the others int8
            want = schema.TensorType.INT16 if i in chosen else schema.TensorType.INT8
            assert sg.tensors[op.outputs[0]].type == want, (chosen, i)
        assert sg.tensors[sg.inputs[0]].type == sg.tensors[sg.outputs[0]].type == schema.TensorType.INT8
        y = run_tflm(mixed, x).astype(np.int32)  # TFLM accepts it; 16 bits change the result only a little
        assert y.shape == y8.shape and np.abs(y - y8).max() <= 16, chosen


@needs_tf
@pytest.mark.slow
def test_layer_names_and_units(both: tuple[bytes, bytes]) -> None:
    a, _ = both
    assert resolve_layers(a, ["dw", "#6"]) == [1, 6]
    with pytest.raises(ModelError) as e:
        resolve_layers(a, ["nope"])
    assert "c1" in str(e.value) and "nope" in str(e.value)
    u = units(a)
    assert u["c1"] == [0, 1]  # a layer and the readers of its output: 16 bits only help stored at 16 bits
    assert u["add"] == [3, 4, 5, 6]  # through the pool and the reshape to the dense layer


def _example(tmp: Path) -> dict[str, Path]:
    spec = importlib.util.spec_from_file_location("mixed_example", ROOT / "examples" / "mixed-precision" / "train.py")
    mod: Any = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    paths: dict[str, Path] = mod.train(tmp, epochs=15)
    return paths


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not all(importlib.util.find_spec(m) for m in ("tensorflow", "sklearn")):
        pytest.skip("needs tensorflow and scikit-learn")
    return _example(tmp_path_factory.mktemp("outlier"))


@needs_tf
@pytest.mark.slow
def test_example_int16_layers_recover_the_outlier_loss(example: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mixed.tflite"
    r = CliRunner().invoke(cli, ["quantize", str(example["model"]), "--calib", str(example["calib"]), "--eval",
                                 str(example["test"]), "-o", str(out), "--int16", "conv1,conv2"])
    assert r.exit_code == 0, r.output
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["int16_layers"] == ["conv1", "conv2"] and report["int16_ops"] == [0, 1]
    # The outlier channel costs int8 accuracy; 16-bit activations between conv1 and conv2 give it back.
    assert report["float_accuracy"] - report["int8_accuracy"] > 0.03, report
    assert report["mixed_accuracy"] > report["int8_accuracy"] + 0.03, report
    assert "mixed accuracy" in r.output


@needs_tf
@pytest.mark.slow
def test_int16_errors_are_clean(example: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.tflite"
    base = ["quantize", str(example["model"]), "--calib", str(example["calib"]), "-o", str(out)]
    r = CliRunner().invoke(cli, [*base, "--int16", "auto"])
    assert r.exit_code != 0 and "--eval" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, [*base, "--int16", "nosuchlayer"])
    assert r.exit_code != 0 and "conv1" in r.output and "Traceback" not in r.output
    assert not out.exists()


@needs_tf
@pytest.mark.slow
def test_auto_finds_the_outlier_layer_within_budget(example: dict[str, Path], tmp_path: Path) -> None:
    from tinyedge.quantize import quantize_model  # noqa: PLC0415

    out = tmp_path / "auto.tflite"
    r = CliRunner().invoke(cli, ["quantize", str(example["model"]), "--calib", str(example["calib"]), "--eval",
                                 str(example["test"]), "-o", str(out), "--int16", "auto"])
    assert r.exit_code == 0, r.output
    report = json.loads(out.with_suffix(".json").read_text())
    auto = report["int16_auto"]
    # conv1 writes the outlier tensor and conv2 reads it: the one unit that helps, and it is enough.
    assert report["int16_layers"] == ["conv1"] and report["int16_ops"] == [0, 1], auto["trials"]
    assert auto["reached"] and report["mixed_accuracy"] >= auto["target_accuracy"]
    assert auto["ram_bytes"] > auto["int8_ram_bytes"]  # 16-bit tensors cost RAM, and it is reported
    # A budget smaller than that extra RAM: conv1 is skipped with the reason, the target is not reached.
    extra = auto["ram_bytes"] - auto["int8_ram_bytes"]
    tight = quantize_model(example["model"], example["calib"], tmp_path / "tight.tflite",
                           eval_data=example["test"], int16=f"auto:{extra - 1}")
    assert tight.int16_auto is not None and not tight.int16_auto["reached"]
    conv1 = next(t for t in tight.int16_auto["trials"] if t["layer"] == "conv1")
    assert "over the RAM budget" in conv1["skipped"]


@needs_tf
@pytest.mark.slow
def test_inspect_compares_mixed_with_int8_per_layer(both: tuple[bytes, bytes], tmp_path: Path) -> None:
    """`inspect --compare --measure`: RAM, flash and QEMU-measured instructions of each layer, mixed vs int8."""
    a, b = both
    (tmp_path / "int8.tflite").write_bytes(a)
    (tmp_path / "mixed.tflite").write_bytes(splice_int16(a, b, [0, 1]))  # c1 and dw at 16 bits
    r = CliRunner().invoke(cli, ["inspect", str(tmp_path / "mixed.tflite"), "--compare", str(tmp_path / "int8.tflite"),
                                 "--board", "qemu-mps2-an386", "--no-tflm", "--measure", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    ops = [(p["op"], p["a"] is not None, p["b"] is not None) for p in d["layers"]]
    # the mixed model's two QUANTIZE stand alone; every other layer is paired with its int8 twin
    assert [o for o in ops if not (o[1] and o[2])] == [("QUANTIZE", True, False), ("QUANTIZE", True, False)]
    assert len(ops) == 10
    kernels = {p["a"]["index"]: p["a"]["kernel"] for p in d["layers"] if p["a"] and p["a"]["kind"] == "kernel"}
    assert "s16" in kernels[1] and "s16" in kernels[2] and "s16" not in kernels[4], kernels
    for p in d["layers"]:
        for side in ("a", "b"):
            if p[side] is not None and p[side]["kind"] == "kernel":
                assert p[f"{side}_instructions"] and p[f"{side}_instructions"] > 0, p
    assert d["a"]["instructions"] == sum(p["a_instructions"] or 0 for p in d["layers"])
    assert d["a"]["ram_bytes"] > d["b"]["ram_bytes"]  # 16-bit activations take more RAM


@needs_tf
@pytest.mark.slow
def test_matrix_compares_mixed_with_int8(both: tuple[bytes, bytes], tmp_path: Path) -> None:
    a, b = both
    (tmp_path / "int8.tflite").write_bytes(a)
    (tmp_path / "mixed.tflite").write_bytes(splice_int16(a, b, [0, 1]))
    r = CliRunner().invoke(cli, ["matrix", str(tmp_path / "mixed.tflite"), "--compare", str(tmp_path / "int8.tflite"),
                                 "--boards", "qemu-mps2-an386,qemu-mps2-an385", "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    rows = [line for line in r.output.splitlines() if line.startswith("| qemu-")]
    assert [row.split(" | ")[0] for row in rows] == ["| qemu-mps2-an386", "| qemu-mps2-an385"]
    d = json.loads((tmp_path / "out" / "compare.json").read_text())
    for ra, rb in zip(d["a"]["boards"], d["b"]["boards"], strict=True):
        assert ra["ram_needed"] > rb["ram_needed"]  # the 16-bit tensors
        assert f"{ra['ram_needed']:,} / {rb['ram_needed']:,}" in r.output
