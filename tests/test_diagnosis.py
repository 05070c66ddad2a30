"""Unsupported input gets a one-pass diagnosis, not a crash: `tinyedge generate` and `tinyedge inspect`
exit non-zero with one message naming every problem (op index, name, tensor types), and generate writes
nothing."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from tflite_builder import ModelBuilder, add_subgraph, make_custom, make_dynamic, options
from tinyedge.cli import cli

pytestmark = pytest.mark.unit

BOARD = "qemu-mps2-an386"


def unsupported_model() -> bytes:
    """int8: RELU (fine) -> RSQRT (unsupported builtin) -> custom op -> RELU6 (fine); dynamic batch of
    1x?x4 input; a second subgraph."""
    b = ModelBuilder()
    ti = b.tensor((1, 3, 4), scale=0.05, zero_point=2, name="x")
    t1 = b.tensor((1, 3, 4), scale=0.05, zero_point=-128, name="relu")
    t2 = b.tensor((1, 3, 4), scale=0.02, zero_point=-10, name="rsqrt")
    t3 = b.tensor((1, 3, 4), scale=0.02, zero_point=-10, name="custom")
    t4 = b.tensor((1, 3, 4), scale=0.02, zero_point=-10, name="y")
    b.op("RELU", [ti], [t1])
    b.op("RSQRT", [t1], [t2])
    b.op("RELU", [t2], [t3])  # becomes the custom op
    b.op("RELU6", [t3], [t4])
    model = b.build([ti], [t4])
    return make_dynamic(add_subgraph(make_custom(model, 2, "MyFancyOp")), ti, dim=1)


def float_model() -> bytes:
    """A float32 CONV_2D + FULLY_CONNECTED model, as Keras exports it without quantization."""
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    ti = b.tensor((1, 5, 5, 2), "FLOAT32", name="image")
    tw = b.tensor((3, 3, 3, 2), "FLOAT32", data=rng.normal(size=(3, 3, 3, 2)).astype(np.float32))
    tb = b.tensor((3,), "FLOAT32", data=np.zeros(3, np.float32))
    tc = b.tensor((1, 3, 3, 3), "FLOAT32")
    b.op("CONV_2D", [ti, tw, tb], [tc], options("Conv2DOptions", padding=1, strideW=1, strideH=1), "Conv2DOptions")
    tf = b.tensor((1, 27), "FLOAT32")
    ts = b.tensor((2,), "INT32", data=np.array([1, 27], np.int32))
    b.op("RESHAPE", [tc, ts], [tf], options("ReshapeOptions", newShape=[1, 27]), "ReshapeOptions")
    tw2 = b.tensor((4, 27), "FLOAT32", data=rng.normal(size=(4, 27)).astype(np.float32))
    to = b.tensor((1, 4), "FLOAT32", name="scores")
    b.op("FULLY_CONNECTED", [tf, tw2, -1], [to], options("FullyConnectedOptions"), "FullyConnectedOptions")
    return b.build([ti], [to])


def _run(args) -> tuple[int, str]:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    text = res.output + (res.stderr if res.stderr_bytes is not None and res.stderr not in res.output else "")
    assert "Traceback" not in text and not isinstance(res.exception, (AttributeError, TypeError, KeyError)), text
    return res.exit_code, text


def _the_message(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and len(lines) == 1, f"expected one error line, got: {text!r}"
    return errors[0]


def _diagnose(command: str, model_bytes: bytes, tmp_path) -> str:
    """Run generate or inspect on the model: non-zero exit, one error line (returned), nothing written."""
    model = tmp_path / "model.tflite"
    model.write_bytes(model_bytes)
    out = tmp_path / "project"
    args = (["generate", model, "--board", BOARD, "-o", out] if command == "generate"
            else ["inspect", model, "--no-tflm"])
    code, text = _run(args)
    assert code != 0
    assert not out.exists() and not list(tmp_path.glob(".project*"))
    return _the_message(text)


@pytest.mark.parametrize("command", ["generate", "inspect"])
def test_unsupported_model_diagnosed_in_one_pass(command, tmp_path):
    msg = _diagnose(command, unsupported_model(), tmp_path)
    assert "4 problems" in msg, msg
    assert "op 1 RSQRT (INT8 -> INT8) is not supported" in msg
    assert "op 2 CUSTOM:MyFancyOp is a custom op (INT8 -> INT8)" in msg
    assert "2 subgraphs" in msg
    assert "tensor 0 'x' has a dynamic shape [1, -1, 4]" in msg
    assert "RELU" in msg.split("Try:")[1] and "supported ops" in msg  # what to try: the supported list


@pytest.mark.parametrize("command", ["generate", "inspect"])
def test_float_model_diagnosed(command, tmp_path):
    msg = _diagnose(command, float_model(), tmp_path)
    assert "computes in float" in msg and "tinyedge quantize" in msg
    assert "op 0 CONV_2D: input tensor 0 'image' is FLOAT32, tinyedge kernels take INT8" in msg
    assert "op 2 FULLY_CONNECTED" in msg and "FLOAT32" in msg
