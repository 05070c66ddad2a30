"""Differential testing: generated C versus the tflite_micro interpreter, exact equality.

One harness for every kernel test: ``compare`` (host-compiled C) and ``qemu_outputs`` (the firmware in
QEMU, through the serial protocol)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tinyedge.codegen.cmodel import render_model
from tinyedge.codegen.host import build_host, run_host
from tinyedge.link import DutClient, connect
from tinyedge.model import Graph, read_model_bytes
from tinyedge.model.program import build_program
from tinyedge.oracle import run_tflm
from tinyedge.runners import deploy


def inputs_for(g: Graph, rng: np.random.Generator, samples: int) -> np.ndarray:
    """Input rows (flat): int8 rows whose first row walks every byte value; float rows that cover the
    int8 range after the model's QUANTIZE, with clamping and exact .5 ties."""
    x = g.input
    n = x.size
    if x.dtype == "FLOAT32":
        q = next(g.tensor(op.outputs[0]) for op in g.operators if g.inputs[0] in op.inputs)
        s, zp = q.q()
        real = (rng.uniform(-150, 150, size=(samples, n)) - zp) * s
        real[0] = (np.arange(n) % 41 - 20 + 0.5) * s  # exact half steps hit the rounding rule
        return real.astype(np.float32)
    rows = rng.integers(-128, 128, size=(samples, n))
    rows[0] = (np.arange(n) * 97 + 3) % 256 - 128 if n < 256 else np.resize(np.arange(-128, 128), n)
    return rows.astype(np.int8)


def compare(model: bytes, *, samples: int = 6, seed: int = 0, describe: str = "",
            mutate: Callable[[dict[str, str]], dict[str, str]] | None = None, all_bytes: bool = True) -> str | None:
    """None when the host-compiled generated C gives exactly TFLM's outputs, else a message naming the op,
    its parameters and the first differing element. ``mutate`` edits the rendered sources first (to prove
    the harness catches a wrong kernel). Small int8 inputs also get rows covering all 256 byte values."""
    g = read_model_bytes(model, name="difftest")
    program = build_program(g)
    files = render_model(program).files
    if mutate:
        files = mutate(files)
    x = inputs_for(g, np.random.default_rng(seed), samples)
    if all_bytes and samples > 1 and g.input.dtype == "INT8" and g.input.size < 256:
        extra = np.resize(np.arange(-128, 128, dtype=np.int8), (-(-256 // g.input.size), g.input.size))
        x = np.concatenate([x, extra])
    expected = run_tflm(model, x.reshape((len(x),) + tuple(g.input.shape))).reshape(len(x), -1)
    with tempfile.TemporaryDirectory(prefix="te-diff-") as d:
        exe = build_host(files, Path(d))
        raw = run_host(exe, x.view(np.int8).reshape(len(x), -1), g.output.size * g.output.itemsize)
    got = raw.view(np.float32 if g.output.dtype == "FLOAT32" else np.int8).reshape(len(x), -1)
    same = got.view(np.uint8) == expected.view(np.uint8)  # bit-for-bit, also for float outputs
    if same.all():
        return None
    bad = np.argwhere(got != expected)[0] if (got != expected).any() else np.argwhere(~same)[0]
    s, e = int(bad[0]), int(bad[1])
    ops = "; ".join(f"{st.op.opcode} {st.kernel} {st.params}" for st in program.steps)
    return (f"{describe}: sample {s} element {e}: generated C gave {got[s, e]!r}, TFLM gave {expected[s, e]!r} "
            f"({int((got != expected).sum())} of {got.size} elements differ); steps: {ops}")


def check(model: bytes, describe: str, **kw) -> None:
    """Fail the test with ``compare``'s message when the outputs differ."""
    problem = compare(model, describe=describe, **kw)
    if problem is not None:
        pytest.fail(problem)


def qemu_outputs(graph: Graph, board_id: str, inputs: np.ndarray, workdir: Path, core_dir: Path,
                 timeout: float = 120.0, then: Callable[[DutClient], None] | None = None):
    """Generate, build (PlatformIO) and run ``graph`` on an emulated board; feed each input row through
    the serial protocol (te-load, infer, te-results). Returns (the outputs, int8, int16 or float32 as the model's
    output, the GeneratedProject). int16 input rows go as two bytes per value, float32 as four, little-endian.
    float32 outputs come back bit for bit (te-results' outf sends their IEEE bits). ``then(client)``
    runs after the last row, on the same firmware (more checks without another build)."""
    outs = []
    with deploy(graph, board_id, workdir, engine="qemu", core_dir=core_dir) as dep:
        client = connect(dep.url, connect_timeout=10.0, ready_timeout=20.0)
        try:
            for row in inputs:
                row = np.ascontiguousarray(row)
                client.load(row.astype(row.dtype.newbyteorder("<")).tobytes())
                client.infer(1, 0, timeout=timeout)
                outs.append(client.te_results().out.reshape(-1))
            if then is not None:
                then(client)
        finally:
            client.close()
    return np.stack(outs), dep.project
