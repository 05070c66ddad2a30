"""``tinyedge export --format tflm`` (issue 12): the model for a firmware that keeps the TFLM interpreter.

The C array must be the ``.tflite`` byte for byte, the op resolver must hold exactly the model's ops, and
the arena figure must be TFLM's measured minimum plus TFLM's documented margin. TFLM's headers are not
available here: the generated C++ is compiled against a stand-in ``tflite::MicroMutableOpResolver`` that
declares every ``Add...()`` method of TFLM's micro_mutable_op_resolver.h and records the calls.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_model
from tflite_builder import ModelBuilder, options
from tinyedge.boards import get_board
from tinyedge.errors import TinyedgeError, UnsupportedModelError
from tinyedge.export.tflm import TFLM_ADD_METHODS, TFLM_ARENA_MARGIN, export_tflm
from tinyedge.firmware.generate import EditedFilesError
from tinyedge.model import Graph, load_model, read_model_bytes
from tinyedge.model.lower.registry import SUPPORTED_OPS
from tinyedge.oracle import min_arena_bytes, run_tflm

pytestmark = pytest.mark.unit

BOARD = "qemu-mps2-an386"

#: Every builtin ``Add...()`` method of tflite-micro's tensorflow/lite/micro/micro_mutable_op_resolver.h
#: (read for the names only), independent of tinyedge's own table so a misspelt entry there fails here.
TFLM_METHODS = (
    "AddAbs", "AddAdd", "AddAddN", "AddArgMax", "AddArgMin", "AddAveragePool2D", "AddBatchToSpaceNd",
    "AddCast", "AddCeil", "AddConcatenation", "AddConv2D", "AddCos", "AddCumSum", "AddDepthToSpace",
    "AddDepthwiseConv2D", "AddDequantize", "AddElu", "AddEqual", "AddExp", "AddExpandDims", "AddFill",
    "AddFloor", "AddFloorDiv", "AddFloorMod", "AddFullyConnected", "AddGather", "AddGatherNd", "AddGreater",
    "AddGreaterEqual", "AddHardSwish", "AddIf", "AddL2Normalization", "AddL2Pool2D", "AddLeakyRelu",
    "AddLess", "AddLessEqual", "AddLog", "AddLogicalAnd", "AddLogicalNot", "AddLogicalOr", "AddLogistic",
    "AddMaximum", "AddMaxPool2D", "AddMean", "AddMinimum", "AddMul", "AddNeg", "AddNotEqual", "AddPack",
    "AddPad", "AddPadV2", "AddPrelu", "AddQuantize", "AddReduceMax", "AddRelu", "AddRelu6", "AddReshape",
    "AddResizeBilinear", "AddResizeNearestNeighbor", "AddRound", "AddRsqrt", "AddShape", "AddSin",
    "AddSoftmax", "AddSpaceToBatchNd", "AddSpaceToDepth", "AddSplit", "AddSplitV", "AddSqueeze", "AddSqrt",
    "AddSquare", "AddStridedSlice", "AddSub", "AddSvdf", "AddTanh", "AddTransposeConv", "AddTranspose",
    "AddUnpack", "AddZerosLike",
)


def standin_resolver_header() -> str:
    """A minimal stand-in for TFLM's micro_mutable_op_resolver.h: same names, records what is added."""
    methods = "\n".join(f"  TfLiteStatus {m}() {{ return Add(\"{m}\"); }}" for m in TFLM_METHODS)
    return f"""\
#pragma once
#include <string.h>
typedef enum {{ kTfLiteOk = 0, kTfLiteError = 1 }} TfLiteStatus;
namespace tflite {{
class MicroOpResolver {{ public: virtual ~MicroOpResolver() {{}} }};
template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {{
 public:
{methods}
  unsigned int GetRegistrationLength() {{ return len_; }}
  const char *registered(unsigned int i) const {{ return names_[i]; }}
 private:
  TfLiteStatus Add(const char *name) {{
    if (len_ >= tOpCount) return kTfLiteError;
    for (unsigned int i = 0; i < len_; ++i) if (strcmp(names_[i], name) == 0) return kTfLiteError;
    names_[len_++] = name;
    return kTfLiteOk;
  }}
  const char *names_[tOpCount];
  unsigned int len_ = 0;
}};
}}  // namespace tflite
"""


def host_main(name: str) -> str:
    """A host program: the registered ops on stderr, the compiled model array on stdout."""
    return f"""\
#include <cstdint>
#include <cstdio>
#include "{name}_model_data.h"
#include "{name}_op_resolver.h"
int main() {{
  {name}_op_resolver_t &r = {name}_op_resolver();
  for (unsigned int i = 0; i < r.GetRegistrationLength(); ++i) std::fprintf(stderr, "%s\\n", r.registered(i));
  if (reinterpret_cast<std::uintptr_t>({name}_model) % 16 != 0) return 3;
  std::fwrite({name}_model, 1, {name}_model_len, stdout);
  return 0;
}}
"""


def fc_model() -> Graph:
    """int8 (1,16) -> FC 4 -> SOFTMAX: a small model with two ops."""
    b = ModelBuilder()
    x = b.tensor((1, 16), "INT8", scale=0.05, zero_point=-3)
    w = b.tensor((4, 16), "INT8", scale=0.02, zero_point=0, data=np.arange(64).reshape(4, 16) % 7 - 3)
    bias = b.tensor((4,), "INT32", scale=0.001, zero_point=0, data=np.arange(4) - 2)
    y = b.tensor((1, 4), "INT8", scale=0.2, zero_point=5)
    z = b.tensor((1, 4), "INT8", scale=1 / 256, zero_point=-128)
    b.op("FULLY_CONNECTED", [x, w, bias], [y], options("FullyConnectedOptions"), "FullyConnectedOptions")
    b.op("SOFTMAX", [y], [z], options("SoftmaxOptions", beta=1.0), "SoftmaxOptions")
    return read_model_bytes(b.build([x], [z]), name="fc")


def parse_array(source: str, name: str) -> bytes:
    """The initializer of ``<name>_model[]`` in a generated .cc, back to bytes."""
    m = re.search(rf"const unsigned char {name}_model\[\][^=]*=\s*\{{(.*?)\}};", source, re.S)
    assert m, f"no {name}_model[] array"
    return bytes(int(tok, 0) for tok in m.group(1).replace("\n", " ").split(",") if tok.strip())


def macro(text: str, name: str) -> str:
    m = re.search(rf"^#define {name} (.+)$", text, re.M)
    assert m, f"no macro {name}"
    return m.group(1).strip()


def compile_(cmd: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run a compiler (or a built program); fail with its output."""
    proc = subprocess.run(cmd, capture_output=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr.decode(errors='replace')}"
    return proc


def ops_of(graph: Graph) -> list[str]:
    return list(dict.fromkeys(op.opcode for op in graph.operators))


# ----------------------------------------------------------------------------------------------- tables
def test_every_supported_op_has_a_tflm_method():
    """Every op tinyedge supports maps to a method TFLM's resolver really has (and nothing else is listed)."""
    assert set(TFLM_ADD_METHODS) == set(SUPPORTED_OPS)
    assert set(TFLM_ADD_METHODS.values()) <= set(TFLM_METHODS), \
        sorted(set(TFLM_ADD_METHODS.values()) - set(TFLM_METHODS))


# ------------------------------------------------------------------------------------- the export itself
MODELS = {"fc": None, "kws": "kws_ref_model.tflite", "ad": "ad01_int8.tflite"}


@pytest.fixture(scope="module", params=list(MODELS))
def exported(request, tmp_path_factory) -> tuple[str, Graph, Path]:
    """(name, graph, export folder) for the small FC model and, when ../shared is present, KWS and AD."""
    name = request.param
    graph = fc_model() if MODELS[name] is None else load_model(shared_model(MODELS[name]))
    out = tmp_path_factory.mktemp(f"tflm-{name}") / name
    assert export_tflm(graph, get_board(BOARD), out, name=name) == out
    return name, graph, out


def test_array_is_the_tflite_byte_for_byte(exported):
    name, graph, out = exported
    source = (out / f"{name}_model_data.cc").read_text()
    header = (out / f"{name}_model_data.h").read_text()
    assert parse_array(source, name) == graph.model_bytes
    assert f"alignas(16) const unsigned char {name}_model[]" in source
    assert macro(header, f"{name.upper()}_MODEL_SHA256") == f'"{hashlib.sha256(graph.model_bytes).hexdigest()}"'
    assert macro(header, f"{name.upper()}_MODEL_LEN") == f"{len(graph.model_bytes)}u"


def test_resolver_holds_exactly_the_models_ops(exported):
    name, graph, out = exported
    header = (out / f"{name}_op_resolver.h").read_text()
    want = [TFLM_ADD_METHODS[op] for op in ops_of(graph)]
    assert re.findall(r"resolver\.(Add\w+)\(\)", header) == want
    assert macro(header, f"{name.upper()}_OP_COUNT") == str(len(want))
    assert f"tflite::MicroMutableOpResolver<{name.upper()}_OP_COUNT>" in header
    if name == "kws":  # the MLPerf Tiny KWS reference (DS-CNN): what a hand-written resolver would hold
        assert sorted(want) == ["AddAveragePool2D", "AddConv2D", "AddDepthwiseConv2D", "AddFullyConnected",
                                "AddReshape", "AddSoftmax"]
    if name == "ad":
        assert want == ["AddFullyConnected"]


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs the host g++ to compile the export")
def test_compiled_on_the_host_it_registers_the_ops_and_holds_the_model(exported, tmp_path):
    """Compiled and run (host g++, stand-in resolver): the registered ops and the array's bytes, as built."""
    name, graph, out = exported
    inc = tmp_path / "standin" / "tensorflow" / "lite" / "micro"
    inc.mkdir(parents=True)
    (inc / "micro_mutable_op_resolver.h").write_text(standin_resolver_header())
    (tmp_path / "main.cc").write_text(host_main(name))
    exe = tmp_path / "prog"
    compile_(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-I", str(tmp_path / "standin"),
              "-I", str(out), str(tmp_path / "main.cc"), str(out / f"{name}_model_data.cc"), "-o", str(exe)])
    proc = compile_([str(exe)])
    assert proc.stdout == graph.model_bytes
    assert proc.stderr.decode().split() == [TFLM_ADD_METHODS[op] for op in ops_of(graph)]


@pytest.mark.skipif(shutil.which("arm-none-eabi-g++") is None, reason="needs arm-none-eabi-g++")
def test_compiles_with_arm_none_eabi_gpp(exported, tmp_path):
    """The headers and the array's source pass arm-none-eabi-g++ -std=c++17 -fsyntax-only (stand-in TFLM)."""
    name, _, out = exported
    inc = tmp_path / "tensorflow" / "lite" / "micro"
    inc.mkdir(parents=True)
    (inc / "micro_mutable_op_resolver.h").write_text(standin_resolver_header())
    tu = tmp_path / "use.cc"
    tu.write_text(f'#include "{name}_model_data.h"\n#include "{name}_op_resolver.h"\n'
                  f"alignas(16) static unsigned char arena[{name.upper()}_ARENA_BYTES];\n"
                  f"int use() {{ return {name}_register_ops({name}_op_resolver()) == kTfLiteOk "
                  f"&& arena[0] == 0 && {name}_model_len == {name.upper()}_MODEL_LEN; }}\n")
    for src in (tu, out / f"{name}_model_data.cc"):
        compile_(["arm-none-eabi-g++", "-std=c++17", "-fsyntax-only", "-mcpu=cortex-m4", "-mthumb",
                  "-Wall", "-Wextra", "-Werror", "-I", str(tmp_path), "-I", str(out), str(src)])


def test_arena_is_tflms_minimum_plus_the_documented_margin(exported):
    name, graph, out = exported
    arena = int(macro((out / f"{name}_model_data.h").read_text(), f"{name.upper()}_ARENA_BYTES").rstrip("u"))
    measured = min_arena_bytes(graph.model_bytes)
    assert arena == -(-measured // 16) * 16 + TFLM_ARENA_MARGIN
    manifest = json.loads((out / "tinyedge.json").read_text())
    assert manifest["format"] == "tflm" and manifest["arena_bytes"] == arena
    assert manifest["model_sha256"] == graph.sha256
    # TFLM runs the model in that arena
    x = np.zeros((1, *graph.input.shape[1:]), dtype=np.int8)
    assert run_tflm(graph.model_bytes, x, arena_size=arena).shape[0] == 1
    assert "micro_interpreter.h" in (out / f"{name}_model_data.h").read_text()  # the margin's source
    assert "was not compiled" in (out / "README.md").read_text()


# ------------------------------------------------------------------------------ the folder and errors
def test_reexport_never_overwrites_user_edits(tmp_path):
    graph, board = fc_model(), get_board(BOARD)
    out = tmp_path / "fc"
    export_tflm(graph, board, out, name="fc")
    (out / "my_notes.txt").write_text("mine\n")
    export_tflm(graph, board, out, name="fc")  # untouched: regenerated in place
    assert (out / "my_notes.txt").read_text() == "mine\n"
    header = out / "fc_op_resolver.h"
    header.write_text(header.read_text() + "// my edit\n")
    with pytest.raises(EditedFilesError) as err:
        export_tflm(graph, board, out, name="fc")
    assert err.value.files == ["fc_op_resolver.h"]
    assert header.read_text().endswith("// my edit\n")
    export_tflm(graph, board, out, name="fc", force=True)
    assert not header.read_text().endswith("// my edit\n")
    assert (out / "my_notes.txt").read_text() == "mine\n"


def test_refuses_a_folder_that_is_not_an_export(tmp_path):
    (tmp_path / "x.c").write_text("int x;\n")
    with pytest.raises(TinyedgeError, match="not a tinyedge project"):
        export_tflm(fc_model(), get_board(BOARD), tmp_path, name="fc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.c"]


def test_name_must_be_a_c_identifier(tmp_path):
    with pytest.raises(TinyedgeError, match="not a C identifier"):
        export_tflm(fc_model(), get_board(BOARD), tmp_path / "o", name="my-model")
    assert not (tmp_path / "o").exists()


def test_an_op_without_a_resolver_entry_is_refused(tmp_path):
    graph = fc_model()
    odd = dataclasses.replace(graph, operators=[dataclasses.replace(graph.operators[0], opcode="CUSTOM:foo"),
                                                *graph.operators[1:]])
    with pytest.raises(UnsupportedModelError, match="CUSTOM:foo"):
        export_tflm(odd, get_board(BOARD), tmp_path / "o", name="fc")
    assert not (tmp_path / "o").exists()
