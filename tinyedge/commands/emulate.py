"""``tinyedge emulate``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..runners import ENGINES, emulate_project, run_renode


@click.command("emulate")
@click.argument("project_dir", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--serial-port", "serial_port", type=click.IntRange(1, 65535), metavar="N",
              help="TCP port on 127.0.0.1 for the board's UART (default: a free one).")
@click.option("--engine", type=click.Choice(ENGINES), default="qemu", show_default=True,
              help="qemu (the board's emulator.qemu machine) or renode (its emulator.renode platform).")
def cmd(project_dir: Path, serial_port: int | None, engine: str) -> None:
    """Run PROJECT_DIR's built firmware in QEMU (or Renode) until it exits; the exit status is the firmware's.

    The UART is a TCP server on 127.0.0.1 (pyserial URL socket://127.0.0.1:N); the firmware starts
    when a client connects. With --engine renode, PROJECT_DIR/renode/<board>.resc is written first and
    Renode runs it (Renode must be installed).
    """
    if engine == "renode":
        code = run_renode(project_dir, serial_port, echo=lambda msg: click.echo(msg))
    else:
        code = emulate_project(project_dir, serial_port, echo=lambda msg: click.echo(msg))
    sys.stdout.flush()
    if code:
        raise click.exceptions.Exit(code)
