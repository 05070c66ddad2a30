"""The C runtime (tinyedge/runtime/) on its own: its C unit tests built and run on the host, and every
runtime source compiled for Cortex-M with warnings as errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tinyedge.boards import get_board
from tinyedge.codegen.cmodel import ApiOptions
from tinyedge.firmware.project import project_files
from tinyedge.paths import runtime_dir
from tinyedge.proc import run
from tinyedge.render import render

RUNTIME = runtime_dir()
HOST_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror"]
ARM_FLAGS = ["-mthumb", "-O2", "-Wall", "-Wextra", "-Werror", "-c"]
CPUS = {
    "cortex-m4": ["-mcpu=cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],  # the DSP extension
    "cortex-m0": ["-mcpu=cortex-m0"],  # ARMv6-M: the DSP kernels fall back to their C models
}

# test program (tinyedge/runtime/tests/<name>.c) -> the runtime sources it links
C_TESTS = {
    "test_kernels": ["te_kernels.c"],
    "test_elementwise": ["te_kernels_elementwise.c", "te_kernels_shape.c", "te_kernels.c"],
    # includes te_kernels_elementwise.c itself, with the fast ADD built on the host (TE_ADD_FAST)
    "test_add_fast": ["te_kernels_shape.c", "te_kernels.c"],
    "test_dsp": ["te_kernels_dsp.c", "te_kernels_dsp_dw.c", "te_kernels_dsp_fc.c", "te_kernels.c"],
    # main.c's m-results formatter against the host printf("%.3f"); includes main.c itself, which needs the
    # generated headers (_generated_headers) and -DTE_HOST
    "test_format": [],
}


def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("host gcc not available (apt-get install gcc)")
    return gcc


def _generated_headers(folder: Path) -> Path:
    """The generated headers main.c and the host harness include: te_port.h for a real board, and
    te_model.h / te_version.h rendered from their templates for a small made-up model."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "te_port.h").write_text(project_files(get_board("qemu-mps2-an386"), project_name="t")["src/te_port.h"])
    model = dict(name="unit", sha256="ab" * 32, mlperf_id="ic01", input_bytes=40, output_count=4, output_bytes=4,
                 input_is_float=0, output_is_float=0, input_is_int16=0, output_is_int16=0, input_dtype="int8",
                 output_dtype="int8", arena_bytes=64, macs=100, input_scale="0.5",
                 input_zero_point=-1, output_scale="0.00390625", output_zero_point=-128)
    (folder / "te_model.h").write_text(render("te_model.h.j2", model=model, steps=[{}] * 3, version="0.0.0-unit",
                                                api=ApiOptions().context()))
    (folder / "te_version.h").write_text(render("te_version.h.j2", version="0.0.0-unit"))
    return folder


@pytest.mark.unit
def test_runtime_folder_holds_plain_c() -> None:
    """Copied unchanged into projects, so no template syntax; the DSP kernels are greppable by name."""
    sources = sorted(RUNTIME.glob("*.[ch]"))
    assert {p.name for p in sources} >= {"main.c", "te_host_main.c", "te_kernels.c", "te_kernels_dsp.c"}
    for p in sources:
        text = p.read_text()
        assert "{{" not in text and "{%" not in text, p.name
    dsp = "".join(p.read_text() for p in RUNTIME.glob("te_kernels_dsp*.c"))
    for kernel in ("te_conv2d_s8_dsp", "te_dwconv2d_s8_dsp", "te_dwconv3x3_s8_dsp", "te_fc_s8_dsp"):
        for mode in range(8):
            assert f"void {kernel}_m{mode}(" in dsp, f"{kernel}_m{mode}"
    assert "##" not in dsp


#: The %0.3f formatter's test compares ~4.8 million floats with printf: the slow tier; the kernels' are unit.
SLOW_C_TESTS = {"test_format"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow if n in SLOW_C_TESTS else pytest.mark.unit)
                                  for n in sorted(C_TESTS)])
def test_c_unit_tests(name: str, tmp_path: Path) -> None:
    exe = tmp_path / name
    inc = _generated_headers(tmp_path / "inc")
    run([_gcc(), *HOST_FLAGS, "-O1", "-DTE_HOST", "-I", RUNTIME, "-I", inc, RUNTIME / "tests" / f"{name}.c",
         *[RUNTIME / s for s in C_TESTS[name]], "-lm", "-o", exe], what=f"host build of {name}")
    proc = run([exe], check=False, capture=True, what=name, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and " 0 failed" in out, out


@pytest.mark.unit
def test_host_harness_compiles(tmp_path: Path) -> None:
    inc = _generated_headers(tmp_path / "inc")
    run([_gcc(), *HOST_FLAGS, "-O2", "-I", inc, "-c", RUNTIME / "te_host_main.c", "-o", tmp_path / "h.o"],
        what="host build of te_host_main.c")


@pytest.mark.slow  # cross-compiles the runtime: kept out of the unit tier
@pytest.mark.parametrize("cpu", sorted(CPUS))
def test_runtime_compiles_for_cortex_m(cpu: str, tmp_path: Path) -> None:
    """Every board builds every file in src/, so the DSP kernels must compile for ARMv6-M too."""
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc not available (apt-get install gcc-arm-none-eabi)")
    inc = _generated_headers(tmp_path / "inc")
    sources = sorted(p for p in RUNTIME.glob("*.c") if p.name != "te_host_main.c")  # the harness is host-only
    run([gcc, *CPUS[cpu], *ARM_FLAGS, "-I", RUNTIME, "-I", inc, *sources], cwd=tmp_path,
        what=f"{cpu} build of the runtime")
    assert sorted(p.name for p in tmp_path.glob("*.o")) == sorted(p.stem + ".o" for p in sources)


# ------------------------------------------------------------------------------- the host object store
def _compiles(caplog) -> int:
    return sum(" -c " in r.getMessage() for r in caplog.records if r.name == "tinyedge.proc")


@pytest.mark.unit
def test_host_kernel_objects_compile_once_per_source_and_flags(tmp_path, monkeypatch, caplog):
    """The host harness keeps compiled kernels in a store keyed by compiler, flags and the preprocessed
    source: the same source again is a copy, a changed source (or a changed define) is compiled again."""
    from tinyedge.codegen import host  # noqa: PLC0415

    gcc = _gcc()
    monkeypatch.setenv("TINYEDGE_CACHE_DIR", str(tmp_path / "cache"))
    store = host._object_store()
    assert store == tmp_path / "cache" / "host-objects"
    work = tmp_path / "w"
    shutil.copytree(RUNTIME, work / "src", ignore=shutil.ignore_patterns("tests", "*.j2"))
    src = work / "src" / "te_kernels_shape.c"
    flags = ("-std=c99", "-O1")
    caplog.set_level("INFO", logger="tinyedge.proc")

    host._compile_kernel(gcc, flags, src, work / "src", tmp_path / "a.o", store)
    assert _compiles(caplog) == 1 and len(list(store.glob("*.o"))) == 1
    host._compile_kernel(gcc, flags, src, work / "src", tmp_path / "b.o", store)  # same key: from the store
    assert _compiles(caplog) == 1 and (tmp_path / "b.o").read_bytes() == (tmp_path / "a.o").read_bytes()
    host._compile_kernel(gcc, (*flags, "-DTE_UNUSED_DEFINE=1"), src, work / "src", tmp_path / "c.o", store)
    src.write_text(src.read_text() + "\nint te_unit_extra(void) { return 1; }\n")  # a mutated kernel
    host._compile_kernel(gcc, flags, src, work / "src", tmp_path / "d.o", store)
    assert _compiles(caplog) == 3 and len(list(store.glob("*.o"))) == 3
    nm = run(["nm", tmp_path / "d.o"]).stdout
    assert "te_unit_extra" in nm and "te_unit_extra" not in run(["nm", tmp_path / "a.o"]).stdout
    assert not list(store.glob("*.tmp.o"))  # nothing half-written left behind


@pytest.mark.unit
def test_host_kernel_store_lock_has_a_deadline(tmp_path, monkeypatch, caplog):
    """A lock another process never releases delays a compile by LOCK_WAIT_S at most, with a warning."""
    import fcntl  # noqa: PLC0415

    from tinyedge.codegen import host  # noqa: PLC0415

    monkeypatch.setattr(host, "LOCK_WAIT_S", 0.3)
    lock = tmp_path / "x.lock"
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with host._locked(lock):  # its own open file description: the lock is contended
            pass
    assert "still locked" in caplog.text
