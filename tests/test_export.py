"""``tinyedge export``: the namespaced C API, the shared runtime, placement, the self-test and each format's
layout, built with what is installed here (host gcc, arm-none-eabi-gcc/g++, cmake, PlatformIO + QEMU)."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from conftest import shared_model
from helpers import conv_model, fc_model
from tinyedge.boards import get_board
from tinyedge.cli import cli
from tinyedge.data import quantize_inputs
from tinyedge.errors import TinyedgeError
from tinyedge.export import export_model
from tinyedge.export.runtime import version_symbol
from tinyedge.firmware import build_project, project_files
from tinyedge.firmware.generate import EditedFilesError
from tinyedge.model import read_model_bytes
from tinyedge.oracle import run_tflm
from tinyedge.proc import run
from tinyedge.runners import QemuSession

BOARD = "qemu-mps2-an386"
HOST = ["gcc", "-std=c99", "-O1", "-Wall", "-Wextra", "-Werror"]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def small(kind: str, seed: int, name: str):
    model = (fc_model if kind == "fc" else conv_model)(seed)[0]
    return read_model_bytes(model, name=name)


# A host program that feeds stdin rows through both models and writes both outputs (each model's
# selftest result first, as one signed byte each).
TWO_MODELS_MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "a.h"
#include "b.h"
int main(void) {
    signed char st[2] = {(signed char)a_selftest(), (signed char)b_selftest()};
    fwrite(st, 1, 2, stdout);
    static int8_t xa[A_INPUT_BYTES], xb[B_INPUT_BYTES];
    while (fread(xa, 1, A_INPUT_BYTES, stdin) == A_INPUT_BYTES && fread(xb, 1, B_INPUT_BYTES, stdin) == B_INPUT_BYTES) {
        memcpy(a_input(), xa, A_INPUT_BYTES);
        memcpy(b_input(), xb, B_INPUT_BYTES);
        a_invoke();
        b_invoke();
        fwrite(a_output(), 1, A_OUTPUT_BYTES, stdout);
        fwrite(b_output(), 1, B_OUTPUT_BYTES, stdout);
    }
    return 0;
}
"""


def c_files(lib: Path) -> list[Path]:
    return sorted(lib.rglob("*.c"))


def build_two(tmp_path: Path, a: Path, b: Path, runtime: Path, extra: tuple[str, ...] = ()) -> Path:
    main = tmp_path / "main.c"
    main.write_text(TWO_MODELS_MAIN)
    exe = tmp_path / "two"
    run([*HOST, *extra, "-I", runtime / "src", "-I", a / "src", "-I", b / "src", *c_files(runtime), *c_files(a),
         *c_files(b), main, "-o", exe], what="host build of two exports")
    return exe


def run_two(exe: Path, xa: np.ndarray, xb: np.ndarray, na: int, nb: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    stream = b"".join(ra.tobytes() + rb.tobytes() for ra, rb in zip(xa, xb))
    out = run([exe], capture=True, what="two models", stdin_bytes=stream).stdout
    st = list(np.frombuffer(out[:2], dtype=np.int8))
    rows = np.frombuffer(out[2:], dtype=np.int8).reshape(len(xa), na + nb)
    return st, rows[:, :na], rows[:, na:]


def rand_inputs(graph, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=(n, *graph.input.shape), dtype=np.int8)


@pytest.mark.slow  # compiles and links C: kept out of the one-minute unit tier
def test_two_models_one_image_bit_exact_and_selftest(tmp_path):
    ga, gb = small("conv", 3, "conv_a"), small("fc", 4, "fc_b")
    ra = export_model(ga, BOARD, tmp_path / "libs" / "a", fmt="platformio-lib", name="a")
    rb = export_model(gb, BOARD, tmp_path / "libs" / "b", fmt="cmake", name="b")
    assert ra.runtime == rb.runtime == tmp_path / "libs" / "te_runtime"
    assert ra.runtime_written and not rb.runtime_written  # the second export found the same runtime
    exe = build_two(tmp_path, ra.path, rb.path, ra.runtime)
    xa, xb = rand_inputs(ga, 8, 1), rand_inputs(gb, 8, 2)
    st, ya, yb = run_two(exe, xa, xb, ga.output.size, gb.output.size)
    assert st == [0, 0]
    np.testing.assert_array_equal(ya, run_tflm(ga.model_bytes, xa).reshape(8, -1))
    np.testing.assert_array_equal(yb, run_tflm(gb.model_bytes, xb).reshape(8, -1))
    # No symbol of one model clashes with the other's: every external symbol carries the model's name.
    for lib, name in ((ra.path, "a"), (rb.path, "b")):
        for c in c_files(lib):
            obj = tmp_path / (c.stem + ".o")
            run([*HOST, "-I", ra.runtime / "src", "-I", lib / "src", "-c", c, "-o", obj], what="compile")
            syms = run(["nm", "-g", "--defined-only", obj], capture=True, what="nm").stdout.split()[2::3]
            assert syms and all(s.startswith(f"{name}_") for s in syms), syms


@pytest.mark.slow  # compiles and links C: kept out of the one-minute unit tier
def test_shared_models_kws_and_ad_in_one_image(tmp_path):
    gk, ga = (read_model_bytes(shared_model(m).read_bytes(), name=n)
              for m, n in (("kws_ref_model.tflite", "kws"), ("ad01_int8.tflite", "ad")))
    rk = export_model(gk, BOARD, tmp_path / "kws", fmt="c", name="kws")
    rad = export_model(ga, BOARD, tmp_path / "ad", fmt="c", name="ad")
    main = tmp_path / "main.c"
    main.write_text(TWO_MODELS_MAIN.replace('"a.h"', '"kws.h"').replace('"b.h"', '"ad.h"')
                    .replace("a_", "kws_").replace("A_", "KWS_").replace("b_", "ad_").replace("B_", "AD_"))
    exe = tmp_path / "two"
    run([*HOST, "-I", rk.runtime / "src", "-I", rk.path, "-I", rad.path, *c_files(rk.runtime), *c_files(rk.path),
         *c_files(rad.path), main, "-o", exe], what="host build")
    xk, xa = rand_inputs(gk, 4, 5), rand_inputs(ga, 4, 6)
    st, yk, ya = run_two(exe, xk, xa, gk.output.size, ga.output.size)
    assert st == [0, 0]
    np.testing.assert_array_equal(yk, run_tflm(gk.model_bytes, xk).reshape(4, -1))
    np.testing.assert_array_equal(ya, run_tflm(ga.model_bytes, xa).reshape(4, -1))


@pytest.mark.slow  # compiles and links C: kept out of the one-minute unit tier
def test_selftest_fails_on_one_corrupted_weight_byte(tmp_path):
    g = small("conv", 7, "conv")
    r = export_model(g, BOARD, tmp_path / "m", fmt="c", name="m")
    main = tmp_path / "main.c"
    main.write_text('#include <stdio.h>\n#include "m.h"\nint main(void) { printf("%d\\n", m_selftest()); return 0; }\n')

    def selftest() -> int:
        exe = tmp_path / "st"
        run([*HOST, "-I", r.runtime / "src", "-I", r.path, *c_files(r.runtime), *c_files(r.path), main, "-o", exe],
            what="host build")
        return int(run([exe], capture=True, what="selftest").stdout)

    assert selftest() == 0
    data = r.path / "m_data.c"
    text = data.read_text()
    # The first value of the first int8 weight array, changed by one.
    m = re.search(r"(const int8_t m_l\d+_\w+\[\d+\][^{]*= \{\n    )(-?\d+)", text)
    assert m is not None
    data.write_text(text[:m.start(2)] + ("127" if int(m.group(2)) < 0 else "-128") + text[m.end(2):])
    got = selftest()
    assert got > 0  # index of the first differing output byte + 1


@pytest.mark.slow  # compiles and links C: kept out of the one-minute unit tier
def test_quantize_helpers_match_tinyedge_data(tmp_path):
    g = small("fc", 11, "fc")
    r = export_model(g, BOARD, tmp_path / "q", fmt="c", name="q")
    scale, zp = float(g.input.scale[0]), int(g.input.zero_point[0])
    n = g.input.size
    rng = np.random.default_rng(0)
    # ties (k + 0.5) * scale, large values, negatives, NaN and infinities
    x = np.concatenate([(rng.integers(-200, 200, n) + 0.5) * np.float32(scale), rng.normal(0, 3, n) * scale * 40,
                        np.array([np.nan, np.inf, -np.inf, 1e30, -1e30] + [0.0] * (n - 5))]).astype(np.float32)
    x = x[: (len(x) // n) * n].reshape(-1, n)
    main = tmp_path / "main.c"
    main.write_text(textwrap.dedent("""\
        #include <stdio.h>
        #include "q.h"
        int main(void) {
            static float x[Q_INPUT_BYTES], y[Q_OUTPUT_COUNT];
            while (fread(x, sizeof(float), Q_INPUT_BYTES, stdin) == Q_INPUT_BYTES) {
                q_quantize_input(x);
                fwrite(q_input(), 1, Q_INPUT_BYTES, stdout);
                q_invoke();
                q_dequantize_output(y);
                fwrite(y, sizeof(float), Q_OUTPUT_COUNT, stdout);
            }
            return 0;
        }
        """))
    exe = tmp_path / "q.exe"
    run([*HOST, "-I", r.runtime / "src", "-I", r.path, *c_files(r.runtime), *c_files(r.path), main, "-o", exe],
        what="host build")
    out = run([exe], capture=True, what="quantize", stdin_bytes=x.tobytes()).stdout
    per = n + 4 * g.output.size
    rows = [out[i * per:(i + 1) * per] for i in range(len(x))]
    q = np.stack([np.frombuffer(row[:n], dtype=np.int8) for row in rows])
    np.testing.assert_array_equal(q, quantize_inputs(x, scale, zp))
    y = np.stack([np.frombuffer(row[n:], dtype=np.float32) for row in rows])
    yq = run_tflm(g.model_bytes, q.reshape(-1, *g.input.shape)).reshape(len(x), -1).astype(np.int32)
    oscale, ozp = np.float32(g.output.scale[0]), int(g.output.zero_point[0])
    np.testing.assert_array_equal(y, (yq - ozp).astype(np.float32) * oscale)


@pytest.mark.slow  # compiles and links C: kept out of the one-minute unit tier
def test_caller_arena_and_sections(tmp_path):
    g = small("conv", 5, "conv")
    r = export_model(g, BOARD, tmp_path / "m", fmt="c", name="m", arena="caller",
                     weights_section=".ext_flash")
    header = (r.path / "m.h").read_text()
    assert "#define M_ARENA_CALLER 1" in header and 'extern "C"' in header
    assert 'section(".ext_flash")' in (r.path / "m_data.c").read_text()
    main = tmp_path / "main.c"
    main.write_text(textwrap.dedent("""\
        #include <stdio.h>
        #include "m.h"
        static uint8_t arena[M_ARENA_BYTES + 16] __attribute__((aligned(16)));
        int main(void) {
            int before = m_selftest();
            int small = m_init(arena, M_ARENA_BYTES - 1);
            int misaligned = m_init(arena + 1, M_ARENA_BYTES);
            int ok = m_init(arena, M_ARENA_BYTES);
            printf("%d %d %d %d %d\\n", before, small, misaligned, ok, m_selftest());
            return 0;
        }
        """))
    exe = tmp_path / "m.exe"
    run([*HOST, "-I", r.runtime / "src", "-I", r.path, *c_files(r.runtime), *c_files(r.path), main, "-o", exe],
        what="host build")
    assert run([exe], capture=True, what="caller arena").stdout.split() == ["-1", "1", "2", "0", "0"]
    s = export_model(g, BOARD, tmp_path / "s", fmt="c", name="s", arena_section=".dtcm_bss")
    assert 's_arena[S_ARENA_BYTES] __attribute__((aligned(16), section(".dtcm_bss")))' in (s.path / "s.c").read_text()


@pytest.mark.slow  # compiles and links C: kept out of the one-minute unit tier
def test_runtime_of_another_version_fails_to_compile_and_link(tmp_path):
    g = small("fc", 2, "fc")
    r = export_model(g, BOARD, tmp_path / "libs" / "m", fmt="c", name="m")
    main = tmp_path / "main.c"
    main.write_text('#include "m.h"\nint main(void) { m_invoke(); return 0; }\n')
    rt = r.runtime
    # header of another version: the model's #if stops the compile with a message naming the fix
    other = tmp_path / "other"
    shutil.copytree(rt, other)
    hdr = other / "src" / "te_runtime.h"
    hdr.write_text(re.sub(r"TE_RUNTIME_VERSION_NUM \d+", "TE_RUNTIME_VERSION_NUM 99999", hdr.read_text()))
    cmd = [*HOST, "-I", other / "src", "-I", r.path, *c_files(other), *c_files(r.path), main, "-o", tmp_path / "x"]
    proc = run(cmd, check=False, capture=True, what="mismatched build")
    assert proc.returncode != 0 and "re-export every model" in proc.stderr
    # same header number but another version's symbol (a dev build): the link fails naming the symbol
    src = other / "src" / "te_runtime.c"
    shutil.copy(rt / "src" / "te_runtime.h", hdr)
    src.write_text(src.read_text().replace(version_symbol(), "te_runtime_v9_9_9"))
    hdr.write_text(hdr.read_text().replace(version_symbol(), "te_runtime_v9_9_9"))
    proc = run(cmd, check=False, capture=True, what="mismatched link")
    assert proc.returncode != 0 and version_symbol() in proc.stderr
    # exporting next to a runtime of another version is refused
    manifest = rt / "tinyedge.json"
    manifest.write_text(manifest.read_text().replace('"tinyedge_version": "', '"tinyedge_version": "0.0.0-'))
    with pytest.raises(TinyedgeError, match="re-export every model"):
        export_model(g, BOARD, tmp_path / "libs" / "n", fmt="c", name="n")


@pytest.mark.unit
def test_reexport_keeps_user_files_and_refuses_edits(tmp_path):
    g = small("fc", 8, "fc")
    out = tmp_path / "m"
    export_model(g, BOARD, out, fmt="platformio-lib", name="m")
    (out / "notes.txt").write_text("mine")
    export_model(g, BOARD, out, fmt="platformio-lib", name="m")  # unchanged: fine
    assert (out / "notes.txt").read_text() == "mine"
    (out / "src" / "m.c").write_text("/* edited */\n")
    with pytest.raises(EditedFilesError):
        export_model(g, BOARD, out, fmt="platformio-lib", name="m")
    assert (out / "src" / "m.c").read_text() == "/* edited */\n"
    export_model(g, BOARD, out, fmt="platformio-lib", name="m", force=True)
    assert (out / "notes.txt").read_text() == "mine" and "m_invoke" in (out / "src" / "m.c").read_text()


@pytest.mark.unit
def test_bad_names_and_sections_are_refused(tmp_path):
    g = small("fc", 1, "fc")
    for name in ("1abc", "te_x", "a-b"):
        with pytest.raises(TinyedgeError):
            export_model(g, BOARD, tmp_path / "x", fmt="c", name=name)
    with pytest.raises(TinyedgeError, match="section"):
        export_model(g, BOARD, tmp_path / "x", fmt="c", name="x", arena_section='a")))')
    assert not (tmp_path / "x").exists()


@pytest.mark.unit
def test_cli_export(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(fc_model(3)[0])
    res = CliRunner().invoke(cli, ["export", str(model), "--board", BOARD, "--format", "c", "--name", "kws",
                                   "-o", str(tmp_path / "kws")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "kws" / "kws.h").is_file() and (tmp_path / "te_runtime" / "src" / "te_runtime.h").is_file()
    assert "KWS_INPUT_BYTES" in (tmp_path / "kws" / "kws.h").read_text()
    res = CliRunner().invoke(cli, ["export", str(model), "--board", BOARD, "--format", "nope", "--name", "k",
                                   "-o", str(tmp_path / "k")])
    assert res.exit_code != 0


@pytest.mark.slow  # compiles and links C: kept out of the one-minute unit tier
def test_arduino_lib_compiles_with_arm_g_plus_plus(tmp_path):
    if shutil.which("arm-none-eabi-g++") is None:
        pytest.skip("arm-none-eabi-g++ is not installed")
    g = small("conv", 9, "conv")
    r = export_model(g, BOARD, tmp_path / "libraries" / "kws", fmt="arduino-lib", name="kws")
    props = dict(line.split("=", 1) for line in (r.path / "library.properties").read_text().splitlines() if line)
    assert props["name"] == "kws" and props["includes"] == "kws.h" and (r.path / "src" / "kws.h").is_file()
    assert (r.runtime / "library.properties").is_file()
    sketch = tmp_path / "sketch.cpp"
    sketch.write_text(textwrap.dedent("""\
        #include <Arduino.h>
        #include <kws.h>
        static float scores[KWS_OUTPUT_COUNT];
        void setup() { Serial.begin(115200); }
        void loop() {
            int st = kws_selftest();
            kws_invoke();
            kws_dequantize_output(scores);
            Serial.write((uint8_t)st);
        }
        """))
    flags = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-O2", "-Wall", "-Werror"]
    inc = ["-I", FIXTURES / "arduino", "-I", r.path / "src", "-I", r.runtime / "src"]
    # As the Arduino builder does: every .c under src/ as C, the sketch as C++.
    for c in c_files(r.path / "src") + c_files(r.runtime / "src"):
        run(["arm-none-eabi-gcc", *flags, "-std=gnu11", *inc, "-c", c, "-o", tmp_path / (c.stem + ".o")],
            what="arduino C compile")
    run(["arm-none-eabi-g++", *flags, "-std=gnu++17", "-fno-rtti", "-fno-exceptions", *inc, "-c", sketch,
         "-o", tmp_path / "sketch.o"], what="arduino sketch compile")


def _cmake(*args: object, cwd: Path | None = None) -> None:
    run(["cmake", *args], what="cmake", cwd=cwd)


@pytest.mark.slow  # compiles and links C: kept out of the one-minute unit tier
def test_cmake_export_builds_with_arm_none_eabi(tmp_path):
    if shutil.which("cmake") is None or shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("cmake or arm-none-eabi-gcc is not installed")
    ga, gb = small("conv", 12, "conv"), small("fc", 13, "fc")
    ra = export_model(ga, BOARD, tmp_path / "libs" / "kws", fmt="cmake", name="kws")
    export_model(gb, BOARD, tmp_path / "libs" / "ad", fmt="cmake", name="ad")
    toolchain = ra.path / "cmake" / "arm-none-eabi-cortex-m4.cmake"
    assert "-mfpu=fpv4-sp-d16 -mfloat-abi=hard" in toolchain.read_text()
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.c").write_text(textwrap.dedent("""\
        #include "kws.h"
        #include "ad.h"
        int main(void) { return kws_selftest() + ad_selftest(); }
        """))
    (app / "CMakeLists.txt").write_text(textwrap.dedent(f"""\
        cmake_minimum_required(VERSION 3.13)
        project(app C)
        add_subdirectory({(tmp_path / 'libs' / 'kws').as_posix()} kws)
        add_subdirectory({(tmp_path / 'libs' / 'ad').as_posix()} ad)
        add_executable(app.elf main.c)
        target_link_libraries(app.elf PRIVATE kws ad)
        """))
    _cmake("-S", app, "-B", app / "build", f"-DCMAKE_TOOLCHAIN_FILE={toolchain}")
    _cmake("--build", app / "build")
    assert (app / "build" / "app.elf").is_file()


@pytest.mark.slow  # compiles and links C: kept out of the one-minute unit tier
def test_zephyr_module_layout_and_cmake(tmp_path):
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    ga, gb = small("conv", 14, "conv"), small("fc", 15, "fc")
    ra = export_model(ga, BOARD, tmp_path / "mods" / "kws", fmt="zephyr-module", name="kws")
    export_model(gb, BOARD, tmp_path / "mods" / "ad", fmt="zephyr-module", name="ad")
    mod = yaml.safe_load((ra.path / "zephyr" / "module.yml").read_text())
    assert mod == {"name": "kws", "build": {"cmake": ".", "kconfig": "Kconfig"}}
    assert "config TINYEDGE_KWS" in (ra.path / "Kconfig").read_text()
    # Zephyr is not installed: its zephyr_library* functions are stubbed with plain CMake, so the modules'
    # CMakeLists.txt are parsed and built for the host (both models, one te_runtime).
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.c").write_text('#include "kws.h"\n#include "ad.h"\n'
                                'int main(void) { return kws_selftest() + ad_selftest(); }\n')
    (app / "CMakeLists.txt").write_text(textwrap.dedent(f"""\
        cmake_minimum_required(VERSION 3.13)
        project(zstub C)
        set(CONFIG_TINYEDGE_KWS y)
        set(CONFIG_TINYEDGE_AD y)
        add_library(zephyr_interface INTERFACE)
        macro(zephyr_library_named name)
          add_library(${{name}} STATIC)
          target_link_libraries(${{name}} PUBLIC zephyr_interface)
          set(ZEPHYR_CURRENT_LIBRARY ${{name}})
        endmacro()
        function(zephyr_library_sources)
          target_sources(${{ZEPHYR_CURRENT_LIBRARY}} PRIVATE ${{ARGN}})
        endfunction()
        function(zephyr_include_directories)
          target_include_directories(zephyr_interface INTERFACE ${{ARGN}})
        endfunction()
        add_subdirectory({(tmp_path / 'mods' / 'kws').as_posix()} kws)
        add_subdirectory({(tmp_path / 'mods' / 'ad').as_posix()} ad)
        add_executable(app main.c)
        target_link_libraries(app PRIVATE kws ad te_runtime zephyr_interface)
        """))
    _cmake("-S", app, "-B", app / "build")
    _cmake("--build", app / "build")
    assert run([app / "build" / "app"], check=False, what="zephyr stub app").returncode == 0


@pytest.mark.unit
def test_manifest_records_the_export(tmp_path):
    g = small("fc", 21, "fc")
    r = export_model(g, BOARD, tmp_path / "m", fmt="c", name="m", arena="caller")
    m = json.loads((r.path / "tinyedge.json").read_text())
    assert m["format"] == "c" and m["name"] == "m" and m["arena"] == "caller" and m["runtime"] == "../te_runtime"
    assert set(m["files"]) >= {"m.h", "m.c", "m_data.h", "m_data.c", "README.md", "model.tflite"}


@pytest.mark.slow
def test_platformio_lib_in_a_user_project_runs_in_qemu(tmp_path, pio_core):
    board = get_board(BOARD)
    gk, ga = small("conv", 31, "conv"), small("fc", 32, "fc")
    export_model(gk, board, tmp_path / "libs" / "kws", fmt="platformio-lib", name="kws")
    export_model(ga, board, tmp_path / "libs" / "ad", fmt="platformio-lib", name="ad", arena="caller")
    project = tmp_path / "app"
    for rel, text in project_files(board, project_name="app").items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    libs = ", ".join(f"symlink://{(tmp_path / 'libs' / n).as_posix()}" for n in ("kws", "ad", "te_runtime"))
    ini = project / "platformio.ini"
    ini.write_text(ini.read_text() + f"lib_deps = {libs}\n")
    (project / "src" / "main.c").write_text(textwrap.dedent("""\
        #include "te_port.h"
        #include "kws.h"
        #include "ad.h"
        static uint8_t ad_arena[AD_ARENA_BYTES] __attribute__((aligned(AD_ARENA_ALIGN)));
        int main(void) {
            te_port_init();
            int init = ad_init(ad_arena, sizeof ad_arena);
            int k = kws_selftest(), a = ad_selftest();
            te_port_puts(k == 0 && a == 0 && init == 0 ? "selftest ok\\n" : "selftest FAIL\\n");
            te_port_exit(k == 0 && a == 0 && init == 0 ? 0 : 1);
        }
        """))
    result = build_project(project, core_dir=pio_core)
    with QemuSession(board, result.elf) as qemu:
        link = qemu.open_serial(timeout=20)
        assert link.readline().decode().strip() == "selftest ok"
        assert qemu.wait(timeout=20) == 0
