"""The benchmark's table and JSON shaping (unit) and its IC/VWW/SWW model builders (slow: TensorFlow)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import bench
from difftest import compare
from tinyedge.model import load_model
from tinyedge.model.program import build_program


def _step(opcode: str, kernel: str, variant: str, macs: int) -> SimpleNamespace:
    return SimpleNamespace(op=SimpleNamespace(opcode=opcode), kernel=kernel, variant=variant, macs=macs)


STEPS = [_step("CONV_2D", "te_conv2d_s8_dsp_m4", "dsp", 1000), _step("ADD", "te_binary_s8", "portable", 0)]
PROFILE = [{"index": 0, "name": "CONV_2D", "ticks": 500}, {"index": 1, "name": "ADD", "ticks": 250}]


def _record(model: str, **kw) -> dict:
    rec = dict(model=model, board="qemu-mps2-an386", variant="dsp", instructions=750, macs=1000, mac_per_instr=1.333,
               ram_bytes=512, tflm_arena_bytes=1024, flash_bytes=4096, weight_bytes=100, host_us=1.0,
               tflm_host_us=2.0, variant_per_layer=bench.per_layer(STEPS, PROFILE, 1.0),
               reference=bench.REFERENCE.get(model))
    rec.update(kw)
    return rec


@pytest.mark.unit
def test_per_layer_rows_name_the_variant_and_scale_ticks_to_instructions():
    rows = bench.per_layer(STEPS, PROFILE, 40.0)  # a 25 MHz SysTick: 40 instructions per tick
    assert rows == [
        dict(layer=0, op="CONV_2D", kernel="te_conv2d_s8_dsp_m4", variant="dsp", instructions=20000, macs=1000),
        dict(layer=1, op="ADD", kernel="te_binary_s8", variant="portable", instructions=10000, macs=0),
    ]
    table = bench.profile_table("ic", "qemu-mps2-an386", "dsp", rows, 50448)
    assert "arena 50,448 B" in table
    assert "te_conv2d_s8_dsp_m4" in table and "0.050" in table and "66.7%" in table


@pytest.mark.unit
def test_json_records_keep_every_record_key_and_add_the_per_layer_table():
    out = json.loads(json.dumps(bench.json_records([_record("ic"), _record("digits")])))
    assert [list(r) for r in out] == [list(bench.RECORD_KEYS + bench.EXTRA_KEYS)] * 2
    assert out[0]["variant_per_layer"][0]["variant"] == "dsp"
    assert out[0]["reference"]["basis"] == "same architecture, random weights"
    assert out[1]["reference"] is None


@pytest.mark.unit
def test_reference_table_labels_the_basis_and_gives_both_ratios():
    kws = bench.REFERENCE["kws"]
    table = bench.reference_table([_record("kws", instructions=kws["instructions"] // 2, ram_bytes=kws["arena_bytes"]),
                                   _record("vww"), _record("digits")])
    lines = table.splitlines()
    assert "TFLM + CMSIS-NN" in lines[0]
    kws_line = next(ln for ln in lines if ln.startswith("kws"))
    assert "same model" in kws_line and kws_line.split()[-1] == "1.00" and " 0.50 " in kws_line
    assert any(ln.startswith("vww") and "random weights" in ln for ln in lines)
    assert not any(ln.startswith("digits") for ln in lines)
    assert bench.reference_table([_record("digits")]) == ""


@pytest.mark.unit
def test_host_rounds_shrink_for_large_models_only():
    assert bench.host_round_iterations(200, 2_670_000) == 200
    assert bench.host_round_iterations(200, 12_500_000) == 48
    assert bench.host_round_iterations(200, 10**9) == 10


@pytest.mark.unit
def test_sww_is_registered_with_the_mlperf_window_and_its_reference():
    from benchmarks import models  # noqa: PLC0415

    assert "sww" in bench.DEFAULT_MODELS and bench.REFERENCE["sww"]["instructions"] == 2_227_120
    assert models.BUILDERS["sww"][1] == (30, 1, 40)  # 30 frames (1 s, 64 ms windows every 32 ms) x 40 features
    for arch in ("ic", "vww", "sww"):  # the all-live variants: the same builder and reference, their own basis
        assert models.BUILDERS[f"{arch}-live"] == models.BUILDERS[arch] and models.ALL_LIVE[f"{arch}-live"] == arch
        ref = bench.REFERENCE[f"{arch}-live"]
        assert ref["instructions"] == bench.REFERENCE[arch]["instructions"] and "no dead" in ref["basis"]
    # "valid" k x 1 depthwise kernels: the receptive field is exactly the window, time ends at 1
    lengths = [models.SWW_FRAMES]
    for _, k in models.SWW_BLOCKS:
        lengths.append(lengths[-1] - k + 1)
    assert lengths == [30, 28, 24, 15, 1]
    macs, c = 0, models.SWW_FEATURES
    for (filters, k), t in zip(models.SWW_BLOCKS, lengths[1:]):
        macs += t * c * k + t * c * filters  # depthwise, then pointwise
        c = filters
    assert macs + c * models.SWW_CLASSES == 826_368


@pytest.mark.slow
def test_sww_builder_gives_the_ds_tcn_graph_with_dead_and_tiny_channels_and_sww_live_without(tmp_path):
    from benchmarks import models  # noqa: PLC0415  (the builder needs TensorFlow)

    path = models.build("sww", tmp_path / "sww.tflite")
    graph = load_model(path)
    assert tuple(graph.input.shape) == (1, 30, 1, 40) and graph.output.dtype == "INT8"
    program = build_program(graph)
    assert program.macs == 826_368
    assert [s.op.opcode for s in program.steps] == ["DEPTHWISE_CONV_2D", "CONV_2D"] * 4 + ["FULLY_CONNECTED",
                                                                                          "SOFTMAX"]
    assert sum((s.consts["shift"] <= -20).sum() for s in program.steps if "shift" in s.consts) >= 8  # tiny channels
    # Equality with TFLM on the host and in QEMU: `python -m benchmarks --models sww` checks both on every run.
    again = models.build("sww", tmp_path / "again.tflite")  # one recipe (seeds, calibration) for every model
    assert again.read_bytes() == path.read_bytes()  # seeded: the same bytes every build

    # sww-live: the same weights with every channel live (per-channel int8 weights depend on the weights only)
    live = build_program(load_model(models.build("sww-live", tmp_path / "sww-live.tflite")))
    differ = 0
    for a, b in zip(program.steps, live.steps):
        if a.op.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        axis = 0 if a.op.opcode == "CONV_2D" else a.consts["filter"].ndim - 1
        fa, fb = (np.moveaxis(s.consts["filter"], axis, 0).reshape(a.params["out_c"], -1) for s in (a, b))
        assert (fa == 0).all(axis=1).any() and not (fb == 0).all(axis=1).any()  # dead channels, then none
        same = (fa == fb).all(axis=1)
        assert same.mean() > 0.8
        differ += int((~same).sum())
    assert differ >= 8
    assert not any((s.consts["shift"] <= -20).any() for s in live.steps if "shift" in s.consts)


@pytest.mark.slow
def test_ic_and_vww_builders_give_int8_models_with_dead_and_tiny_channels_that_match_tflm(tmp_path):
    from benchmarks import models  # noqa: PLC0415  (the builders need TensorFlow)

    for name, macs in (("ic", 12_501_632), ("vww", 7_489_664)):
        path = models.build(name, tmp_path / f"{name}.tflite")
        graph = load_model(path)
        assert graph.input.dtype == "INT8" and graph.output.dtype == "INT8"
        program = build_program(graph)
        assert program.macs == macs  # the MLPerf Tiny architecture's MACs
        for s in program.steps:
            if s.kernel not in ("te_conv2d_s8", "te_dwconv2d_s8"):
                continue
            f = s.consts["filter"]
            per_out = f.reshape(-1, f.shape[-1]).T if s.kernel == "te_dwconv2d_s8" else f.reshape(f.shape[0], -1)
            assert (~per_out.any(axis=1)).any(), f"{name}: {s.kernel} has no dead channel"
            # A tiny channel's requantization needs a right shift far beyond the usual 6-10.
            assert (s.consts["shift"] <= -20).sum() >= 2, f"{name}: {s.kernel} has no tiny channel"
        if name == "ic":  # the generated C on the host equals TFLM (the benchmark run checks both in QEMU)
            assert compare(path.read_bytes(), samples=2, describe=name) is None
