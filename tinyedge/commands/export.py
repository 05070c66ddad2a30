"""``tinyedge export``."""

from __future__ import annotations

from pathlib import Path

import click

from ..export import ARENA_MODES, FORMATS, export_model


@click.command("export")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", "board_id", required=True, help="Board id (see `tinyedge boards`).")
@click.option("--format", "fmt", required=True, type=click.Choice(FORMATS), help="Library layout to write.")
@click.option("--name", required=True, help="C prefix of the API (kws -> kws_invoke(), KWS_INPUT_BYTES).")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Library folder to write (the kernels go to its sibling te_runtime/).")
@click.option("--calib", type=click.Path(path_type=Path), default=None,
              help="Calibration .npz to quantize a Keras/SavedModel MODEL.")
@click.option("--arena", type=click.Choice(ARENA_MODES), default="static", show_default=True,
              help="static: inside the library; caller: given to NAME_init(arena, size).")
@click.option("--arena-section", default=None, help="Linker section of the static arena (e.g. .dtcm_bss).")
@click.option("--weights-section", default=None, help="Linker section of the weights (e.g. .ext_flash).")
@click.option("--runtime-dir", type=click.Path(path_type=Path), default=None,
              help="Where the shared kernel runtime goes (default: OUT/../te_runtime).")
@click.option("--force", is_flag=True, help="Overwrite generated files you edited (and a runtime of another version).")
def cmd(model: Path, board_id: str, fmt: str, name: str, out_dir: Path, calib: Path | None, arena: str,
        arena_section: str | None, weights_section: str | None, runtime_dir: Path | None, force: bool) -> None:
    """Export MODEL (.tflite int8, or Keras/SavedModel with --calib) as a library for your own firmware.

    Formats: c, platformio-lib, arduino-lib, cmake, zephyr-module (tinyedge's kernels, API NAME_*), tflm
    (the .tflite for TFLM's interpreter). Several models exported next to each other share one te_runtime.
    """
    r = export_model(model, board_id, out_dir, fmt=fmt, name=name, calib=calib, arena=arena,
                     arena_section=arena_section, weights_section=weights_section, runtime_dir=runtime_dir,
                     force=force)
    click.echo(f"exported {r.graph.name} as {r.name} ({r.format}) to {r.path}")
    if r.runtime is not None:
        click.echo(f"kernels: {r.runtime} ({'written' if r.runtime_written else 'already there, shared'})")
    if r.plan is not None and r.program is not None:
        click.echo(f"arena {r.plan.arena_bytes:,} B, weights {r.program.weight_bytes:,} B; "
                   f"see {r.path / 'README.md'}")
