"""Where the data folders are: inside the wheel (``tinyedge/_data``) or at the top of a source checkout."""

from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Path of a shipped data folder: ``firmware_templates``, ``boards`` or ``renode``."""
    installed = _PKG / "_data" / name
    if installed.is_dir():
        return installed
    return _PKG.parent / name


def templates_dir() -> Path:
    """The Jinja templates of the files that depend on the model or the board."""
    return data_dir("firmware_templates")


def runtime_dir() -> Path:
    """tinyedge's static C runtime (kernels, ``main.c``, host harness), copied unchanged into projects.

    It lives inside the package (``tinyedge/runtime``), so a wheel ships it as is.
    """
    return _PKG / "runtime"


def builtin_boards_dir() -> Path:
    return data_dir("boards")


def renode_dir() -> Path:
    return data_dir("renode")


def cache_dir(name: str = "") -> Path:
    """tinyedge's cache folder (sub-folder ``name``): ``$TINYEDGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/tinyedge``,
    else ``~/.cache/tinyedge``. Not created here; everything in it can be deleted at any time."""
    env = os.environ.get("TINYEDGE_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "tinyedge"
    return root / name if name else root
