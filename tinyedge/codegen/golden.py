"""The self-test's golden pair: one deterministic input and the tflite_micro interpreter's exact output for it.

The generated ``<name>_selftest()`` runs the input and compares every output byte with the interpreter's,
so a wrong compiler flag, a misplaced arena or a broken port shows at boot on the device itself.
"""

from __future__ import annotations

import logging

import numpy as np

from ..data import random_ints
from ..errors import OracleError
from ..model.ir import Program
from ..model.lower import boundary_quantization
from ..oracle import run_tflm

log = logging.getLogger("tinyedge.codegen")


def golden_input(program: Program) -> np.ndarray:
    """One input for ``program``'s model, in its input dtype and shape, seeded by the model's sha256.

    int8 (and other integer) inputs are uniform over their type; a float32 input takes values on the
    grid of the QUANTIZE that follows it ((q - zero point) * scale), so it is exact whatever the rounding.
    """
    g = program.graph
    x = g.tensor(program.input)
    rng = np.random.default_rng(int(g.sha256[:16], 16))
    if x.dtype == "FLOAT32":
        scale, zp = boundary_quantization(program, program.input)
        q = rng.integers(-128, 128, size=x.shape)
        return ((q - zp) * np.float32(scale)).astype(np.float32)
    return random_ints(x.dtype, tuple(x.shape), rng)


def golden_vectors(program: Program) -> tuple[bytes, bytes]:
    """(input bytes, output bytes): :func:`golden_input` and the tflite_micro interpreter's output for it.

    Raises OracleError when the interpreter refuses or crashes on the model.
    """
    x = golden_input(program)
    y = run_tflm(program.graph.model_bytes, x[None])
    return x.tobytes(), np.ascontiguousarray(y[0]).tobytes()


def golden_vectors_if_available(program: Program) -> tuple[bytes, bytes] | None:
    """:func:`golden_vectors`, or None (with a warning) when the interpreter cannot run the model: the
    firmware then reports ``selftest=none`` rather than failing to generate."""
    try:
        return golden_vectors(program)
    except OracleError as exc:
        log.warning("no self-test data for %s: %s", program.graph.name, exc)
        return None
