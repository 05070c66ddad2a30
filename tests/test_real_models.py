"""The MLPerf Tiny reference models (KWS DS-CNN, AD autoencoder): outputs identical to the tflite_micro
interpreter on 100 random inputs, host-compiled and in QEMU (qemu-mps2-an386); ``inspect``'s MAC count
checked against a count made here straight from the flatbuffer."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

from conftest import shared_model
from difftest import qemu_outputs
from tinyedge.cli import cli
from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.host import build_host, run_host
from tinyedge.model import load_model
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm

BOARD = "qemu-mps2-an386"
MODELS = ["kws_ref_model.tflite", "ad01_int8.tflite"]
N = 100


def _inputs(graph, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=(N,) + tuple(graph.input.shape), dtype=np.int8)


@pytest.mark.slow  # the first host build compiles the kernels (~8 s): see test_kernels_diff
@pytest.mark.parametrize("name", MODELS)
def test_host_parity_100_inputs(name, tmp_path):
    graph = load_model(shared_model(name))
    x = _inputs(graph, 11)
    exe = build_host(render_model(build_program(graph)).files, tmp_path)
    got = run_host(exe, x.reshape(N, -1), graph.output.size)
    expected = run_tflm(graph.model_bytes, x).reshape(N, -1)
    bad = np.argwhere(got != expected)
    assert not len(bad), (f"{name}: {len(bad)} of {got.size} outputs differ from TFLM; first at sample {bad[0][0]} "
                          f"element {bad[0][1]}: {got[tuple(bad[0])]} vs {expected[tuple(bad[0])]}")


needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm", "pio")),
    reason="needs arm-none-eabi-gcc, qemu-system-arm and platformio",
)


@pytest.mark.slow
@needs_tools
@pytest.mark.parametrize("name", MODELS)
def test_qemu_parity_100_inputs(name, tmp_path, pio_core):
    """Generated, built with PlatformIO for qemu-mps2-an386 and run in QEMU through the serial protocol
    (te-load / infer / te-results): every output equal to TFLM's."""
    graph = load_model(shared_model(name))
    x = _inputs(graph, 23 + MODELS.index(name))
    got, _ = qemu_outputs(graph, BOARD, x, tmp_path / graph.name, pio_core, timeout=60)
    expected = run_tflm(graph.model_bytes, x).reshape(N, -1)
    bad = np.argwhere(got != expected)
    assert not len(bad), (f"{name} in QEMU: {len(bad)} of {got.size} outputs differ from TFLM; first at sample "
                          f"{bad[0][0]} element {bad[0][1]}")


def count_macs(path) -> int:
    """Multiply-accumulates of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, read from the flatbuffer with
    the schema module alone (independent of tinyedge's reader and lowering)."""
    m = S.ModelT.InitFromObj(S.Model.GetRootAs(path.read_bytes(), 0))
    sg = m.subgraphs[0]
    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    total = 0
    for op in sg.operators:
        oc = m.operatorCodes[op.opcodeIndex]
        kind = names[max(oc.builtinCode, oc.deprecatedBuiltinCode)]
        w = [int(d) for d in sg.tensors[op.inputs[1]].shape] if len(op.inputs) > 1 else []
        out = [int(d) for d in sg.tensors[op.outputs[0]].shape]
        if kind == "CONV_2D":  # filter [out_c, kh, kw, in_c]
            total += int(np.prod(out)) * w[1] * w[2] * w[3]
        elif kind == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, out_c]: one MAC per tap per output
            total += int(np.prod(out)) * w[1] * w[2]
        elif kind == "FULLY_CONNECTED":  # weights [units, depth]
            total += int(np.prod(out)) * w[1]
    return total


@pytest.mark.unit
@pytest.mark.parametrize("name,approx", [("kws_ref_model.tflite", 2.66e6), ("ad01_int8.tflite", 0.26e6)])
def test_inspect_counts_macs(name, approx):
    path = shared_model(name)
    expected = count_macs(path)
    assert abs(expected - approx) / approx < 0.02  # the hand counts quoted in the issue
    res = CliRunner().invoke(cli, ["inspect", str(path), "--json", "--no-tflm"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["macs"] == expected
    assert sum(layer["macs"] for layer in data["layers"]) == expected
