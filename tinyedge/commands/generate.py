"""``tinyedge generate``."""

from __future__ import annotations

from pathlib import Path

import click

from ..firmware import generate_project
from ..firmware.project import ENERGY_BAUD


@click.command("generate")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", "board_id", required=True, help="Board id (see `tinyedge boards`).")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Project folder to write.")
@click.option("--mlperf-id", default=None, help="Model id reported to MLPerf Tiny's runner (kws01, ad01, ic01, vww01).")
@click.option("--energy-mode", is_flag=True,
              help="MLPerf Tiny energy mode: a GPIO pulse per `timestamp` (the board file's mlperf.timestamp_gpio), "
                   "the UART at the energy baud (9600).")
@click.option("--force", is_flag=True,
              help="Overwrite generated files you edited (files you added and USER CODE sections are always kept).")
def cmd(model: Path, board_id: str, out_dir: Path, mlperf_id: str | None, energy_mode: bool, force: bool) -> None:
    """Generate a PlatformIO firmware project for MODEL (.tflite, int8) on a board.

    Over a project it generated before, tinyedge replaces only its own files: files you added and the
    USER CODE sections of src/main.c are kept, and a generated file you edited is refused unless --force.
    """
    p = generate_project(model, board_id, out_dir, mlperf_id=mlperf_id, force=force, energy_mode=energy_mode)
    click.echo(f"generated {p.path} for {p.board.id}: {len(p.program.steps)} layers, {p.program.macs:,} MACs, "
               f"arena {p.plan.arena_bytes:,} B, weights {p.program.weight_bytes:,} B")
    if energy_mode:
        click.echo(f"MLPerf Tiny energy mode: m-timestamp-mode-energy, UART at "
                   f"{int((p.board.raw.get('mlperf') or {}).get('energy_baud', ENERGY_BAUD))} baud")
    click.echo(f"next: tinyedge build {p.path}")
