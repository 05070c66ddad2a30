"""Malformed models end in one tinyedge error or in code bit-exact with TFLM: the fuzz harness (tests/fuzz_tflite.py)
over the shared models, and one regression test per class of crash or silent mismatch it found downstream of
the model reader (lowering, memory planning, the DSP target pass)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_model
from fuzz_tflite import Mutator, check_mutant, run_fuzz
from tflite_builder import ModelBuilder, options
from tinyedge.boards import get_board
from tinyedge.errors import TinyedgeError, UnsupportedModelError
from tinyedge.firmware.generate import project_sources
from tinyedge.model.graph import read_model_bytes
from tinyedge.model.memplan import plan_memory
from tinyedge.model.program import build_program

DSP_BOARD = "qemu-mps2-an386"


# ------------------------------------------------------------------------------------------ the harness
@pytest.mark.slow
def test_fuzz_shared_models_refused_or_bit_exact():
    """1,000 seeded mutants (500 of each shared model) through inspect and generate: every one is refused
    with a TinyedgeError or accepted, none raises anything else, kills the process or hangs; a sample of the
    accepted ones, compiled for the host, gives TFLM's outputs bit for bit. (Longer runs: ``python -m
    benchmarks --fuzz N``.)"""
    models = [("kws", shared_model("kws_ref_model.tflite")), ("ad", shared_model("ad01_int8.tflite"))]
    report = run_fuzz(models, 500, seed=11, check_limit=6)
    assert len(report.outcomes) == 1000
    assert not report.bad, report.summary()
    assert not report.mismatches, report.summary()
    counts = report.counts()
    assert counts["refused"] > 250 and counts["accepted"] > 150, report.summary()  # both paths exercised
    assert report.check_counts().get("exact", 0) >= 6, report.summary()


@pytest.mark.unit
def test_mutator_is_deterministic_and_varied():
    data = shared_model("kws_ref_model.tflite").read_bytes()
    a, b = Mutator(data), Mutator(data)
    mutants = [a.mutant(3, i) for i in range(60)]
    assert [m.data for m in mutants] == [b.mutant(3, i).data for i in range(60)]
    assert {m.kind for m in mutants} == {"raw", "struct"}
    assert len({m.data for m in mutants}) > 55
    assert a.mutant(4, 0).data != mutants[0].data


@pytest.mark.unit
def test_check_mutant_classifies():
    board = get_board(DSP_BOARD)
    data = shared_model("kws_ref_model.tflite").read_bytes()
    assert check_mutant(data, "kws", board)[0] == "accepted"
    assert check_mutant(data[:100], "kws", board)[:2] == ("refused", "read")


# ------------------------------------------------------------------------------------------ regressions
def _conv_model(out_hw=(6, 6), filt_shape=(8, 3, 3, 4), out_c=8, depthwise=False, bias_len=8, padding=1,
                stride=1) -> bytes:
    """A small int8 CONV_2D (or DEPTHWISE_CONV_2D) model, consistent unless told otherwise."""
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.tensor((1, 8, 8, 4), scale=0.05, zero_point=3)
    oc = filt_shape[3] if depthwise else filt_shape[0]
    w = b.tensor(filt_shape, data=rng.integers(-127, 128, size=filt_shape, dtype=np.int8),
                 scale=np.full(oc, 0.01, np.float32), zero_point=0, qdim=3 if depthwise else 0)
    bias = b.tensor((bias_len,), "INT32", data=rng.integers(-500, 500, size=bias_len, dtype=np.int32),
                    scale=np.full(bias_len, 0.0005, np.float32), zero_point=0)
    y = b.tensor((1, *out_hw, out_c), scale=0.2, zero_point=-5)
    if depthwise:
        b.op("DEPTHWISE_CONV_2D", [x, w, bias], [y], options("DepthwiseConv2DOptions", padding=padding, strideW=stride,
                                                               strideH=stride, depthMultiplier=out_c // 4),
             "DepthwiseConv2DOptions")
    else:
        b.op("CONV_2D", [x, w, bias], [y], options("Conv2DOptions", padding=padding, strideW=stride, strideH=stride),
             "Conv2DOptions")
    return b.build([x], [y])


def _refused(model: bytes, *needles: str) -> None:
    graph = read_model_bytes(model)
    with pytest.raises(UnsupportedModelError) as err:
        project_sources(graph, get_board(DSP_BOARD))
    for n in needles:
        assert n in str(err.value)


@pytest.mark.unit
def test_consistent_conv_models_are_accepted():
    for model in (_conv_model(), _conv_model(filt_shape=(1, 3, 3, 8), out_c=8, depthwise=True),
                  _conv_model(out_hw=(8, 8), padding=0), _conv_model(out_hw=(3, 3), stride=2)):
        project_sources(read_model_bytes(model), get_board(DSP_BOARD))


@pytest.mark.unit
def test_conv_output_size_must_match_padding_and_strides():
    """An output one column wider than VALID padding gives was accepted, and the generated C silently
    disagreed with TFLM (TFLM derives its padding from the computed size, tinyedge from the tensor's)."""
    _refused(_conv_model(out_hw=(6, 7)), "the output is [6, 7]", "gives [6, 6]")
    _refused(_conv_model(out_hw=(8, 9), padding=0), "gives [8, 8]")
    _refused(_conv_model(padding=7), "padding 7 is neither SAME")
    _refused(_conv_model(stride=0), "must all be at least 1")


@pytest.mark.unit
def test_conv_filter_must_match_the_channels():
    """A filter whose output channels disagree with the output tensor crashed the DSP target pass with a
    ValueError (reshape); a depthwise filter likewise."""
    _refused(_conv_model(out_c=4, bias_len=4), "filter [8, 3, 3, 4] does not map 4 input channels to 4")
    _refused(_conv_model(filt_shape=(8, 3, 3, 2)), "grouped convolution")
    _refused(_conv_model(filt_shape=(1, 3, 3, 8), out_c=12, bias_len=12, depthwise=True), "does not map 4 input")
    _refused(_conv_model(bias_len=5), "bias has 5 values for 8 output channels")


def _fc_model(x_shape=(1, 12), w_shape=(5, 12), y_shape=(1, 5), out_const=False) -> bytes:
    rng = np.random.default_rng(1)
    b = ModelBuilder()
    x = b.tensor(x_shape, scale=0.05, zero_point=0)
    w = b.tensor(w_shape, data=rng.integers(-127, 128, size=w_shape, dtype=np.int8), scale=0.01, zero_point=0)
    y = b.tensor(y_shape, scale=0.1, zero_point=2)
    b.op("FULLY_CONNECTED", [x, w, -1], [y], options("FullyConnectedOptions"), "FullyConnectedOptions")
    if out_const:
        c = b.tensor((1, 5), data=np.arange(5, dtype=np.int8), scale=0.1, zero_point=0)
        return b.build([x], [c])
    return b.build([x], [y])


@pytest.mark.unit
def test_fully_connected_shapes_must_agree():
    """Input rows, weights and output that disagree were lowered anyway (the kernel would read or write past
    its buffers)."""
    project_sources(read_model_bytes(_fc_model()), get_board(DSP_BOARD))
    _refused(_fc_model(x_shape=(1, 13)), "do not agree")
    _refused(_fc_model(y_shape=(1, 6)), "do not agree")


@pytest.mark.unit
def test_constant_model_output_is_refused():
    """A model whose output is a constant tensor crashed the memory planner with a KeyError."""
    _refused(_fc_model(out_const=True), "is a constant: no kernel computes it at run time")


@pytest.mark.unit
def test_op_without_inputs_is_refused():
    """A RESHAPE with no inputs raised IndexError while lowering; FULLY_CONNECTED without weights likewise."""
    b = ModelBuilder()
    x = b.tensor((1, 4), scale=0.1, zero_point=0)
    y = b.tensor((2, 2), scale=0.1, zero_point=0)
    z = b.tensor((2, 2), scale=0.1, zero_point=0)
    b.op("RELU", [x], [y])
    b.op("RESHAPE", [], [z])
    with pytest.raises(UnsupportedModelError, match="has inputs \\[\\]; it needs 1 input tensor"):
        build_program(read_model_bytes(b.build([x], [z])))


@pytest.mark.unit
def test_reshape_must_keep_the_element_count():
    """A RESHAPE to more elements than its input was an alias of a smaller buffer: the next kernel read past it."""
    b = ModelBuilder()
    x = b.tensor((1, 4), scale=0.1, zero_point=0)
    y = b.tensor((1, 4), scale=0.1, zero_point=0)
    z = b.tensor((1, 8), scale=0.1, zero_point=0)
    out = b.tensor((1, 8), scale=0.1, zero_point=0)
    b.op("RELU", [x], [y])
    b.op("RESHAPE", [y], [z])
    b.op("RELU", [z], [out])
    with pytest.raises(UnsupportedModelError, match="hold different numbers of elements"):
        build_program(read_model_bytes(b.build([x], [out])))


@pytest.mark.unit
def test_kernel_reading_a_folded_tensor_is_refused():
    """An ADD whose second input is computed at generation time (a PACK of constants) read an arena buffer
    nothing wrote: the generated code added garbage."""
    b = ModelBuilder()
    x = b.tensor((2,), scale=0.1, zero_point=0)
    c0 = b.tensor((1,), data=np.array([1], np.int8), scale=0.1, zero_point=0)
    c1 = b.tensor((1,), data=np.array([2], np.int8), scale=0.1, zero_point=0)
    p = b.tensor((2,), scale=0.1, zero_point=0)
    y = b.tensor((2,), scale=0.1, zero_point=0)
    b.op("PACK", [c0, c1], [p], options("PackOptions", valuesCount=2, axis=0), "PackOptions")
    b.op("ADD", [x, p], [y])
    with pytest.raises(UnsupportedModelError, match="computed at generation time"):
        program = build_program(read_model_bytes(b.build([x], [y])))
        plan_memory(program)


@pytest.mark.unit
def test_conv_without_its_options_is_refused():
    """A CONV_2D whose options were dropped was generated with default strides and padding, while TFLM ran it
    with zeroed parameters: the outputs differed silently."""
    b = ModelBuilder()
    rng = np.random.default_rng(0)
    x = b.tensor((1, 8, 8, 4), scale=0.05, zero_point=3)
    w = b.tensor((8, 3, 3, 4), data=rng.integers(-127, 128, size=(8, 3, 3, 4), dtype=np.int8), scale=0.01,
                 zero_point=0)
    y = b.tensor((1, 8, 8, 8), scale=0.2, zero_point=-5)
    b.op("CONV_2D", [x, w, -1], [y])
    _refused(b.build([x], [y]), "its options (strides, padding) are missing")


@pytest.mark.unit
def test_bias_of_any_shape_with_one_value_per_channel():
    """A FULLY_CONNECTED bias stored as [units, 1] (TFLM reads it flat) crashed the DSP target pass with a
    ValueError (np.stack of a 2-D bias)."""
    rng = np.random.default_rng(1)
    b = ModelBuilder()
    x = b.tensor((1, 12), scale=0.05, zero_point=0)
    w = b.tensor((5, 12), data=rng.integers(-127, 128, size=(5, 12), dtype=np.int8), scale=0.01, zero_point=0)
    bias = b.tensor((5, 1), "INT32", data=rng.integers(-500, 500, size=(5, 1), dtype=np.int32), scale=0.0005,
                    zero_point=0)
    y = b.tensor((1, 5), scale=0.1, zero_point=2)
    b.op("FULLY_CONNECTED", [x, w, bias], [y], options("FullyConnectedOptions"), "FullyConnectedOptions")
    files, program, _, _ = project_sources(read_model_bytes(b.build([x], [y])), get_board(DSP_BOARD))
    assert "_dsp" in program.steps[0].kernel


@pytest.mark.unit
@pytest.mark.parametrize("model, index, needle", [
    ("kws_ref_model.tflite", 160, "depth_multiplier 1048576 does not match"),  # TFLM loops over the option
    ("kws_ref_model.tflite", 249, "exceed 4096"),  # a dilation whose offsets overflowed the generated C
    ("ad01_int8.tflite", 137, "but no zeroPoint"),  # TFLM leaves such a tensor unquantized
])
def test_mutants_that_differed_from_tflm_are_refused(model, index, needle):
    """Found by `python -m benchmarks --fuzz 400 --models kws ad --seed 5 --check-all`: accepted, then not
    bit-exact with the tflite_micro interpreter (or not compilable). Each is now one clear refusal."""
    mutant = Mutator(shared_model(model).read_bytes()).mutant(5, index)
    with pytest.raises(TinyedgeError) as err:
        build_program(read_model_bytes(mutant.data, name="m"))
    assert needle in str(err.value), (mutant.desc, str(err.value))
