"""``tinyedge quantize MODEL --calib DATA.npz [--eval DATA.npz] -o OUT.tflite``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..quantize import quantize_model


@click.command("quantize")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--calib", "calib", required=True, type=click.Path(path_type=Path),
              help="Calibration inputs (.npz with 'x'), representative of real data.")
@click.option("--eval", "eval_data", type=click.Path(path_type=Path),
              help="Labelled test set (.npz with 'x' and 'y'): report float vs int8 accuracy.")
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path),
              help="Where to write the int8 .tflite (the report goes to OUT with .json).")
@click.option("--max-calib", default=500, show_default=True, type=click.IntRange(min=1),
              help="Use at most this many calibration samples.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def cmd(model: Path, calib: Path, eval_data: Path | None, out: Path, max_calib: int, as_json: bool) -> None:
    """Quantize a Keras (.keras/.h5) or SavedModel MODEL to a full-integer int8 .tflite."""
    report = quantize_model(model, calib, out, eval_data=eval_data, max_calib=max_calib)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(f"wrote {report.out} ({report.size_bytes} bytes, sha256 {report.sha256[:16]}...)")
    click.echo(f"input  int8 {report.input_shape} scale {report.input_scale:.6g} zero point {report.input_zero_point}")
    click.echo(f"output int8 scale {report.output_scale:.6g} zero point {report.output_zero_point}")
    click.echo(f"ops    {' '.join(report.ops)}")
    click.echo(f"calibrated on {report.calib_samples} samples")
    if report.float_accuracy is not None and report.int8_accuracy is not None:
        drop = 100 * (report.float_accuracy - report.int8_accuracy)
        click.echo(
            f"accuracy on {report.samples} samples: float {report.float_accuracy:.4f}  "
            f"int8 {report.int8_accuracy:.4f}  (drop {drop:+.2f} points)"
        )
    click.echo(f"report {Path(report.out).with_suffix('.json')}")
