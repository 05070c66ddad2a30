"""``tinyedge score``."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("score")
@click.option("--port", required=True, metavar="URL",
              help="Serial port or pyserial URL: /dev/ttyACM0, COM3, socket://127.0.0.1:4444, rfc2217://host:port.")
@click.option("--data", required=True, type=click.Path(path_type=Path), metavar="DATA.npz",
              help="Labelled test set: arrays x (inputs) and y (integer labels).")
@click.option("--model", required=True, type=click.Path(path_type=Path), metavar="MODEL.tflite",
              help="The int8 .tflite the firmware was generated from.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score only the first N samples.")
@click.option("--slo", "slos", multiple=True, metavar="EXPR",
              help="Service-level objective, e.g. 'accuracy>=0.9' or 'latency_ms.p95<=50' (repeatable).")
@click.option("--allow-model-mismatch", is_flag=True,
              help="Score even when the firmware was built from a different model (recorded in the report).")
@click.option("--baud", type=int, default=None, help="Baud rate for a tty (default 115200).")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Folder for raw.log, records.jsonl, report.json, report.md.")
def cmd(port: str, data: Path, model: Path, limit: int | None, slos: tuple[str, ...], allow_model_mismatch: bool,
        baud: int | None, out_dir: Path) -> None:
    """Stream a labelled test set to a device and score accuracy, parity, latency, energy and memory."""
    from rich.console import Console

    from ..score import score

    console = Console()
    report = score(port, data, model, out_dir=out_dir, limit=limit, slos=list(slos),
                   allow_model_mismatch=allow_model_mismatch, baud=baud, progress=console.is_terminal)
    if not print_report(report, out_dir, console):
        sys.exit(1)


def print_report(report, out_dir: Path, console=None) -> bool:
    """Print a score report's summary and SLO verdicts; True when every SLO was met."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table("figure", "value", title=f"{report['model']} on {report['board']}")
    for key, value in report.summary_rows():
        table.add_row(key, value)
    console.print(table)
    if report.data["emulated"]:
        console.print("[dim]latency is an estimate from QEMU instruction counts; energy is from the board's "
                      "power model (see report.md)[/dim]")
    console.print(f"report: {out_dir / 'report.md'}")
    if report.slo_results:
        missed = report.failed
        if missed:
            t = Table("SLO", "value", "result", title="SLOs missed", style="red")
            for r in missed:
                t.add_row(r.slo.expr, "not measured" if r.value is None else f"{r.value:g}", "MISS")
            console.print(t)
            return False
        console.print(f"[green]all {len(report.slo_results)} SLOs met[/green]")
    return True
