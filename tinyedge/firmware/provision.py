"""Offline PlatformIO: the hand-provisioned ``tool-scons`` core package and a network-free environment.

PlatformIO 6.2 runs every build through its ``tool-scons`` core package and would download it from
its registry, which is not reachable here. We build that package from the SCons that pip installed
next to tinyedge: a ``scons.py`` entry point that imports it, plus the metadata PlatformIO checks.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import ToolError

#: The version PlatformIO 6.2 asks for (``tool-scons ~4.41101.0`` in platformio/dependencies.py).
SCONS_PKG_VERSION = "4.41101.0"


def default_core_dir() -> Path:
    """PlatformIO's core folder: ``$PLATFORMIO_CORE_DIR`` or ``~/.platformio``."""
    env = os.environ.get("PLATFORMIO_CORE_DIR")
    return Path(env) if env else Path.home() / ".platformio"


def pio_env(core_dir: Path | None = None) -> dict[str, str]:
    """The environment for ``pio``: our core folder, no telemetry, no upgrade checks (no network)."""
    env = dict(os.environ)
    env["PLATFORMIO_CORE_DIR"] = str(core_dir or default_core_dir())
    env["PLATFORMIO_SETTING_ENABLE_TELEMETRY"] = "No"
    env["PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL"] = "3650"
    env["PLATFORMIO_DISABLE_UPGRADE_CHECK"] = "true"
    env["PLATFORMIO_NO_ANSI"] = "true"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    # `pio` runs SCons and the upload command with this interpreter's tools on PATH.
    bindir = str(Path(sys.executable).parent)
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def _scons_site_dir() -> Path:
    try:
        import SCons  # noqa: PLC0415  (only needed here)
    except ImportError:
        raise ToolError("SCons is not installed in this Python", "pip install 'scons>=4.5'") from None
    return Path(SCons.__file__).resolve().parent.parent


def _entry_point(site_dir: Path) -> str:
    return (
        '"""tool-scons entry point provisioned by tinyedge: runs the pip-installed SCons."""\n'
        "import sys\n\n"
        f"sys.path.insert(0, {str(site_dir)!r})\n"
        "from SCons.Script.Main import main  # noqa: E402\n\n"
        "main()\n"
    )


def provision(core_dir: Path | None = None) -> Path:
    """Create ``<core_dir>/packages/tool-scons`` from the pip-installed SCons unless it is already there.

    Idempotent, and a tool-scons PlatformIO installed itself is kept; written into a temporary folder and
    renamed so a half-written package never exists.
    Returns the core folder.
    """
    core = Path(core_dir) if core_dir else default_core_dir()
    pkg = core / "packages" / "tool-scons"
    site_dir = _scons_site_dir()
    entry = _entry_point(site_dir)
    if (pkg / ".piopm").is_file() and (pkg / "scons.py").is_file():
        current = (pkg / "scons.py").read_text(errors="replace")
        # Up to date, or a genuine tool-scons from PlatformIO's registry: leave it alone.
        if current == entry or "provisioned by tinyedge" not in current:
            return core
    try:
        pkg.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tool-scons-", dir=pkg.parent))
        manifest = {
            "name": "tool-scons",
            "version": SCONS_PKG_VERSION,
            "description": "SCons software construction tool (the pip-installed SCons, provisioned by tinyedge)",
            "keywords": ["build tools"],
            "homepage": "https://scons.org",
            "license": "MIT",
            "system": "*",
        }
        piopm = {
            "type": "tool",
            "name": "tool-scons",
            "version": SCONS_PKG_VERSION,
            "spec": {"owner": "platformio", "id": None, "name": "tool-scons", "requirements": None, "uri": None},
        }
        (tmp / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (tmp / ".piopm").write_text(json.dumps(piopm) + "\n")
        (tmp / "scons.py").write_text(entry)
        if pkg.exists():
            shutil.rmtree(pkg)
        tmp.rename(pkg)
    except OSError as exc:
        raise ToolError(
            f"cannot provision the tool-scons package in {pkg}: {exc.strerror or exc}",
            "check that the PlatformIO core folder is writable or set PLATFORMIO_CORE_DIR to one that is",
        ) from None
    return core
