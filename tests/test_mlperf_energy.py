"""MLPerf Tiny energy mode on the real boards, as far as this machine can check it without hardware: each
board file names a timestamp GPIO and the energy baud, `generate --energy-mode` puts them into the project,
and the command loop and the Arduino port (the GPIO pulse) compile for every real board's core.

Running energy mode (the mode line, the baud in te-info) is checked in QEMU by tests/test_mlperf_timing.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import fc_model
from tinyedge import proc
from tinyedge.boards import get_board, list_boards
from tinyedge.cli import cli
from tinyedge.errors import BoardError
from tinyedge.firmware import generate_project
from tinyedge.firmware.project import project_files

REAL = sorted(b.id for b in list_boards() if b.qemu is None and b.uart["driver"] == "arduino")
ARDUINO_STUB = Path(__file__).parent / "fixtures" / "arduino"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fc") / "fc.tflite"
    path.write_bytes(fc_model(3)[0])
    return path


@pytest.mark.unit
def test_every_real_board_names_its_timestamp_gpio():
    assert len(REAL) == 6
    for board_id in REAL:
        mlperf = get_board(board_id).raw["mlperf"]
        assert mlperf["energy_baud"] == 9600 and isinstance(mlperf["timestamp_gpio"]["pin"], int), board_id
        assert mlperf["timestamp_gpio"]["mcu"], board_id


@pytest.mark.unit
@pytest.mark.parametrize("board_id", REAL)
def test_energy_mode_project_files(board_id):
    board = get_board(board_id)
    pin = board.raw["mlperf"]["timestamp_gpio"]["pin"]
    perf = project_files(board, project_name="t")
    energy = project_files(board, project_name="t", energy_mode=True)
    assert "#define TE_ENERGY_MODE 0" in perf["src/te_port.h"] and "monitor_speed = 115200" in perf["platformio.ini"]
    assert "TE_ENERGY_MODE=1" not in perf["platformio.ini"]
    assert "#define TE_ENERGY_MODE 1" in energy["src/te_port.h"]
    assert f"#define TE_TIMESTAMP_PIN {pin}\n" in energy["src/te_port.h"]
    assert "monitor_speed = 9600" in energy["platformio.ini"]
    assert "build_flags = -D TE_ENERGY_MODE=1" in energy["platformio.ini"]
    assert "digitalWrite(TE_TIMESTAMP_PIN, LOW)" in energy["src/te_port.cpp"]


@pytest.mark.unit
def test_energy_mode_needs_a_timestamp_gpio_on_a_real_board():
    board = get_board("nucleo_l4r5zi")
    raw = {k: v for k, v in board.raw.items() if k != "mlperf"}
    bare = type(board)(**{**board.__dict__, "raw": raw})
    with pytest.raises(BoardError, match="names no timestamp GPIO"):
        project_files(bare, project_name="t", energy_mode=True)
    assert "TE_TIMESTAMP_PIN" not in project_files(bare, project_name="t")["src/te_port.h"]


@pytest.mark.unit
def test_emulated_boards_count_the_pulse():
    """QEMU boards have no GPIO to pulse: energy mode still builds, the pulse is counted, 9600 baud."""
    files = project_files(get_board("qemu-mps2-an386"), project_name="t", energy_mode=True)
    assert "TE_TIMESTAMP_PIN" not in files["src/te_port.h"] and "++timestamp_pulses;" in files["src/te_port.c"]
    assert "#define TE_ENERGY_BAUD      9600u" in files["src/te_port.h"]
    microbit = project_files(get_board("qemu-microbit"), project_name="t", energy_mode=True)["src/te_port.c"]
    assert "0x00275000u; /* 9600 baud */" in microbit  # Nordic's BAUDRATE value for 9600


@pytest.mark.unit
def test_generate_energy_mode_flag(model, tmp_path):
    out = tmp_path / "proj"
    result = CliRunner().invoke(cli, ["generate", str(model), "--board", "pico", "-o", str(out), "--energy-mode"])
    assert result.exit_code == 0, result.output
    assert "energy mode" in result.output and "9600 baud" in result.output
    assert "#define TE_TIMESTAMP_PIN 15" in (out / "src" / "te_port.h").read_text()


def _machine_flags(board) -> list[str]:
    flags = [f"-mcpu={board.core}", "-mthumb"]
    if board.fpu != "none":
        flags += [f"-mfpu={board.fpu}", "-mfloat-abi=hard"]
    return flags


@pytest.mark.slow  # cross-compiles per board: kept out of the unit tier
@pytest.mark.parametrize("board_id", REAL)
def test_energy_mode_compiles_for_every_real_board(board_id, model, tmp_path):
    """main.c (energy mode: the mode line, the pulse instead of m-lap-us) and the Arduino port (pinMode /
    digitalWrite on the board's pin) compile for the board's core; ESP32-S3 (Xtensa, no compiler here)
    with the host compilers."""
    board = get_board(board_id)
    project = generate_project(model, board, tmp_path / "proj", energy_mode=True).path
    src = project / "src"
    if board.core.startswith("cortex-"):
        cc, cxx, flags = "arm-none-eabi-gcc", "arm-none-eabi-g++", _machine_flags(board)
        nm = "arm-none-eabi-nm"
    else:
        cc, cxx, flags, nm = "gcc", "g++", [], "nm"
    if not (shutil.which(cc) and shutil.which(cxx)):
        pytest.skip(f"needs {cc} and {cxx}")
    proc.run([cc, "-std=gnu11", "-O2", "-Wall", "-Werror", "-Dmain=te_app_main", *flags, "-c", str(src / "main.c"),
              "-o", str(tmp_path / "main.o")])
    proc.run([cxx, "-std=gnu++17", "-O2", "-Wall", "-Wextra", "-Werror", "-fno-exceptions", "-fno-rtti",
              "-Dmain=te_app_main", f"-I{ARDUINO_STUB}", *flags, "-c", str(src / "te_port.cpp"),
              "-o", str(tmp_path / "te_port.o")])
    main_syms = proc.run([nm, str(tmp_path / "main.o")]).stdout
    port_syms = proc.run([nm, "-C", str(tmp_path / "te_port.o")]).stdout
    assert " U te_port_timestamp_pulse" in main_syms  # `timestamp` pulses
    assert "digitalWrite" in port_syms and "pinMode" in port_syms and "delayMicroseconds" in port_syms
    assert " T te_port_timestamp_pulse" in port_syms
