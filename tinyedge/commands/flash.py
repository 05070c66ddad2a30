"""``tinyedge flash``."""

from __future__ import annotations

from pathlib import Path

import click

from .. import proc
from ..firmware import TOOLS, flash_project, pio_upload_command, upload_plan
from ..runners import free_port, qemu_command
from ..runners.labgrid import LabgridPlaceRunner
from ..runners.qemu import project_board, project_elf, require_project
from .place import place_options


def dry_run_lines(project: Path, *, tool: str | None, upload_port: str | None, image: Path | None) -> list[str]:
    """What ``flash`` would run, as shell lines: the command first, then ``#`` notes."""
    plan = upload_plan(project, tool=tool, upload_port=upload_port, image=image)
    if plan is not None:
        lines = [proc.format_cmd(plan.command)]
        if plan.uf2 is not None:
            lines.append(f"# first writes {plan.uf2} from {plan.image} (UF2, flash base {plan.board.flash.base:#x})")
        if not plan.image.is_file():
            lines.append(f"# {plan.image} does not exist yet: build it first, or pass --image")
        return lines
    project = require_project(project)
    board = project_board(project) if (project / "tinyedge.json").is_file() else None
    if board is not None and board.qemu is not None:
        # An emulated board's "upload" is `tinyedge emulate`: QEMU with the UART on a TCP port.
        port = int(upload_port) if upload_port and upload_port.isdigit() else free_port()
        return [proc.format_cmd(qemu_command(board, project_elf(project), port)),
                f"# (after `{proc.format_cmd(pio_upload_command(project, upload_port))}` builds the firmware;"
                " the firmware starts when a client connects to the UART)"]
    return [proc.format_cmd(pio_upload_command(project, upload_port))]


@click.command("flash")
@click.argument("project", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--upload-port", "upload_port", metavar="PORT",
              help="Serial port or probe of the board (e.g. /dev/ttyACM0; a probe's serial number for pyocd and "
                   "openocd; the USB drive's folder for uf2); for an emulated board, the TCP port of its UART.")
@click.option("--tool", type=click.Choice(TOOLS), default=None,
              help="Uploader (default: the board file's flash.tool, else pio). pyocd, openocd, uf2 and esptool "
                   "flash the firmware already built, without PlatformIO's vendor platform; pio runs "
                   "`pio run -t upload`.")
@click.option("--image", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Firmware ELF or .bin to flash (default: .pio/build/<env>/firmware.elf, or .bin for esptool).")
@click.option("--dry-run", "dry_run", is_flag=True, help="Print the exact command instead of running it.")
@place_options("labgrid place of the board: acquired, flashed through its flashing driver, released (no labgrid "
               "flashing driver is supported yet: the error says what to do instead).")
def cmd(project: Path, upload_port: str | None, tool: str | None, image: Path | None, dry_run: bool,
        place: str | None, coordinator: str | None, place_wait: float) -> None:
    """Upload PROJECT's firmware to the board with the board's uploader (pyOCD, OpenOCD, a UF2 copy, esptool)
    or `pio run -t upload`, which builds it first when needed.

    An emulated board "uploads" by running the firmware in QEMU (tinyedge emulate) until it exits.
    """
    if place is not None:
        board = project_board(require_project(project))
        with LabgridPlaceRunner(place, coordinator=coordinator, board=board, wait=place_wait,
                                say=click.echo) as runner:
            runner.connect()
            runner.flash(project)
        return
    if dry_run:
        for line in dry_run_lines(project, tool=tool, upload_port=upload_port, image=image):
            click.echo(line)
        return
    flash_project(project, upload_port=upload_port, tool=tool, image=image)
    click.echo(f"uploaded {project}")
