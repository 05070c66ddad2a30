"""``tinyedge boards``."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from ..boards import list_boards
from ..errors import BoardError


@click.command("boards")
@click.option("--json", "as_json", is_flag=True, help="Print the boards as JSON.")
def cmd(as_json: bool) -> None:
    """List the boards tinyedge knows (project boards/, user folder, built-ins).

    A board file that does not load is named on one warning line (stderr) and left out; the others
    are still listed and the exit code stays 0.
    """
    problems: list[BoardError] = []
    boards = list_boards(problems=problems)
    for exc in problems:
        click.secho(f"warning: skipped: {' '.join(str(exc).split())}", fg="yellow", err=True)
    if as_json:
        click.echo(json.dumps([{**b.raw, "source": str(b.source)} for b in boards], indent=2))
        return
    table = Table()
    table.add_column("id", no_wrap=True)  # ids are what users copy: never wrapped
    for col in ("core", "clock", "flash", "ram", "emulator"):
        table.add_column(col, no_wrap=True)
    table.add_column("name", overflow="ellipsis")
    for b in boards:
        emu = "qemu " + b.qemu["machine"] if b.qemu else "-"
        table.add_row(b.id, b.core, f"{b.clock_hz / 1e6:g} MHz", f"{b.flash.size // 1024} KiB",
                      f"{b.ram.size // 1024} KiB", emu, b.name)
    Console().print(table)
