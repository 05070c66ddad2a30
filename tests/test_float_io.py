"""float32 model output end to end (the converter's default without inference_output_type: a DEQUANTIZE last):
the generated header's TE_OUTPUT_IS_FLOAT, main.c's float output path (te-results "outf=[<IEEE bits>]", te-info
dtypes, m-results the floats, te-stream's "f<bits>" top score), the host side (parsing, score's float inputs,
bit-exact parity and accuracy, the monitor's confidence) and the firmware in QEMU against the tflite_micro
interpreter. Models are written with ``tflite_builder`` (no TensorFlow)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from difftest import qemu_outputs
from helpers import build_model_dut, host_dut
from tflite_builder import ModelBuilder, options
from tinyedge.boards import get_board
from tinyedge.cli import cli
from tinyedge.firmware.generate import project_sources
from tinyedge.link import DutClient
from tinyedge.link import protocol as P
from tinyedge.link.dut import _te_results
from tinyedge.model import read_model_bytes
from tinyedge.monitor.state import MonitorState
from tinyedge.oracle import run_tflm
from tinyedge.paths import runtime_dir
from tinyedge.score.core import input_bytes, read_inputs, same_outputs
from tinyedge.score.figures import Record, Timing, graph_io

N_IN, N_OUT = 20, 7
SI, ZI = 0.05, -3       # the int8 side of the QUANTIZE
SO, ZO = 0.1371, 5      # the int8 side of the DEQUANTIZE: outputs are (q - 5) * 0.1371 in float32


def float_fc() -> bytes:
    """float32 (1,20) -> QUANTIZE to int8 -> FULLY_CONNECTED (7 units, int32 bias) -> DEQUANTIZE -> float32 (1,7)."""
    rng = np.random.default_rng(32)
    b = ModelBuilder()
    xf = b.tensor((1, N_IN), "FLOAT32")
    x = b.tensor((1, N_IN), scale=SI, zero_point=ZI)
    b.op("QUANTIZE", [xf], [x])
    wf = 0.011
    w = b.tensor((N_OUT, N_IN), data=rng.integers(-127, 128, size=(N_OUT, N_IN), dtype=np.int8), scale=wf,
                 zero_point=0)
    bias = b.tensor((N_OUT,), "INT32", data=rng.integers(-3000, 3000, size=N_OUT).astype(np.int32),
                    scale=SI * wf, zero_point=0)
    y = b.tensor((1, N_OUT), scale=SO, zero_point=ZO)
    b.op("FULLY_CONNECTED", [x, w, bias], [y], options("FullyConnectedOptions"), "FullyConnectedOptions")
    yf = b.tensor((1, N_OUT), "FLOAT32")
    b.op("DEQUANTIZE", [y], [yf])
    return b.build([xf], [yf])


def float_rows(n: int, seed: int) -> np.ndarray:
    """n float32 inputs; the first saturates the QUANTIZE both ways."""
    x = np.random.default_rng(seed).normal(0.0, 2.5, size=(n, N_IN)).astype(np.float32)
    x[0, :2] = (1e6, -1e6)
    return x


def bits(words: list[int]) -> np.ndarray:
    return np.asarray(words, dtype=np.uint32).view(np.float32)


# ---------------------------------------------------------------- generation and the host side (fast)

@pytest.mark.unit
def test_header_says_float_output_and_main_c_compiles_the_float_path_only_then():
    files, _, _, _ = project_sources(read_model_bytes(float_fc(), name="iof"), get_board("qemu-mps2-an386"))
    header = str(files["src/te_model.h"])
    for macro in ("INPUT_IS_FLOAT 1", "OUTPUT_IS_FLOAT 1", "OUTPUT_IS_INT16 0", 'INPUT_DTYPE "float32"',
                  'OUTPUT_DTYPE "float32"', "INPUT_BYTES 80", "OUTPUT_COUNT 7", "OUTPUT_BYTES 28"):
        assert f"#define TE_{macro}\n" in header, macro
    main = (runtime_dir() / "main.c").read_text()
    # every float output path sits behind TE_OUTPUT_IS_FLOAT, so int8 firmware is unchanged
    assert "#if TE_OUTPUT_IS_FLOAT\ntypedef float te_out_t;" in main
    assert main.count('out_s(",outf=[");') == 1 and "#if TE_OUTPUT_IS_FLOAT\n    out_s(\",outf=[\");" in main


@pytest.mark.unit
def test_te_results_outf_is_parsed_bit_for_bit():
    words = [0x3F800000, 0x80000000, 0xC0490FDB, 0x7F800000, 0x7FA00001, 0x00000001]
    text = "te-results-ticks=9,outf=[" + ",".join(f"{w:08X}" for w in words) + "],in_crc=0A1F"
    r = P.parse_te_results(text)
    assert (r["ticks"], r["in_crc"], r["bits"], r["out_bits"]) == (9, 0x0A1F, 32, words)
    assert r["out"][:4] == [1.0, -0.0, float(np.float32(-3.1415927)), float("inf")]
    out = _te_results(r).out  # DutClient's TeResults: the device's float32s, even a signalling NaN's payload
    assert out.dtype == np.float32 and out.view(np.uint32).tolist() == words
    assert P.parse_te_results("te-results-ticks=1,outf=[],in_crc=0000")["out"] == []
    for bad in ("te-results-ticks=1,outf=[3f800000],in_crc=0000", "te-results-ticks=1,outf=[3F80000],in_crc=0000",
                "te-results-ticks=1,outf=[1.0],in_crc=0000", "te-results-ticks=1,outf=[3F800000]",
                "te-results-ticks=1,out=[3F800000],in_crc=0000"):
        with pytest.raises(P.ProtocolError):
            P.parse_te_results(bad)


@pytest.mark.unit
def test_te_stream_float_score_and_monitor_confidence():
    s = P.parse_te_stream("te-s-3,1200,4,f3F400000")
    assert s == {"seq": 3, "ticks": 1200, "top": 4, "score": 0.75} and isinstance(s["score"], float)
    assert P.parse_te_stream("te-s-0,5,1,-7")["score"] == -7
    with pytest.raises(P.ProtocolError):
        P.parse_te_stream("te-s-0,5,1,f3F4")
    state = MonitorState(url="x")  # int8 softmax defaults: a float score is the confidence as it is
    assert state.confidence(0.75) == 0.75 and state.confidence(64) == 0.75
    assert state.make_record(s, index=0, t_s=0.0)["confidence"] == 0.75


@pytest.mark.unit
def test_score_sends_float_inputs_and_compares_float_outputs_bitwise(tmp_path):
    io = graph_io(read_model_bytes(float_fc(), name="iof"))
    assert (io.input_dtype, io.output_dtype, io.input_bytes, io.output_type) == ("FLOAT32", "FLOAT32", 80, np.float32)
    assert (io.output_scale, io.output_zero_point) == (1.0, 0)  # the values as they are
    x = float_rows(2, 1).reshape(2, 1, N_IN)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(2, np.int64))
    xq = read_inputs(tmp_path / "d.npz", io, None).xq
    assert xq.dtype == np.float32 and np.array_equal(xq.reshape(2, -1), x.reshape(2, -1))
    assert input_bytes(xq[0]) == x[0].astype("<f4").tobytes()
    a = bits([0x3F800000, 0x7FC00000])
    assert same_outputs(a, a.copy()) and not same_outputs(bits([0, 0x7FC00000]), bits([0x80000000, 0x7FC00000]))
    assert not same_outputs(a, np.array([1, 0], np.int8))
    rec = Record(index=0, ticks=5, out=(float(np.float32(0.1484)), -1.0), parity=True)
    row = json.loads(json.dumps(rec.row(Timing(0, 0, False), "classification")))
    back = Record.from_row(row)
    assert back.out == rec.out and all(isinstance(v, float) for v in back.out) and back.pred == 0


# ---------------------------------------------------------------- real main.c on the host, score through the CLI

@pytest.mark.slow
def test_score_cli_on_float_io_firmware_has_parity_1_and_accuracy(tmp_path):
    """main.c with the generated float I/O model (host build, -Werror, socket): `tinyedge score` sends float32
    inputs, reads outf results, parity 1.0 (bit for bit) against tflite_micro and the arg-max accuracy."""
    model = float_fc()
    (tmp_path / "m.tflite").write_bytes(model)
    exe = build_model_dut(tmp_path, model, what="host build, float I/O model")
    x = float_rows(8, 3)
    ref = run_tflm(model, x.reshape(8, 1, N_IN)).reshape(8, -1)
    y = np.where(np.arange(8) < 6, ref.argmax(axis=1), (ref.argmax(axis=1) + 1) % N_OUT)  # 6 of 8 right
    np.savez(tmp_path / "d.npz", x=x.reshape(8, 1, N_IN), y=y)
    with host_dut(exe) as url:
        r = CliRunner().invoke(cli, ["score", "--port", url, "--data", str(tmp_path / "d.npz"), "--model",
                                     str(tmp_path / "m.tflite"), "--slo", "parity==1", "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["parity"] == 1.0 and report["accuracy"] == 0.75, (report["parity"], report["accuracy"])
    rows = [json.loads(ln) for ln in (tmp_path / "out" / "records.jsonl").read_text().splitlines()]
    assert np.array_equal(np.array([row["out"] for row in rows], np.float32).view(np.uint32), ref.view(np.uint32))


# ---------------------------------------------------------------- on the emulated board

@pytest.mark.slow
def test_float_io_model_in_qemu_gives_tflm_outputs_bit_for_bit(tmp_path, pio_core):
    """QUANTIZE + FULLY_CONNECTED + DEQUANTIZE with float32 input and output on qemu-mps2-an386: te-results'
    floats equal TFLM's bit for bit; te-info names the types and the boot self-test passed; m-results prints the
    floats (3 decimals); te-stream's top score is the float maximum."""
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed")
    model = float_fc()
    graph = read_model_bytes(model, name="iof")
    x = float_rows(5, 7)
    expected = run_tflm(model, x.reshape(5, 1, N_IN)).reshape(5, -1)
    assert expected.dtype == np.float32 and len(np.unique(expected)) > 20  # busy data, not just the clamps
    assert np.isin(expected, np.float32(((-128 - ZO) * SO, (127 - ZO) * SO))).mean() < 0.25
    seen: dict[str, object] = {}

    def more(client: DutClient) -> None:
        seen["info"] = client.info()
        seen["results"] = client.infer(1, 0).results  # on the last row
        seen["stream"] = client.stream(1)[0]

    got, _ = qemu_outputs(graph, "qemu-mps2-an386", x.reshape(5, 1, N_IN), tmp_path / "proj", pio_core, timeout=60,
                          then=more)
    assert got.dtype == np.float32, got.dtype
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), \
        f"QEMU {got.tolist()} vs TFLM {expected.tolist()}"
    info = seen["info"]
    assert isinstance(info, dict)
    assert (info["input_dtype"], info["output_dtype"], info["selftest"]) == ("float32", "float32", "ok"), info
    assert info["input_bytes"] == 80 and info["output_count"] == N_OUT
    assert np.allclose(seen["results"], expected[-1], atol=0.0005)
    stream = seen["stream"]
    assert isinstance(stream, dict)
    assert (stream["top"], stream["score"]) == (int(expected[-1].argmax()), float(expected[-1].max()))
