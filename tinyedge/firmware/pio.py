"""``pio run`` (build) and flashing (``pio run -t upload`` or :mod:`.upload`) of a project, with clear errors."""

from __future__ import annotations

import configparser
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import proc
from ..errors import FitError, TinyedgeError, ToolError
from .project import PLATFORM_DIR
from .provision import pio_env, provision
from .upload import UploadPlan, default_tool, explain_upload_failure, plan_upload, project_board, run_upload

GCC_HINT = "sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi (or put an Arm GNU toolchain on PATH)"
BUILD_TIMEOUT_S = 900.0

# Lines of `pio run` output that explain a failed build (compiler and linker diagnostics).
_ERROR_LINE = re.compile(
    r"(: (fatal )?error: |: undefined reference to |region `\w+' overflowed|will not fit in region|"
    r"tinyedge: |^Error: |\*\*\* \[)"
)
_CONTEXT_LINE = re.compile(r"(: note: |: warning: |^\s*\d*\s*\|)")
_FIT_LINE = re.compile(r"(region `\w+' overflowed|will not fit in region|tinyedge: static RAM)")


@dataclass(frozen=True)
class BuildResult:
    """A built firmware and its size from ``arm-none-eabi-size`` (bytes)."""

    elf: Path
    text: int
    data: int
    bss: int

    @property
    def flash_bytes(self) -> int:
        """What the board stores: code and constants (text) plus the initial values of .data."""
        return self.text + self.data

    @property
    def ram_bytes(self) -> int:
        """Static RAM: .data + .bss (the stack comes on top)."""
        return self.data + self.bss


def pio_command(*args: str) -> list[str]:
    """``pio`` as this interpreter's platformio module, so the pip-installed version is the one that runs."""
    return [sys.executable, "-m", "platformio", *args]


def _require_project(project_dir: Path) -> Path:
    project_dir = Path(project_dir)
    if not (project_dir / "platformio.ini").is_file():
        raise TinyedgeError(
            f"{project_dir} is not a firmware project (no platformio.ini)",
            "generate one with `tinyedge generate` or pass the folder that contains platformio.ini",
        )
    return project_dir.resolve()


def project_env(project_dir: Path) -> str:
    """The PlatformIO environment of a project: ``default_envs`` or its only ``[env:...]``."""
    ini = configparser.ConfigParser(interpolation=None)
    try:
        ini.read(Path(project_dir) / "platformio.ini")
    except configparser.Error as exc:
        raise TinyedgeError(f"{project_dir}/platformio.ini cannot be parsed: {exc}", "regenerate the project") from None
    envs = [s[4:] for s in ini.sections() if s.startswith("env:")]
    default = ini.get("platformio", "default_envs", fallback="").replace(",", " ").split()
    if default:
        return default[0]
    if len(envs) == 1:
        return envs[0]
    raise TinyedgeError(
        f"{project_dir}/platformio.ini has {len(envs)} environments and no default_envs",
        "set default_envs in its [platformio] section",
    )


def uses_tinyedge_platform(project_dir: Path) -> bool:
    """True when the project builds with tinyedge's offline platform (bare metal, arm-none-eabi-gcc on PATH);
    False for a stock PlatformIO platform (e.g. ststm32 + Arduino), which brings its own toolchain."""
    ini = configparser.ConfigParser(interpolation=None)
    try:
        ini.read(Path(project_dir) / "platformio.ini")
        platform = ini.get(f"env:{project_env(project_dir)}", "platform", fallback="")
    except configparser.Error:
        return True
    return Path(platform).resolve() == PLATFORM_DIR.resolve() if platform.startswith(("/", ".")) else False


# `pio` could not install a stock platform, framework or toolchain package: offline, or the registry is down.
_DOWNLOAD_FAILURE = re.compile(r"HTTPClientError|Could not find the package|Platform Manager: Installing|"
                               r"Tool Manager: Installing|Package Manager: Installing")


def _download_error(project: Path, output: str) -> ToolError | None:
    if not re.search(r"HTTPClientError|Could not find the package with|ConnectionError|Max retries exceeded", output):
        return None
    what = next((ln.strip() for ln in output.splitlines() if _DOWNLOAD_FAILURE.search(ln)), "a package")
    return ToolError(
        f"PlatformIO could not download what {project} needs ({what}): the board uses a stock platform "
        "and framework from PlatformIO's registry",
        "connect to the internet once so PlatformIO can install them (they are cached in ~/.platformio), "
        "or pick an emulated qemu-* board, which builds offline",
    )


def _explain(output: str, limit: int = 25) -> str:
    lines = output.splitlines()
    picked = [ln for ln in lines if _ERROR_LINE.search(ln) or _CONTEXT_LINE.search(ln)]
    if not picked:
        picked = [ln for ln in lines if ln.strip()][-15:]
    return "\n".join(picked[:limit])


def build_project(project_dir: Path | str, *, core_dir: Path | None = None) -> BuildResult:
    """Build ``project_dir`` with ``pio run`` offline and return the firmware ELF and its sizes.

    A compile or link error becomes a ToolError showing the compiler's error lines; a firmware that
    overflows the board's flash or RAM becomes a FitError.
    """
    project = _require_project(Path(project_dir))
    if uses_tinyedge_platform(project):
        proc.which("arm-none-eabi-gcc", GCC_HINT)
    core = provision(core_dir)
    env_name = project_env(project)
    result = proc.run(
        pio_command("run", "-d", str(project)), env=pio_env(core), timeout=BUILD_TIMEOUT_S, check=False, what="pio run"
    )
    if result.returncode != 0:
        output = (result.stdout or "") + "\n" + (result.stderr or "")
        details = _explain(output)
        download = _download_error(project, output)
        if download is not None:
            raise download
        if _FIT_LINE.search(output):
            raise FitError(
                f"the firmware of {project} does not fit the board:\n{details}",
                "use a smaller model or a board with more memory (tinyedge inspect shows the memory plan)",
            )
        raise ToolError(
            f"pio run failed for {project}:\n{details}",
            f"fix the error above, or run `pio run -v -d {project}` to see every command",
        )
    elf = project / ".pio" / "build" / env_name / "firmware.elf"
    if not elf.is_file():
        raise ToolError(f"pio run succeeded but {elf} is missing",
                        f"check the environment name in {project}/platformio.ini")
    return elf_size(elf)


def elf_size(elf: Path) -> BuildResult:
    """The sizes of a firmware ELF (text, data, bss) from ``arm-none-eabi-size``: the one place that runs it."""
    tool = proc.which("arm-none-eabi-size", GCC_HINT)
    out = proc.run([tool, "-B", "-d", str(elf)], what="arm-none-eabi-size").stdout
    # Berkeley format: "text data bss dec hex filename" then one row of numbers.
    rows = [ln.split() for ln in out.strip().splitlines()[1:]]
    if not rows or len(rows[0]) < 3 or not all(c.isdigit() for c in rows[0][:3]):
        raise ToolError(f"cannot read the size of {elf} from: {out.strip()!r}",
                        "check the arm-none-eabi binutils install")
    text, data, bss = (int(c) for c in rows[0][:3])
    return BuildResult(elf=elf, text=text, data=data, bss=bss)


def upload_plan(project_dir: Path | str, *, tool: str | None = None, upload_port: str | None = None,
                image: Path | None = None) -> UploadPlan | None:
    """How :func:`flash_project` would flash ``project_dir`` without PlatformIO (see
    :mod:`tinyedge.firmware.upload`), or None when it runs ``pio run -t upload``: ``tool="pio"``, or no
    tool given and the board names none (emulated boards, projects without ``tinyedge.json``)."""
    project = _require_project(Path(project_dir))
    if tool == "pio":
        return None
    if tool is None and not (project / "tinyedge.json").is_file():
        return None
    board = project_board(project)
    if tool is None and default_tool(board) == "pio":
        return None
    return plan_upload(project, board, project_env(project), tool=tool, upload_port=upload_port, image=image)


def pio_upload_command(project_dir: Path | str, upload_port: str | None = None) -> list[str]:
    """``pio run -d PROJECT -t upload [--upload-port PORT]``."""
    cmd = pio_command("run", "-d", str(Path(project_dir).resolve()), "-t", "upload")
    return cmd + ["--upload-port", str(upload_port)] if upload_port else cmd


def flash_project(project_dir: Path | str, upload_port: str | None = None, core_dir: Path | None = None, *,
                  tool: str | None = None, image: Path | None = None) -> None:
    """Flash a project's firmware to its board.

    With the board's ``flash.tool`` (or ``tool``: pyocd, openocd, uf2, esptool) this runs that uploader on
    the ELF/.bin already built in ``.pio/build/<env>/`` (or ``image``): no vendor platform needed. With
    ``tool="pio"``, or for a board that names no tool, it runs ``pio run -t upload`` (building first when
    needed); for an emulated board that starts QEMU through ``tinyedge emulate`` and returns when the
    firmware exits, ``upload_port`` then being the TCP port of the UART. Common uploader failures (no
    device, permission denied, port busy) become one TinyedgeError that says what to try.
    """
    plan = upload_plan(project_dir, tool=tool, upload_port=upload_port, image=image)
    if plan is not None:
        run_upload(plan)
        return
    if image is not None:
        raise TinyedgeError("--image needs an uploader that flashes a file (pyocd, openocd, uf2 or esptool)",
                            "pass --tool with one of them, or drop --image to let `pio run -t upload` build and flash")
    project = _require_project(Path(project_dir))
    if uses_tinyedge_platform(project):
        proc.which("arm-none-eabi-gcc", GCC_HINT)
    core = provision(core_dir)
    cmd = pio_upload_command(project, upload_port)
    emulated = _is_emulated(project)
    # An emulated "upload" runs until the firmware exits and prints where its UART is: stream its output.
    result = proc.run(cmd, env=pio_env(core), check=False, capture=not emulated, what="pio run -t upload",
                      timeout=None if emulated else BUILD_TIMEOUT_S)
    if result.returncode == 0:
        return
    output = (result.stdout or "") + "\n" + (result.stderr or "")
    download = _download_error(project, output)
    if download is not None:
        raise download
    known = explain_upload_failure(str(project), output)
    if known is not None:
        raise known
    details = _explain(output) if output.strip() else f"exit code {result.returncode}"
    raise ToolError(
        f"pio run -t upload failed for {project}:\n{details}",
        f"run `pio run -v -t upload -d {project}` to see the uploader's full output",
    )


def _is_emulated(project: Path) -> bool:
    try:
        board = json.loads((project / "boards" / f"{project_env(project)}.json").read_text())
        return bool(board.get("build", {}).get("tinyedge_emulated"))
    except (OSError, ValueError):
        return False
