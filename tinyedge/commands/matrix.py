"""``tinyedge matrix``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..matrix import comparison_markdown, compatibility_matrix
from ..runners.labgrid import DEFAULT_PLACE_WAIT
from .place import COORDINATOR_HELP, PLACE_WAIT_HELP


@click.command("matrix")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--boards", "boards", default="all", show_default=True, metavar="all|emulated|ID,...",
              help="Boards to compare: all, the emulated ones, or a comma-separated list of ids.")
@click.option("--run", "run", is_flag=True,
              help="Also build and run the model on every emulated board that fits (QEMU).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Inputs for --run (.npz with x, y); default: seeded random inputs (parity only).")
@click.option("--samples", type=click.IntRange(1), default=10, show_default=True, help="Samples per board with --run.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=None,
              help="With --run: boards run at once (each its own folder; locally its own QEMU and TCP port). "
                   "Default: 1 locally, every matching place with --places.")
@click.option("--places", "places", default=None, metavar="TAG=VALUE,...",
              help="With --run: run on the labgrid places whose tags match (e.g. 'farm=ci'), each board on a place "
                   "tagged board=<id>, all at once; instead of local QEMU.")
@click.option("--coordinator", "coordinator", default=None, metavar="HOST:PORT",
              help=COORDINATOR_HELP.replace("--place", "--places"))
@click.option("--place-wait", "place_wait", type=click.FloatRange(min=0), default=DEFAULT_PLACE_WAIT,
              metavar="SECONDS", help=PLACE_WAIT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of Markdown.")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), default=None,
              help="Also write matrix.md and matrix.json into this folder (with --run: the projects too).")
@click.option("--compare", "other", type=click.Path(path_type=Path), default=None,
              help="Another .tflite of the same network (e.g. the all-int8 twin of a mixed int8/int16 model): "
                   "RAM, flash and instructions of both, a board a row.")
def cmd(model: Path, boards: str, run: bool, data: Path | None, samples: int, jobs: int | None, places: str | None,
        coordinator: str | None, place_wait: float, as_json: bool, out: Path | None, other: Path | None) -> None:
    """Which boards MODEL (an int8 .tflite) fits, at what estimated latency and energy; with --run, measured in QEMU
    (-j N boards at once) or on the boards of a labgrid farm (--places)."""
    if places is not None and not run:
        raise click.UsageError("--places runs the boards: add --run")
    matrix = compatibility_matrix(model, boards, run=run, data=data, samples=samples,
                                  work_dir=(out / "runs") if (out and run) else None,
                                  say=lambda s: click.echo(s, err=True), jobs=jobs, places=places,
                                  coordinator=coordinator, place_wait=place_wait)
    if other is not None:
        twin = compatibility_matrix(other, boards, run=run, data=data, samples=samples,
                                    work_dir=(out / "runs-compare") if (out and run) else None,
                                    say=lambda s: click.echo(s, err=True), jobs=jobs, places=places,
                                    coordinator=coordinator, place_wait=place_wait)
        text = comparison_markdown(matrix, twin)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "compare.md").write_text(text)
            (out / "compare.json").write_text(json.dumps({"a": matrix.to_dict(), "b": twin.to_dict()}, indent=2))
        click.echo(json.dumps({"a": matrix.to_dict(), "b": twin.to_dict()}, indent=2) if as_json else text)
        return
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "matrix.md").write_text(matrix.to_markdown())
        (out / "matrix.json").write_text(matrix.to_json() + "\n")
    click.echo(matrix.to_json() if as_json else matrix.to_markdown())
