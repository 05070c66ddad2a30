"""``tinyedge run``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("run")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", "board_id", required=True, help="Board id (see `tinyedge boards`).")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Labelled test data (.npz with x, y).")
@click.option("--calib", type=click.Path(path_type=Path), default=None, help="Calibration data when MODEL is Keras.")
@click.option("--limit", type=int, default=None, help="Score only the first N samples.")
@click.option("--slo", "slos", multiple=True, help="Gate, e.g. 'accuracy>=0.95' (repeatable); a miss exits 1.")
@click.option("--port", default=None, help="Serial port of a real board (flashed first); default: emulate.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder.")
def cmd(model: Path, board_id: str, data: Path, calib: Path | None, limit: int | None, slos: tuple[str, ...],
        port: str | None, out_dir: Path) -> None:
    """The whole pipeline: quantize (Keras), generate, build, emulate or flash, and score."""
    from ..pipeline import run_pipeline
    from .score import print_report

    result = run_pipeline(model, board_id, data, out_dir, calib=calib, limit=limit, slos=slos, port=port,
                          say=click.echo)
    q = result.quantize
    if q is not None and q.float_accuracy is not None:
        click.echo(f"float accuracy {q.float_accuracy:.4f}, int8 accuracy (tflite_micro) {q.int8_accuracy:.4f}")
    if not print_report(result.report, out_dir / "score"):
        raise SystemExit(1)
