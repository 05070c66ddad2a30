"""``tinyedge run``."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import DeviceStalled
from ..pipeline import run_pipeline
from ..score import load_project_slos
from .place import place_options
from .score import print_partial, print_report, stall_option


@click.command("run")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", "board_id", required=True, help="Board id (see `tinyedge boards`).")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Labelled test data (.npz with x, y).")
@click.option("--calib", type=click.Path(path_type=Path), default=None, help="Calibration data when MODEL is Keras.")
@click.option("--limit", type=int, default=None, help="Score only the first N samples.")
@click.option("--slo", "slos", multiple=True, help="Gate, e.g. 'accuracy>=0.95' (repeatable); a miss exits 1.")
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Project file with an [slo] table (default: ./tinyedge.toml when present).")
@click.option("--power-trace", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Power-monitor CSV: energy is measured from it instead of the board's power model.")
@click.option("--port", default=None, help="Serial port of a real board (flashed first); default: emulate.")
@place_options("labgrid place of the board instead of --port: acquired for the run, released after it.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--force", is_flag=True, help="Regenerate OUT/project even over generated files you edited.")
@click.option("--allow-nonfinite", is_flag=True,
              help="Score data holding NaN or inf on purpose (NaN is sent as the zero point, +-inf as the "
                   "int8 limits).")
@click.option("--tune", is_flag=True,
              help="Measure each layer's candidate kernels in QEMU and keep the fastest (as generate --tune).")
@stall_option()
def cmd(model: Path, board_id: str, data: Path, calib: Path | None, limit: int | None, slos: tuple[str, ...],
        config: Path | None, power_trace: Path | None, port: str | None, place: str | None, coordinator: str | None,
        place_wait: float, out_dir: Path, force: bool, stall_timeout: float | None, allow_nonfinite: bool,
        tune: bool) -> None:
    """The whole pipeline: quantize (Keras), generate, build, emulate or flash, and score.

    Exits 1 when an SLO (--slo or the [slo] table of tinyedge.toml) is missed, 3 when the device
    stalled while scoring (OUT/score then holds a partial report, marked incomplete).
    """
    project_slos, project_file = load_project_slos(config)  # a bad file fails before any build
    if project_file is not None:
        click.echo(f"SLOs from {project_file}: {', '.join(project_slos) or 'none'}")
    try:
        result = run_pipeline(model, board_id, data, out_dir, calib=calib, limit=limit,
                              slos=(*project_slos, *slos), port=port, place=place, coordinator=coordinator,
                              place_wait=place_wait, power_trace=power_trace, force=force,
                              stall_timeout=stall_timeout, allow_nonfinite=allow_nonfinite, tune=tune,
                              say=click.echo)
    except DeviceStalled as exc:
        print_partial(exc, out_dir / "score")
        raise
    q = result.quantize
    if q is not None and q.float_accuracy is not None:
        click.echo(f"float accuracy {q.float_accuracy:.4f}, int8 accuracy (tflite_micro) {q.int8_accuracy:.4f}")
    if not print_report(result.report, out_dir / "score"):
        raise SystemExit(1)
