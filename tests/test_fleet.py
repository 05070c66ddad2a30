"""The fleet: the digits example end to end on all eight emulated boards, the real boards' generated
projects (pio project config, compile-only for their core), Renode suites, and the compatibility matrix.

One trained and quantized digits model is shared by the module; one PlatformIO core folder too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import shared_model
from tinyedge import proc
from tinyedge.boards import get_board, list_boards
from tinyedge.cli import cli
from tinyedge.errors import BoardError, ToolError
from tinyedge.firmware import generate_project
from tinyedge.firmware.pio import _download_error, pio_command, uses_tinyedge_platform
from tinyedge.firmware.provision import pio_env
from tinyedge.matrix import compatibility_matrix
from tinyedge.model import load_model
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm
from tinyedge.paths import renode_dir
from tinyedge.pipeline import run_pipeline
from tinyedge.runners.renode import RENODE_HINT, renode_script, robot_suite, write_renode_files

EMULATED = ["qemu-mps2-an385", "qemu-mps2-an386", "qemu-mps2-an500", "qemu-mps2-an505", "qemu-mps3-an547",
            "qemu-netduinoplus2", "qemu-lm3s6965evb", "qemu-microbit"]
REAL = ["nucleo_l4r5zi", "nucleo_f746zg", "nucleo_h743zi", "nano33ble", "pico", "esp32-s3-devkitc-1"]
RENODE_BOARDS = sorted(b.id for b in list_boards() if (b.emulator or {}).get("renode"))
ARDUINO_STUB = Path(__file__).parent / "fixtures" / "arduino"
E2E_SAMPLES = 50

needs_arm = pytest.mark.skipif(not shutil.which("arm-none-eabi-gcc"), reason="needs arm-none-eabi-gcc")
needs_qemu = pytest.mark.skipif(not shutil.which("qemu-system-arm"), reason="needs qemu-system-arm")


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def fleet_model(digits, digits_tflite) -> dict[str, Path]:
    """The digits example (trained and quantized once per session, see conftest) for every board."""
    return {"tflite": digits_tflite, "test": digits["test"]}


# ------------------------------------------------------------------------------------------ emulated fleet
@pytest.mark.slow
@needs_arm
@needs_qemu
@pytest.mark.parametrize("board_id", EMULATED)
def test_digits_end_to_end(board_id, fleet_model, pio_core, tmp_path):
    """Generate, build, run in QEMU and score: outputs bit-exact with tflite_micro on every board."""
    result = run_pipeline(fleet_model["tflite"], board_id, fleet_model["test"], tmp_path / "run", limit=E2E_SAMPLES,
                          core_dir=pio_core, progress=False)
    d = result.report.data
    assert d["board"] == board_id and d["emulated"] is True and d["samples"] == E2E_SAMPLES
    assert d["parity"] == 1.0
    assert d["accuracy"] >= 0.9
    # A real count of executed work: no core does more than 2 MACs per instruction (SMLAD).
    assert d["instructions"] > build_program(load_model(fleet_model["tflite"])).macs / 2
    board = get_board(board_id)
    assert result.build.flash_bytes <= board.flash.size and result.build.ram_bytes <= board.ram.size


# ------------------------------------------------------------------------------------------ real boards
@pytest.fixture(scope="module")
def real_projects(fleet_model, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("real")
    return {b: generate_project(fleet_model["tflite"], b, root / b).path for b in REAL}


@pytest.mark.slow
@pytest.mark.parametrize("board_id", REAL)
def test_real_board_project_passes_pio_project_config(board_id, real_projects, tmp_path):
    """Offline: PlatformIO parses and validates the project's configuration (the platform is not needed)."""
    project = real_projects[board_id]
    board = get_board(board_id)
    assert not (project / "linker.ld").exists() and not (project / "src" / "startup.c").exists()
    assert (project / "src" / "te_port.cpp").is_file()
    out = proc.run(pio_command("project", "config", "-d", str(project), "--json-output"),
                   env=pio_env(tmp_path / "core"), timeout=120)
    assert "Warning" not in out.stdout + out.stderr
    config = dict(json.loads(out.stdout[out.stdout.index("["):]))
    env = dict(config[f"env:{board_id}"])
    assert env["platform"] == board.platformio["platform"] and env["board"] == board.platformio["board"]
    assert env["framework"] == ["arduino"] and env["upload_protocol"] == board.platformio["upload_protocol"]
    assert env["monitor_speed"] == 115200 and env["build_src_flags"] == ["-Dmain=te_app_main"]


def _machine_flags(board) -> list[str]:
    flags = [f"-mcpu={board.core}", "-mthumb"]
    if board.fpu != "none":
        flags += [f"-mfpu={board.fpu}", "-mfloat-abi=hard"]
    return flags


@pytest.mark.slow
@needs_arm
@pytest.mark.parametrize("board_id", [b for b in REAL if get_board(b).core.startswith("cortex-")])
def test_real_board_sources_compile_for_their_core(board_id, real_projects, tmp_path):
    """The generated model, kernels and command loop compile with arm-none-eabi-gcc -mcpu=<core>
    (compile-only); the Arduino port type-checks with arm-none-eabi-g++ against a stand-in Arduino.h."""
    project = real_projects[board_id]
    board = get_board(board_id)
    flags = _machine_flags(board)
    sources = sorted((project / "src").glob("*.c"))
    assert {p.name for p in sources} >= {"main.c", "te_model.c", "te_model_data.c"}
    for src in sources:
        proc.run(["arm-none-eabi-gcc", "-std=gnu11", "-O2", "-Wall", "-Werror=implicit-function-declaration",
                  "-Dmain=te_app_main", *flags, "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))])
    if shutil.which("arm-none-eabi-g++"):
        proc.run(["arm-none-eabi-g++", "-std=gnu++17", "-O2", "-Wall", "-Wextra", "-Werror", "-fno-exceptions",
                  "-fno-rtti", "-Dmain=te_app_main", f"-I{ARDUINO_STUB}", *flags, "-c",
                  str(project / "src" / "te_port.cpp"), "-o", str(tmp_path / "te_port.o")])
    # main() is renamed so the Arduino core keeps its own; the port starts the command loop from setup().
    nm = proc.run(["arm-none-eabi-nm", str(tmp_path / "main.o")]).stdout
    assert " T te_app_main" in nm and " T main" not in nm


@pytest.mark.slow
def test_esp32_sources_are_portable_c(real_projects, tmp_path):
    """ESP32-S3 is Xtensa: no xtensa-esp32s3-elf-gcc here, so the C sources are only checked to be portable
    C99/gnu11 with the host compiler (the DSP paths are ARM-only and compiled out)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no host C compiler")
    project = real_projects["esp32-s3-devkitc-1"]
    for src in sorted((project / "src").glob("*.c")):
        proc.run([cc, "-std=gnu11", "-O1", "-Dmain=te_app_main", "-c", str(src),
                  "-o", str(tmp_path / (src.stem + ".o"))])


@pytest.mark.slow
def test_real_board_build_offline_says_what_is_missing(real_projects):
    """A stock-platform project needs no arm-none-eabi-gcc (its platform brings a toolchain); offline, `pio run`
    fails to install the platform (after ~1 minute of retries, so the output it printed here is replayed)."""
    project = real_projects["pico"]
    assert not uses_tinyedge_platform(project)
    output = ("Processing pico (platform: raspberrypi; board: pico; framework: arduino)\n" + "-" * 80 +
              "\nPlatform Manager: Installing raspberrypi\nHTTPClientError: \n")
    err = _download_error(project, output)
    assert isinstance(err, ToolError)
    assert "could not download" in str(err) and "raspberrypi" in str(err) and "internet" in str(err)
    assert _download_error(project, "src/main.c:3: error: expected ';'") is None


@pytest.mark.slow
def test_arduino_port_follows_the_board_timer(real_projects):
    dwt = (real_projects["nucleo_h743zi"] / "src" / "te_port.cpp").read_text()
    micros = (real_projects["pico"] / "src" / "te_port.cpp").read_text()
    assert "TE_DWT_CYCCNT" in dwt and "micros()" in dwt  # DWT, with micros() as fallback
    assert "TE_DWT_CYCCNT" not in micros and "micros()" in micros
    assert "#define TE_SERIAL Serial " in micros


# ------------------------------------------------------------------------------------------ Renode
def _robot_errors(path: Path) -> list[str]:
    from robot.api import get_model  # noqa: PLC0415  (robotframework: only the Renode suite test)
    from robot.api.parsing import ModelVisitor  # noqa: PLC0415  (robotframework: only the Renode suite test)

    class Errors(ModelVisitor):
        def __init__(self) -> None:
            self.found: list[str] = []

        def generic_visit(self, node) -> None:  # noqa: ANN001
            self.found += [str(e) for e in (getattr(node, "errors", None) or ())]
            super().generic_visit(node)

    visitor = Errors()
    visitor.visit(get_model(str(path)))
    return visitor.found


@pytest.mark.unit
def test_some_boards_have_renode_platforms():
    assert "qemu-netduinoplus2" in RENODE_BOARDS and len(RENODE_BOARDS) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("board_id", RENODE_BOARDS)
def test_generated_robot_suite_parses(board_id, fleet_model, tmp_path):
    """Robot Framework's own parser accepts the suite; it boots, waits for m-init-done and checks one
    inference's outputs against tflite_micro's."""
    from robot.running import TestSuiteBuilder  # noqa: PLC0415  (robotframework: only the Renode suite test)

    project = generate_project(fleet_model["tflite"], board_id, tmp_path / "p").path
    files = write_renode_files(project)
    assert files.robot.parent == project / "renode" and files.resc.name == f"{board_id}.resc"
    assert _robot_errors(files.robot) == []
    suite = TestSuiteBuilder().build(str(files.robot))
    assert [t.name for t in suite.tests] == ["Boots And Reports Init Done", "Runs One Inference Bit Exact With TFLM"]
    text = files.robot.read_text()
    assert "m-init-done" in text and "te-results%" in text and str(files.elf) in text
    # The expected outputs are tflite_micro's for the suite's input (the db lines).
    hexes = [ln.split()[-1] for ln in text.splitlines() if ln.strip().startswith("Send Command") and " db " in ln
             and "load" not in ln]
    x = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=np.int8).reshape(1, 8, 8, 1)
    out = run_tflm(project.joinpath("model.tflite").read_bytes(), x).reshape(-1)
    assert ("out=\\\\[" + ",".join(str(int(v)).replace("-", "\\\\-") for v in out) + "\\\\]") in text
    board = get_board(board_id)
    resc = files.resc.read_text()
    assert f"LoadPlatformDescription @{board.emulator['renode']['platform']}" in resc
    assert f"connector Connect {board.emulator['renode']['uart']} te-uart" in resc


@pytest.mark.unit
def test_robot_suite_expects_each_output_type_as_te_results_prints_it():
    """int8 ``out=``, int16 ``out16=`` and float32 ``outf=`` with the floats' IEEE bits (before, a float output's
    expected line held the floats truncated to ints and could never match)."""
    board = get_board(RENODE_BOARDS[0])
    for values, line in ((np.array([-3, 5], dtype=np.int8), "out=\\\\[\\\\-3,5\\\\]"),
                         (np.array([-300, 7], dtype=np.int16), "out16=\\\\[\\\\-300,7\\\\]"),
                         (np.array([1.0, -0.75], dtype=np.float32), "outf=\\\\[3F800000,BF400000\\\\]")):
        text = robot_suite(board, "fw.elf", model_name="m", model_sha256="ab" * 32, input_bytes=b"\x01",
                           expected_out=values)
        assert line in text, (values.dtype, [ln for ln in text.splitlines() if "te-results" in ln])


@pytest.mark.unit
def test_shipped_renode_scripts_are_up_to_date():
    shipped = sorted(p.stem for p in renode_dir().glob("*.resc"))
    assert shipped == RENODE_BOARDS
    for board_id in shipped:
        assert (renode_dir() / f"{board_id}.resc").read_text() == renode_script(get_board(board_id)), (
            "regenerate with: python -c "
            "'from tinyedge.runners.renode import write_shipped_scripts as w; w(\"renode\")'")


@pytest.mark.slow
def test_board_without_renode_is_a_clear_error(fleet_model, tmp_path):
    project = generate_project(fleet_model["tflite"], "qemu-mps2-an385", tmp_path / "p").path
    with pytest.raises(BoardError, match="no Renode platform") as err:
        write_renode_files(project)
    assert "qemu-netduinoplus2" in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("args", [["emulate", "--engine", "renode"], ["test"]])
def test_renode_missing_gives_install_hint(args, fleet_model, tmp_path, monkeypatch):
    project = generate_project(fleet_model["tflite"], "qemu-netduinoplus2", tmp_path / "p").path
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    out = CliRunner().invoke(cli, [*args, str(project)])
    assert out.exit_code == ToolError.exit_code, out.output
    assert "is not on PATH" in out.output and "install Renode" in out.output and "Traceback" not in out.output
    assert (project / "renode" / "qemu-netduinoplus2.robot").is_file()  # written before looking for Renode
    assert RENODE_HINT.split(":")[0] in out.output


# ------------------------------------------------------------------------------------------ matrix
@pytest.mark.unit
def test_matrix_kws_over_all_boards():
    """KWS needs ~20 KiB of RAM: the 16 KiB micro:bit (Cortex-M0) does not fit, every other board does."""
    kws = shared_model("kws_ref_model.tflite")
    out = CliRunner().invoke(cli, ["matrix", str(kws), "--boards", "all", "--json"])
    assert out.exit_code == 0, out.output
    m = json.loads(out.output)
    rows = {r["board"]: r for r in m["boards"]}
    assert set(rows) == {b.id for b in list_boards()}
    micro = rows["qemu-microbit"]
    assert micro["fits"] is False and micro["ram_available"] == 16 * 1024
    assert micro["ram_over"] == micro["ram_needed"] - 16 * 1024 > 0 and micro["flash_over"] == 0
    assert all(r["fits"] for b, r in rows.items() if b != "qemu-microbit")
    for r in rows.values():
        assert r["est_latency_ms"] > 0 and r["est_energy_uj"] > 0 and r["measured"] is None
    # Faster clock, same core: proportionally faster estimate.
    assert rows["qemu-netduinoplus2"]["est_latency_ms"] * 168 == pytest.approx(
        rows["qemu-mps2-an386"]["est_latency_ms"] * 25)
    md = CliRunner().invoke(cli, ["matrix", str(kws), "--boards", "qemu-microbit,nucleo_l4r5zi"])
    assert md.exit_code == 0, md.output
    line = next(ln for ln in md.output.splitlines() if ln.startswith("| qemu-microbit |"))
    assert f"**no**: RAM {micro['ram_over']:,} B over" in line
    assert "| nucleo_l4r5zi | cortex-m4 | 120 MHz | yes |" in md.output


@pytest.mark.slow
@needs_arm
@needs_qemu
def test_matrix_run_measures_emulated_boards(fleet_model, pio_core, tmp_path):
    m = compatibility_matrix(fleet_model["tflite"], "qemu-mps2-an385,qemu-microbit,pico", run=True, samples=3,
                             work_dir=tmp_path / "runs", core_dir=pio_core)
    rows = {r.board: r for r in m.rows}

    macs = build_program(load_model(fleet_model["tflite"])).macs
    for board_id in ("qemu-mps2-an385", "qemu-microbit"):
        measured = rows[board_id].measured
        assert measured is not None, rows[board_id].run_error
        # Without SIMD (ARMv7-M without DSP, ARMv6-M) every MAC costs at least one instruction.
        assert measured.parity == 1.0 and measured.samples == 3 and measured.instructions > macs
        assert measured.energy_uj > 0 and rows[board_id].flash_measured
    assert rows["pico"].measured is None and rows["pico"].run_error == "not emulated"
    # ARMv6-M (no SMLAD, fewer wide registers) runs more instructions than ARMv7-M.
    assert rows["qemu-microbit"].measured.instructions > rows["qemu-mps2-an385"].measured.instructions
    md = m.to_markdown()
    assert "measured instructions" in md and "not emulated" in md


@pytest.mark.slow
def test_matrix_unknown_board_is_a_clear_error(fleet_model):
    out = CliRunner().invoke(cli, ["matrix", str(fleet_model["tflite"]), "--boards", "qemu-mps2-an368"])
    assert out.exit_code == 2 and "unknown board" in out.output and "Traceback" not in out.output

