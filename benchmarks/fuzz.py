"""``python -m benchmarks --fuzz N``: the fuzz harness of ``tests/fuzz_tflite.py`` as a long run.

N seeded mutants of each model go through ``inspect`` and ``generate`` (in a child process: a crash is
recorded as a death of that mutant); accepted mutants are compiled for the host and compared with the
tflite_micro interpreter (a sample, or all of them with ``--check-all``). Exits 1 when any mutant raised a
raw exception, killed the process, hung, or gave outputs that differ from TFLM.

    python -m benchmarks --fuzz 10000 --models kws ad --seed 0 [--checks 50 | --check-all] [--out fuzz.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from .bench import BUILTIN, ROOT

# The fuzz logic lives once, beside the tests that run it in the regular suite.
sys.path.insert(0, str(ROOT / "tests"))
import fuzz_tflite  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks --fuzz", description=__doc__.splitlines()[0])
    ap.add_argument("--fuzz", type=int, required=True, metavar="N", help="mutants of each model")
    ap.add_argument("--models", nargs="+", default=["kws", "ad"], help="kws, ad and/or paths to .tflite files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checks", type=int, default=50, help="accepted mutants per model compared with TFLM")
    ap.add_argument("--check-all", action="store_true", help="compare every accepted mutant with TFLM (slow)")
    ap.add_argument("--tflm-arena", action="store_true", help="include inspect's TFLM arena bisection (slow)")
    ap.add_argument("--write", action="store_true", help="generate projects on disk (generate_project) "
                    "instead of in memory (project_sources)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file for every outcome")
    args = ap.parse_args(argv)
    models = []
    for name in args.models:
        path = BUILTIN.get(name, Path(name))
        if not path.is_file():
            raise SystemExit(f"model {name!r}: {path} is missing (the shared models live in ../shared/models)")
        models.append((name if name in BUILTIN else path.stem, path))
    write_dir = None
    if args.write:
        write_dir = Path(tempfile.mkdtemp(prefix="te-fuzz-"))
    report = fuzz_tflite.run_fuzz(models, args.fuzz, seed=args.seed,
                                  check_limit=None if args.check_all else args.checks,
                                  tflm_arena=args.tflm_arena, write_dir=write_dir,
                                  say=lambda s: print(s, file=sys.stderr, flush=True))
    print(report.summary())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"seed": report.seed, "seconds": report.seconds,
                                        "outcomes": [asdict(o) for o in report.outcomes],
                                        "checks": [asdict(c) for c in report.checks]}, indent=1) + "\n")
    return 1 if report.bad or report.mismatches else 0
