"""``tinyedge generate``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..boards import get_board
from ..firmware import generate_project
from ..firmware.generate import MANIFEST
from ..firmware.project import ENERGY_BAUD
from ..model import load_model
from ..tune import tune as tune_layers


def _was_tuned(out_dir: Path) -> bool:
    """Whether the project in ``out_dir`` (if any) was generated with ``--tune``."""
    try:
        return bool(json.loads((out_dir / MANIFEST).read_text(encoding="utf-8")).get("tuned"))
    except (OSError, ValueError, AttributeError):
        return False


@click.command("generate")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", "board_id", required=True, help="Board id (see `tinyedge boards`).")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Project folder to write.")
@click.option("--mlperf-id", default=None, help="Model id reported to MLPerf Tiny's runner (kws01, ad01, ic01, vww01).")
@click.option("--energy-mode", is_flag=True,
              help="MLPerf Tiny energy mode: a GPIO pulse per `timestamp` (the board file's mlperf.timestamp_gpio), "
                   "the UART at the energy baud (9600).")
@click.option("--force", is_flag=True,
              help="Overwrite generated files you edited (files you added and USER CODE sections are always kept).")
@click.option("--tune", is_flag=True,
              help="Measure each layer's candidate kernels in QEMU on the board's core and keep the fastest "
                   "(cached per layer: a second run measures nothing).")
@click.option("--retune", is_flag=True, help="Like --tune, but measure again even what the cache has.")
def cmd(model: Path, board_id: str, out_dir: Path, mlperf_id: str | None, energy_mode: bool, force: bool,
        tune: bool, retune: bool) -> None:
    """Generate a PlatformIO firmware project for MODEL (.tflite, int8) on a board.

    Over a project it generated before, tinyedge replaces only its own files: files you added and the
    USER CODE sections of src/main.c are kept, and a generated file you edited is refused unless --force.

    --tune measures each layer's candidate kernels in QEMU (exact instruction counts) and keeps the
    fastest; `tinyedge inspect MODEL --board B` then shows each layer's variant and why.
    """
    graph, board = load_model(model), get_board(board_id)
    choices = why = None
    if tune or retune:
        t = tune_layers(graph, board, remeasure=retune, say=click.echo)
        choices, why = t.choices, t.why
        runs = f"{t.qemu_runs} QEMU run{'s' if t.qemu_runs != 1 else ''}" if t.qemu_runs else \
            "from the cache, no QEMU run"
        if choices:
            click.echo(f"tuned {len(choices)} layers on {t.core} ({runs}):")
        for layer in t.layers:
            if len(layer.candidates) > 1:
                click.echo(f"  {layer.op_index:3d} {layer.op:20s} {layer.choice:12s} {layer.why}")
        for note in t.notes:
            click.echo(f"  note: {note}")
    elif _was_tuned(out_dir):
        click.echo(f"note: {out_dir} was generated with --tune; this run uses the heuristic's kernels "
                   "(pass --tune to keep the measured choices; the tuning cache answers unless the kernels changed)")
    p = generate_project(graph, board, out_dir, mlperf_id=mlperf_id, force=force, energy_mode=energy_mode,
                         choices=choices, why=why)
    click.echo(f"generated {p.path} for {p.board.id}: {len(p.program.steps)} layers, {p.program.macs:,} MACs, "
               f"arena {p.plan.arena_bytes:,} B, weights {p.program.weight_bytes:,} B")
    if energy_mode:
        click.echo(f"MLPerf Tiny energy mode: m-timestamp-mode-energy, UART at "
                   f"{int((p.board.raw.get('mlperf') or {}).get('energy_baud', ENERGY_BAUD))} baud")
    click.echo(f"next: tinyedge build {p.path}")
