"""Flashing real boards without PlatformIO's vendor platform (issue 14): every pyOCD target and OpenOCD
script a board file names exists in that tool's own list on this machine, the UF2 converter writes a
well-formed file from a real Cortex-M0+ ELF, and `tinyedge flash --dry-run` prints the exact command for
each real board and for an emulated one. Nothing here runs pyOCD or OpenOCD against hardware."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tflite_builder import ModelBuilder
from tflite_builder import options as op_options
from tinyedge import proc
from tinyedge.boards import Board, get_board, list_boards
from tinyedge.cli import cli
from tinyedge.errors import TinyedgeError
from tinyedge.firmware import elf_flash_image, flash_project, generate_project, parse_uf2, uf2_image, write_uf2
from tinyedge.firmware.upload import (
    UF2_FAMILY_RP2040,
    UF2_FLAG_FAMILY_ID,
    UF2_MAGIC_END,
    UF2_MAGIC_START0,
    UF2_MAGIC_START1,
)
from tinyedge.runners import qemu_command

pytestmark = pytest.mark.unit

REAL = ["esp32-s3-devkitc-1", "nano33ble", "nucleo_f746zg", "nucleo_h743zi", "nucleo_l4r5zi", "pico"]
OPENOCD_SCRIPTS = Path("/usr/share/openocd/scripts")
GCC = shutil.which("arm-none-eabi-gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="needs arm-none-eabi-gcc (scripts/setup installs it)")


def boards_with(tool: str) -> list[Board]:
    return [b for b in list_boards() if tool in (b.raw.get("flash") or {})]


def test_every_real_board_names_an_uploader_and_emulated_boards_none():
    tools = {b.id: (b.raw.get("flash") or {}).get("tool") for b in list_boards()}
    assert {b: tools[b] for b in REAL} == {
        "esp32-s3-devkitc-1": "esptool", "nano33ble": "pyocd", "nucleo_f746zg": "openocd",
        "nucleo_h743zi": "openocd", "nucleo_l4r5zi": "openocd", "pico": "uf2"}
    assert all(tools[b] is None for b in tools if b.startswith("qemu-"))
    assert get_board("pico").raw["flash"]["uf2"]["family_id"] == UF2_FAMILY_RP2040 == 0xE48BFF56
    assert get_board("esp32-s3-devkitc-1").raw["flash"]["esptool"]["chip"] == "esp32s3"


# ------------------------------------------------------------------------------------------ the tools' own lists
@pytest.fixture(scope="module")
def pyocd_targets() -> dict[str, str]:
    """``pyocd list --targets`` of the installed pyOCD: name -> source (builtin or pack)."""
    try:
        import pyocd  # noqa: F401, PLC0415  (only to skip with a reason when the dev extra is missing)
    except ImportError:
        pytest.skip("pyocd is not installed (pip install -e .[dev])")
    out = proc.run([sys.executable, "-m", "pyocd", "list", "--targets"], what="pyocd list --targets").stdout
    rows = [ln.split() for ln in out.splitlines()[2:] if ln.strip()]
    return {row[0]: row[-1] for row in rows}


@pytest.mark.parametrize("board", boards_with("pyocd"), ids=lambda b: b.id)
def test_pyocd_target_is_a_builtin_target(board, pyocd_targets):
    """A builtin target flashes offline; a CMSIS-pack one would need a download (those boards use OpenOCD)."""
    target = board.raw["flash"]["pyocd"]["target"]
    assert pyocd_targets.get(target) == "builtin", f"{board.id}: {target} not builtin in `pyocd list --targets`"


def test_pyocd_targets_named_are_the_expected_parts(pyocd_targets):
    named = {b.id: b.raw["flash"]["pyocd"]["target"] for b in boards_with("pyocd")}
    assert named == {"nano33ble": "nrf52840", "nucleo_h743zi": "stm32h743xx", "pico": "rp2040"}
    # The L4R5 and F746 parts are CMSIS-pack targets in pyOCD: not builtin here, so those boards name none.
    assert "stm32l4r5zitx" not in pyocd_targets and "stm32f746zgtx" not in pyocd_targets


@pytest.mark.parametrize("board", boards_with("openocd"), ids=lambda b: b.id)
def test_openocd_scripts_exist_and_load(board):
    """Each script is a file in the installed OpenOCD's scripts folder, and OpenOCD loads them (config
    stage only: `-c shutdown` exits before it looks for a probe)."""
    if shutil.which("openocd") is None or not OPENOCD_SCRIPTS.is_dir():
        pytest.skip("OpenOCD is not installed (scripts/setup: apt-get install openocd)")
    scripts = list(board.raw["flash"]["openocd"].values())
    for script in scripts:
        assert (OPENOCD_SCRIPTS / script).is_file(), f"{board.id}: {script} not in {OPENOCD_SCRIPTS}"
    cmd = ["openocd", *[a for s in scripts for a in ("-f", s)], "-c", "shutdown"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------------------------ UF2
def test_uf2_blocks_by_hand():
    image = bytes(range(256)) * 2 + b"\xaa" * 88
    data = uf2_image(image, 0x10000000, UF2_FAMILY_RP2040)
    assert len(data) == 3 * 512
    first = struct.unpack_from("<8I", data)
    assert first == (UF2_MAGIC_START0, UF2_MAGIC_START1, UF2_FLAG_FAMILY_ID, 0x10000000, 256, 0, 3, 0xE48BFF56)
    assert data[:4] == b"UF2\n" and struct.unpack_from("<I", data, 508)[0] == UF2_MAGIC_END == 0x0AB16F30
    last = data[1024:]
    assert struct.unpack_from("<8I", last)[3:7] == (0x10000200, 88, 2, 3)
    assert last[32:32 + 88] == b"\xaa" * 88 and last[32 + 88:508] == bytes(476 - 88)  # zero padded


def test_parse_uf2_rejects_a_damaged_file():
    data = bytearray(uf2_image(b"\x01" * 300, 0x10000000, UF2_FAMILY_RP2040))
    data[511] ^= 0xFF
    with pytest.raises(TinyedgeError, match="malformed"):
        parse_uf2(bytes(data))
    with pytest.raises(TinyedgeError, match="512-byte blocks"):
        parse_uf2(bytes(data[:500]))


PICO_C = r"""
#include <stdint.h>
extern uint32_t __stack_top;
extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end;
volatile uint32_t counter = 0x12345678u;   /* .data: its initial value is stored in flash */
static const uint8_t table[1000] = {1, 2, 3, 4, 5};
int main(void) { for (;;) { counter += table[counter & 511u]; } }
void reset_handler(void) {
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
    main();
}
__attribute__((section(".vectors"), used)) const void *vectors[] = {&__stack_top, (void *)reset_handler};
"""

PICO_LD = """
MEMORY { FLASH (rx) : ORIGIN = 0x10000000, LENGTH = 2M
         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 264K }
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) } > FLASH
  .data : { __data_start = .; *(.data*) . = ALIGN(4); __data_end = .; } > RAM AT > FLASH
  __data_load = LOADADDR(.data);
  .bss (NOLOAD) : { __bss_start = .; *(.bss*) *(COMMON) . = ALIGN(4); __bss_end = .; } > RAM
  __stack_top = ORIGIN(RAM) + LENGTH(RAM);
}
"""


@pytest.fixture(scope="module")
def pico_elf(tmp_path_factory) -> Path:
    """A small Cortex-M0+ (the RP2040's core) program linked at the Pico's XIP flash, with .data in flash."""
    if GCC is None:
        pytest.skip("needs arm-none-eabi-gcc (scripts/setup installs it)")
    d = tmp_path_factory.mktemp("pico-elf")
    (d / "main.c").write_text(PICO_C)
    (d / "link.ld").write_text(PICO_LD)
    elf = d / "firmware.elf"
    proc.run([GCC, "-mcpu=cortex-m0plus", "-mthumb", "-Os", "-nostdlib", "-ffreestanding",
              "-fno-tree-loop-distribute-patterns", "-T", str(d / "link.ld"),
              str(d / "main.c"), "-o", str(elf)], what="arm-none-eabi-gcc")
    return elf


@needs_gcc
def test_uf2_of_a_real_cortex_m0plus_elf_is_well_formed(pico_elf, tmp_path):
    objcopy = shutil.which("arm-none-eabi-objcopy")
    assert objcopy
    binary = tmp_path / "firmware.bin"
    proc.run([objcopy, "-O", "binary", str(pico_elf), str(binary)], what="objcopy")
    expected = binary.read_bytes()
    assert expected.find(struct.pack("<I", 0x12345678)) > 0  # .data's initial value is in the image
    base, image = elf_flash_image(pico_elf)
    assert (base, image) == (0x10000000, expected)

    uf2 = write_uf2(pico_elf, tmp_path / "firmware.uf2", family_id=UF2_FAMILY_RP2040)
    data = uf2.read_bytes()
    assert len(data) % 512 == 0
    blocks = parse_uf2(data)
    n = len(blocks)
    assert n == -(-len(expected) // 256) and n > 4
    for i, block in enumerate(blocks):
        assert (block.block_no, block.num_blocks) == (i, n)
        assert block.flags == UF2_FLAG_FAMILY_ID and block.family_id == 0xE48BFF56
        assert block.address == 0x10000000 + 256 * i  # contiguous, one 256-byte flash page per block
        assert len(block.payload) == (256 if i < n - 1 else len(expected) - 256 * (n - 1))
    assert b"".join(b.payload for b in blocks) == expected
    # A .bin goes at the board's flash base: the same file.
    assert write_uf2(binary, tmp_path / "bin.uf2", family_id=UF2_FAMILY_RP2040, base=0x10000000).read_bytes() == data


# ------------------------------------------------------------------------------------------ flash --dry-run
def tiny_model() -> bytes:
    """A 1x4 -> 2 int8 FULLY_CONNECTED model (generation only: nothing is built for a real board)."""
    b = ModelBuilder()
    ti = b.tensor((1, 4), scale=0.05, zero_point=-3)
    tw = b.tensor((2, 4), data=np.arange(-4, 4, dtype=np.int8).reshape(2, 4), scale=0.01, zero_point=0)
    tb = b.tensor((2,), "INT32", data=np.array([5, -5], dtype=np.int32), scale=0.0005, zero_point=0)
    to = b.tensor((1, 2), scale=0.1, zero_point=2)
    b.op("FULLY_CONNECTED", [ti, tw, tb], [to], op_options("FullyConnectedOptions", fusedActivationFunction=0),
         "FullyConnectedOptions")
    return b.build([ti], [to])


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("flash-model") / "tiny.tflite"
    path.write_bytes(tiny_model())
    return path


def project_for(board_id: str, model: Path, where: Path, files: tuple[str, ...] = ("firmware.elf",)) -> Path:
    """A generated project for ``board_id`` with the build outputs a vendor-platform build would leave."""
    project = generate_project(model, board_id, where / board_id).path.resolve()
    out = project / ".pio" / "build" / board_id
    out.mkdir(parents=True)
    for name in files:
        (out / name).write_bytes(b"\x7fELF" if name.endswith(".elf") else b"\0" * 16)
    return project


def dry_run(*args: str) -> list[str]:
    result = CliRunner().invoke(cli, ["flash", *args, "--dry-run"])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


@pytest.mark.parametrize("board_id, expected", [
    ("nucleo_l4r5zi", ["openocd", "-f", "board/st_nucleo_l4.cfg", "-c", "program {ELF} verify reset exit"]),
    ("nucleo_f746zg", ["openocd", "-f", "board/st_nucleo_f7.cfg", "-c", "program {ELF} verify reset exit"]),
    ("nucleo_h743zi", ["openocd", "-f", "board/st_nucleo_h743zi.cfg", "-c", "program {ELF} verify reset exit"]),
    ("nano33ble", [sys.executable, "-m", "pyocd", "flash", "--target", "nrf52840", "ELF"]),
])
def test_dry_run_prints_the_probe_command(board_id, expected, model, tmp_path):
    project = project_for(board_id, model, tmp_path)
    elf = str(project / ".pio" / "build" / board_id / "firmware.elf")
    want = proc.format_cmd([a.replace("ELF", elf) for a in expected])
    assert dry_run(str(project)) == [want]


def test_dry_run_pico_writes_a_uf2_to_the_drive(model, tmp_path):
    project = project_for("pico", model, tmp_path)
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    build = project / ".pio" / "build" / "pico"
    lines = dry_run(str(project), "--upload-port", str(drive))
    assert lines[0] == proc.format_cmd(["cp", str(build / "firmware.uf2"), f"{drive}/"])
    assert lines[1].startswith(f"# first writes {build / 'firmware.uf2'} from {build / 'firmware.elf'}")
    # Over SWD instead: the same board's pyOCD and OpenOCD facts.
    assert dry_run(str(project), "--tool", "pyocd") == [proc.format_cmd(
        [sys.executable, "-m", "pyocd", "flash", "--target", "rp2040", str(build / "firmware.elf")])]
    assert dry_run(str(project), "--tool", "openocd", "--upload-port", "E6614103E7") == [proc.format_cmd(
        ["openocd", "-f", "interface/cmsis-dap.cfg", "-f", "target/rp2040.cfg", "-c", "adapter serial E6614103E7",
         "-c", f"program {{{build / 'firmware.elf'}}} verify reset exit"])]


def test_dry_run_esp32_s3_writes_bootloader_partitions_and_app(model, tmp_path):
    project = project_for("esp32-s3-devkitc-1", model, tmp_path,
                          ("firmware.elf", "firmware.bin", "bootloader.bin", "partitions.bin"))
    build = project / ".pio" / "build" / "esp32-s3-devkitc-1"
    assert dry_run(str(project), "--upload-port", "/dev/ttyUSB0") == [proc.format_cmd(
        [sys.executable, "-m", "esptool", "--chip", "esp32s3", "--port", "/dev/ttyUSB0", "write-flash",
         "0x0", str(build / "bootloader.bin"), "0x8000", str(build / "partitions.bin"),
         "0x10000", str(build / "firmware.bin")])]


def test_dry_run_overrides_and_bin_images(model, tmp_path):
    project = project_for("nucleo_h743zi", model, tmp_path)
    elf = project / ".pio" / "build" / "nucleo_h743zi" / "firmware.elf"
    assert dry_run(str(project), "--tool", "pyocd", "--upload-port", "/dev/ttyACM0") == [proc.format_cmd(
        [sys.executable, "-m", "pyocd", "flash", "--target", "stm32h743xx", str(elf)])]  # a tty is not a probe id
    image = tmp_path / "app.bin"
    image.write_bytes(b"\0" * 8)
    assert dry_run(str(project), "--image", str(image)) == [proc.format_cmd(
        ["openocd", "-f", "board/st_nucleo_h743zi.cfg", "-c", f"program {{{image}}} verify reset exit 0x8000000"])]
    assert dry_run(str(project), "--tool", "pio", "--upload-port", "/dev/ttyACM0") == [proc.format_cmd(
        [sys.executable, "-m", "platformio", "run", "-d", str(project), "-t", "upload", "--upload-port",
         "/dev/ttyACM0"])]


def test_dry_run_tool_without_facts_says_which_tools_the_board_has(model, tmp_path):
    project = project_for("nucleo_l4r5zi", model, tmp_path)
    result = CliRunner().invoke(cli, ["flash", str(project), "--tool", "pyocd", "--dry-run"])
    assert result.exit_code == 2
    assert "no flash.pyocd facts" in result.output and "--tool openocd" in result.output


def test_dry_run_emulated_board_prints_the_qemu_command(model, tmp_path):
    project = generate_project(model, "qemu-mps2-an385", tmp_path / "emu").path.resolve()
    lines = dry_run(str(project), "--upload-port", "4567")
    elf = project / ".pio" / "build" / "qemu-mps2-an385" / "firmware.elf"
    assert lines[0] == proc.format_cmd(qemu_command(get_board("qemu-mps2-an385"), elf, 4567))
    assert lines[0].startswith("qemu-system-arm -machine mps2-an385 ")


def test_flash_without_an_image_says_how_to_get_one(model, tmp_path):
    project = generate_project(model, "nucleo_l4r5zi", tmp_path / "bare").path
    with pytest.raises(TinyedgeError, match="no firmware to flash") as err:
        flash_project(project)
    assert "vendor platform" in str(err.value) and "--image" in str(err.value)


@needs_gcc
def test_uf2_upload_writes_the_file_to_the_drive(pico_elf, model, tmp_path):
    """The whole UF2 path runs (a `cp` to a folder standing in for the RPI-RP2 drive)."""
    project = generate_project(model, "pico", tmp_path / "pico").path
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    flash_project(project, upload_port=str(drive), image=pico_elf)
    written = drive / "firmware.uf2"
    assert written.read_bytes() == (pico_elf.parent / "firmware.uf2").read_bytes()
    assert parse_uf2(written.read_bytes())[0].address == 0x10000000
