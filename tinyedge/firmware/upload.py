"""Flash a real board without PlatformIO's vendor platform: pyOCD, OpenOCD, a UF2 image, or esptool.

A board file's ``flash`` section names the default tool and, per tool, its facts (the pyOCD target,
OpenOCD's ``.cfg`` scripts, the UF2 family, the esptool chip and offsets). Building firmware for a
real board still needs the vendor platform (or the exported sources of ``tinyedge export``); flashing
only needs the ELF or ``.bin`` the build left in ``.pio/build/<env>/`` (or any image given with
``image=``). Each ``*_command`` function builds the exact command list; :func:`plan_upload` picks one
for a project without running anything (``tinyedge flash --dry-run``); :func:`run_upload` runs it.
"""

from __future__ import annotations

import getpass
import importlib.util
import json
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import proc
from ..boards import Board, get_board
from ..boards.schema import FLASH_TOOLS
from ..errors import BoardError, TinyedgeError, ToolError

#: ``FLASH_TOOLS`` (pyocd, openocd, uf2, esptool) need no vendor platform; ``pio`` runs ``pio run -t upload``.
TOOLS = (*FLASH_TOOLS, "pio")
UPLOAD_TIMEOUT_S = 300.0

OPENOCD_HINT = "sudo apt-get install openocd (Debian/Ubuntu), or put OpenOCD 0.12+ on PATH"

# ---------------------------------------------------------------------------------------------- UF2
# The UF2 format (github.com/microsoft/uf2): 512-byte blocks, each a 32-byte header, 476 bytes of data
# (of which `payloadSize` are used) and a closing magic; all fields little-endian uint32.
UF2_MAGIC_START0 = 0x0A324655  # "UF2\n"
UF2_MAGIC_START1 = 0x9E5D5157
UF2_MAGIC_END = 0x0AB16F30
UF2_FLAG_FAMILY_ID = 0x00002000
UF2_BLOCK_BYTES = 512
UF2_DATA_BYTES = 476
#: What the RP2040 boot ROM expects: 256-byte payloads (one flash page each).
UF2_PAYLOAD_BYTES = 256
UF2_FAMILY_RP2040 = 0xE48BFF56
_UF2_HEADER = struct.Struct("<8I")


@dataclass(frozen=True)
class Uf2Block:
    """One parsed UF2 block."""

    flags: int
    address: int
    block_no: int
    num_blocks: int
    family_id: int
    payload: bytes


def uf2_image(image: bytes, base: int, family_id: int, *, payload: int = UF2_PAYLOAD_BYTES) -> bytes:
    """``image`` (to be written at ``base``) as a UF2 file: ``payload``-byte blocks with ``family_id``."""
    if not image:
        raise TinyedgeError("the firmware image is empty: there is nothing to put in a UF2 file",
                            "check the build produced a firmware with code in it")
    if not 0 < payload <= UF2_DATA_BYTES:
        raise ValueError(f"UF2 payload must be 1..{UF2_DATA_BYTES} bytes, not {payload}")
    chunks = [image[i:i + payload] for i in range(0, len(image), payload)]
    out = bytearray()
    for n, chunk in enumerate(chunks):
        header = _UF2_HEADER.pack(UF2_MAGIC_START0, UF2_MAGIC_START1, UF2_FLAG_FAMILY_ID, base + n * payload,
                                  len(chunk), n, len(chunks), family_id)
        out += header + chunk.ljust(UF2_DATA_BYTES, b"\0") + struct.pack("<I", UF2_MAGIC_END)
    return bytes(out)


def parse_uf2(data: bytes) -> list[Uf2Block]:
    """The blocks of a UF2 file; TinyedgeError when a block is malformed (size, magics, payload size)."""
    if len(data) % UF2_BLOCK_BYTES:
        raise TinyedgeError(f"a UF2 file is a whole number of {UF2_BLOCK_BYTES}-byte blocks, not {len(data)} bytes",
                            "regenerate it with `tinyedge flash --tool uf2`")
    blocks = []
    for offset in range(0, len(data), UF2_BLOCK_BYTES):
        raw = data[offset:offset + UF2_BLOCK_BYTES]
        m0, m1, flags, addr, size, block_no, num_blocks, family = _UF2_HEADER.unpack_from(raw)
        (end,) = struct.unpack_from("<I", raw, UF2_BLOCK_BYTES - 4)
        if (m0, m1, end) != (UF2_MAGIC_START0, UF2_MAGIC_START1, UF2_MAGIC_END) or size > UF2_DATA_BYTES:
            raise TinyedgeError(f"UF2 block at byte {offset} is malformed (magic numbers or payload size)",
                                "regenerate it with `tinyedge flash --tool uf2`")
        blocks.append(Uf2Block(flags, addr, block_no, num_blocks, family, bytes(raw[32:32 + size])))
    return blocks


# ---------------------------------------------------------------------------------------------- ELF
_PT_LOAD = 1


def elf_flash_image(elf: Path) -> tuple[int, bytes]:
    """The bytes a 32-bit little-endian ELF puts in flash: its loadable segments with file contents at
    their load (physical) addresses, gaps filled with zeros as ``objcopy -O binary`` does; and the
    lowest address. ``.data``'s initial values are included (they load from flash)."""
    data = Path(elf).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise TinyedgeError(f"{elf} is not a 32-bit little-endian ELF file",
                            "pass the firmware.elf the build produced (or a .bin with --image)")
    phoff, = struct.unpack_from("<I", data, 28)
    phentsize, phnum = struct.unpack_from("<HH", data, 42)
    segments: list[tuple[int, bytes]] = []
    for i in range(phnum):
        p_type, p_offset, _vaddr, p_paddr, p_filesz = struct.unpack_from("<5I", data, phoff + i * phentsize)
        if p_type == _PT_LOAD and p_filesz:
            segments.append((p_paddr, data[p_offset:p_offset + p_filesz]))
    if not segments:
        raise TinyedgeError(f"{elf} has no loadable contents", "pass the firmware.elf the build produced")
    segments.sort()
    base = segments[0][0]
    image = bytearray()
    for addr, blob in segments:
        start = addr - base
        if start < len(image):
            raise TinyedgeError(f"{elf} has overlapping load segments at {addr:#x}", "check the linker script")
        image += b"\0" * (start - len(image)) + blob
    return base, bytes(image)


def write_uf2(image: Path, out: Path, *, family_id: int, base: int | None = None) -> Path:
    """Write ``image`` (an ELF, or a ``.bin`` placed at ``base``) as the UF2 file ``out``; return ``out``."""
    if image.suffix == ".bin":
        if base is None:
            raise ValueError("a .bin image needs the flash base address")
        start, blob = base, image.read_bytes()
    else:
        start, blob = elf_flash_image(image)
    out.write_bytes(uf2_image(blob, start, family_id))
    return out


# ---------------------------------------------------------------------------------------------- commands
def pyocd_command(target: str, image: Path, *, probe: str | None = None, base: int | None = None) -> list[str]:
    """``pyocd flash`` (pip-installed pyOCD, run by this interpreter) of an ELF, or a ``.bin`` at ``base``."""
    cmd = [sys.executable, "-m", "pyocd", "flash", "--target", target]
    if probe:
        cmd += ["--uid", probe]
    if image.suffix == ".bin":
        cmd += ["--base-address", hex(_need_base(base, image))]
    return [*cmd, str(image)]


def openocd_command(scripts: list[str], image: Path, *, adapter_serial: str | None = None,
                    base: int | None = None) -> list[str]:
    """``openocd -f <scripts> -c "program <image> verify reset exit"``: flash, verify, run, quit."""
    cmd = ["openocd"]
    for script in scripts:
        cmd += ["-f", script]
    if adapter_serial:
        cmd += ["-c", f"adapter serial {adapter_serial}"]
    where = f" {hex(_need_base(base, image))}" if image.suffix == ".bin" else ""
    # Braces: Tcl's quoting, so a path with spaces stays one word.
    return [*cmd, "-c", f"program {{{image}}} verify reset exit{where}"]


def esptool_command(chip: str, images: list[tuple[int, Path]], *, port: str | None = None) -> list[str]:
    """``esptool write-flash`` (pip-installed esptool, run by this interpreter) of ``(offset, .bin)`` pairs."""
    cmd = [sys.executable, "-m", "esptool", "--chip", chip]
    if port:
        cmd += ["--port", port]
    cmd.append("write-flash")
    for offset, path in images:
        cmd += [hex(offset), str(path)]
    return cmd


def uf2_copy_command(uf2: Path, drive: Path) -> list[str]:
    """Copy a UF2 file to the board's USB drive (a Pico held in BOOTSEL mounts as ``RPI-RP2``)."""
    return ["cp", str(uf2), str(drive) + "/"]


def _need_base(base: int | None, image: Path) -> int:
    if base is None:
        raise ValueError(f"{image} is a raw binary: its flash address is needed")
    return base


# ---------------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class UploadPlan:
    """What :func:`run_upload` does: ``command`` with ``tool``; for ``uf2``, ``uf2`` is written from
    ``image`` first. ``command`` is exactly what runs (``tinyedge flash --dry-run`` prints it)."""

    tool: str
    command: list[str]
    image: Path
    board: Board
    uf2: Path | None = None


def project_board(project_dir: Path) -> Board:
    """The board of a generated project: ``tinyedge.json``'s ``board``."""
    manifest = Path(project_dir) / "tinyedge.json"
    try:
        board_id = json.loads(manifest.read_text())["board"]
    except (OSError, ValueError, KeyError, TypeError):
        raise TinyedgeError(f"{manifest} is missing or names no board",
                            "regenerate the project with `tinyedge generate`") from None
    return get_board(str(board_id))


def flash_facts(board: Board) -> dict[str, object]:
    """The board file's ``flash`` section (empty for boards without one, e.g. emulated boards)."""
    facts = board.raw.get("flash") or {}
    return dict(facts)


def default_tool(board: Board) -> str:
    """The board's uploader: its ``flash.tool``, else ``pio`` (``pio run -t upload``)."""
    return str(flash_facts(board).get("tool") or "pio")


def build_dir(project_dir: Path, env: str) -> Path:
    """Where ``pio run`` leaves the firmware."""
    return Path(project_dir) / ".pio" / "build" / env


def _section(board: Board, tool: str) -> dict[str, object]:
    section = flash_facts(board).get(tool)
    if not isinstance(section, dict):
        have = [t for t in FLASH_TOOLS if isinstance(flash_facts(board).get(t), dict)]
        raise BoardError(f"board '{board.id}' has no flash.{tool} facts in {board.source}",
                         f"use --tool {' or --tool '.join(have + ['pio'])}, or add a flash.{tool} section "
                         "to the board file")
    return section


def _is_serial(port: str) -> bool:
    return port.startswith("/dev/") or "://" in port or port.upper().startswith("COM")


def find_uf2_drive() -> Path | None:
    """A mounted ``RPI-RP2`` drive (a Pico in BOOTSEL mode), or None."""
    for root in (Path("/media"), Path("/run/media")):
        if root.is_dir():
            for drive in sorted(root.glob("*/RPI-RP2")):
                if drive.is_dir():
                    return drive
    return None


def _image(project_dir: Path, env: str, image: Path | None, *, want_bin: bool) -> Path:
    if image is not None:
        return Path(image).resolve()
    folder = build_dir(project_dir, env).resolve()
    for name in (("firmware.bin",) if want_bin else ("firmware.elf", "firmware.bin")):
        if (folder / name).is_file():
            return folder / name
    # Not built yet: the plan names the file the build will produce (a dry run still shows the command).
    return folder / ("firmware.bin" if want_bin else "firmware.elf")


def plan_upload(project_dir: Path, board: Board, env: str, *, tool: str | None = None,
                upload_port: str | None = None, image: Path | None = None) -> UploadPlan:
    """The upload of ``project_dir``'s firmware to ``board`` with ``tool`` (default: the board's), without
    running anything. ``upload_port`` is the board's serial port for esptool, the probe's serial number
    for pyOCD/OpenOCD (a serial device is ignored there: the probe is found on USB), or the USB drive's
    folder for UF2."""
    tool = tool or default_tool(board)
    if tool not in FLASH_TOOLS:
        raise TinyedgeError(f"'{tool}' is not an uploader tinyedge drives directly",
                            f"use one of {', '.join(TOOLS)}")
    section = _section(board, tool)
    probe = upload_port if upload_port and not _is_serial(upload_port) else None
    base = board.flash.base
    if tool == "pyocd":
        img = _image(project_dir, env, image, want_bin=False)
        return UploadPlan(tool, pyocd_command(str(section["target"]), img, probe=probe, base=base), img, board)
    if tool == "openocd":
        img = _image(project_dir, env, image, want_bin=False)
        scripts = [str(section[k]) for k in ("board", "interface", "target") if section.get(k)]
        return UploadPlan(tool, openocd_command(scripts, img, adapter_serial=probe, base=base), img, board)
    if tool == "esptool":
        img = _image(project_dir, env, image, want_bin=True)
        offsets = section.get("offsets") or {}
        assert isinstance(offsets, dict)
        pairs: list[tuple[int, Path]] = []
        # The bootloader and partition table pio builds beside the app, when present (a fresh chip needs them).
        for name, file in (("bootloader", "bootloader.bin"), ("partitions", "partitions.bin")):
            if name in offsets and (img.parent / file).is_file():
                pairs.append((int(offsets[name]), img.parent / file))
        pairs.append((int(offsets.get("app", 0x10000)), img))
        port = upload_port if upload_port and _is_serial(upload_port) else None
        return UploadPlan(tool, esptool_command(str(section["chip"]), pairs, port=port), img, board)
    # uf2
    img = _image(project_dir, env, image, want_bin=False)
    if upload_port and not _is_serial(upload_port):
        drive = Path(upload_port)
    else:
        drive = find_uf2_drive() or Path("/media") / getpass.getuser() / str(section.get("drive", "RPI-RP2"))
    uf2 = img.with_suffix(".uf2")
    return UploadPlan(tool, uf2_copy_command(uf2, drive), img, board, uf2=uf2)


# Uploader failures users can fix, recognised in the uploader's output: (pattern, problem, what to try).
UPLOAD_FAILURES: list[tuple[re.Pattern[str], str, str]] = [
    (
        re.compile(r"Permission denied|LIBUSB_ERROR_ACCESS|\[Errno 13\]|insufficient permissions", re.I),
        "permission denied on the board's port",
        "add yourself to the dialout group (sudo usermod -aG dialout $USER, then log in again) or install "
        "PlatformIO's udev rules (https://docs.platformio.org/en/latest/core/installation/udev-rules.html)",
    ),
    (
        re.compile(r"Device or resource busy|Resource busy|\[Errno 16\]|LIBUSB_ERROR_BUSY|"
                   r"could not exclusively lock", re.I),
        "the board's port is busy",
        "close whatever holds it (a serial monitor, another tinyedge or pio process) and flash again",
    ),
    (
        re.compile(
            r"No device found|no device|could not open port|No such file or directory: '/dev/|"
            r"Please specify `upload_port`|No connected debug probes|No available debug probes|"
            r"Unable to find|not found.*(device|probe|st-?link)|Couldn't find|No (DFU|ST-?Link|J-?Link|probe)|"
            r"open failed|LIBUSB_ERROR_NOT_FOUND|No serial data received|unable to find a matching CMSIS-DAP",
            re.I,
        ),
        "no board found to upload to",
        "connect the board (check the USB cable carries data), then pass the port with --upload-port "
        "(`pio device list` shows the candidates)",
    ),
]


def explain_upload_failure(what: str, output: str) -> TinyedgeError | None:
    """One TinyedgeError for a known uploader failure in ``output``, or None."""
    for pattern, problem, hint in UPLOAD_FAILURES:
        match = pattern.search(output)
        if match:
            line = next((ln.strip() for ln in output.splitlines() if pattern.search(ln)), match.group(0))
            return TinyedgeError(f"upload of {what} failed: {problem} ({line})", hint)
    return None


def run_upload(plan: UploadPlan) -> None:
    """Run an :class:`UploadPlan`: check the image (and tool) exist, write the UF2 file, run the command."""
    if not plan.image.is_file():
        raise TinyedgeError(
            f"{plan.image} does not exist: there is no firmware to flash",
            f"build it (`tinyedge build`: a real board needs PlatformIO's vendor platform, downloaded once) or "
            f"pass a firmware ELF/.bin with --image; see the board's flash section in {plan.board.source}",
        )
    if plan.tool == "openocd":
        proc.which("openocd", OPENOCD_HINT)
    if plan.tool in ("pyocd", "esptool") and importlib.util.find_spec(plan.tool) is None:
        raise ToolError(f"{plan.tool} is not installed in this Python", "pip install 'tinyedge[flash]'")
    if plan.uf2 is not None:
        section = _section(plan.board, "uf2")
        family = section["family_id"]
        assert isinstance(family, int)  # the board schema checks it
        write_uf2(plan.image, plan.uf2, family_id=family, base=plan.board.flash.base)
        drive = Path(plan.command[-1])
        if not drive.is_dir():
            raise TinyedgeError(f"no UF2 drive at {drive}",
                                "hold BOOTSEL while plugging the Pico in, then pass its drive with --upload-port "
                                "(e.g. /media/$USER/RPI-RP2)")
    result = proc.run(plan.command, check=False, timeout=UPLOAD_TIMEOUT_S, what=f"{plan.tool} flash")
    if result.returncode == 0:
        return
    output = (result.stdout or "") + "\n" + (result.stderr or "")
    known = explain_upload_failure(f"{plan.image} to {plan.board.id} with {plan.tool}", output)
    if known is not None:
        raise known
    tail = "\n".join(output.strip().splitlines()[-15:]) or f"exit code {result.returncode}"
    raise ToolError(f"{plan.tool} could not flash {plan.board.id}:\n{tail}",
                    f"run it by hand to see its full output: {proc.format_cmd(plan.command)}")
