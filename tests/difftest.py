"""Differential testing: generated C (compiled for the host) versus the tflite_micro interpreter."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.host import build_host, run_host
from tinyedge.model import read_model_bytes
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm


def compare(model: bytes, *, samples: int = 6, seed: int = 0, describe: str = "",
            mutate: Callable[[dict[str, str]], dict[str, str]] | None = None) -> str | None:
    """None when outputs are identical on random inputs, else a message naming the first difference."""
    g = read_model_bytes(model, name="difftest")
    program = build_program(g)
    files = render_model(program).files
    if mutate:
        files = mutate(files)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(samples,) + tuple(g.input.shape), dtype=np.int8)
    expected = run_tflm(model, x).reshape(samples, -1)
    with tempfile.TemporaryDirectory(prefix="te-diff-") as d:
        exe = build_host(files, Path(d))
        got = run_host(exe, x.reshape(samples, -1), g.output.size)
    if np.array_equal(got, expected):
        return None
    bad = np.argwhere(got != expected)[0]
    s, e = int(bad[0]), int(bad[1])
    ops = ", ".join(f"{st.op.opcode}{st.params}" for st in program.steps)
    return (f"{describe}: sample {s} element {e}: generated C gave {int(got[s, e])}, TFLM gave {int(expected[s, e])} "
            f"({int((got != expected).sum())} of {got.size} elements differ); ops: {ops}")
