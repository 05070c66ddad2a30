"""The tinyedge benchmark: cycles (QEMU instructions), RAM, flash and host time per model, board and kernel variant.

For each model and board it generates the firmware twice, with the DSP kernels (``dsp``, only for
boards with ``dsp: true``) and with the portable C kernels (``portable``), builds it with PlatformIO,
runs one inference in QEMU (``-icount shift=0``: one instruction = 1 ns of virtual time, so the
firmware's ``te-results`` ticks give the executed instructions exactly) and checks the outputs against
the tflite_micro interpreter. Host time compares the generated C compiled for the host (the portable
kernels: the host has no DSP) with the tflite_micro interpreter on the same input, in the same run.

    python -m benchmarks [--models digits kws ad ic vww sww PATH.tflite ...] [--boards qemu-mps2-an386] --out out.json

Models: ``digits`` (the example, trained), ``kws`` and ``ad`` (the MLPerf Tiny reference models in
../shared/models), ``ic``, ``vww`` and ``sww`` (the MLPerf Tiny ResNet-8, MobileNetV1 0.25 and streaming wake
word DS-TCN architectures with seeded random weights and a few dead and tiny channels, built by
``benchmarks/models.py``). Each run prints
a per-layer instruction table (``te-profile``) per model and variant, and the JSON records carry it as
``variant_per_layer``. Where the model (kws, ad) or its architecture (ic, vww, sww) was measured with TFLM +
CMSIS-NN on the same QEMU machine (issue 13), a reference table puts those figures next to ours.

Not a test: nothing here asserts a speed. The outputs must match TFLM, or the run fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinyedge.boards import get_board
from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.host import bench_host, build_host, run_host
from tinyedge.firmware import provision
from tinyedge.link import connect
from tinyedge.model import load_model
from tinyedge.model.program import build_program
from tinyedge.oracle import interpreter, min_arena_bytes, run_tflm
from tinyedge.quantize import quantize_model
from tinyedge.runners import deploy

from .models import BUILDERS as ARCH_BUILDERS
from .models import cached_model

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODELS = ROOT.parent / "shared" / "models"
BUILTIN = {"kws": SHARED_MODELS / "kws_ref_model.tflite", "ad": SHARED_MODELS / "ad01_int8.tflite"}
DEFAULT_MODELS = ("digits", "kws", "ad", "ic", "vww", "sww")
DEFAULT_BOARDS = ("qemu-mps2-an386",)
RECORD_KEYS = ("model", "board", "variant", "instructions", "macs", "mac_per_instr", "ram_bytes", "tflm_arena_bytes",
               "flash_bytes", "weight_bytes", "host_us", "tflm_host_us")
#: Keys added to each JSON record: the per-layer table, and the TFLM+CMSIS-NN reference (or None).
EXTRA_KEYS = ("variant_per_layer", "reference")

#: TFLM built release for cortex-m4+fp with the CMSIS-NN kernels (the MLPerf Tiny reference submissions'
#: configuration), measured on qemu-mps2-an386 with -icount shift=0 and the same SysTick method, on the
#: real MLPerf Tiny models (issue 13's table). For kws and ad that is the model benchmarked here; ic, vww
#: and sww here are the same architectures with random weights, so their ratios compare kernels, not models.
REFERENCE_BOARD = "qemu-mps2-an386"
REFERENCE = {
    "kws": {"instructions": 7_696_480, "arena_bytes": 22_820, "basis": "same model"},
    "ad": {"instructions": 582_960, "arena_bytes": 2_580, "basis": "same model"},
    "ic": {"instructions": 29_863_200, "arena_bytes": 54_996, "basis": "same architecture, random weights"},
    "vww": {"instructions": 24_101_960, "arena_bytes": 100_708, "basis": "same architecture, random weights"},
    "sww": {"instructions": 2_227_120, "arena_bytes": 16_596, "basis": "same architecture, random weights"},
}
REFERENCE.update({f"{arch}-live": {**REFERENCE[arch], "basis": "same architecture, no dead channels"}
                  for arch in ("ic", "vww", "sww")})
#: Host timing rounds run ``--host-iterations`` inferences for models up to this many MACs, fewer above.
HOST_MACS_BUDGET = 3_000_000


def digits_model(cache: Path) -> Path:
    """The digits example trained (cached) and quantized to int8."""

    spec = importlib.util.spec_from_file_location("digits_train", ROOT / "examples" / "digits" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    paths = mod.cached_train(cache)
    out = Path(paths["model"]).parent / "digits_int8.tflite"
    if not out.is_file():

        quantize_model(Path(paths["model"]), Path(paths["calib"]), out)
    return out


def resolve_model(name: str, cache: Path) -> tuple[str, Path]:
    if name == "digits":
        return "digits", digits_model(cache)
    if name in ARCH_BUILDERS:
        return name, cached_model(name, cache)
    if name in BUILTIN:
        if not BUILTIN[name].is_file():
            raise SystemExit(f"{BUILTIN[name]} is missing: the MLPerf Tiny reference models live in ../shared/models")
        return name, BUILTIN[name]
    p = Path(name)
    if not p.is_file():
        raise SystemExit(f"model {name!r} is neither one of {', '.join(DEFAULT_MODELS)} nor a .tflite file")
    return p.stem, p


def sample_input(graph, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=tuple(graph.input.shape), dtype=np.int8)


def host_times(graph, x: np.ndarray, iterations: int, rounds: int = 5) -> tuple[float, float, bool]:
    """(generated C µs, tflite_micro interpreter µs, same outputs) per inference on the host.

    Both are timed in alternating rounds of ``iterations`` inferences and each keeps its fastest round:
    on a shared machine the minimum is the estimate least disturbed by other load, and alternating
    exposes both to the same conditions.
    """

    program = build_program(graph)
    interp = interpreter(graph.model_bytes, 4 << 20)
    shape = tuple(interp.get_input_details(0)["shape"])
    interp.set_input(x.reshape(shape), 0)
    interp.invoke()
    expected = np.array(interp.get_output(0)).reshape(-1)
    c_best = tflm_best = float("inf")
    with tempfile.TemporaryDirectory(prefix="te-bench-host-") as d:
        exe = build_host(render_model(program).files, d)
        got = run_host(exe, x.reshape(1, -1), graph.output.size)
        for _ in range(rounds):
            c_best = min(c_best, bench_host(exe, x, iterations) / 1e3)
            t0 = time.perf_counter()
            for _ in range(iterations):
                interp.set_input(x.reshape(shape), 0)
                interp.invoke()
            tflm_best = min(tflm_best, (time.perf_counter() - t0) / iterations * 1e6)
    return c_best, tflm_best, bool(np.array_equal(got.reshape(-1), expected))


def device_run(graph, board, workdir: Path, core_dir: Path, x: np.ndarray) -> dict:
    """Generate, build and run one inference in QEMU: ticks, per-layer ticks, outputs, sizes, plan."""

    with deploy(graph, board, workdir, engine="qemu", core_dir=core_dir) as dep:
        client = connect(dep.url, connect_timeout=10.0, ready_timeout=20.0)
        try:
            client.load_input(x.tobytes())
            client.infer(1, 0, timeout=120)
            res = client.te_results()
            prof = client.profile(timeout=120)
        finally:
            client.close()
    return dict(ticks=res.ticks, out=res.out, profile=prof, flash=dep.build.flash_bytes, plan=dep.project.plan,
                program=dep.project.program)


def run_benchmark(models: list[str], boards: list[str], *, variants: tuple[str, ...] = ("dsp", "portable"),
                  workdir: Path | None = None, host_iterations: int = 200, say=print) -> list[dict]:
    """Measure every model on every board in each variant; returns the records (keys: RECORD_KEYS)."""

    workdir = Path(workdir or tempfile.mkdtemp(prefix="te-bench-"))
    core_dir = provision(workdir / "pio-core")
    records: list[dict] = []
    for name in models:
        label, path = resolve_model(name, workdir / "cache")
        graph = load_model(path)
        x = sample_input(graph)
        expected = run_tflm(graph.model_bytes, x[None]).reshape(-1)
        tflm_arena = min_arena_bytes(graph.model_bytes)
        portable = build_program(graph)
        host_us, tflm_us, host_same = host_times(graph, x, host_round_iterations(host_iterations, portable.macs))
        if not host_same:
            raise SystemExit(f"{label}: the generated C on the host differs from the tflite_micro interpreter")
        for board_id in boards:
            board = get_board(board_id)
            for v in variants:
                if v == "dsp" and not board.dsp:
                    continue
                b = board if v == "dsp" else dataclasses.replace(board, dsp=False)
                r = device_run(graph, b, workdir / f"{label}-{board_id}-{v}", core_dir, x)
                if not np.array_equal(r["out"].reshape(-1), expected):
                    raise SystemExit(f"{label} on {board_id} ({v}): outputs differ from the tflite_micro interpreter")
                instr = round(r["ticks"] * 1e9 / int(board.timer["hz"]))
                rec = dict(model=label, board=board_id, variant=v, instructions=instr, macs=portable.macs,
                           mac_per_instr=round(portable.macs / instr, 4) if instr else None,
                           ram_bytes=r["plan"].arena_bytes, tflm_arena_bytes=tflm_arena, flash_bytes=r["flash"],
                           weight_bytes=portable.param_bytes, host_us=round(host_us, 2), tflm_host_us=round(tflm_us, 2),
                           variant_per_layer=per_layer(r["program"].steps, r["profile"]["layers"],
                                                       1e9 / int(board.timer["hz"])),
                           reference=REFERENCE.get(name) if board_id == REFERENCE_BOARD else None)
                records.append(rec)
                say(profile_table(label, board_id, v, rec["variant_per_layer"], r["plan"].arena_bytes))
    return records


def host_round_iterations(iterations: int, macs: int) -> int:
    """Inferences per host timing round: ``iterations`` up to HOST_MACS_BUDGET MACs, proportionally fewer
    for larger models (at least 10), so ic and vww do not dominate the run's host time."""
    if macs <= HOST_MACS_BUDGET:
        return iterations
    return max(10, iterations * HOST_MACS_BUDGET // macs)


def per_layer(steps: Sequence[Any], layers: list[dict[str, Any]], scale: float) -> list[dict[str, Any]]:
    """te-profile's per-layer ticks joined with the specialised program's steps: one dict per layer with
    ``layer`` (index), ``op``, ``kernel``, ``variant`` (Step.variant), ``instructions`` and ``macs``."""
    rows = []
    for layer in layers:
        i = layer["index"]
        s = steps[i] if i < len(steps) else None
        rows.append(dict(layer=i, op=s.op.opcode if s else layer["name"], kernel=s.kernel if s else layer["name"],
                         variant=s.variant if s else "?", instructions=round(layer["ticks"] * scale),
                         macs=s.macs if s else 0))
    return rows


def profile_table(label: str, board_id: str, v: str, rows: list[dict[str, Any]], arena_bytes: int) -> str:
    """Per-layer instructions (te-profile) with op, kernel, variant, MACs, MAC per instruction and share."""
    total = sum(r["instructions"] for r in rows) or 1
    lines = [f"{label} on {board_id} ({v}): per-layer profile (te-profile), arena {arena_bytes:,} B",
             f"  {'#':>3s} {'op':18s} {'kernel':24s} {'variant':10s} {'instr':>12s} {'MACs':>10s} {'MAC/instr':>9s} "
             f"{'share':>6s}"]
    for r in rows:
        rate = f"{r['macs'] / r['instructions']:9.3f}" if r["macs"] and r["instructions"] else f"{'-':>9s}"
        lines.append(f"  {r['layer']:3d} {r['op']:18s} {r['kernel']:24s} {r['variant']:10s} {r['instructions']:12,d} "
                     f"{r['macs']:10,d} {rate} {100 * r['instructions'] / total:5.1f}%")
    return "\n".join(lines)


def format_table(records: list[dict]) -> str:
    head = (f"{'model':10s} {'board':18s} {'variant':8s} {'instr':>11s} {'MACs':>10s} {'MAC/instr':>9s} "
            f"{'RAM':>7s} {'TFLM':>7s} {'ratio':>5s} {'flash':>8s} {'weights':>8s} {'host us':>8s} {'TFLM us':>8s} "
            f"{'speedup':>7s}")
    rows = [head, "-" * len(head)]
    for r in records:
        ratio = r["ram_bytes"] / r["tflm_arena_bytes"] if r["tflm_arena_bytes"] else float("nan")
        speed = r["tflm_host_us"] / r["host_us"] if r["host_us"] else float("nan")
        rows.append(f"{r['model']:10s} {r['board']:18s} {r['variant']:8s} {r['instructions']:11,d} {r['macs']:10,d} "
                    f"{r['mac_per_instr']:9.3f} {r['ram_bytes']:7,d} {r['tflm_arena_bytes']:7,d} {ratio:5.2f} "
                    f"{r['flash_bytes']:8,d} {r['weight_bytes']:8,d} {r['host_us']:8.1f} {r['tflm_host_us']:8.1f} "
                    f"{speed:6.2f}x")
    return "\n".join(rows)


def reference_table(records: list[dict[str, Any]]) -> str:
    """Our figures next to TFLM + CMSIS-NN's (REFERENCE), for the records that have a reference."""
    head = (f"{'model':8s} {'variant':8s} {'basis':34s} {'TFLM+CMSIS-NN':>13s} {'tinyedge':>11s} {'ratio':>5s} "
            f"{'CMSIS arena':>11s} {'RAM':>7s} {'ratio':>5s}")
    rows = ["reference: TFLM + CMSIS-NN (release, cortex-m4+fp) on the real MLPerf Tiny models, same QEMU "
            "machine and method (issue 13)", head, "-" * len(head)]
    for r in records:
        ref = r.get("reference")
        if not ref:
            continue
        rows.append(f"{r['model']:8s} {r['variant']:8s} {ref['basis']:34s} {ref['instructions']:13,d} "
                    f"{r['instructions']:11,d} {r['instructions'] / ref['instructions']:5.2f} "
                    f"{ref['arena_bytes']:11,d} {r['ram_bytes']:7,d} {r['ram_bytes'] / ref['arena_bytes']:5.2f}")
    return "\n".join(rows) if len(rows) > 3 else ""


def json_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records as written to the JSON file: RECORD_KEYS, then EXTRA_KEYS."""
    return [{k: r.get(k) for k in RECORD_KEYS + EXTRA_KEYS} for r in records]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                    help="digits, kws, ad, ic, vww, sww, ic-live, vww-live, sww-live (no dead channels) and/or "
                         "paths to int8 .tflite files (default: digits kws ad ic vww sww)")
    ap.add_argument("--boards", nargs="+", default=list(DEFAULT_BOARDS), help="board ids with a QEMU machine")
    ap.add_argument("--variants", nargs="+", default=["dsp", "portable"], choices=["dsp", "portable"])
    ap.add_argument("--out", type=Path, required=True, help="JSON file for the records")
    ap.add_argument("--workdir", type=Path, default=None, help="keep projects and builds here (default: a temp dir)")
    ap.add_argument("--host-iterations", type=int, default=200)
    args = ap.parse_args(argv)
    records = run_benchmark(args.models, args.boards, variants=tuple(args.variants), workdir=args.workdir,
                            host_iterations=args.host_iterations, say=lambda s: print(s, flush=True))
    print()
    print(format_table(records))
    ref = reference_table(records)
    if ref:
        print()
        print(ref)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(json_records(records), indent=2) + "\n")
    print(f"\nwrote {len(records)} records to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
