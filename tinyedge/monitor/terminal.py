"""Terminal views of a :class:`~tinyedge.monitor.Monitor`: a live rich dashboard, and ``--plain`` lines.

:func:`render` turns one state snapshot into a rich renderable (tests render it into a recording
console and read the figures back); :func:`plain_line` is the one-line summary printed once a
second for CI logs. :func:`run_terminal` / :func:`run_plain` drive them until the monitor ends or
the user presses ``q`` (``p`` pauses, ``r`` resets the statistics).
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .state import HIST_BINS

if sys.platform != "win32":  # single key presses need a POSIX terminal
    import termios
    import tty

KEYS_HELP = "q quit · p pause/resume · r reset statistics"


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _age(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} s"


STATUS_STYLE = {"connected": "bold green", "paused": "bold yellow", "stalled": "bold yellow",
                "connecting": "yellow", "disconnected": "bold white on red", "stopped": "dim"}


def render(snap: dict[str, Any]) -> Group:
    """The dashboard for one :meth:`MonitorState.snapshot`."""
    status = snap["status"]
    head = Text()
    head.append(" tinyedge monitor ", style="bold reverse")
    head.append(f"  {snap['url']}  ")
    head.append(f" {status.upper() if status == 'disconnected' else status} ", style=STATUS_STYLE.get(status, ""))
    if status == "disconnected" and snap["status_detail"]:
        head.append(f"  {snap['status_detail']}", style="red")
    parts: list[Any] = [head]

    dev = snap["device"]
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    facts.add_row("board", f"{snap['board'] or '?'}" + ("  (emulated)" if snap["emulated"] else ""))
    sha = snap["firmware_model_sha256"] or "?"
    facts.add_row("model", f"{snap['model'] or '?'}  sha256 {sha[:16]}…")
    if snap["model_mismatch"]:
        facts.add_row("", Text(f"!!! MODEL MISMATCH !!! firmware {sha[:16]}… ≠ {snap['model_file']} "
                               f"{str(snap['model_sha256'])[:16]}…", style="bold blink white on red"))
    elif snap["model_sha256"]:
        facts.add_row("", Text(f"matches {snap['model_file']}", style="green"))
    if dev:
        facts.add_row("memory", f"arena {dev.get('arena_bytes', '?')} B · flash {dev.get('flash_bytes', '?')} B · "
                                f"RAM {dev.get('ram_bytes', '?')} B · timer {dev.get('timer', '?')}")
    parts.append(Panel(facts, title="device", title_align="left"))

    lat = snap["latency_ms"]
    perf = Table.grid(padding=(0, 2))
    perf.add_column(style="dim")
    perf.add_column()
    recorded = f"  (recorded {snap['total']})" if snap["total"] != snap["count"] else ""
    perf.add_row("inferences", f"{snap['count']}{recorded}")
    perf.add_row("inferences/s", f"{snap['rate']:.1f}")
    est = " (estimate)" if snap["latency_estimate"] else ""
    perf.add_row("latency ms", f"p50 {_ms(lat['p50'])}  p95 {_ms(lat['p95'])}  p99 {_ms(lat['p99'])}  "
                               f"max {_ms(lat['max'])}{est}")
    perf.add_row("window", f"last {snap['window']} inferences")
    if snap["instructions"] is not None:
        perf.add_row("instructions", f"{snap['instructions']:,}")
    if snap["accuracy"] is not None:
        perf.add_row("accuracy", f"{snap['accuracy']:.4f} over {snap['labelled']} labelled inputs")
    perf.add_row("latency trend", Text(snap["sparkline"] or "-", style="cyan"))
    parts.append(Panel(perf, title="performance", title_align="left"))

    preds = Table("#", "class", "confidence", box=None, padding=(0, 1))
    for p in snap["predictions"][:8]:
        mark = "" if "correct" in p and p["correct"] else (" ✗" if "correct" in p else "")
        preds.add_row(str(p["index"]), f"{p['class']}{mark}", f"{p['confidence']:.3f}")
    hist = Table.grid(padding=(0, 1))
    total = max(1, sum(snap["hist"]))
    top = max(1, max(snap["hist"]))
    for i, c in enumerate(snap["hist"]):
        lo = i / HIST_BINS
        bar = "█" * int(round(20 * c / top))
        hist.add_row(f"{lo:.1f}-{lo + 1 / HIST_BINS:.1f}", Text(bar, style="magenta"), f"{100 * c / total:5.1f}%")
    row = Table.grid(expand=True)
    row.add_column(ratio=1)
    row.add_column(ratio=1)
    row.add_row(Panel(preds, title="last predictions", title_align="left"),
                Panel(hist, title="top-score confidence", title_align="left"))
    parts.append(row)

    link = snap["link"]
    health = Table.grid(padding=(0, 2))
    health.add_column(style="dim")
    health.add_column()
    fresh = link["freshness_s"]
    health.add_row("CRC errors", str(link["crc_errors"]))
    health.add_row("lost records", str(link["lost"]))
    health.add_row("resyncs", str(link["resyncs"]))
    health.add_row("reconnects", str(link["reconnects"]))
    health.add_row("freshness", Text(_age(fresh), style="red" if fresh is None or fresh > 2 else "green"))
    health.add_row("recording", str(snap["record_dir"] or "-"))
    parts.append(Panel(health, title="link health", title_align="left"))
    parts.append(Text(KEYS_HELP, style="dim"))
    return Group(*parts)


def plain_line(snap: dict[str, Any]) -> str:
    """One summary line (``--plain``)."""
    lat = snap["latency_ms"]
    link = snap["link"]
    last = snap["predictions"][0] if snap["predictions"] else None
    mismatch = " MODEL-MISMATCH" if snap["model_mismatch"] else ""
    return (f"[{snap['uptime_s']:7.1f}s] {snap['status']}{mismatch} board={snap['board'] or '?'} "
            f"n={snap['count']} rate={snap['rate']:.1f}/s "
            f"p50={_ms(lat['p50'])} p95={_ms(lat['p95'])} p99={_ms(lat['p99'])}ms"
            f"{'(est)' if snap['latency_estimate'] else ''} "
            f"last={(last['class'] + '@' + format(last['confidence'], '.3f')) if last else '-'} "
            f"crc={link['crc_errors']} lost={link['lost']} resyncs={link['resyncs']} "
            f"reconnects={link['reconnects']} fresh={_age(link['freshness_s']).replace(' ', '')}")


def handle_key(monitor: Any, key: str) -> bool:
    """Apply one key to ``monitor``; False when it means quit."""
    key = key.lower()
    if key == "q":
        return False
    if key == "p":
        monitor.toggle_pause()
    elif key == "r":
        monitor.reset()
    return True


class KeyReader:
    """Single key presses from a POSIX terminal (cbreak mode, restored on exit); a no-op elsewhere."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdin
        self._old: list[Any] | None = None
        self.enabled = False
        try:
            self.enabled = sys.platform != "win32" and self.stream.isatty()
        except (AttributeError, ValueError):
            self.enabled = False

    def __enter__(self) -> KeyReader:
        if self.enabled and sys.platform != "win32":
            fd = self.stream.fileno()
            self._old = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None and sys.platform != "win32":
            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._old)

    def read(self, timeout: float) -> str | None:
        """A key pressed within ``timeout`` seconds, or None."""
        if not self.enabled:
            time.sleep(timeout)
            return None
        ready, _, _ = select.select([self.stream], [], [], timeout)
        if not ready:
            return None
        return os.read(self.stream.fileno(), 1).decode(errors="ignore") or None


def _until(monitor: Any, stop: Callable[[], bool] | None) -> bool:
    return monitor.finished or (stop is not None and stop())


def run_terminal(monitor: Any, console: Console | None = None, *, keys: KeyReader | None = None,
                 refresh: float = 0.25, stop: Callable[[], bool] | None = None) -> None:
    """Draw the live dashboard until the monitor ends, ``stop()`` is true, or ``q`` is pressed."""
    from rich.live import Live  # noqa: PLC0415  (only the live view needs it)

    console = console or Console()
    keys = keys or KeyReader()
    with keys, Live(render(monitor.state.snapshot()), console=console, refresh_per_second=4,
                    transient=False, auto_refresh=False) as live:
        try:
            while not _until(monitor, stop):
                key = keys.read(refresh)
                if key and not handle_key(monitor, key):
                    break
                live.update(render(monitor.state.snapshot()), refresh=True)
        except KeyboardInterrupt:
            pass
        live.update(render(monitor.state.snapshot()), refresh=True)


def run_plain(monitor: Any, echo: Callable[[str], None] = print, *, every: float = 1.0,
              stop: Callable[[], bool] | None = None) -> None:
    """Print :func:`plain_line` every ``every`` seconds until the monitor ends or ``stop()`` is true."""
    keys = KeyReader()
    next_at = time.monotonic() + every
    with keys:
        try:
            while not _until(monitor, stop):
                key = keys.read(min(0.1, max(0.0, next_at - time.monotonic())))
                if key and not handle_key(monitor, key):
                    break
                if time.monotonic() >= next_at:
                    echo(plain_line(monitor.state.snapshot()))
                    next_at += every
        except KeyboardInterrupt:
            pass

