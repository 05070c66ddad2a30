"""``tinyedge emulate``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..emulate import emulate_project


@click.command("emulate")
@click.argument("project_dir", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--serial-port", "serial_port", type=click.IntRange(1, 65535), metavar="N",
              help="TCP port on 127.0.0.1 for the board's UART (default: a free one).")
def cmd(project_dir: Path, serial_port: int | None) -> None:
    """Run PROJECT_DIR's built firmware in QEMU until it exits; the exit status is the firmware's.

    The UART is a TCP server on 127.0.0.1 (pyserial URL socket://127.0.0.1:N); the firmware starts
    when a client connects.
    """
    code = emulate_project(project_dir, serial_port, echo=lambda msg: click.echo(msg))
    sys.stdout.flush()
    if code:
        raise click.exceptions.Exit(code)
