"""``tinyedge score``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..errors import DeviceStalled
from ..runners.labgrid import LabgridPlaceRunner
from ..score import Report, load_project_slos, score
from .place import place_options

#: ``--stall-timeout``, shared by score, run and monitor.
STALL_HELP = ("Seconds without any valid byte from the device before it counts as stalled; a resync/reconnect is "
              "tried, then the run stops with exit code 3 and a partial report (within 2 x this). Default: 10 x "
              "the slowest sample so far, between 10 and 60 s.")


def stall_option(text: str = STALL_HELP) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The ``--stall-timeout SECONDS`` option (``text`` is its help)."""
    return click.option("--stall-timeout", "stall_timeout", type=click.FloatRange(min=0, min_open=True),
                        default=None, metavar="SECONDS", help=text)


@click.command("score")
@click.option("--port", default=None, metavar="URL",
              help="Serial port or pyserial URL: /dev/ttyACM0, COM3, socket://127.0.0.1:4444, rfc2217://host:port.")
@place_options("labgrid place of the board instead of --port: acquired for the run (its NetworkSerialPort is the "
               "UART), released after it.")
@click.option("--data", required=True, type=click.Path(path_type=Path), metavar="DATA.npz",
              help="Labelled test set: arrays x (inputs) and y (integer labels).")
@click.option("--model", required=True, type=click.Path(path_type=Path), metavar="MODEL.tflite",
              help="The int8 .tflite the firmware was generated from.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score only the first N samples.")
@click.option("--slo", "slos", multiple=True, metavar="EXPR",
              help="Service-level objective, e.g. 'accuracy>=0.9' or 'latency_ms.p95<=50' (repeatable).")
@click.option("--allow-model-mismatch", is_flag=True,
              help="Score even when the firmware was built from a different model (recorded in the report).")
@click.option("--allow-nonfinite", is_flag=True,
              help="Score inputs holding NaN or inf on purpose (NaN is sent as the zero point, +-inf as the int8 "
                   "limits); without it they are refused before anything runs.")
@click.option("--baud", type=int, default=None, help="Baud rate for a tty (default 115200).")
@click.option("--config", "config", type=click.Path(path_type=Path, dir_okay=False), default=None,
              metavar="TINYEDGE.toml",
              help="Project file whose [slo] table adds SLOs (default: ./tinyedge.toml when present).")
@click.option("--power-trace", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="TRACE.csv",
              help="Measured power-monitor trace (time, current or power, gpio marker): energy is integrated over "
                   "the inference windows instead of taken from the board's power model.")
@click.option("--voltage", "voltage_v", type=float, default=None,
              help="Supply voltage for a trace that has current but no voltage column (default: the board's).")
@click.option("--timeout", "timeout", type=click.FloatRange(min=0.05), default=None,
              help="Per-line timeout for commands other than inferences, in seconds (default 5).")
@click.option("--no-profile", is_flag=True, help="Skip the per-layer te-profile run.")
@stall_option()
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Session folder: raw.log, records.jsonl, report.json/.md/.html, summary.md, junit.xml.")
def cmd(port: str | None, place: str | None, coordinator: str | None, place_wait: float, data: Path, model: Path,
        limit: int | None, slos: tuple[str, ...], allow_model_mismatch: bool,
        allow_nonfinite: bool,
        baud: int | None, config: Path | None, power_trace: Path | None, voltage_v: float | None,
        timeout: float | None, no_profile: bool, stall_timeout: float | None, out_dir: Path) -> None:
    """Stream a labelled test set to a device and score accuracy, parity, latency, energy, drift and memory.

    Exits 1 when an SLO (--slo or the [slo] table of tinyedge.toml) is missed, 2 on a usage or input
    error, 3 when the device stalled (the report then covers the samples harvested before, marked
    incomplete). In GitHub Actions the summary is appended to $GITHUB_STEP_SUMMARY; junit.xml has one
    test case per SLO.
    """
    if (port is None) == (place is None):
        raise click.UsageError("pass the device's --port, or the labgrid --place that holds it (one of the two)")
    console = Console()
    project_slos, project_file = load_project_slos(config)
    if project_file is not None:
        console.print(f"[dim]SLOs from {project_file}: {', '.join(project_slos) or 'none'}[/dim]", soft_wrap=True)
    if place is not None:
        with LabgridPlaceRunner(place, coordinator=coordinator, wait=place_wait,
                                say=lambda s: console.print(f"[dim]{s}[/dim]")) as runner:
            url = runner.connect()
            console.print(f"[dim]labgrid place {place}: UART {url}[/dim]")
            _score(url, data, model, out_dir, limit, [*project_slos, *slos], allow_model_mismatch, allow_nonfinite,
                   baud, power_trace, voltage_v, timeout, no_profile, stall_timeout, console)
        return
    assert port is not None
    _score(port, data, model, out_dir, limit, [*project_slos, *slos], allow_model_mismatch, allow_nonfinite, baud,
           power_trace, voltage_v, timeout, no_profile, stall_timeout, console)


def _score(port: str, data: Path, model: Path, out_dir: Path, limit: int | None, slos: list[str],
           allow_model_mismatch: bool, allow_nonfinite: bool, baud: int | None, power_trace: Path | None,
           voltage_v: float | None, timeout: float | None, no_profile: bool, stall_timeout: float | None,
           console: Console) -> None:
    """Score the device on ``port`` and print the report; exit 1 on a missed SLO."""
    try:
        report = score(port, data, model, out_dir=out_dir, limit=limit, slos=slos,
                       allow_model_mismatch=allow_model_mismatch, allow_nonfinite=allow_nonfinite, baud=baud,
                       progress=console.is_terminal,
                       power_trace=power_trace, voltage_v=voltage_v, timeouts={"*": timeout} if timeout else None,
                       profile=not no_profile, stall_timeout=stall_timeout)
    except DeviceStalled as exc:
        print_partial(exc, out_dir, console)
        raise
    if not print_report(report, out_dir, console):
        sys.exit(1)


def print_partial(exc: DeviceStalled, out_dir: Path, console: Console | None = None) -> None:
    """The partial report a stalled run wrote, printed before its error line."""
    if isinstance(exc.report, Report):
        print_report(exc.report, out_dir, console)


def print_report(report: Report, out_dir: Path, console: Console | None = None) -> bool:
    """Print a score report's summary and SLO verdicts; True when every SLO was met."""
    console = console or Console()
    table = Table("figure", "value", title=f"{report['model']} on {report['board']}")
    for key, value in report.summary_rows():
        table.add_row(key, value)
    console.print(table)
    d = report.data
    if d["emulated"]:
        console.print("[dim]latency is an estimate from QEMU instruction counts (see report.md)[/dim]")
    energy = "measured from the power trace" if d.get("energy_source") == "trace" else "board power model"
    console.print(f"[dim]energy: {energy}[/dim]")
    if d.get("model_mismatch"):
        console.print(f"[yellow]model mismatch allowed: firmware runs {d['firmware_model_sha256']}, "
                      f"scored against {d['model_sha256']}[/yellow]")
    link = d.get("link", {})
    if link.get("corrupt_lines") or link.get("reconnects"):
        console.print(f"[dim]link: {link['corrupt_lines']} corrupt lines, {link['retries']} retries, "
                      f"{link['resyncs']} resyncs, {link['reconnects']} reconnects (all bytes in raw.log)[/dim]")
    if report.incomplete_note:
        console.print(f"[red]{report.incomplete_note}[/red]")
    console.print(f"report: {out_dir / 'report.html'} (also report.md, report.json, junit.xml, summary.md)")
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
