"""``tinyedge matrix``."""

from __future__ import annotations

from pathlib import Path

import click

from ..matrix import compatibility_matrix


@click.command("matrix")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--boards", "boards", default="all", show_default=True, metavar="all|emulated|ID,...",
              help="Boards to compare: all, the emulated ones, or a comma-separated list of ids.")
@click.option("--run", "run", is_flag=True,
              help="Also build and run the model on every emulated board that fits (QEMU).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Inputs for --run (.npz with x, y); default: seeded random inputs (parity only).")
@click.option("--samples", type=click.IntRange(1), default=10, show_default=True, help="Samples per board with --run.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of Markdown.")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path), default=None,
              help="Also write matrix.md and matrix.json into this folder (with --run: the projects too).")
def cmd(model: Path, boards: str, run: bool, data: Path | None, samples: int, as_json: bool, out: Path | None) -> None:
    """Which boards MODEL (an int8 .tflite) fits, at what estimated latency and energy; with --run, measured in QEMU."""
    matrix = compatibility_matrix(model, boards, run=run, data=data, samples=samples,
                                  work_dir=(out / "runs") if (out and run) else None,
                                  say=lambda s: click.echo(s, err=True))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "matrix.md").write_text(matrix.to_markdown())
        (out / "matrix.json").write_text(matrix.to_json() + "\n")
    click.echo(matrix.to_json() if as_json else matrix.to_markdown())
