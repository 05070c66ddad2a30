"""Render a Program and its MemoryPlan as C: ``te_model.h/.c``, ``te_model_data.h/.c``, kernels, host harness."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import __version__
from ..boards import Board
from ..model.ir import Program, Step
from ..model.lower import boundary_quantization
from ..model.memplan import MemoryPlan, plan_memory
from ..paths import runtime_dir
from ..render import render
from .target import specialize

_CTYPES = {np.dtype(np.int8): "int8_t", np.dtype(np.int32): "int32_t", np.dtype(np.int16): "int16_t",
           np.dtype(np.uint8): "uint8_t", np.dtype(np.float32): "float", np.dtype(np.int64): "int64_t"}

MLPERF_IDS = (("kws", "kws01"), ("ad01", "ad01"), ("anomaly", "ad01"), ("vww", "vww01"), ("resnet", "ic01"),
              ("ic", "ic01"))


def mlperf_model_id(name: str) -> str:
    """The id MLPerf Tiny's runner expects from ``profile%`` (it picks the test script by it)."""
    low = name.lower()
    for key, mid in MLPERF_IDS:
        if key in low:
            return mid
    return "ic01"


def c_array_body(values: np.ndarray, per_line: int = 24) -> str:
    flat = np.asarray(values).reshape(-1)
    values_list = flat.tolist()  # Python scalars: formatting numpy scalars one by one is several times slower
    if flat.dtype.kind == "f":
        items = [repr(float(v)) + "f" for v in values_list]
    elif flat.dtype == np.int32:
        # INT32_MIN must be spelled as an expression to stay an int32 constant in C.
        items = [str(v) if v != -(2**31) else "(-2147483647 - 1)" for v in values_list]
    elif flat.dtype.kind in "iu":
        items = list(map(str, values_list))
    else:
        items = [str(int(v)) for v in values_list]
    lines = ["    " + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line)]
    return "\n".join(lines)


def _float_literal(x: float) -> str:
    return repr(float(np.float32(x)))


@dataclass
class CModel:
    """The rendered sources, keyed by path relative to the project root."""

    files: dict[str, str]
    plan: MemoryPlan
    context: dict[str, Any]


#: The API name of tinyedge's own firmware: ``te_model_invoke()``, ``TE_INPUT_BYTES``, ``te_layer_names``.
DEFAULT_API_NAME = "te_model"


@dataclass(frozen=True)
class ApiOptions:
    """How the model's C API is named and placed (``tinyedge export`` sets them; the defaults are the API of
    tinyedge's own firmware, whose generated code they leave exactly as it was).

    ``name`` prefixes every function and file (``kws`` -> ``kws_invoke()``, ``kws.h``); ``macro`` every macro
    (default ``name.upper()``, ``TE`` for ``te_model``). ``golden`` is the self-test's (input bytes, output
    bytes). ``caller_arena``: the arena comes from ``<name>_init(arena, size)`` instead of a static array.
    ``arena_section``/``weights_section``: GCC section names for the arena and the constant arrays.
    ``runtime_version_num``/``runtime_symbol``: the model includes ``te_runtime.h`` and refuses a runtime of
    another tinyedge version: ``#error`` unless ``TE_RUNTIME_VERSION_NUM`` is that number, and invoking it
    references ``runtime_symbol``, which only that version's ``te_runtime.c`` defines (exports; tinyedge's own
    firmware compiles its kernels beside the model).
    """

    name: str = DEFAULT_API_NAME
    macro: str | None = None
    golden: tuple[bytes, bytes] | None = None
    caller_arena: bool = False
    arena_section: str | None = None
    weights_section: str | None = None
    runtime_version_num: int | None = None
    runtime_symbol: str = ""

    def context(self) -> dict[str, Any]:
        """The ``api`` variables of the model templates."""
        own = self.name == DEFAULT_API_NAME
        macro = self.macro or ("TE" if own else self.name.upper())
        golden = None
        if self.golden is not None:
            gin, gout = (np.frombuffer(b, dtype=np.uint8) for b in self.golden)
            golden = dict(input_size=gin.size, output_size=gout.size,
                          input_body=c_array_body(gin), output_body=c_array_body(gout))
        return dict(
            name=self.name, M=macro, sym="te" if own else self.name, export=not own,
            layer_names="te_layer_names" if own else f"{self.name}_layer_names",
            guard=f"{macro}_MODEL_H", golden=golden, caller_arena=self.caller_arena,
            arena_section=_section_attr(self.arena_section), weights_section=_section_attr(self.weights_section),
            runtime=None if self.runtime_version_num is None else dict(num=self.runtime_version_num,
                                                                        symbol=self.runtime_symbol),
        )


def _section_attr(section: str | None) -> str:
    """``, section("name")`` to append inside an ``__attribute__((...))``, or nothing."""
    return f', section("{section}")' if section else ""


def render_model(program: Program, plan: MemoryPlan | None = None, *, mlperf_id: str | None = None,
                 board: Board | None = None, api: ApiOptions | None = None) -> CModel:
    """Render the model's C sources (kernels included) for a Program.

    With ``board``, the Program is first specialised for it (``tinyedge.codegen.target.specialize``:
    DSP kernels on cores that have them) and ``plan``, when given, must be that Program's plan.
    ``api`` names and places the C API (default: tinyedge's own ``te_model_*``/``TE_*`` in ``src/te_model*``;
    another name writes ``src/<name>.h``, ``src/<name>.c``, ``src/<name>_data.h``, ``src/<name>_data.c``).
    """
    if board is not None:
        program = specialize(program, board)
    plan = plan or plan_memory(program)
    g = program.graph
    api = api or ApiOptions()
    api_ctx = api.context()
    sym = api_ctx["sym"]

    def buf(t: int) -> str:
        return f"{sym}_arena + {plan.offset(program, t)}"

    arrays: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    for i, s in enumerate(program.steps):
        names: dict[str, str] = {}
        for key, arr in s.consts.items():
            name = f"{sym}_l{i}_{key}"
            names[key] = name
            arrays.append(dict(name=name, ctype=_CTYPES[arr.dtype], size=arr.size, body=c_array_body(arr),
                               comment=f"layer {i} ({s.op.opcode}) {key} {list(arr.shape)}"))
        args = [_arg(a, i, s, names, buf, plan, sym=sym) for a in s.args]
        steps.append(dict(op_index=s.op.index, opcode=s.op.opcode, out_shape=list(g.tensor(s.outputs[0]).shape),
                          macs=s.macs, struct=s.struct, params=list(s.params.items()) if s.struct else [],
                          call=f"{s.kernel}({', '.join(args)})"))

    x, y = g.tensor(program.input), g.tensor(program.output)
    in_scale, in_zp = boundary_quantization(program, program.input)  # of the int8 side for float32 I/O
    out_scale, out_zp = boundary_quantization(program, program.output)
    model = dict(
        name=g.name, sha256=g.sha256, mlperf_id=mlperf_id or mlperf_model_id(g.name),
        input_bytes=x.nbytes, output_count=y.size, output_bytes=y.nbytes,
        input_is_float=int(x.dtype == "FLOAT32"), output_is_float=int(y.dtype == "FLOAT32"),
        input_is_int16=int(x.dtype == "INT16"), output_is_int16=int(y.dtype == "INT16"),
        input_dtype=x.dtype.lower(), output_dtype=y.dtype.lower(),
        arena_bytes=max(plan.arena_bytes, 16), naive_bytes=plan.naive_bytes,
        macs=program.macs, weight_bytes=sum(a["size"] * {"int8_t": 1, "int64_t": 8}.get(a["ctype"], 4) for a in arrays),
        input_scale=_float_literal(in_scale), input_zero_point=in_zp,
        output_scale=_float_literal(out_scale), output_zero_point=out_zp,
        input_offset=plan.offset(program, program.input), output_offset=plan.offset(program, program.output),
    )
    kernels = kernel_sources()
    ctx = dict(model=model, steps=steps, arrays=arrays, version=__version__, api=api_ctx,
               kernel_headers=[k for k in kernels if k.endswith(".h")])
    # The kernels and the host harness are the static runtime, copied as is; the rest depends on the model.
    files = {f"src/{k}": runtime_source(k) for k in kernels}
    files.update({
        "src/te_version.h": render("te_version.h.j2", **ctx),
        f"src/{api.name}.h": render("te_model.h.j2", **ctx),
        f"src/{api.name}.c": render("te_model.c.j2", **ctx),
        f"src/{api.name}_data.h": render("te_model_data.h.j2", **ctx),
        f"src/{api.name}_data.c": render("te_model_data.c.j2", **ctx),
        "host/te_host_main.c": runtime_source("te_host_main.c"),
    })
    return CModel(files, plan, ctx)


def kernel_sources() -> list[str]:
    """The kernel files of the C runtime (``te_kernels*.c`` / ``.h``): each kernel family is its own file."""
    return sorted(p.name for p in runtime_dir().glob("te_kernels*.[ch]"))


def runtime_source(name: str) -> str:
    """The text of ``tinyedge/runtime/<name>``, which a generated project gets unchanged."""
    return (runtime_dir() / name).read_text()


def _arg(token: str, layer: int, step: Step, names: dict[str, str], buf: Callable[[int], str],
         plan: MemoryPlan | None = None, *, sym: str = "te") -> str:
    """One C argument of a kernel call from the Step's argument spec.

    ``scratch`` is the step's planned working memory; ``const:<name>@<ctype>`` passes the array cast to
    ``const <ctype> *``.
    """
    if token == "params":
        return f"&{sym}_p{layer}"
    if token.startswith("="):
        return token[1:]
    if token == "scratch":
        assert plan is not None, "a step with scratch memory needs the plan"
        return f"{sym}_arena + {plan.scratch_offset(layer)}"
    if token.startswith("const:"):
        name, _, ctype = token[6:].partition("@")
        if ctype and name in names:
            return f"(const {ctype} *)(const void *){names[name]}"
        return names.get(name, "0")
    if token.startswith("in"):
        return buf(step.inputs[int(token[2:])])
    if token.startswith("out"):
        return buf(step.outputs[int(token[3:])])
    raise AssertionError(f"unknown argument token {token!r} in layer {layer} ({step.kernel})")
