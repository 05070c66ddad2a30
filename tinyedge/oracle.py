"""The golden reference: TensorFlow Lite Micro's own interpreter (``tflite_micro`` on PyPI).

Never ``tf.lite.Interpreter``: it requantizes FULLY_CONNECTED differently by one LSB.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _interpreter(model: bytes, arena_size: int) -> Any:  # tflite_micro ships no type information
    from tflite_micro import runtime  # noqa: PLC0415  (loads the interpreter's native library: on first use)

    return runtime.Interpreter.from_bytes(model, arena_size=arena_size)


def run_tflm(model: bytes, inputs: np.ndarray, arena_size: int = 4 << 20) -> np.ndarray:
    """Run each row of ``inputs`` (already in the model's input dtype and shape) through TFLM.

    Returns the stacked outputs of output 0, one row per input.
    """
    interp = _interpreter(model, arena_size)
    shape = tuple(interp.get_input_details(0)["shape"])
    dtype = interp.get_input_details(0)["dtype"]
    outs = []
    for row in inputs:
        interp.set_input(np.asarray(row, dtype=dtype).reshape(shape), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)).reshape(-1).copy())
        interp.reset()
    return np.stack(outs) if outs else np.zeros((0,), dtype=dtype)


def _allocates(model: bytes, arena_size: int) -> bool:
    try:
        interp = _interpreter(model, arena_size)
        shape = tuple(interp.get_input_details(0)["shape"])
        interp.set_input(np.zeros(shape, dtype=interp.get_input_details(0)["dtype"]), 0)
        interp.invoke()
        return True
    except Exception:  # the runtime raises RuntimeError (or ValueError) when the arena is too small
        return False


def min_arena_bytes(model: bytes, hi: int = 8 << 20, step: int = 16) -> int:
    """Smallest ``arena_size`` (to ``step`` bytes) with which TFLM allocates and invokes the model.

    TFLM has no arena-used call in Python, so bisect. The host interpreter is 64-bit: pointers and
    structs make its arena somewhat larger than on a 32-bit MCU.
    """
    if not _allocates(model, hi):
        raise ValueError(f"TFLM cannot run this model even with a {hi}-byte arena")
    lo = 0
    while hi - lo > step:
        mid = (lo + hi) // 2
        if _allocates(model, mid):
            hi = mid
        else:
            lo = mid
    return hi
