"""``tinyedge inspect``."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..analysis import Analysis, Comparison, analysis_json, analyze, compare
from ..boards import Board, get_board, list_boards
from ..errors import BoardError
from ..model import Graph, load_model
from ..tune import lookup, measure_layers


def _tuned_choices(graph: Graph, board: Board, project: Path | None
                   ) -> tuple[dict[int, str] | None, dict[int, str] | None, str]:
    """The variants of ``graph`` on ``board``: as a given project of this model and board was generated (its
    manifest), else as ``generate --tune`` would choose them from the tuning cache; with where they came
    from ("" for neither: the heuristic's)."""
    if project is not None:
        try:
            manifest = json.loads((Path(project) / "tinyedge.json").read_text())
        except (OSError, ValueError):
            manifest = {}
        if (isinstance(manifest, dict) and manifest.get("variants") and manifest.get("board") == board.id
                and manifest.get("model_sha256") == graph.sha256):
            rows = [r for r in manifest["variants"] if isinstance(r, dict)]
            how = " with --tune" if manifest.get("tuned") else ""
            return ({int(r["step"]): str(r["variant"]) for r in rows},
                    {int(r["step"]): str(r["why"]) for r in rows if r.get("why")},
                    f"as generated in {project}{how}")
    found = lookup(graph, board)
    if found is None:
        return None, None, ""
    return found.choices, found.why, "tuned choices from the tuning cache"


@click.command("inspect")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", "board_ids", multiple=True, help="Board id to check the fit against (repeatable, or 'all').")
@click.option("--project", type=click.Path(path_type=Path), default=None,
              help="A generated project whose last build gives the measured code size.")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@click.option("--no-tflm", is_flag=True, help="Skip measuring TFLM's minimum arena for comparison.")
@click.option("--compare", "other", type=click.Path(path_type=Path), default=None,
              help="Another .tflite of the same network (e.g. the all-int8 twin of a mixed int8/int16 model): "
                   "RAM, flash and per-layer cost side by side on the first --board.")
@click.option("--measure", is_flag=True,
              help="With --compare: also build both and measure each layer's instructions in QEMU (te-profile) "
                   "on the first --board (or the emulated board with its core).")
def cmd(model: Path, board_ids: tuple[str, ...], project: Path | None, as_json: bool, no_tflm: bool,
        other: Path | None, measure: bool) -> None:
    """Per-layer ops, MACs, weights and memory plan of MODEL (.tflite), and whether it fits a board."""
    if measure and other is None:
        raise click.UsageError("--measure compares two models: pass --compare OTHER.tflite too")
    if "all" in board_ids:
        boards = list_boards()
    else:
        boards = [get_board(b) for b in board_ids]
    if project is not None and not boards:
        manifest = Path(project) / "tinyedge.json"
        if manifest.is_file():
            boards = [get_board(json.loads(manifest.read_text())["board"])]
    graph = load_model(model)
    choices, why, tuned_from = _tuned_choices(graph, boards[0], project) if boards else (None, None, "")
    a = analyze(graph, boards, project=project, tflm=not no_tflm, choices=choices, why=why)
    if other is not None:
        _compare(a, graph, other, boards, measure, no_tflm, as_json)
        return
    if as_json:
        click.echo(analysis_json(a))
        return
    con = Console()
    t = Table(title=f"{a.model}  sha256 {a.sha256[:16]}…  (kernels and plan: {a.plan_for})")
    for col in ("#", "op", "kind", "output", "MACs", "weights B", "live act. B", "variant"):
        t.add_column(col, justify="right" if col not in ("op", "kind", "output", "variant") else "left")
    for layer in a.layers:
        t.add_row(str(layer.index), layer.op, layer.kind, "x".join(map(str, layer.output_shape)), f"{layer.macs:,}",
                  f"{layer.weight_bytes:,}", f"{layer.live_bytes:,}" if layer.kind == "kernel" else "-",
                  layer.variant or "-")
    t.add_row("", "total", "", "", f"{a.macs:,}", f"{a.weight_bytes:,}", f"peak {a.ram_bytes:,}", "", end_section=True)
    con.print(t)
    con.print(f"kernels ({a.plan_for}{', ' + tuned_from if tuned_from else ''}):", markup=False, highlight=False)
    for layer in a.layers:
        if layer.kind == "kernel":
            con.print(f"  {layer.index:3d} {layer.op:20s} {layer.variant:12s} {layer.kernel:26s} {layer.why}",
                      markup=False, highlight=False, soft_wrap=True)
    con.print(f"parameters: {a.params:,}   MACs: {a.macs:,}")
    tflm = f"{a.tflm_arena_bytes:,} B (host interpreter, 64-bit)" if a.tflm_arena_bytes else \
        ("unavailable" if a.tflm_error else "n/a")
    ratio = f"  ratio {a.ram_bytes / a.tflm_arena_bytes:.2f}" if a.tflm_arena_bytes else ""
    con.print(f"activation RAM (tinyedge plan): {a.ram_bytes:,} B   naive: {a.naive_ram_bytes:,} B   "
              f"lower bound: {a.ram_lower_bound:,} B   TFLM minimum arena: {tflm}{ratio}")
    con.print(f"flash: {a.flash_bytes:,} B = weights {a.weight_bytes:,} + code {a.code_bytes:,} "
              f"({'measured: ' + a.code_source if a.code_measured else a.code_source})")
    if a.tflm_error:  # the analysis above is tinyedge's own: only the comparison with TFLM is lost
        con.print(f"TFLM minimum arena unavailable: {a.tflm_error}", markup=False, highlight=False, soft_wrap=True)
    for f in a.fits:
        verdict = "[green]fits[/]" if f["fits"] else "[red]does not fit[/]: " + "; ".join(f["problems"])
        con.print(f"{f['board']}: RAM {f['ram_needed']:,}/{f['ram_available']:,} B, flash "
                  f"{f['flash_needed']:,}/{f['flash_available']:,} B — {verdict}")


def _compare(a: Analysis, graph: Graph, other: Path, boards: list[Board], measure: bool, no_tflm: bool,
             as_json: bool) -> None:
    """``--compare``: MODEL (a) against OTHER (b) on the first board, per layer."""
    if not boards:
        raise BoardError("--compare describes the kernels and memory plan of one board", "pass --board ID")
    g2 = load_model(other)
    c2, w2, _ = _tuned_choices(g2, boards[0], None)
    b = analyze(g2, boards[:1], tflm=not no_tflm, choices=c2, why=w2)
    counts_a = counts_b = None
    if measure:
        c1, _, _ = _tuned_choices(graph, boards[0], None)
        counts_a = measure_layers(graph, boards[0], choices=c1)
        counts_b = measure_layers(g2, boards[0], choices=c2)
    cmp = compare(a, b, counts_a, counts_b)
    if as_json:
        click.echo(json.dumps(cmp.to_dict(), indent=2))
        return
    _print_comparison(cmp)


def _print_comparison(cmp: Comparison) -> None:
    con = Console(width=max(Console().width, 140))  # eight columns: wrapped kernel names are unreadable
    a, b = cmp.a, cmp.b
    measured = cmp.a_instructions is not None
    t = Table(title=f"{a.model} (a) against {b.model} (b)  (kernels and plan: {a.plan_for})")
    cols = ["op", "kernel a", "kernel b", "weights B a/b", "live act. B a/b"] + (["instr. a", "instr. b"]
                                                                                   if measured else [])
    for col in cols:
        t.add_column(col, justify="left" if col in ("op", "kernel a", "kernel b") else "right")

    def num(x: int | None) -> str:
        return "-" if x is None else f"{x:,}"
    for p in cmp.pairs:
        la, lb = p.a, p.b
        row = [p.op, la.kernel or la.kind if la else "-", lb.kernel or lb.kind if lb else "-",
               f"{num(la.weight_bytes if la else None)} / {num(lb.weight_bytes if lb else None)}",
               f"{num(la.live_bytes if la else None)} / {num(lb.live_bytes if lb else None)}"]
        if measured:
            row += [num(p.a_instructions), num(p.b_instructions)]
        t.add_row(*row)
    con.print(t)

    def delta(x: int, y: int) -> str:
        return f"{x:,} vs {y:,} ({x - y:+,})"
    con.print(f"RAM (tinyedge plan): {delta(a.ram_bytes, b.ram_bytes)} B", markup=False, highlight=False)
    con.print(f"flash: {delta(a.flash_bytes, b.flash_bytes)} B (weights {delta(a.weight_bytes, b.weight_bytes)})",
              markup=False, highlight=False)
    if cmp.a_instructions is not None and cmp.b_instructions is not None:
        con.print(f"instructions per inference (QEMU, te-profile): {delta(cmp.a_instructions, cmp.b_instructions)} "
                  f"(x{cmp.a_instructions / max(cmp.b_instructions, 1):.2f})", markup=False, highlight=False)
