"""The model validator (tinyedge.model.validate): every structural rule refuses a malformed model with one
ModelError naming the field path, and nothing raw escapes the reader."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

from conftest import shared_model
from tflite_builder import ModelBuilder, options
from tinyedge.errors import ModelError
from tinyedge.model import Graph, load_model, read_model_bytes
from tinyedge.model.program import build_program

pytestmark = pytest.mark.unit


def base_model() -> bytes:
    """input(1x4) -> FULLY_CONNECTED(weights 3x4, bias 3) -> t3(1x3) -> RELU -> t4(1x3)."""
    b = ModelBuilder()
    ti = b.tensor((1, 4), scale=0.05, zero_point=-3, name="input")
    tw = b.tensor((3, 4), data=np.arange(12, dtype=np.int8).reshape(3, 4), scale=0.01, name="weights")
    tb = b.tensor((3,), dtype="INT32", data=np.array([1, 2, 3], dtype=np.int32), scale=0.0005, name="bias")
    t3 = b.tensor((1, 3), scale=0.1, zero_point=2, name="fc")
    t4 = b.tensor((1, 3), scale=0.1, zero_point=2, name="relu")
    b.op("FULLY_CONNECTED", [ti, tw, tb], [t3], options("FullyConnectedOptions"), "FullyConnectedOptions")
    b.op("RELU", [t3], [t4])
    return b.build([ti], [t4])


def edited(fn: Callable[[Any], None], model: bytes | None = None) -> bytes:
    """``model`` (default the base model) with ``fn`` applied to its flatbuffer object tree."""
    m = S.ModelT.InitFromObj(S.Model.GetRootAs(model or base_model(), 0))
    fn(m)
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def refused(model: bytes, *expected: str) -> str:
    with pytest.raises(ModelError) as info:
        read_model_bytes(model, name="m")
    msg = str(info.value)
    for e in expected:
        assert e in msg, msg
    assert "Try: re-export the model" in msg
    return msg


def sg(m: Any) -> Any:
    return m.subgraphs[0]


def test_the_base_model_is_valid() -> None:
    g = read_model_bytes(base_model(), name="m")
    assert [op.opcode for op in g.operators] == ["FULLY_CONNECTED", "RELU"]


# ---------------------------------------------------------------- indices

def test_op_input_index_out_of_range() -> None:
    def fn(m: Any) -> None:
        sg(m).operators[1].inputs = [213]
    refused(edited(fn), "subgraphs[0].operators[1].inputs[0] = 213, but the model has 5 tensors")


def test_negative_tensor_index() -> None:
    def fn(m: Any) -> None:
        sg(m).operators[0].inputs = [-2, 1, 2]
    refused(edited(fn), "subgraphs[0].operators[0].inputs[0] = -2 is negative")


def test_omitted_input_only_where_tflite_allows_it() -> None:
    def no_input(m: Any) -> None:
        sg(m).operators[1].inputs = [-1]
    refused(edited(no_input), "subgraphs[0].operators[1].inputs[0] = -1 (omitted), but input 0 of RELU is not optional")

    def no_bias(m: Any) -> None:
        sg(m).operators[0].inputs = [0, 1, -1]
    g = read_model_bytes(edited(no_bias), name="m")
    assert g.operators[0].inputs[2] == -1
    # lowering treats it as absent (no bias), instead of Python wrapping -1 to the last tensor
    program = build_program(g)
    assert program.steps[0].op.opcode == "FULLY_CONNECTED"
    with pytest.raises(ModelError, match="omitted optional input"):
        g.tensor(-1)


def test_op_output_index_out_of_range() -> None:
    def fn(m: Any) -> None:
        sg(m).operators[1].outputs = [7]
    refused(edited(fn), "subgraphs[0].operators[1].outputs[0] = 7, but the model has 5 tensors")


def test_buffer_index_out_of_range() -> None:
    def fn(m: Any) -> None:
        sg(m).tensors[1].buffer = 40
    refused(edited(fn), "subgraphs[0].tensors[1].buffer = 40, but the model has 3 buffers")


def test_opcode_index_out_of_range_and_unknown_opcode() -> None:
    def index(m: Any) -> None:
        sg(m).operators[1].opcodeIndex = 9
    refused(edited(index), "subgraphs[0].operators[1].opcodeIndex = 9, but the model has 2 operator codes")

    def code(m: Any) -> None:
        m.operatorCodes[1].builtinCode = 4000
    refused(edited(code), "operatorCodes[1].builtinCode = 4000, which is not a TFLite builtin operator")


def test_graph_inputs_and_outputs() -> None:
    def bad_in(m: Any) -> None:
        sg(m).inputs = [17]
    refused(edited(bad_in), "subgraphs[0].inputs[0] = 17, but the model has 5 tensors")

    def bad_out(m: Any) -> None:
        sg(m).outputs = [-4]
    refused(edited(bad_out), "subgraphs[0].outputs[0] = -4 is negative")

    def no_in(m: Any) -> None:
        sg(m).inputs = []
    refused(edited(no_in), "subgraphs[0].inputs is empty")

    def unwritten_out(m: Any) -> None:
        sg(m).operators = sg(m).operators[:1]
    refused(edited(unwritten_out), "subgraphs[0].outputs[0] = 4, but no operator writes tensor 4")


def test_subgraph_index_in_options() -> None:
    def fn(m: Any) -> None:
        op = sg(m).operators[1]
        op.builtinOptionsType = S.BuiltinOptions.CallOnceOptions
        op.builtinOptions = options("CallOnceOptions", initSubgraphIndex=5)
    refused(edited(fn), "subgraphs[0].operators[1].builtinOptions.initSubgraphIndex = 5, but the model has 1 subgraphs")


# ---------------------------------------------------------------- dataflow order

def test_op_reading_a_tensor_no_earlier_op_produced() -> None:
    def swap(m: Any) -> None:
        sg(m).operators = sg(m).operators[::-1]
    refused(edited(swap), "subgraphs[0].operators[0].inputs[0] = 3, but tensor 3 is not a constant or a graph input "
                          "and it is written by operators[1], a later operator")


def test_cycle() -> None:
    def fn(m: Any) -> None:
        sg(m).operators[0].inputs = [4, 1, 2]  # FC reads RELU's output, RELU reads FC's
    refused(edited(fn), "subgraphs[0].operators[0].inputs[0] = 4", "a later operator (a cycle")


def test_tensor_nobody_writes() -> None:
    def fn(m: Any) -> None:
        t = S.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, 3], S.TensorType.INT8, 0, "orphan"
        sg(m).tensors.append(t)
        sg(m).operators[1].inputs = [5]
    refused(edited(fn), "subgraphs[0].operators[1].inputs[0] = 5", "no operator writes it")


def test_tensor_written_twice() -> None:
    def fn(m: Any) -> None:
        sg(m).operators[1].outputs = [3]
    refused(edited(fn), "subgraphs[0].operators[1].outputs[0] = 3, but tensor 3 is a constant, a graph input or "
                        "written by an earlier operator")


def test_zero_operators() -> None:
    def fn(m: Any) -> None:
        sg(m).operators = []
        sg(m).outputs = [0]
    refused(edited(fn), "subgraphs[0].operators is empty")


# ---------------------------------------------------------------- shapes and buffers

@pytest.mark.parametrize("dims, expected", [
    ([1, 0], "subgraphs[0].tensors[3].shape[1] = 0, but a dimension must be 1..16777216"),
    ([1, -3], "subgraphs[0].tensors[3].shape[1] = -3"),
    ([1, 1 << 30], "subgraphs[0].tensors[3].shape[1] = 1073741824"),
    ([1 << 20, 1 << 20], "subgraphs[0].tensors[3].shape = [1048576, 1048576]: 1099511627776 elements"),
    ([1] * 40, "subgraphs[0].tensors[3].shape has 40 dimensions"),
])
def test_shape_positive_and_bounded(dims: list[int], expected: str) -> None:
    def fn(m: Any) -> None:
        sg(m).tensors[3].shape = dims
    refused(edited(fn), expected)


def test_buffer_size_must_match_the_shape() -> None:
    def fn(m: Any) -> None:
        m.buffers[1].data = m.buffers[1].data[:7]
    refused(edited(fn), "subgraphs[0].tensors[1]: buffers[1] holds 7 bytes, but shape [3, 4] of INT8 needs 12")


def test_constant_shape_changed_under_its_buffer() -> None:
    def fn(m: Any) -> None:
        sg(m).tensors[2].shape = [4]
    refused(edited(fn), "subgraphs[0].tensors[2]: buffers[2] holds 12 bytes, but shape [4] of INT32 needs 16")


def test_unknown_tensor_type() -> None:
    def fn(m: Any) -> None:
        sg(m).tensors[3].type = 99
    refused(edited(fn), "subgraphs[0].tensors[3].type = 99, which is not a TFLite tensor type")


# ---------------------------------------------------------------- quantization

@pytest.mark.parametrize("scale", [0.0, -0.5, math.inf, -math.inf, math.nan])
def test_scale_finite_and_positive(scale: float) -> None:
    def fn(m: Any) -> None:
        sg(m).tensors[3].quantization.scale = [scale]
    refused(edited(fn), "subgraphs[0].tensors[3].quantization.scale[0] = ", "a scale must be finite and > 0")


def test_scale_in_a_sane_range() -> None:
    def fn(m: Any) -> None:
        sg(m).tensors[0].quantization.scale = [1e-38]
    refused(edited(fn), "subgraphs[0].tensors[0].quantization.scale[0] = 1e-38, outside the range")


@pytest.mark.parametrize("tensor, zp, expected", [
    (3, 128, "subgraphs[0].tensors[3].quantization.zeroPoint[0] = 128, outside the INT8 range -128..127"),
    (0, -129, "subgraphs[0].tensors[0].quantization.zeroPoint[0] = -129, outside the INT8 range"),
    (2, 1 << 40, "subgraphs[0].tensors[2].quantization.zeroPoint[0] = 1099511627776, outside the INT32 range"),
])
def test_zero_point_in_range_for_the_type(tensor: int, zp: int, expected: str) -> None:
    def fn(m: Any) -> None:
        sg(m).tensors[tensor].quantization.zeroPoint = [zp]
    refused(edited(fn), expected)


def test_per_channel_length_equals_channel_count() -> None:
    def fn(m: Any) -> None:
        q = sg(m).tensors[1].quantization
        q.scale, q.zeroPoint, q.quantizedDimension = [0.01, 0.02], [0, 0], 0
    refused(edited(fn), "subgraphs[0].tensors[1].quantization.scale has 2 values (per channel), but dimension 0 "
                        "of the tensor has 3 channels")

    def dim(m: Any) -> None:
        q = sg(m).tensors[1].quantization
        q.scale, q.zeroPoint, q.quantizedDimension = [0.01] * 3, [0] * 3, 5
    refused(edited(dim), "subgraphs[0].tensors[1].quantization.quantizedDimension = 5, but the tensor has 2 dimensions")

    def zps(m: Any) -> None:
        q = sg(m).tensors[1].quantization
        q.scale, q.zeroPoint, q.quantizedDimension = [0.01] * 3, [0] * 2, 0
    refused(edited(zps), "subgraphs[0].tensors[1].quantization.zeroPoint has 2 values, but scale has 3")


def test_per_channel_weights_are_valid() -> None:
    def fn(m: Any) -> None:
        q = sg(m).tensors[1].quantization
        q.scale, q.zeroPoint, q.quantizedDimension = [0.01, 0.02, 0.03], [0, 0, 0], 0
    assert read_model_bytes(edited(fn), name="m").tensor(1).per_channel


# ---------------------------------------------------------------- reporting

def test_all_problems_up_to_a_cap_in_one_error() -> None:
    def fn(m: Any) -> None:
        for t in sg(m).tensors:
            t.quantization.scale = [0.0]
        for t in sg(m).tensors[:3]:
            t.buffer = 99
        sg(m).operators[1].inputs = [77]
        sg(m).inputs = [55]
    msg = refused(edited(fn), "is not a valid TFLite model (", "problems)", "; and ")
    assert msg.count("subgraphs[0]") == 12


# ---------------------------------------------------------------- unreadable bytes never escape raw

def test_truncated_file(tmp_path: Path) -> None:
    data = base_model()
    for cut in (9, 40, len(data) // 2, len(data) - 5):
        with pytest.raises(ModelError):
            read_model_bytes(data[:cut], name="m")
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError, match=str(path)):
        load_model(path)


def test_garbage_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        junk = rng.integers(0, 256, size=int(rng.integers(8, 4000)), dtype=np.uint8).tobytes()
        with pytest.raises(ModelError):
            read_model_bytes(junk[:4] + b"TFL3" + junk[8:], name="junk")
    path = tmp_path / "junk.tflite"
    path.write_bytes(b"\x10\x00\x00\x00TFL3" + bytes(range(256)) * 3)
    with pytest.raises(ModelError, match=f"{path}.*Try: re-export the model"):
        load_model(path)


def test_invalid_utf8_names_are_replaced() -> None:
    def fn(m: Any) -> None:
        sg(m).tensors[0].name = b"in\xff\xfeput"
        m.description = b"\xc3\x28 bad"
    g = read_model_bytes(edited(fn), name="m")
    assert g.tensor(0).name == "in\ufffd\ufffdput"
    assert g.description.endswith(" bad")


def test_mutants_of_the_shared_model_are_a_graph_or_one_model_error() -> None:
    """Seeded byte flips and truncations of KWS: read_model_bytes returns a Graph or raises ModelError."""
    base = shared_model("kws_ref_model.tflite").read_bytes()
    rng = np.random.default_rng(2024)
    for _ in range(150):
        b = bytearray(base)
        for o in rng.integers(0, len(b), size=int(rng.integers(1, 6))):
            b[o] = int(rng.integers(0, 256))
        if rng.random() < 0.2:
            b = b[: int(rng.integers(8, len(b)))]
        try:
            g = read_model_bytes(bytes(b), name="mutant")
        except ModelError:
            continue
        assert isinstance(g, Graph)


# ---------------------------------------------------------------- the real models pass

@pytest.mark.parametrize("name", ["kws_ref_model.tflite", "ad01_int8.tflite"])
def test_shared_models_load_and_validate(name: str) -> None:
    g = load_model(shared_model(name))
    assert g.operators and g.inputs and g.outputs
    build_program(g)


def test_options_of_another_op_are_refused() -> None:
    """A CONV_2D/FC carrying another op's options table would be read one way by tinyedge, another by TFLM."""
    def fn(m: Any) -> None:
        op = sg(m).operators[0]
        op.builtinOptionsType = S.BuiltinOptions.TransposeConvOptions
        op.builtinOptions = S.TransposeConvOptionsT()
    refused(edited(fn), "subgraphs[0].operators[0].builtinOptionsType = TransposeConvOptions, "
                        "but FULLY_CONNECTED takes FullyConnectedOptions")
