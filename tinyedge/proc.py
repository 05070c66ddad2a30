"""The one subprocess helper: every external command tinyedge runs goes through here and is logged."""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ToolError

log = logging.getLogger("tinyedge.proc")


def which(tool: str, install_hint: str) -> str:
    """Return the absolute path of ``tool`` on PATH or raise a ToolError naming how to install it."""
    path = shutil.which(tool)
    if path is None:
        raise ToolError(f"'{tool}' is not on PATH", install_hint)
    return path


def format_cmd(cmd: Sequence[str | Path]) -> str:
    """The command as a user can paste it into a shell."""
    return shlex.join(str(c) for c in cmd)


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    capture: bool = True,
    what: str | None = None,
    hint: str = "run the command shown above by hand to see the full output",
    stdin_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[Any]:  # [str], or [bytes] with stdin_bytes
    """Run ``cmd``, logging the exact command line; raise ToolError on failure when ``check``.

    ``what`` names the step for the error message (e.g. "pio run"). With ``stdin_bytes`` the
    process runs in binary mode (stdout/stderr are bytes).
    """
    text = format_cmd(cmd)
    log.info("$ %s%s", text, f"   (in {cwd})" if cwd else "")
    try:
        proc = subprocess.run(
            [str(c) for c in cmd],
            cwd=str(cwd) if cwd else None,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            capture_output=capture,
            text=stdin_bytes is None,
            input=stdin_bytes,
        )
    except FileNotFoundError as exc:
        raise ToolError(f"cannot start '{cmd[0]}': {exc.strerror}", "install it and make sure it is on PATH") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{what or text} did not finish within {timeout:g} s", hint) from None
    if check and proc.returncode != 0:
        out = (proc.stdout or "") + (proc.stderr or "")
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
        tail = "\n".join(out.strip().splitlines()[-15:])
        raise ToolError(f"{what or text} failed with exit code {proc.returncode}: {text}\n{tail}", hint)
    return proc


def popen(
    cmd: Sequence[str | Path],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> subprocess.Popen[Any]:
    """Start a long-running process (e.g. QEMU), logging the exact command line."""
    log.info("$ %s &", format_cmd(cmd))
    try:
        return subprocess.Popen(
            [str(c) for c in cmd], cwd=str(cwd) if cwd else None, env=dict(env) if env is not None else None, **kwargs
        )
    except FileNotFoundError as exc:
        raise ToolError(f"cannot start '{cmd[0]}': {exc.strerror}", "install it and make sure it is on PATH") from None
