"""Where the data folders are: inside the wheel (``tinyedge/_data``) or at the top of a source checkout."""

from __future__ import annotations

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
