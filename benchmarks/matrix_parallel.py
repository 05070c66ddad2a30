"""``matrix --run`` over two boards: one after the other vs at once, locally (``-j 2``: two QEMU) and on a
labgrid farm (two places on a real coordinator and exporter on 127.0.0.1, each exporting a QEMU's UART).

    python -m benchmarks --matrix-parallel [--model PATH.tflite] [--boards a,b] [--samples 20] [--repeat 3]
                                           [--cold] [--no-farm] [--out m.json]

Wall time of ``compatibility_matrix(..., run=True)``. By default every project is built once first (an
up-to-date PlatformIO build is a no-op), so the figures compare the runs (generate, ``pio run`` check,
QEMU, score), not the compiler; ``--cold`` builds every timed run from scratch (a fresh folder) instead.
``--repeat N`` times each mode N times, the modes interleaved (so a load from elsewhere hits both alike),
and reports the median; every record keeps its single times and the 1-minute load average before and
after, since the machine's other work skews wall times. Not a test: nothing asserts a speed, but every
board must reach parity 1.0 or the run fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tinyedge.matrix import compatibility_matrix
from tinyedge.runners import deploy, free_port
from tinyedge.runners.qemu import is_listening

from .bench import digits_model

DEFAULT_BOARDS = "qemu-mps2-an385,qemu-mps2-an386"


def _timed(label: str, model: Path, boards: str, work: Path, samples: int, **kw: object) -> float:
    """Wall seconds of one ``matrix --run``; every board must reach parity 1.0."""
    t0 = time.perf_counter()
    m = compatibility_matrix(model, boards, run=True, samples=samples, work_dir=work, **kw)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    for r in m.rows:
        if r.measured is None or r.measured.parity != 1.0:
            raise SystemExit(f"{label}: {r.board} did not run with parity 1.0: {r.run_error}")
    return wall


def _modes(model: Path, spec: str, work: Path, samples: int, repeat: int, cold: bool,
           modes: list[tuple[str, dict[str, object]]]) -> list[dict[str, object]]:
    """Each mode ``repeat`` times, interleaved; one record per mode with its median and single times."""
    walls: dict[str, list[float]] = {label: [] for label, _ in modes}
    loads: dict[str, list[float]] = {label: [] for label, _ in modes}
    for i in range(repeat):
        for n, (label, kw) in enumerate(modes):
            folder = work / (f"cold-{n}-{i}" if cold else f"warm-{n}")
            if not cold and i == 0:
                _timed(f"{label} (warm-up)", model, spec, folder, 1, **kw)  # builds the projects
            loads[label].append(round(os.getloadavg()[0], 2))
            walls[label].append(round(_timed(label, model, spec, folder, samples, **kw), 2))
            loads[label].append(round(os.getloadavg()[0], 2))
            print(f"{label}: {walls[label][-1]:.2f} s (load {loads[label][-2]:.2f} -> {loads[label][-1]:.2f})",
                  flush=True)
    return [{"mode": label, "wall_s": round(statistics.median(walls[label]), 2), "runs_s": walls[label],
             "load_1min": loads[label], "cold": cold, "boards": spec.split(","), "samples": samples,
             "jobs": kw.get("jobs")} for label, kw in modes]


@contextlib.contextmanager
def _farm(model: Path, boards: list[str], work: Path) -> Iterator[str]:
    """A coordinator, two QEMU boards and an exporter publishing their UARTs, places tagged farm=bench."""
    procs: list[subprocess.Popen[bytes]] = []
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "LG_COORDINATOR": address}
    with contextlib.ExitStack() as stack:
        try:
            log = open(work / "farm.log", "wb")  # noqa: SIM115 - closed by the ExitStack
            stack.callback(log.close)
            procs.append(subprocess.Popen(["labgrid-coordinator", "-l", address], cwd=work, stdout=log, stderr=log))
            deadline = time.monotonic() + 30
            while not is_listening(int(address.rsplit(":", 1)[1])):
                if time.monotonic() > deadline:
                    raise SystemExit("labgrid-coordinator did not start")
                time.sleep(0.05)
            ports = {}
            for b in boards:
                dep = stack.enter_context(deploy(model, b, work / b / "project"))
                ports[b] = int(dep.url.rsplit(":", 1)[1])
            (work / "exporter.yaml").write_text("".join(
                f"{b}:\n  NetworkSerialPort:\n    host: 127.0.0.1\n    port: {p}\n    protocol: raw\n"
                for b, p in ports.items()))
            procs.append(subprocess.Popen(["labgrid-exporter", "-c", address, "-n", "bench", "--hostname",
                                           "127.0.0.1", str(work / "exporter.yaml")], cwd=work, stdout=log, stderr=log))
            deadline = time.monotonic() + 30
            while not all(f"bench/{b}/" in subprocess.run(["labgrid-client", "resources"], env=env, text=True,
                                                          capture_output=True, timeout=60).stdout for b in boards):
                if time.monotonic() > deadline:
                    raise SystemExit("the exporter's resources did not appear")
                time.sleep(0.3)
            for b in boards:
                for args in (["create"], ["add-match", f"bench/{b}/NetworkSerialPort"],
                             ["set-tags", f"board={b}", "farm=bench"]):
                    subprocess.run(["labgrid-client", "-p", f"bench-{b}", *args], env=env, check=True,
                                   capture_output=True, timeout=60)
            yield address
        finally:
            for p in reversed(procs):
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def format_table(records: list[dict[str, object]]) -> str:
    """Markdown: one mode a row; the speed-up is against the first mode of the same kind (local, farm)."""
    lines = ["| mode | build | wall time (s), median | single runs (s) | speed-up |", "|---|---|---|---|---|"]
    base: dict[str, float] = {}
    for r in records:
        kind = str(r["mode"]).split(":", 1)[0] + ("/cold" if r.get("cold") else "/warm")
        wall = float(r["wall_s"])  # type: ignore[arg-type]
        base.setdefault(kind, wall)
        runs = ", ".join(f"{w:.1f}" for w in r.get("runs_s", [wall]))  # type: ignore[attr-defined]
        lines.append(f"| {r['mode']} | {'cold' if r.get('cold') else 'warm'} | {wall:.1f} | {runs} | "
                     f"{base[kind] / wall:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks --matrix-parallel", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="int8 .tflite (default: the digits example)")
    ap.add_argument("--boards", default=DEFAULT_BOARDS, help=f"two emulated boards (default {DEFAULT_BOARDS})")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=1, help="times per mode, interleaved; the median is reported")
    ap.add_argument("--cold", action="store_true", help="every timed run builds from scratch (a fresh folder)")
    ap.add_argument("--no-farm", action="store_true", help="skip the labgrid farm runs")
    ap.add_argument("--out", type=Path, default=None, help="JSON file for the records")
    args = ap.parse_args([a for a in (argv if argv is not None else sys.argv[1:]) if a != "--matrix-parallel"])
    root = Path(tempfile.mkdtemp(prefix="te-bench-matrix-"))
    try:
        model = args.model or digits_model(root / "cache")
        boards = [b.strip() for b in args.boards.split(",") if b.strip()]
        spec = ",".join(boards)
        repeat = max(1, args.repeat)
        records = _modes(model, spec, root / "local", args.samples, repeat, args.cold,
                         [("local: one after the other", {"jobs": 1}), ("local: -j 2", {"jobs": 2})])
        if not args.no_farm and shutil.which("labgrid-coordinator"):
            work = root / "farm"
            work.mkdir()
            with _farm(model, boards, work) as address:
                farm: dict[str, object] = {"places": "farm=bench", "coordinator": address}
                # warm: the farm's own builds (work/<board>/project) are up to date for the matrix runs
                records += _modes(model, spec, work if not args.cold else root / "farm-cold", args.samples, repeat,
                                  args.cold, [("farm: one place after the other", {**farm, "jobs": 1}),
                                              ("farm: both places at once", {**farm, "jobs": None})])
        print()
        print(format_table(records))
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(records, indent=2) + "\n")
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)
