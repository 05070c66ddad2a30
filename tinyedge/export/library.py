"""``tinyedge export``: a model as a library with a namespaced C API, in the layout of a build system.

``export_model(model, board, out, fmt=..., name="kws")`` writes the model library into ``out`` and the shared
kernel runtime (``tinyedge.export.runtime``) into ``out/../te_runtime`` (or ``runtime_dir``):

==================  ==========================================================================================
``c``               ``out/kws.h``, ``kws.c``, ``kws_data.h``, ``kws_data.c``; compile them and ``te_runtime/src/*.c``
``platformio-lib``  ``out/library.json`` + ``src/``: ``lib_deps = symlink://<out>, symlink://<te_runtime>``
``arduino-lib``     ``out/library.properties`` + ``src/kws.h``...: install both folders as Arduino libraries
``cmake``           ``out/CMakeLists.txt`` (target ``kws``, which adds ``te_runtime`` once) and
                    ``out/cmake/arm-none-eabi-<core>.cmake``, a toolchain file for the board's core and FPU
``zephyr-module``   ``out/zephyr/module.yml``, ``out/CMakeLists.txt`` (zephyr_library), ``out/Kconfig``
``tflm``            the ``.tflite`` for TFLM's interpreter (``tinyedge.export.tflm``); no tinyedge kernels
==================  ==========================================================================================

Every format but ``tflm`` carries the same generated C (``tinyedge.codegen.cmodel`` with ``ApiOptions``):
functions ``kws_*``, macros ``KWS_*``, internal data ``kws_*`` or ``static``, so several models link into one
image, plus the self-test's golden pair from the tflite_micro interpreter.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..boards import Board, get_board
from ..boards.cores import core_info, has_fpu
from ..codegen.cmodel import ApiOptions, render_model
from ..codegen.golden import golden_vectors
from ..codegen.target import specialize
from ..errors import FitError, TinyedgeError
from ..firmware.generate import MANIFEST, write_project
from ..model import Graph, load_model
from ..model.ir import Program
from ..model.memplan import MemoryPlan, plan_memory
from ..model.program import build_program
from ..quantize import quantize_model
from .runtime import RUNTIME_NAME, version_num, version_symbol, write_runtime
from .tflm import export_tflm

#: The formats of ``tinyedge export --format``.
FORMATS = ("c", "platformio-lib", "arduino-lib", "cmake", "zephyr-module", "tflm")
#: ``--arena``: inside the library, or given by the caller to ``<name>_init(arena, size)``.
ARENA_MODES = ("static", "caller")

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_C_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECTION = re.compile(r"^[A-Za-z0-9_.$]+$")


@dataclass
class ExportResult:
    """What ``export_model`` wrote: the library folder and the runtime folder (None for ``tflm``)."""

    path: Path
    runtime: Path | None
    runtime_written: bool
    format: str
    name: str
    graph: Graph
    board: Board
    program: Program | None
    plan: MemoryPlan | None


def check_name(name: str) -> None:
    """``name`` must be a C identifier that cannot collide with tinyedge's own ``te_`` symbols."""
    if not _C_NAME.match(name):
        raise TinyedgeError(f"--name {name!r} is not a C identifier (it prefixes the export's symbols)",
                            "pass letters, digits and underscores, not starting with a digit, e.g. --name kws")
    if name.lower() == "te" or name.lower().startswith("te_"):
        raise TinyedgeError(f"--name {name!r} starts with te_, the prefix of tinyedge's runtime symbols",
                            "pick another name, e.g. --name kws")


def is_keras_model(path: Path) -> bool:
    """A Keras file or a SavedModel folder (quantized with ``--calib`` before export)."""
    return path.suffix in KERAS_SUFFIXES or (path.is_dir() and (path / "saved_model.pb").is_file())


def load_export_model(model: str | Path | Graph, calib: str | Path | None = None) -> Graph:
    """The int8 model to export: a Graph as is, a ``.tflite`` read, a Keras/SavedModel quantized with ``calib``."""
    if isinstance(model, Graph):
        return model
    path = Path(model)
    if not is_keras_model(path):
        return load_model(path)
    if calib is None:
        raise TinyedgeError(f"{path} is a Keras model and needs calibration data to quantize",
                            "pass --calib DATA.npz (a few hundred representative inputs)")
    with tempfile.TemporaryDirectory(prefix="tinyedge-export-") as tmp:
        out = Path(tmp) / f"{path.stem}.tflite"
        quantize_model(path, Path(calib), out)
        return load_model(out)


def toolchain_file(board: Board) -> str:
    """A CMake toolchain file for arm-none-eabi-gcc with ``board``'s core and FPU (the flags tinyedge's
    own PlatformIO platform uses)."""
    flags = f"-mcpu={board.core} -mthumb"
    if has_fpu(board):
        flags += f" -mfpu={board.fpu} -mfloat-abi=hard"
    fpu = f" with {board.fpu}" if has_fpu(board) else ""
    return f"""\
# arm-none-eabi-gcc for {board.core}{fpu} ({board.id}); generated by tinyedge {__version__}.
#   cmake -B build -DCMAKE_TOOLCHAIN_FILE=<this file>
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(TE_MACHINE_FLAGS "{flags}")
set(CMAKE_C_FLAGS_INIT "${{TE_MACHINE_FLAGS}} -ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "${{TE_MACHINE_FLAGS}} -ffunction-sections -fdata-sections -fno-rtti -fno-exceptions")
set(CMAKE_ASM_FLAGS_INIT "${{TE_MACHINE_FLAGS}}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${{TE_MACHINE_FLAGS}} --specs=nano.specs --specs=nosys.specs -Wl,--gc-sections")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
"""


def _cmake_path(path: str) -> str:
    return path.replace("\\", "/")


def _layout(fmt: str, name: str, sources: dict[str, str], graph: Graph, board: Board,
            runtime_rel: str) -> dict[str, str | bytes]:
    """The files of the model library in format ``fmt`` (``sources``: file name -> C text)."""
    desc = f"{graph.name} ({graph.sha256[:12]}) exported by tinyedge {__version__} for {board.id}"
    files: dict[str, str | bytes] = {}
    src = "" if fmt == "c" else "src/"
    for fname, text in sources.items():
        files[src + fname] = text
    c_files = [src + f for f in sources if f.endswith(".c")]
    rt = _cmake_path(runtime_rel)
    if fmt == "platformio-lib":
        files["library.json"] = json.dumps({
            "name": name, "version": __version__, "description": desc,
            "keywords": ["tinyml", "tinyedge"], "frameworks": "*", "platforms": "*",
            "build": {"srcDir": "src", "includeDir": "src", "flags": ["-O2"], "srcFilter": ["+<*.c>"]},
        }, indent=2) + "\n"
    elif fmt == "arduino-lib":
        files["library.properties"] = "\n".join([
            f"name={name}", f"version={__version__}", "author=tinyedge", "maintainer=tinyedge",
            f"sentence={desc}.", f"paragraph=Needs the {RUNTIME_NAME} library of the same tinyedge version.",
            "category=Data Processing", "url=https://github.com/", "architectures=*", f"includes={name}.h", ""])
    elif fmt == "cmake":
        files["CMakeLists.txt"] = f"""\
# {name}: {desc}.
#   add_subdirectory(<this folder>) then target_link_libraries(app PRIVATE {name})
# The kernels are the te_runtime target, added once however many exported models a firmware uses.
cmake_minimum_required(VERSION 3.13)
if(NOT TARGET {RUNTIME_NAME})
  add_subdirectory(${{CMAKE_CURRENT_LIST_DIR}}/{rt} ${{CMAKE_BINARY_DIR}}/{RUNTIME_NAME})
endif()
add_library({name} STATIC {' '.join('${CMAKE_CURRENT_LIST_DIR}/' + c for c in c_files)})
target_include_directories({name} PUBLIC ${{CMAKE_CURRENT_LIST_DIR}}/src)
target_link_libraries({name} PUBLIC {RUNTIME_NAME})
"""
        files[f"cmake/arm-none-eabi-{board.core}.cmake"] = toolchain_file(board)
    elif fmt == "zephyr-module":
        config = f"TINYEDGE_{name.upper()}"
        files["zephyr/module.yml"] = f"name: {name}\nbuild:\n  cmake: .\n  kconfig: Kconfig\n"
        files["Kconfig"] = f"""\
config {config}
\tbool "{name}: tinyedge model {graph.name}"
\tdefault y
\thelp
\t  The model {graph.name} as a library ({name}_invoke() and friends, see src/{name}.h), with
\t  tinyedge's kernels (te_runtime, shared with the other tinyedge models of the firmware).
"""
        files["CMakeLists.txt"] = f"""\
# {name}: {desc}.
# A Zephyr module: list this folder in ZEPHYR_EXTRA_MODULES (with the other models' folders).
if(CONFIG_{config})
  # The kernels, once for every tinyedge model of the firmware.
  if(NOT TARGET {RUNTIME_NAME})
    file(GLOB TE_RUNTIME_SOURCES ${{CMAKE_CURRENT_LIST_DIR}}/{rt}/src/*.c)
    zephyr_library_named({RUNTIME_NAME})
    zephyr_library_sources(${{TE_RUNTIME_SOURCES}})
    zephyr_include_directories(${{CMAKE_CURRENT_LIST_DIR}}/{rt}/src)
  endif()
  zephyr_library_named({name})
  zephyr_library_sources({' '.join('${CMAKE_CURRENT_LIST_DIR}/' + c for c in c_files)})
  zephyr_include_directories(${{CMAKE_CURRENT_LIST_DIR}}/src)
endif()
"""
    return files


def _readme(fmt: str, name: str, graph: Graph, board: Board, caller_arena: bool, runtime_rel: str) -> str:
    up = name.upper()
    init = (f"static uint8_t arena[{up}_ARENA_BYTES] __attribute__((aligned({up}_ARENA_ALIGN)));\n"
            f"if ({name}_init(arena, sizeof arena) != 0) {{ /* too small or misaligned */ }}"
            if caller_arena else f"{name}_init(NULL, 0);  /* optional: the arena is inside the library */")
    return f"""\
# {name}: {graph.name} as a library (`tinyedge export --format {fmt}`, tinyedge {__version__}, {board.id})

The kernels are in `{runtime_rel}` (te_runtime): build it once per firmware, whatever the number of models.
API in `{name}.h` (C and C++):

```c
#include "{name}.h"
{init}
if ({name}_selftest() != 0) {{ /* this build does not compute what the tflite_micro interpreter does */ }}
{name}_quantize_input(features);   /* or write {up}_INPUT_BYTES int8 bytes to {name}_input() */
{name}_invoke();
{name}_dequantize_output(scores);  /* or read {up}_OUTPUT_COUNT int8 values at {name}_output() */
```

`{name}_selftest()` runs a golden input built into the library and compares every output byte with the
tflite_micro interpreter's: 0 when all match, i + 1 for the first differing output byte i. It overwrites
the input and output buffers. Regenerating over this folder keeps files you added and refuses to
overwrite a generated file you changed (`--force` to overwrite); `tinyedge.json` records what was generated.
"""


def export_model(model: str | Path | Graph, board: str | Board, out_dir: str | Path, *, fmt: str, name: str,
                 calib: str | Path | None = None, arena: str = "static", arena_section: str | None = None,
                 weights_section: str | None = None, runtime_dir: str | Path | None = None,
                 force: bool = False) -> ExportResult:
    """Export ``model`` for ``board`` as a library in format ``fmt`` (one of FORMATS) into ``out_dir``.

    The kernels go to ``runtime_dir`` (default ``out_dir/../te_runtime``), shared with the other models
    exported there by this tinyedge version. Raises UnsupportedModelError, FitError (arena or weights larger
    than the board), OracleError (the self-test's reference output), EditedFilesError (a generated file you
    changed, unless ``force``) or TinyedgeError (bad name/section, a runtime of another version).
    """
    if fmt not in FORMATS:
        raise TinyedgeError(f"unknown export format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    if arena not in ARENA_MODES:
        raise TinyedgeError(f"unknown --arena {arena!r}", "use static (inside the library) or caller")
    for opt, section in (("--arena-section", arena_section), ("--weights-section", weights_section)):
        if section is not None and not _SECTION.match(section):
            raise TinyedgeError(f"{opt} {section!r} is not a section name",
                                "pass a linker section name such as .dtcm_bss or .ext_flash")
    check_name(name)
    board = board if isinstance(board, Board) else get_board(board)
    graph = load_export_model(model, calib)
    out = Path(out_dir)
    if fmt == "tflm":
        export_tflm(graph, board, out, name=name, force=force)
        return ExportResult(out, None, False, fmt, name, graph, board, None, None)
    if fmt == "cmake":
        core_info(board.core)  # an unknown core has no toolchain file: BoardError before writing
    program = specialize(build_program(graph), board)
    plan = plan_memory(program)
    problems = []
    if plan.arena_bytes > board.ram.size:
        problems.append(f"RAM: the arena needs {plan.arena_bytes} bytes, {board.id} has {board.ram.size}")
    if program.weight_bytes > board.flash.size:
        problems.append(f"flash: the weights need {program.weight_bytes} bytes, {board.id} has {board.flash.size}")
    if problems:
        raise FitError(f"model '{graph.name}' does not fit {board.id}: " + "; ".join(problems),
                       "pick a board with more memory (`tinyedge boards`), or shrink the model")
    api = ApiOptions(name=name, golden=golden_vectors(program), caller_arena=arena == "caller",
                     arena_section=arena_section, weights_section=weights_section,
                     runtime_version_num=version_num(), runtime_symbol=version_symbol())
    cmodel = render_model(program, plan, api=api)
    sources = {rel[len("src/"):]: text for rel, text in cmodel.files.items()
               if rel in (f"src/{name}.h", f"src/{name}.c", f"src/{name}_data.h", f"src/{name}_data.c")}
    rt_dir = Path(runtime_dir) if runtime_dir is not None else out.parent / RUNTIME_NAME
    runtime_rel = os.path.relpath(rt_dir.resolve(), out.resolve())
    files = _layout(fmt, name, sources, graph, board, runtime_rel)
    files["README.md"] = _readme(fmt, name, graph, board, arena == "caller", runtime_rel)
    files["model.tflite"] = graph.model_bytes
    files[MANIFEST] = json.dumps({
        "tinyedge_version": __version__, "format": fmt, "name": name, "board": board.id,
        "model": graph.name, "model_sha256": graph.sha256, "arena": arena, "arena_bytes": plan.arena_bytes,
        "arena_section": arena_section, "weights_section": weights_section, "weight_bytes": program.weight_bytes,
        "macs": program.macs, "runtime": _cmake_path(runtime_rel), "layers": [s.op.opcode for s in program.steps],
    }, indent=2) + "\n"
    written = write_runtime(rt_dir, force=force)
    write_project(files, out, force=force)
    return ExportResult(out, rt_dir, written, fmt, name, graph, board, program, plan)
