"""Boards are data: every shipped board file validates, invalid fixtures fail with the right message,
and the search path lets a project or a user add or override boards."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tinyedge.boards import board_ids, get_board, list_boards, load_board_file, search_path
from tinyedge.boards.cores import (
    CORES,
    FPUS,
    core_info,
    cortex_m_cores,
    has_dsp,
    has_dwt,
    has_fpu,
    instr_per_mac,
    is_armv6m,
)
from tinyedge.boards.schema import SCHEMA, validate
from tinyedge.cli import cli
from tinyedge.errors import BoardError
from tinyedge.matrix import INSTR_PER_MAC, estimate_instructions
from tinyedge.paths import builtin_boards_dir

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "boards"
INVALID = sorted(FIXTURES.glob("invalid_*.yaml"))

EMULATED = ["qemu-lm3s6965evb", "qemu-microbit", "qemu-mps2-an385", "qemu-mps2-an386", "qemu-mps2-an500",
            "qemu-mps2-an505", "qemu-mps3-an547", "qemu-netduinoplus2"]
REAL = ["esp32-s3-devkitc-1", "nano33ble", "nucleo_f746zg", "nucleo_h743zi", "nucleo_l4r5zi", "pico"]
KiB = 1024


def test_every_builtin_board_validates():
    boards = {b.id: b for b in (load_board_file(p) for p in sorted(builtin_boards_dir().glob("*.yaml")))}
    assert sorted(boards) == sorted(EMULATED + REAL)
    for b in boards.values():
        assert b.power["source"] and b.run_power_mw > 0
        assert (b.qemu is not None) == b.id.startswith("qemu-")


@pytest.mark.parametrize(
    "board_id, core, fpu, dsp, clock, flash, ram, uart, machine",
    [
        ("qemu-mps2-an385", "cortex-m3", "none", False, 25_000_000, (0, 4096 * KiB), (0x20000000, 4096 * KiB),
         ("cmsdk", 0x40004000), "mps2-an385"),
        ("qemu-mps2-an386", "cortex-m4", "fpv4-sp-d16", True, 25_000_000, (0, 4096 * KiB), (0x20000000, 4096 * KiB),
         ("cmsdk", 0x40004000), "mps2-an386"),
        ("qemu-mps2-an500", "cortex-m7", "fpv5-d16", True, 25_000_000, (0, 4096 * KiB), (0x20000000, 4096 * KiB),
         ("cmsdk", 0x40004000), "mps2-an500"),
        # Secure addresses: code at 0x10000000, UART0 at 0x50200000.
        ("qemu-mps2-an505", "cortex-m33", "fpv5-sp-d16", True, 20_000_000, (0x10000000, 4096 * KiB),
         (0x38000000, 2048 * KiB), ("cmsdk", 0x50200000), "mps2-an505"),
        # ITCM at 0, DTCM at 0x20000000, UART0 at 0x59303000.
        ("qemu-mps3-an547", "cortex-m55", "auto", True, 32_000_000, (0, 512 * KiB), (0x20000000, 512 * KiB),
         ("cmsdk", 0x59303000), "mps3-an547"),
        # Real part limits: 1 MiB flash at 0x08000000, contiguous SRAM1+2 (the 64 KiB CCM is elsewhere).
        ("qemu-netduinoplus2", "cortex-m4", "fpv4-sp-d16", True, 168_000_000, (0x08000000, 1024 * KiB),
         (0x20000000, 128 * KiB), ("stm32", 0x40011000), "netduinoplus2"),
        ("qemu-lm3s6965evb", "cortex-m3", "none", False, 12_500_000, (0, 256 * KiB), (0x20000000, 64 * KiB),
         ("pl011", 0x4000C000), "lm3s6965evb"),
        ("qemu-microbit", "cortex-m0", "none", False, 16_000_000, (0, 256 * KiB), (0x20000000, 16 * KiB),
         ("nrf51", 0x40002000), "microbit"),
    ],
)
def test_emulated_board_facts(board_id, core, fpu, dsp, clock, flash, ram, uart, machine):
    b = get_board(board_id)
    assert (b.core, b.fpu, b.dsp, b.clock_hz) == (core, fpu, dsp, clock)
    assert (b.flash.base, b.flash.size) == flash and (b.ram.base, b.ram.size) == ram
    assert (b.uart["driver"], b.uart["base"]) == uart
    assert b.qemu == {"machine": machine}
    assert b.platformio["platform"] == "tinyedge-qemu" and b.timer == {"driver": "systick", "hz": clock}


@pytest.mark.parametrize(
    "board_id, platform, core, timer",
    [
        ("nucleo_l4r5zi", "ststm32", "cortex-m4", "dwt"),
        ("nucleo_f746zg", "ststm32", "cortex-m7", "dwt"),
        ("nucleo_h743zi", "ststm32", "cortex-m7", "dwt"),
        ("nano33ble", "nordicnrf52", "cortex-m4", "dwt"),
        ("pico", "raspberrypi", "cortex-m0plus", "micros"),
        ("esp32-s3-devkitc-1", "espressif32", "xtensa-lx7", "micros"),
    ],
)
def test_real_board_uses_stock_platformio_names(board_id, platform, core, timer):
    b = get_board(board_id)
    assert b.platformio["platform"] == platform and b.platformio["board"] == board_id
    assert b.platformio["framework"] == "arduino" and b.uart["driver"] == "arduino"
    assert b.platformio["upload_protocol"] and b.platformio["monitor_speed"] == 115200
    assert b.core == core and b.timer["driver"] == timer and b.qemu is None


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_board_files(path):
    """Each fixture's first line says which problem the loader must report."""
    expected = path.read_text().splitlines()[0].split("# expect: ", 1)[1]
    with pytest.raises(BoardError) as err:
        load_board_file(path)
    assert expected in str(err.value)
    assert "Try:" in str(err.value)


def test_there_are_invalid_fixtures():
    assert len(INVALID) >= 10


def test_project_and_user_folders_override_builtin(tmp_path, monkeypatch):
    builtin = get_board("qemu-mps2-an386")
    project, user = tmp_path / "proj", tmp_path / "user"
    (project / "boards").mkdir(parents=True)
    user.mkdir()
    override = dict(builtin.raw, clock_hz=50_000_000, name="faster AN386")
    override["timer"] = dict(builtin.timer, hz=50_000_000)
    (project / "boards" / "qemu-mps2-an386.yaml").write_text(yaml.safe_dump(override))
    extra = dict(builtin.raw, id="my-board", name="my own board")
    (user / "my-board.yaml").write_text(yaml.safe_dump(extra))
    # The user folder's copy of an386 loses to the project's.
    (user / "qemu-mps2-an386.yaml").write_text(yaml.safe_dump(dict(override, name="user AN386")))
    monkeypatch.chdir(project)
    monkeypatch.setenv("TINYEDGE_BOARDS_DIR", str(user))
    assert search_path()[:2] == [project / "boards", user]
    assert get_board("qemu-mps2-an386").name == "faster AN386"
    assert get_board("my-board").name == "my own board"
    assert "my-board" in board_ids() and get_board("qemu-microbit").source.parent == builtin_boards_dir()


def test_unknown_board_suggests_close_ids():
    with pytest.raises(BoardError, match="did you mean qemu-mps2-an386"):
        get_board("qemu-mps2-an368")


def test_cli_boards_lists_all():
    out = CliRunner().invoke(cli, ["boards", "--json"])
    assert out.exit_code == 0, out.output
    ids = [b["id"] for b in json.loads(out.output)]
    assert sorted(ids) == sorted(b.id for b in list_boards())
    assert set(EMULATED + REAL) <= set(ids)



def test_one_bad_board_file_does_not_hide_the_others(tmp_path, monkeypatch):
    """A broken ./boards file is named on one warning line; the other boards still list and load."""
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "broken.yaml").write_text("id: [unclosed\n")
    good = dict(get_board("qemu-mps2-an386").raw, id="my-board", name="my board")
    (tmp_path / "boards" / "my-board.yaml").write_text(yaml.safe_dump(good))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TINYEDGE_BOARDS_DIR", raising=False)
    problems: list[BoardError] = []
    ids = [b.id for b in list_boards(problems=problems)]
    assert "my-board" in ids and "qemu-mps2-an386" in ids and "broken" not in ids
    assert len(problems) == 1 and "broken.yaml" in str(problems[0]) and "not valid YAML" in str(problems[0])
    assert get_board("my-board").name == "my board"
    with pytest.raises(BoardError, match="broken.yaml is not valid YAML"):
        get_board("broken")

    r = CliRunner().invoke(cli, ["boards"])
    assert r.exit_code == 0, r.output
    assert "my-board" in r.stdout and "qemu-mps2-an386" in r.stdout
    warnings = r.stderr.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("warning:") and "broken.yaml" in warnings[0]
    assert "not valid YAML" in warnings[0] and "line 2" in warnings[0]
    r = CliRunner().invoke(cli, ["boards", "--json"])
    assert r.exit_code == 0 and "my-board" in {b["id"] for b in json.loads(r.stdout)}
    assert "broken.yaml" in r.stderr

# ------------------------------------------------------------------------------------------ the cores table
def test_cores_table_facts():
    """One table holds the core facts the port, the code generator, the schema and the estimates read."""
    assert list(CORES) == ["cortex-m0", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33",
                           "cortex-m55", "xtensa-lx7", "host"]
    assert cortex_m_cores() == ("cortex-m0", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33",
                                "cortex-m55")
    assert [c for c, i in CORES.items() if i.armv6m] == ["cortex-m0", "cortex-m0plus"]
    assert [c for c, i in CORES.items() if i.dwt] == ["cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]
    assert [c for c, i in CORES.items() if i.dsp] == ["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]
    # The schema lists exactly the table's cores and FPUs.
    assert SCHEMA["core"][0] == list(CORES) and SCHEMA["fpu"][0] == list(FPUS)
    with pytest.raises(BoardError, match="unknown core 'cortex-m99'"):
        core_info("cortex-m99")


def test_instructions_per_mac_are_the_measured_figures():
    """``tinyedge matrix``'s estimates: the figures measured in QEMU on KWS (see tinyedge/boards/cores.py)."""
    assert INSTR_PER_MAC == {"cortex-m0": 13.47, "cortex-m0plus": 13.47, "cortex-m3": 7.24, "cortex-m4": 1.82,
                             "cortex-m7": 1.83, "cortex-m33": 1.84, "cortex-m55": 1.81, "xtensa-lx7": 7.24}
    assert instr_per_mac("host") == instr_per_mac("cortex-m4") == 1.82  # no figure: the M4's
    assert estimate_instructions(2_656_768, "cortex-m4") == 4_835_318
    assert estimate_instructions(1000, "host") == 1820


@pytest.mark.parametrize(
    "board_id, dsp, dwt, armv6m, fpu",
    [
        ("qemu-mps2-an385", False, True, False, False),
        ("qemu-mps2-an386", True, True, False, True),
        ("qemu-mps3-an547", True, True, False, True),
        ("qemu-microbit", False, False, True, False),
        ("pico", False, False, True, False),
        ("esp32-s3-devkitc-1", False, False, False, True),
    ],
)
def test_core_helpers(board_id, dsp, dwt, armv6m, fpu):
    b = get_board(board_id)
    assert (has_dsp(b), has_dwt(b), is_armv6m(b), has_fpu(b)) == (dsp, dwt, armv6m, fpu)


def test_dsp_needs_the_board_and_the_core():
    an386 = get_board("qemu-mps2-an386")
    assert not has_dsp(dataclasses.replace(an386, dsp=False))  # the part has no DSP extension: portable kernels
    assert not has_dsp(dataclasses.replace(an386, core="cortex-m3"))  # a core without it: never


def test_dwt_timer_needs_a_core_with_the_cycle_counter():
    raw = dict(get_board("qemu-mps2-an386").raw)
    for core in ("cortex-m0", "cortex-m0plus"):
        problems = validate(dict(raw, core=core, timer={"driver": "dwt", "hz": raw["clock_hz"]}))
        assert f"timer.driver: {core} has no DWT cycle counter (use systick or micros)" in problems
    assert validate(dict(raw, timer={"driver": "dwt", "hz": raw["clock_hz"]})) == []
