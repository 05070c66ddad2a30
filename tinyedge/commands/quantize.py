"""``tinyedge quantize MODEL --calib DATA.npz [--eval DATA.npz] -o OUT.tflite``."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..errors import DataError
from ..quantize import quantize_model
from ..quantize.debug import DebugReport, debug_quantization


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
@click.option("--int16", "int16", metavar="LAYER,...|auto[:BUDGET]",
              help="Keep these Keras layers at 16-bit activations (int16x8), the rest int8; 'auto' picks the "
                   "fewest layers that bring int8 within --int16-tolerance of float (needs --eval), with at "
                   "most BUDGET extra bytes of RAM (e.g. auto:16k).")
@click.option("--int16-tolerance", default=0.01, show_default=True, type=click.FloatRange(min=0, max=1),
              help="--int16 auto: accuracy below float that is good enough (a fraction: 0.01 = 1 point).")
@click.option("--debug", "debug", is_flag=True,
              help="Per-layer quantization debugger (needs --eval): each layer's SQNR/RMSE against the float "
                   "model, its scale and clipping, the accuracy with it kept float; writes OUT.debug.json and "
                   "OUT.debug.html and names the worst layers.")
@click.option("--debug-samples", default=1000, show_default=True, type=click.IntRange(min=1),
              help="--debug: use at most this many evaluation samples (a seeded subset).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def cmd(model: Path, calib: Path, eval_data: Path | None, out: Path, max_calib: int, int16: str | None,
        int16_tolerance: float, debug: bool, debug_samples: int, as_json: bool) -> None:
    """Quantize a Keras (.keras/.h5) or SavedModel MODEL to a full-integer int8 .tflite."""
    if debug and eval_data is None:
        raise DataError("--debug measures each layer's error on labelled evaluation data, and there is none",
                        "pass --eval DATA.npz (arrays x and y) with --debug")
    report = quantize_model(model, calib, out, eval_data=eval_data, max_calib=max_calib, int16=int16,
                            int16_tolerance=int16_tolerance)
    dbg = _debug(model, calib, eval_data, out, max_calib, debug_samples) if debug and eval_data else None
    if as_json:
        click.echo(json.dumps({**report.to_dict(), **({"debug": dbg.to_dict()} if dbg else {})}, indent=2))
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
    if int16 is not None:
        layers = ", ".join(report.int16_layers) or "none"
        click.echo(f"int16  layers at 16-bit activations: {layers} (operators {report.int16_ops})")
        if report.mixed_accuracy is not None and report.float_accuracy is not None:
            drop = 100 * (report.float_accuracy - report.mixed_accuracy)
            click.echo(f"        mixed accuracy {report.mixed_accuracy:.4f}  (drop {drop:+.2f} points)")
        auto = report.int16_auto
        if auto is not None:
            click.echo(f"        RAM {auto['int8_ram_bytes']} -> {auto['ram_bytes']} B, constants "
                       f"{auto['int8_flash_bytes']} -> {auto['flash_bytes']} B (tinyedge's plan)")
            if not auto["reached"]:
                click.echo(f"        target {auto['target_accuracy']:.4f} not reached: see int16_auto.trials in "
                           "the report for what each layer gave and why layers were skipped")
    click.echo(f"report {Path(report.out).with_suffix('.json')}")
    if dbg is not None:
        _print_debug(dbg, out)


def _debug(model: Path, calib: Path, eval_data: Path, out: Path, max_calib: int, samples: int) -> DebugReport:
    """Run the debugger and write OUT.debug.json and OUT.debug.html."""
    dbg = debug_quantization(model, calib, eval_data, max_calib=max_calib, max_samples=samples)
    dbg.write(out.with_suffix(".debug.json"), out.with_suffix(".debug.html"))
    return dbg


def _print_debug(dbg: DebugReport, out: Path) -> None:
    click.echo()
    click.echo(f"per-layer quantization error on {dbg.samples} samples (float {dbg.float_accuracy:.4f}, "
               f"int8 {dbg.int8_accuracy:.4f}):")
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    cols = ["#", "worst", "layer", "op", "scale / zp", "clipped", "SQNR dB own / isolated / accum.",
            "acc: layer float", "rest float", "--int16"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("layer", "op", "--int16") else "right", no_wrap=True)
    for r in dbg.rows():
        sqnr = " / ".join(r[f"SQNR dB ({k})"] for k in ("own", "isolated", "accumulated"))
        table.add_row(r["#"], r["worst"], r["layer"], r["op"], r["scale / zp"], r["clipped"], sqnr,
                      r["acc, layer float"], r["acc, rest float"], r["acc, --int16"])
    Console(width=240, soft_wrap=True).print(table)
    click.echo("(the full table, with ranges, RMSE and weight SQNR, is in the .debug.json / .debug.html report)")
    click.echo(dbg.summary)
    click.echo("what to try:")
    for a in dbg.advice:
        click.echo(f"  {a}")
    click.echo(f"debug report {out.with_suffix('.debug.json')} and {out.with_suffix('.debug.html')} "
               f"({dbg.seconds:.1f} s)")
