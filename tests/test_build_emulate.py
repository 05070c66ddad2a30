"""tinyedge.firmware and tinyedge.runners end to end with the real tools: offline PlatformIO, arm-none-eabi-gcc, QEMU.

A test-only firmware (tests/fixtures/port_test_main.c) exercises the generated board port over the UART.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
import serial
from click.testing import CliRunner

from tinyedge import proc
from tinyedge.boards import MemRegion, get_board
from tinyedge.cli import cli
from tinyedge.errors import FitError, TinyedgeError, ToolError
from tinyedge.firmware import PLATFORM_DIR, build_project, flash_project, project_files, provision
from tinyedge.firmware.provision import SCONS_PKG_VERSION
from tinyedge.runners import QemuSession, emulate_project, free_port, qemu_command

BOARD_ID = "qemu-mps2-an386"
FIXTURE_MAIN = Path(__file__).parent / "fixtures" / "port_test_main.c"

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm")),
    reason="needs arm-none-eabi-gcc and qemu-system-arm",
)


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def board():
    return get_board(BOARD_ID)


def write_project(root: Path, board, main_c: str | None = None) -> Path:
    for rel, text in project_files(board, project_name="port-test").items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "src" / "main.c").write_text(main_c if main_c is not None else FIXTURE_MAIN.read_text())
    (root / "tinyedge.json").write_text(json.dumps({"board": board.id}))
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory, board, pio_core):
    project = write_project(tmp_path_factory.mktemp("proj") / "port-test", board)
    return project, build_project(project, core_dir=pio_core)


@pytest.fixture
def pio_core_env(pio_core, monkeypatch):
    """Point PlatformIO (in-process and in children) at the test core folder."""
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(pio_core))
    return pio_core


def ask(link, line: str) -> str:
    link.write(line.encode() + b"\n")
    return link.readline().decode().strip()


def talk_when_listening(port: int, lines: list[str], replies: list[str], timeout: float = 60.0) -> threading.Thread:
    """In a thread: connect to a QEMU UART on ``port`` once it listens, read the banner, send ``lines``."""

    def run() -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                link = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=10)
                break
            except serial.SerialException:
                if time.monotonic() > deadline:
                    replies.append("<no connection>")
                    return
                time.sleep(0.05)
        with link:
            replies.append(link.readline().decode().strip())
            for line in lines:
                link.write(line.encode() + b"\n")
                if not line.startswith("exit"):  # the firmware stops instead of answering
                    replies.append(link.readline().decode().strip())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------------------------------ provisioning
@pytest.mark.unit
def test_provision_creates_tool_scons_once(tmp_path):
    core = provision(tmp_path / "core")
    pkg = core / "packages" / "tool-scons"
    assert json.loads((pkg / "package.json").read_text())["version"] == SCONS_PKG_VERSION
    piopm = json.loads((pkg / ".piopm").read_text())
    assert piopm["spec"]["owner"] == "platformio" and piopm["name"] == "tool-scons"
    stamp = (pkg / "scons.py").stat().st_mtime_ns
    assert provision(tmp_path / "core") == core
    assert (pkg / "scons.py").stat().st_mtime_ns == stamp
    assert [p.name for p in (core / "packages").iterdir()] == ["tool-scons"]  # nothing half-written left
    version = proc.run([sys.executable, str(pkg / "scons.py"), "--version"]).stdout
    assert "SCons" in version


# ------------------------------------------------------------------------------------------ project files
@pytest.mark.unit
def test_project_files(board):
    files = project_files(board, project_name="demo")
    assert set(files) == {"platformio.ini", f"boards/{BOARD_ID}.json", "linker.ld", "src/startup.c",
                          "src/te_port.h", "src/te_port.c"}
    ini = files["platformio.ini"]
    assert f"[env:{BOARD_ID}]" in ini
    platform = re.search(r"^platform = (.+)$", ini, re.M).group(1)
    assert Path(platform).is_absolute() and Path(platform) == PLATFORM_DIR
    assert (PLATFORM_DIR / "platform.json").is_file() and (PLATFORM_DIR / "builder" / "main.py").is_file()
    manifest = json.loads(files[f"boards/{BOARD_ID}.json"])
    assert manifest["build"]["cpu"] == "cortex-m4" and manifest["build"]["f_cpu"] == "25000000L"
    assert manifest["upload"]["maximum_size"] == 4 * 1024 * 1024 and manifest["build"]["tinyedge_emulated"] is True
    for symbol in ("__te_flash_start", "__te_flash_end", "__te_ram_start", "__te_ram_end"):
        assert symbol in files["linker.ld"]
    header = files["src/te_port.h"]
    assert f'#define TE_BOARD_ID   "{BOARD_ID}"' in header and "#define TE_EMULATED   1" in header
    assert "0xE000ED88" in files["src/startup.c"]  # FPU enabled: the board has one


@pytest.mark.unit
@pytest.mark.parametrize(
    "core, fpu, uart, base",
    [
        ("cortex-m4", "fpv4-sp-d16", "cmsdk", 0x40004000),
        ("cortex-m3", "none", "pl011", 0x4000C000),
        ("cortex-m4", "fpv4-sp-d16", "stm32", 0x40011000),
        ("cortex-m0", "none", "nrf51", 0x40002000),
        ("cortex-m7", "fpv5-d16", "cmsdk", 0x40004000),
    ],
)
def test_port_compiles_strict(tmp_path, board, core, fpu, uart, base):
    """Startup and port code of every driver compile as C99 with -Wall -Wextra -Werror."""
    variant = dataclasses.replace(board, core=core, fpu=fpu, uart={"driver": uart, "base": base, "baud": 115200})
    files = project_files(variant, project_name="strict")
    (tmp_path / "src").mkdir()
    for rel in ("src/startup.c", "src/te_port.h", "src/te_port.c"):
        (tmp_path / rel).write_text(files[rel])
    flags = [f"-mcpu={core}", "-mthumb"] + ([f"-mfpu={fpu}", "-mfloat-abi=hard"] if fpu != "none" else [])
    for src in ("startup.c", "te_port.c"):
        proc.run(["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", *flags, "-c",
                  str(tmp_path / "src" / src), "-o", str(tmp_path / (src + ".o"))])


@pytest.mark.unit
def test_unsupported_board_is_a_clear_error(board):
    with pytest.raises(TinyedgeError, match="uart driver|UART driver"):
        project_files(dataclasses.replace(board, uart={"driver": "bogus", "baud": 115200}), project_name="x")
    # The Arduino port needs the Arduino framework (a stock PlatformIO platform).
    with pytest.raises(TinyedgeError, match="framework: arduino"):
        project_files(dataclasses.replace(board, uart={"driver": "arduino", "baud": 115200}), project_name="x")
    with pytest.raises(TinyedgeError, match="only supports Cortex-M"):
        project_files(dataclasses.replace(board, core="xtensa-lx7"), project_name="x")


@pytest.mark.unit
def test_arduino_board_files():
    """An Arduino-framework board: stock platform/board/framework, no linker script or startup code."""
    files = project_files(get_board("nucleo_l4r5zi"), project_name="demo")
    assert set(files) == {"platformio.ini", "src/te_port.h", "src/te_port.cpp"}
    ini = files["platformio.ini"]
    for line in ("platform = ststm32", "board = nucleo_l4r5zi", "framework = arduino", "upload_protocol = stlink",
                 "build_src_flags = -Dmain=te_app_main"):
        assert line in ini
    port = files["src/te_port.cpp"]
    assert "#undef main" in port and "void setup(void)" in port and "te_app_main()" in port
    assert "TE_DWT_CYCCNT" in port and "Serial" in port


# ------------------------------------------------------------------------------------------ build
@pytest.mark.slow
def test_build_result(built):
    project, result = built
    assert result.elf == project / ".pio" / "build" / BOARD_ID / "firmware.elf"
    assert result.elf.is_file() and result.elf.with_suffix(".bin").is_file()
    assert result.text > 500 and result.flash_bytes == result.text + result.data
    assert result.ram_bytes == result.data + result.bss


@pytest.mark.unit
def test_build_without_platformio_ini(tmp_path, pio_core):
    with pytest.raises(TinyedgeError, match="no platformio.ini") as err:
        build_project(tmp_path, core_dir=pio_core)
    assert "tinyedge generate" in str(err.value)


@pytest.mark.slow
def test_compile_error_shows_the_compiler_line(tmp_path, board, pio_core):
    project = write_project(tmp_path / "broken", board)
    (project / "src" / "broken.c").write_text("int broken(void)\n{\n    return undeclared_thing;\n}\n")
    with pytest.raises(ToolError) as err:
        build_project(project, core_dir=pio_core)
    message = str(err.value)
    assert "broken.c:3" in message and "undeclared_thing" in message and "error:" in message
    assert "Traceback" not in message


@pytest.mark.slow
def test_firmware_too_big_is_a_fit_error(tmp_path, board, pio_core):
    project = write_project(tmp_path / "huge", board)
    (project / "src" / "huge.c").write_text(
        "#include <stdint.h>\nuint8_t te_huge_arena[5u << 20];\n"
        "uint8_t *te_huge(void) { return te_huge_arena; }\n"
    )
    main = (project / "src" / "main.c").read_text().replace(
        "te_port_init();", "te_port_init();\n    extern uint8_t *te_huge(void);\n    te_huge()[1] = 1;")
    (project / "src" / "main.c").write_text(main)
    with pytest.raises(FitError, match="does not fit"):
        build_project(project, core_dir=pio_core)


@pytest.mark.slow
def test_missing_compiler_is_a_tool_error(tmp_path, built, monkeypatch):
    project, _ = built
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match="arm-none-eabi-gcc") as err:
        build_project(project)
    assert "apt-get install gcc-arm-none-eabi" in str(err.value)


# ------------------------------------------------------------------------------------------ QEMU
@pytest.mark.unit
def test_qemu_command(board, tmp_path):
    cmd = qemu_command(board, tmp_path / "fw.elf", 4321)
    assert cmd[0] == "qemu-system-arm" and "mps2-an386" in cmd
    joined = " ".join(cmd)
    assert "shift=0" in joined and "enable=on,target=native" in joined
    assert "tcp:127.0.0.1:4321,server=on,wait=on" in joined and "-nographic" not in cmd


@pytest.mark.slow
def test_firmware_runs_in_qemu(built, board):
    project, result = built
    with QemuSession(board, result.elf) as qemu:
        assert qemu.url == f"socket://127.0.0.1:{qemu.port}"
        link = qemu.open_serial(timeout=20)
        assert link.readline().decode().strip() == f"te-port-test {BOARD_ID}"
        assert ask(link, "echo hello, board") == "echo: hello, board"
        assert ask(link, "echo " + "x" * 100) == "echo: " + "x" * 100
        source, hz, flash_used, ram_used = ask(link, "info").split()[1:]
        # QEMU's DWT cycle counter reads 0, so the port must have fallen back to SysTick at the CPU clock.
        assert (source, int(hz)) == ("systick", board.clock_hz)
        # The firmware's own view of its size (linker symbols) agrees with arm-none-eabi-size.
        assert int(flash_used) == result.flash_bytes and int(ram_used) == result.ram_bytes
        check_poll(link)
        link.write(b"exit 7\n")
        assert qemu.wait(timeout=20) == 7


def check_poll(link) -> None:
    """te_port_poll: -1 with nothing waiting, then the byte the host sends (the break-byte check needs it)."""
    assert ask(link, "poll") == "poll -1"
    link.write(b"Z")
    assert link.readline().decode().strip() == "poll got 90"


def measure(board, elf, loops: list[int]) -> list[int]:
    with QemuSession(board, elf) as qemu:
        link = qemu.open_serial(timeout=20)
        link.timeout = 30  # a long loop takes over a second of host time on a loaded machine
        link.readline()
        counts = []
        for k in loops:
            time.sleep(0.02)  # host timing must not matter
            reply = ask(link, f"ticks {k}")
            assert reply.startswith("ticks "), reply
            counts.append(int(reply.split()[1]))
        link.write(b"exit 0\n")
        assert qemu.wait(timeout=20) == 0
    return counts


@pytest.mark.slow
def test_tick_counts_are_deterministic_and_linear(built, board):
    _, result = built
    first = measure(board, result.elf, [200, 200, 400])
    second = measure(board, result.elf, [200, 200, 400])
    assert first == second
    assert first[0] == first[1]
    assert abs(first[2] - 2 * first[0]) <= 2  # linear in work
    assert first[0] > 1000


@pytest.mark.slow
def test_tick_count_survives_systick_wraps(built, board):
    """A loop longer than one 24-bit SysTick period (0.67 s at 25 MHz) is still counted linearly."""
    _, result = built
    short, long = measure(board, result.elf, [200, 90_000])
    assert long > 1 << 24
    assert abs(long / short - 450) < 0.01


@pytest.mark.slow
def test_url_works_as_soon_as_the_session_starts(built, board):
    """QemuSession waits until QEMU listens, so a client can connect to .url without retrying."""
    _, result = built
    with QemuSession(board, result.elf) as qemu:
        with serial.serial_for_url(qemu.url, timeout=10) as link:
            assert link.readline().decode().strip() == f"te-port-test {BOARD_ID}"
            link.write(b"exit 0\n")
            assert qemu.wait(timeout=20) == 0


# Other QEMU machines, one per UART driver (board files built here: only mps2-an386 ships for now).
OTHER_MACHINES = {
    "lm3s6965evb": dict(core="cortex-m3", fpu="none", clock_hz=12_500_000, flash=MemRegion(0, 256 * 1024),
                        ram=MemRegion(0x20000000, 64 * 1024),
                        uart={"driver": "pl011", "base": 0x4000C000, "baud": 115200},
                        timer={"driver": "systick", "hz": 12_500_000}),
    "netduinoplus2": dict(core="cortex-m4", fpu="fpv4-sp-d16", clock_hz=168_000_000,
                          flash=MemRegion(0x08000000, 1024 * 1024), ram=MemRegion(0x20000000, 128 * 1024),
                          uart={"driver": "stm32", "base": 0x40011000, "baud": 115200},
                          timer={"driver": "systick", "hz": 168_000_000}),
    "microbit": dict(core="cortex-m0", fpu="none", clock_hz=16_000_000, flash=MemRegion(0, 256 * 1024),
                     ram=MemRegion(0x20000000, 16 * 1024), uart={"driver": "nrf51", "base": 0x40002000, "baud": 115200},
                     timer={"driver": "systick", "hz": 16_000_000}),
}


@pytest.mark.slow
@pytest.mark.parametrize("machine", sorted(OTHER_MACHINES))
def test_other_uart_drivers_in_qemu(tmp_path, board, pio_core, machine):
    variant = dataclasses.replace(board, emulator={"qemu": {"machine": machine}}, **OTHER_MACHINES[machine])
    project = write_project(tmp_path / machine, variant)
    result = build_project(project, core_dir=pio_core)
    with QemuSession(variant, result.elf) as qemu:
        link = qemu.open_serial(timeout=20)
        assert link.readline().decode().strip() == f"te-port-test {BOARD_ID}"
        assert ask(link, "echo driver") == "echo: driver"
        assert ask(link, "info").split()[1:3] == ["systick", str(variant.clock_hz)]
        assert int(ask(link, "ticks 50").split()[1]) > 0
        check_poll(link)
        link.write(b"exit 4\n")
        assert qemu.wait(timeout=20) == 4


@pytest.mark.unit
def test_not_an_elf(tmp_path, board):
    bogus = tmp_path / "not-an-elf.elf"
    bogus.write_text("this is not firmware\n")
    with pytest.raises(ToolError, match="not an ELF"):
        QemuSession(board, bogus).start()


@pytest.mark.slow
def test_qemu_failing_early_shows_its_stderr(built, board):
    _, result = built
    odd = dataclasses.replace(board, emulator={"qemu": {"machine": "no-such-machine"}})
    with pytest.raises(ToolError, match="QEMU exited") as err:
        with QemuSession(odd, result.elf) as qemu:
            qemu.open_serial(timeout=20)
    assert "no-such-machine" in str(err.value)


@pytest.mark.slow
def test_missing_qemu_is_a_tool_error(built, board, tmp_path, monkeypatch):
    _, result = built
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match="qemu-system-arm") as err:
        QemuSession(board, result.elf).start()
    assert "apt-get install qemu-system-arm" in str(err.value)


@pytest.mark.unit
def test_emulate_without_elf(tmp_path, board):
    project = write_project(tmp_path / "unbuilt", board)
    with pytest.raises(ToolError, match="build it first"):
        emulate_project(project)


@pytest.mark.slow
def test_emulate_project_runs_to_exit(built):
    project, _ = built
    port = free_port()
    replies: list[str] = []
    talker = talk_when_listening(port, ["echo via emulate", "exit 3"], replies)
    messages: list[str] = []
    assert emulate_project(project, port, echo=messages.append) == 3
    talker.join(10)
    assert replies[:2] == [f"te-port-test {BOARD_ID}", "echo: via emulate"]
    assert f"socket://127.0.0.1:{port}" in messages[0]


# ------------------------------------------------------------------------------------------ CLI
@pytest.mark.slow
def test_cli_build(built, pio_core_env):
    project, result = built
    out = CliRunner().invoke(cli, ["build", str(project)])
    assert out.exit_code == 0, out.output
    assert f"flash: {result.flash_bytes:,} of {4 * 1024 * 1024:,} bytes" in out.output
    assert f"RAM:   {result.ram_bytes:,} of" in out.output


@pytest.mark.unit
def test_cli_build_error_is_one_line(tmp_path, pio_core_env):
    out = CliRunner().invoke(cli, ["build", str(tmp_path)])
    assert out.exit_code == 2
    assert "error:" in out.output and "no platformio.ini" in out.output and "Traceback" not in out.output


@pytest.mark.slow
def test_cli_emulate(built):
    project, _ = built
    port = free_port()
    replies: list[str] = []
    talker = talk_when_listening(port, ["exit 5"], replies)
    out = CliRunner().invoke(cli, ["emulate", str(project), "--serial-port", str(port)])
    talker.join(10)
    assert out.exit_code == 5, out.output
    assert f"socket://127.0.0.1:{port}" in out.output
    assert replies[0] == f"te-port-test {BOARD_ID}"


@pytest.mark.unit
def test_cli_emulate_unbuilt(tmp_path, board):
    project = write_project(tmp_path / "unbuilt", board)
    out = CliRunner().invoke(cli, ["emulate", str(project)])
    assert out.exit_code == 2 and "build it first" in out.output


@pytest.mark.slow
def test_upload_of_emulated_board_runs_qemu(built, pio_core_env):
    """`pio run -t upload` (tinyedge flash) on an emulated board runs the firmware through `tinyedge emulate`."""
    project, _ = built
    port = free_port()
    replies: list[str] = []
    talker = talk_when_listening(port, ["echo uploaded", "exit 0"], replies, timeout=120)
    out = CliRunner().invoke(cli, ["flash", str(project), "--upload-port", str(port)])
    talker.join(10)
    assert out.exit_code == 0, out.output
    assert replies == [f"te-port-test {BOARD_ID}", "echo: uploaded"]


UPLOADER_FAILURES = {
    # What common uploaders print -> (the problem tinyedge reports, a word of what to try).
    "permission": ("could not open port '/dev/ttyACM7': [Errno 13] Permission denied: '/dev/ttyACM7'",
                   "permission denied", "dialout"),
    "busy": ("could not open port /dev/ttyACM7: [Errno 16] Device or resource busy: '/dev/ttyACM7'",
             "port is busy", "serial monitor"),
    "no-device-stlink": ("Error: open failed\nin procedure 'program'", "no board found", "--upload-port"),
    "no-device-serial": ("Error: Please specify `upload_port` for environment or use global `--upload-port` option.",
                         "no board found", "pio device list"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(UPLOADER_FAILURES))
def test_upload_failure_is_explained(tmp_path, board, pio_core, case):
    """An uploader failure (no device, permission denied, busy) becomes one TinyedgeError saying what to try."""
    printed, problem, hint = UPLOADER_FAILURES[case]
    hardware = dataclasses.replace(board, emulator={})
    project = write_project(tmp_path / "hw", hardware)
    (project / "fake_uploader.py").write_text(f"import sys\nprint({printed!r})\nsys.exit(1)\n")
    ini = project / "platformio.ini"
    ini.write_text(ini.read_text() + 'upload_command = "$PYTHONEXE" "$PROJECT_DIR/fake_uploader.py"\n')
    with pytest.raises(TinyedgeError, match=problem) as err:
        flash_project(project, upload_port="/dev/ttyACM7", core_dir=pio_core)
    message = str(err.value)
    assert hint in message and "Try:" in message and "Traceback" not in message
    assert message.count("\n") == 0  # one line


@pytest.mark.slow
def test_cli_flash_failure_is_one_line(tmp_path, board, pio_core, monkeypatch):
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(pio_core))
    project = write_project(tmp_path / "hw", dataclasses.replace(board, emulator={}))
    (project / "fake_uploader.py").write_text("import sys\nprint('No device found on ttyACM0')\nsys.exit(1)\n")
    ini = project / "platformio.ini"
    ini.write_text(ini.read_text() + 'upload_command = "$PYTHONEXE" "$PROJECT_DIR/fake_uploader.py"\n')
    out = CliRunner().invoke(cli, ["flash", str(project)])
    assert out.exit_code == 2, out.output
    assert "error: upload of" in out.output and "no board found" in out.output and "Traceback" not in out.output
