"""``tinyedge monitor``."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
from rich.console import Console

from ..errors import TinyedgeError
from ..monitor import Monitor
from ..monitor.terminal import plain_line, run_plain, run_terminal
from ..monitor.web import DashboardServer
from ..runners.labgrid import LabgridPlaceRunner
from .place import place_options
from .score import stall_option


@click.command("monitor")
@click.argument("port", metavar="[PORT]", required=False, default=None)
@place_options("labgrid place of the board instead of PORT: held while monitoring, released on exit.")
@click.option("--model", type=click.Path(path_type=Path), metavar="MODEL.tflite",
              help="The .tflite the firmware should run: its hash is checked (a loud mark when it differs), "
                   "its output quantization gives confidences, its metadata class names.")
@click.option("--labels", type=click.Path(path_type=Path), metavar="FILE",
              help="Class names: one per line, or a JSON list (overrides the model's metadata).")
@click.option("--data", type=click.Path(path_type=Path), metavar="DATA.npz",
              help="Send these inputs (x; with y, accuracy is shown), one per inference, cycling. Needs --model.")
@click.option("--record", "record_dir", type=click.Path(path_type=Path), metavar="DIR",
              help="Session folder (raw.log, records.jsonl, report.json, report.md; the layout of `tinyedge "
                   "score`). Default: a new folder under the system's temporary directory.")
@click.option("--plain", is_flag=True, help="No live view: one summary line per second (for CI logs).")
@click.option("--web", is_flag=True, help="Also serve a live dashboard page on 127.0.0.1.")
@click.option("--http-port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port of the --web page (0: any free port).")
@click.option("--http-host", default="127.0.0.1", show_default=True,
              help="Address the --web page listens on (other machines can reach it unless it is 127.0.0.1).")
@click.option("--baud", type=int, default=None, help="Baud rate for a tty (default 115200).")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N inferences.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop after this many seconds.")
@stall_option("Seconds without any valid byte from the device before it counts as stalled: shown as "
              "disconnected while a resync/reconnect is tried again and again (default 60).")
def cmd(port: str | None, place: str | None, coordinator: str | None, place_wait: float, model: Path | None,
        labels: Path | None, data: Path | None, record_dir: Path | None, plain: bool,
        web: bool, http_port: int, http_host: str, baud: int | None, count: int | None, duration: float | None,
        stall_timeout: float | None) -> None:
    """Live dashboard of a device's inference stream (te-stream): rate, latency percentiles,
    predictions, confidence and link health, recorded for later scoring.

    PORT is a serial port or pyserial URL (/dev/ttyACM0, COM3, socket://127.0.0.1:4444); or --place NAME, a
    labgrid place. Keys: q quit, p pause/resume, r reset statistics.
    """
    if (port is None) == (place is None):
        raise click.UsageError("pass the device's PORT, or the labgrid --place that holds it (one of the two)")
    if place is not None:
        with LabgridPlaceRunner(place, coordinator=coordinator, wait=place_wait, say=click.echo) as runner:
            _monitor(runner.connect(), model, labels, data, record_dir, plain, web, http_port, http_host, baud, count,
                     duration, stall_timeout)
        return
    assert port is not None
    _monitor(port, model, labels, data, record_dir, plain, web, http_port, http_host, baud, count, duration,
             stall_timeout)


def _monitor(port: str, model: Path | None, labels: Path | None, data: Path | None, record_dir: Path | None,
             plain: bool, web: bool, http_port: int, http_host: str, baud: int | None, count: int | None,
             duration: float | None, stall_timeout: float | None) -> None:
    """Monitor the device on ``port`` until the user quits, ``count`` or ``duration``."""
    console = Console()
    if record_dir is None:
        record_dir = Path(tempfile.mkdtemp(prefix="tinyedge-monitor-"))
    monitor = Monitor(port, record_dir=record_dir, model=model, labels=labels, data=data, baud=baud,
                      max_count=count, stall_timeout=stall_timeout)
    monitor.start()
    server = None
    deadline = None if duration is None else time.monotonic() + duration
    stop = (lambda: time.monotonic() >= deadline) if deadline is not None else None  # noqa: E731
    try:
        if web:
            server = DashboardServer(monitor, http_host, http_port).start()
            click.echo(f"dashboard: {server.url}  (closing the page does not stop recording)")
        click.echo(f"recording into {record_dir}")
        live = not plain and console.is_terminal
        if live:
            run_terminal(monitor, console, stop=stop)
        else:
            run_plain(monitor, click.echo, stop=stop)
    finally:
        if server is not None:
            server.stop()
        monitor.stop()
    snap = monitor.state.snapshot()
    click.echo(plain_line(snap))
    click.echo(f"session: {record_dir} ({snap['total']} inferences; report.md, records.jsonl, raw.log)")
    if monitor.error is not None:
        if isinstance(monitor.error, TinyedgeError):
            raise monitor.error
        raise click.ClickException(str(monitor.error))
    if snap["model_mismatch"]:
        click.secho(f"MODEL MISMATCH: the firmware runs model sha256 {snap['firmware_model_sha256']}, "
                    f"{snap['model_file']} is {snap['model_sha256']}", fg="red", bold=True, err=True)
