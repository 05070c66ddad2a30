"""``tinyedge build``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..firmware import build_project, project_env


def _board_limits(project: Path) -> tuple[int, int] | None:
    # The board manifest the generator wrote holds the flash/RAM sizes PlatformIO checks against.
    try:
        manifest = json.loads((project / "boards" / f"{project_env(project)}.json").read_text())
        return int(manifest["upload"]["maximum_size"]), int(manifest["upload"]["maximum_ram_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _use(used: int, total: int | None) -> str:
    if not total:
        return f"{used:,} bytes"
    return f"{used:,} of {total:,} bytes ({100.0 * used / total:.1f}%)"


@click.command("build")
@click.argument("project_dir", type=click.Path(file_okay=False, path_type=Path), default=".")
def cmd(project_dir: Path) -> None:
    """Build PROJECT_DIR (default: the current folder) offline with PlatformIO (pio run)."""
    result = build_project(project_dir)
    limits = _board_limits(project_dir.resolve())
    flash_max, ram_max = limits if limits else (None, None)
    click.echo(f"built {result.elf}")
    click.echo(f"flash: {_use(result.flash_bytes, flash_max)}  (text {result.text:,} + data {result.data:,})")
    click.echo(f"RAM:   {_use(result.ram_bytes, ram_max)}  (data {result.data:,} + bss {result.bss:,}; stack on top)")
