"""``tinyedge flash``."""

from __future__ import annotations

from pathlib import Path

import click

from ..firmware import flash_project


@click.command("flash")
@click.argument("project", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--upload-port", "upload_port", metavar="PORT",
              help="Serial port or probe of the board (e.g. /dev/ttyACM0); "
                   "for an emulated board, the TCP port of its UART.")
def cmd(project: Path, upload_port: str | None) -> None:
    """Upload PROJECT's firmware to the board (pio run -t upload), building it first when needed.

    An emulated board "uploads" by running the firmware in QEMU (tinyedge emulate) until it exits.
    """
    flash_project(project, upload_port=upload_port)
    click.echo(f"uploaded {project}")
