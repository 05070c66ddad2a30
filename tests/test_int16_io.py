"""int16 model I/O end to end (int16x8 models converted with inference_input_type/inference_output_type int16):
the generated header's TE_INPUT/OUTPUT_IS_INT16, main.c's int16 output path (te-results "out16=[...]", te-info
dtypes, m-results dequantized, the self-test), the host side (te-results parsing, score's int16 inputs, parity
and accuracy) and the firmware in QEMU against the tflite_micro interpreter. Models are written with
``tflite_builder`` (no TensorFlow)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from difftest import qemu_outputs
from helpers import build_model_dut, fc_model, host_dut
from tflite_builder import PADDING, ModelBuilder, options
from tinyedge.boards import get_board
from tinyedge.cli import cli
from tinyedge.codegen.cmodel import render_model
from tinyedge.data import quantize_inputs
from tinyedge.firmware.generate import project_sources
from tinyedge.link import DutClient
from tinyedge.link import protocol as P
from tinyedge.model import read_model_bytes
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm
from tinyedge.score.core import input_bytes, read_inputs
from tinyedge.score.figures import graph_io

SI = 4e-4  # input scale: int16, zero point 0 (int16x8)


def conv_fc_s16() -> bytes:
    """int16 input (1,6,6,3) -> CONV_2D 3x3 SAME (4 channels, per-channel weights) -> RESHAPE -> FULLY_CONNECTED
    (10 classes) -> int16 output; scales put the typical values at a few thousand int16 steps (not clamped)."""
    rng = np.random.default_rng(16)
    b = ModelBuilder()
    wc = rng.uniform(0.004, 0.01, size=4)
    sc = SI * float(wc.mean()) * np.sqrt(27) * 18900 * 73 / 4000
    x = b.tensor((1, 6, 6, 3), "INT16", scale=SI, zero_point=0)
    f = b.tensor((4, 3, 3, 3), "INT8", scale=wc, zero_point=0, qdim=0, data=rng.integers(-127, 128, size=(4, 3, 3, 3)))
    cb = b.tensor((4,), "INT64", scale=SI * wc, zero_point=0, data=rng.integers(-2**20, 2**20, size=4))
    c = b.tensor((1, 6, 6, 4), "INT16", scale=sc, zero_point=0)
    b.op("CONV_2D", [x, f, cb], [c], options("Conv2DOptions", padding=PADDING["SAME"], strideH=1, strideW=1,
                                             dilationHFactor=1, dilationWFactor=1), "Conv2DOptions")
    shape = b.tensor((2,), "INT32", data=np.array([1, 144]))
    flat = b.tensor((1, 144), "INT16", scale=sc, zero_point=0)
    b.op("RESHAPE", [c, shape], [flat], options("ReshapeOptions", newShape=[1, 144]), "ReshapeOptions")
    wf = 0.006
    w = b.tensor((10, 144), "INT8", scale=wf, zero_point=0, data=rng.integers(-127, 128, size=(10, 144)))
    fb = b.tensor((10,), "INT64", scale=sc * wf, zero_point=0, data=rng.integers(-2**22, 2**22, size=10))
    y = b.tensor((1, 10), "INT16", scale=sc * wf * 12 * 3000 * 73 / 4000, zero_point=0)
    b.op("FULLY_CONNECTED", [flat, w, fb], [y], options("FullyConnectedOptions"), "FullyConnectedOptions")
    return b.build([x], [y])


def int16_rows(n: int, seed: int) -> np.ndarray:
    """n inputs for conv_fc_s16 spanning the int16 range (the first one hits both limits)."""
    x = np.random.default_rng(seed).integers(-32768, 32768, size=(n, 1, 6, 6, 3)).astype(np.int16)
    x[0, 0, 0, 0] = (-32768, 32767, 0)
    return x


# ---------------------------------------------------------------- generation and the host side (fast)

@pytest.mark.unit
def test_generate_takes_int16_model_io_and_the_header_says_so():
    model = conv_fc_s16()
    files, _, _, _ = project_sources(read_model_bytes(model, name="io16"), get_board("qemu-mps2-an386"))
    header = str(files["src/te_model.h"])
    for macro in ("INPUT_IS_INT16 1", "OUTPUT_IS_INT16 1", 'INPUT_DTYPE "int16"', 'OUTPUT_DTYPE "int16"',
                  "INPUT_BYTES 216", "OUTPUT_COUNT 10", "OUTPUT_BYTES 20", "HAS_SELFTEST 1"):
        assert f"#define TE_{macro}\n" in header, macro
    source = str(files["src/te_model.c"])  # the library API's (de)quantization works on int16 values
    assert "int16_t *in = (int16_t *)(void *)te_model_input();" in source
    assert "const int16_t *out = (const int16_t *)(const void *)te_model_output();" in source
    assert "in[i] = (int16_t)(q < -32768 ? -32768 : q > 32767 ? 32767 : q);" in source
    # an int8 model: no int16 path, the same (de)quantization as before
    int8 = render_model(build_program(read_model_bytes(fc_model(seed=0)[0], name="fc8"))).files
    assert "#define TE_INPUT_IS_INT16 0\n" in int8["src/te_model.h"] and "int16_t" not in int8["src/te_model.c"]


@pytest.mark.unit
def test_te_results_out16_is_parsed_as_int16():
    r = P.parse_te_results("te-results-ticks=7,out16=[-32768,0,32767],in_crc=0A1F")
    assert r == {"ticks": 7, "out": [-32768, 0, 32767], "in_crc": 0x0A1F, "bits": 16}
    assert "bits" not in P.parse_te_results("te-results-ticks=7,out=[-128,127]")
    for bad in ("te-results-ticks=1,out16=[32768]", "te-results-ticks=1,out=[300]", "te-results-ticks=1,out8=[1]"):
        with pytest.raises(P.ProtocolError):
            P.parse_te_results(bad)


@pytest.mark.unit
def test_score_quantizes_and_sends_int16_inputs(tmp_path):
    g = read_model_bytes(conv_fc_s16(), name="io16")
    io = graph_io(g)
    assert (io.input_dtype, io.output_dtype, io.input_size, io.input_bytes) == ("INT16", "INT16", 108, 216)
    x = np.array([[0.0, SI * 1.5, -SI * 2.5, 1e9, -1e9] + [0.0] * 103], np.float32).reshape(1, 6, 6, 3)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(1, np.int64))
    xq = read_inputs(tmp_path / "d.npz", io, None).xq
    assert xq.dtype == np.int16 and xq.reshape(-1)[:5].tolist() == [0, 2, -3, 32767, -32768]
    assert input_bytes(xq[0])[:10] == bytes([0, 0, 2, 0, 0xFD, 0xFF, 0xFF, 0x7F, 0x00, 0x80])


# ---------------------------------------------------------------- real main.c on the host, score through the CLI

@pytest.mark.slow
def test_score_cli_on_int16_io_firmware_has_parity_1_and_accuracy(tmp_path):
    """main.c with the generated int16 I/O model (host build, socket): `tinyedge score` sends int16 inputs,
    reads out16 results, parity 1.0 against tflite_micro and the accuracy of the int16 outputs' arg-max."""
    model = conv_fc_s16()
    (tmp_path / "m.tflite").write_bytes(model)
    exe = build_model_dut(tmp_path, model, what="host build, int16 I/O model")
    rng = np.random.default_rng(3)
    x = (rng.normal(0, 8000, size=(8, 6, 6, 3)) * SI).astype(np.float32)
    ref = run_tflm(model, quantize_inputs(x, SI, 0, np.int16)).reshape(8, -1)
    y = np.where(np.arange(8) < 6, ref.argmax(axis=1), (ref.argmax(axis=1) + 1) % 10)  # 6 of 8 right
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with host_dut(exe) as url:
        r = CliRunner().invoke(cli, ["score", "--port", url, "--data", str(tmp_path / "d.npz"), "--model",
                                     str(tmp_path / "m.tflite"), "--slo", "parity==1", "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["parity"] == 1.0 and report["accuracy"] == 0.75, (report["parity"], report["accuracy"])
    rows = [json.loads(ln) for ln in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert [row["out"] for row in rows] == ref.tolist()


# ---------------------------------------------------------------- on the emulated board

@pytest.mark.slow
def test_int16_io_model_in_qemu_gives_tflm_outputs(tmp_path, pio_core):
    """CONV_2D + FULLY_CONNECTED with int16 input and output on qemu-mps2-an386: te-results equal TFLM's
    int16 outputs exactly; te-info names the types and the boot self-test passed; MLPerf's m-results are the
    dequantized int16 outputs; te-stream's top score is the int16 maximum."""
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed")
    model = conv_fc_s16()
    graph = read_model_bytes(model, name="io16")
    x = int16_rows(5, 7)
    expected = run_tflm(model, x.reshape(5, 1, 6, 6, 3)).reshape(5, -1)
    assert expected.dtype == np.int16 and np.abs(expected).max() > 1000  # busy data, not just the clamps
    assert np.isin(expected, (-32768, 32767)).mean() < 0.5
    seen: dict[str, object] = {}

    def more(client: DutClient) -> None:
        seen["info"] = client.info()
        seen["results"] = client.infer(1, 0).results  # on the last row
        seen["stream"] = client.stream(1)[0]

    got, _ = qemu_outputs(graph, "qemu-mps2-an386", x, tmp_path / "proj", pio_core, timeout=60, then=more)
    assert got.dtype == np.int16 and np.array_equal(got, expected), f"QEMU {got.tolist()} vs TFLM {expected.tolist()}"
    info = seen["info"]
    assert isinstance(info, dict)
    assert (info["input_dtype"], info["output_dtype"], info["selftest"]) == ("int16", "int16", "ok"), info
    assert info["input_bytes"] == 216 and info["output_count"] == 10
    scale = graph.output.q()[0]
    assert np.allclose(seen["results"], expected[-1].astype(np.float64) * scale, atol=0.0006)
    stream = seen["stream"]
    assert isinstance(stream, dict)
    assert (stream["top"], stream["score"]) == (int(expected[-1].argmax()), int(expected[-1].max()))
