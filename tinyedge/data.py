"""Labelled data files: ``.npz`` with ``x`` (float inputs) and ``y`` (integer labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError


def load_npz(path: str | Path, *, need_labels: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Load ``x`` (as float32) and ``y`` (as int64, or None when absent and not needed).

    Raises DataError naming the missing key or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist", "pass an .npz file with arrays 'x' and 'y'")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            arrays = {k: f[k] for k in keys & {"x", "y"}}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as .npz: {exc}", "save it with numpy.savez(path, x=..., y=...)") from None
    if "x" not in arrays:
        raise DataError(
            f"data file {path} has no array 'x' (it has: {', '.join(sorted(keys)) or 'nothing'})",
            "save inputs as x: numpy.savez(path, x=inputs, y=labels)",
        )
    if need_labels and "y" not in arrays:
        raise DataError(
            f"data file {path} has no array 'y' (it has: {', '.join(sorted(keys))})",
            "save integer labels as y: numpy.savez(path, x=inputs, y=labels)",
        )
    x = np.asarray(arrays["x"])
    if x.dtype.kind not in "fiu":
        raise DataError(f"'x' in {path} has dtype {x.dtype}", "store inputs as a numeric array")
    y = arrays.get("y")
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(x):
            raise DataError(
                f"'y' in {path} must be a 1-D integer array with one label per row of 'x' "
                f"(got shape {y.shape}, dtype {y.dtype}; x has {len(x)} rows)",
                "store class labels as integers, e.g. y.astype('int64')",
            )
        y = y.astype(np.int64)
    return x.astype(np.float32) if x.dtype.kind == "f" else x, y


def fit_shape(x: np.ndarray, shape: tuple[int, ...], path: str | Path = "data") -> np.ndarray:
    """Reshape per-sample inputs to ``shape`` (the model input without batch), or raise DataError."""
    per = int(np.prod(shape))
    if x.size != len(x) * per or x[0].size != per:
        raise DataError(
            f"{path}: each sample has shape {tuple(x.shape[1:])} but the model input is {tuple(shape)}",
            "check that the data file belongs to this model",
        )
    return x.reshape((len(x),) + tuple(shape))


def quantize_inputs(x: np.ndarray, scale: float, zero_point: int,
                    dtype: type[np.signedinteger[Any]] = np.int8) -> np.ndarray:
    """Float inputs to int8 the way TFLite's QUANTIZE does: round half away from zero, add zero point, clamp."""
    if x.dtype == dtype:
        return x
    info = np.iinfo(dtype)
    scaled = x.astype(np.float32) / np.float32(scale)  # float32 division, as TFLite's QUANTIZE does
    # std::round: half away from zero (numpy's round would take ties to even).
    whole = np.trunc(scaled)
    q = np.where(np.abs(scaled - whole) == 0.5, whole + np.sign(scaled), np.round(scaled))
    out: np.ndarray = np.clip(q + zero_point, info.min, info.max).astype(dtype)
    return out
