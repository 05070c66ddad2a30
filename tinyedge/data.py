"""Labelled data files: ``.npz`` with ``x`` (float inputs) and ``y`` (integer labels).

Everything is checked before a device or a converter sees it: one :class:`~tinyedge.errors.DataError`
names the file, the array, the first offending index and value, and what to try. Checked here: a
readable file holding ``x`` (and ``y`` when needed), numeric ``x`` (not text, objects or complex
numbers) with at least one sample, finite ``x`` (NaN/inf only with ``allow_nonfinite``), and ``y`` as
one integer label per sample. :func:`check_labels` checks the labels against the model's classes,
which only the caller knows.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

_SAVE_HINT = "save it with numpy.savez(path, x=inputs, y=labels)"

#: Names of the dtype kinds refused for ``x`` (numpy ``dtype.kind`` -> what to call it).
_NOT_NUMERIC = {"b": "booleans", "c": "complex numbers", "O": "Python objects", "U": "text", "S": "bytes",
                "V": "structured records", "M": "dates", "m": "time spans"}


#: What numpy raises on a file that is not a (complete) .npz archive.
_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def _where(shape: tuple[int, ...], flat: int) -> str:
    """``[i]`` or ``[i, j, ...]``: a flat index as an index into an array of ``shape``."""
    idx = np.unravel_index(flat, shape)
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _read_arrays(path: Path) -> tuple[set[str], dict[str, np.ndarray]]:
    """The key names in ``path`` and its arrays ``x`` and ``y`` (those present)."""
    try:
        f = np.load(path, allow_pickle=False)
    except _UNREADABLE as exc:
        raise DataError(f"cannot read {path} as .npz: {exc}", _SAVE_HINT) from None
    if not isinstance(f, np.lib.npyio.NpzFile):  # a plain .npy file gives one array
        raise DataError(f"{path} holds a single array (.npy), not an .npz archive with 'x' and 'y'", _SAVE_HINT)
    arrays: dict[str, np.ndarray] = {}
    with f:
        keys = set(f.files)
        for k in sorted(keys & {"x", "y"}):
            try:
                arrays[k] = np.asarray(f[k])
            except ValueError as exc:
                if "allow_pickle" not in str(exc):
                    raise DataError(f"cannot read '{k}' in {path}: {exc}", _SAVE_HINT) from None
                raise DataError(
                    f"'{k}' in {path} is an array of Python objects (dtype object), which tinyedge does not "
                    "load (loading it could run pickled code)",
                    f"store '{k}' as a numeric array, e.g. numpy.asarray({k}, dtype="
                    f"{'float32' if k == 'x' else 'int64'!r}); {_SAVE_HINT}",
                ) from None
            except _UNREADABLE as exc:
                raise DataError(f"cannot read '{k}' in {path}: {exc}", _SAVE_HINT) from None
    return keys, arrays


def _check_x(x: np.ndarray, path: Path, allow_nonfinite: bool) -> np.ndarray:
    """``x`` as the model gets it (float32, or the integers as stored), or DataError."""
    if x.dtype.kind not in "fiu":
        what = _NOT_NUMERIC.get(x.dtype.kind, f"dtype {x.dtype}")
        hint = ("pass the real part (x.real) if that is what the model takes, or convert the data to float32"
                if x.dtype.kind == "c" else "store inputs as a float32 (or int8) array")
        raise DataError(f"'x' in {path} holds {what} (dtype {x.dtype}), not numbers", hint)
    if x.ndim == 0:
        raise DataError(f"'x' in {path} is a single number, not one row per sample",
                        "store inputs with the samples along the first axis, shape (samples, ...)")
    if len(x) == 0:
        raise DataError(f"'x' in {path} has no samples (shape {x.shape})",
                        "pass a data file with at least one row in x")
    if x.dtype.kind != "f":
        return x
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: reported below
        x32 = x.astype(np.float32)
    if allow_nonfinite:
        return x32
    bad = ~np.isfinite(x32)
    if bad.any():
        flat = int(np.argmax(bad))
        where = _where(x.shape, flat)
        orig = float(x.reshape(-1)[flat])
        value = f"{orig!r}" if not np.isfinite(orig) else f"{orig!r}, which is inf as float32"
        rows = int(bad.reshape(len(x), -1).any(axis=1).sum())
        raise DataError(
            f"'x' in {path} has {int(bad.sum())} non-finite values (NaN or inf) in {rows} of {len(x)} samples; "
            f"the first is x{where} = {value}",
            "fix or drop those samples (e.g. keep = numpy.isfinite(x).reshape(len(x), -1).all(axis=1); "
            "x, y = x[keep], y[keep]), or pass --allow-nonfinite (score, run) to score them on purpose "
            "(NaN is then sent as the zero point, +-inf as the int8 limits)",
        )
    return x32


def _check_y(y: np.ndarray, n: int, path: Path) -> np.ndarray:
    """``y`` as int64, one label per sample, or DataError."""
    if y.ndim != 1:
        raise DataError(f"'y' in {path} has shape {y.shape}: labels must be a 1-D array, one per sample",
                        "store one integer class label per row of x, e.g. y = y.reshape(-1) or y.argmax(axis=1) "
                        "for one-hot labels")
    if len(y) != n:
        raise DataError(f"'y' in {path} has {len(y)} labels but 'x' has {n} samples",
                        "store exactly one label per row of x")
    if y.dtype.kind in "iu":
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            i = int(np.argmax(~whole))
            raise DataError(f"'y' in {path} must hold integer class labels, but y[{i}] = {float(y[i])!r}",
                            "store class labels as integers (class indices 0, 1, ...), not scores or one-hot rows")
        raise DataError(f"'y' in {path} holds whole numbers as {y.dtype}, not an integer array",
                        "store class labels as integers, e.g. y.astype('int64')")
    what = _NOT_NUMERIC.get(y.dtype.kind, f"dtype {y.dtype}")
    raise DataError(f"'y' in {path} holds {what} (dtype {y.dtype}), not integer labels",
                    "store class labels as integers (class indices 0, 1, ...), e.g. y.astype('int64')")


def load_npz(path: str | Path, *, need_labels: bool = True,
             allow_nonfinite: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Load ``x`` (float32, or integers as stored) and ``y`` (int64, or None when absent and not needed).

    Raises DataError for an unreadable file, a missing array, ``x`` that is not numeric, holds no
    sample or holds NaN/inf (unless ``allow_nonfinite``), and ``y`` that is not one integer per sample.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist", "pass an .npz file with arrays 'x' and 'y'")
    keys, arrays = _read_arrays(path)
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
    x = _check_x(arrays["x"], path, allow_nonfinite)
    y = arrays.get("y")
    return x, (_check_y(y, len(x), path) if y is not None else None)


def check_labels(y: np.ndarray | None, path: str | Path, *, num_classes: int | None = None,
                 anomaly: bool = False) -> None:
    """Refuse labels the model cannot have produced: for a classifier with ``num_classes`` outputs,
    labels 0 .. num_classes-1; for anomaly detection (``anomaly``), 0 (normal) or 1 (anomalous).
    Nothing to check when ``y`` is None or neither is given. Raises DataError naming the first one."""
    if y is None or len(y) == 0:
        return
    y = np.asarray(y)
    if anomaly:
        bad = (y != 0) & (y != 1)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"'y' in {path}: label y[{i}] = {int(y[i])}, but an anomaly-detection model's labels are "
                "0 (normal) or 1 (anomalous)",
                "label normal samples 0 and anomalous ones 1, e.g. y = (y != 0).astype('int64')",
            )
    elif num_classes is not None:
        bad = (y < 0) | (y >= num_classes)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"'y' in {path}: label y[{i}] = {int(y[i])} is outside the model's {num_classes} classes "
                f"(0..{num_classes - 1}); {int(bad.sum())} of {len(y)} labels are",
                "check that the data file belongs to this model and that labels are class indices from 0",
            )


def fit_shape(x: np.ndarray, shape: tuple[int, ...], path: str | Path = "data") -> np.ndarray:
    """Reshape per-sample inputs to ``shape`` (the model input without batch), or raise DataError."""
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"{path} has no samples", "pass a data file with at least one row in x")
    per = int(np.prod(shape))
    if x.size != len(x) * per or x[0].size != per:
        raise DataError(
            f"{path}: each sample has shape {tuple(x.shape[1:])} but the model input is {tuple(shape)}",
            "check that the data file belongs to this model",
        )
    return x.reshape((len(x),) + tuple(shape))


#: The integer tensor types a model's input can have, and their numpy types.
INT_TYPES: dict[str, type[np.integer[Any]]] = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16}


def random_ints(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Values uniform over the whole range of the integer tensor type ``dtype`` (a TFLite type name; int8 for
    any other type), as the device takes them: int16 little-endian."""
    t = INT_TYPES.get(dtype, np.int8)
    info = np.iinfo(t)
    return rng.integers(int(info.min), int(info.max) + 1, size=shape).astype(np.dtype(t).newbyteorder("<"))


def quantize_inputs(x: np.ndarray, scale: float, zero_point: int,
                    dtype: type[np.signedinteger[Any]] = np.int8) -> np.ndarray:
    """Float inputs to int8 the way TFLite's QUANTIZE does: round half away from zero, add zero point, clamp.

    Non-finite inputs (only present when the caller allowed them) get a defined value: +-inf saturate
    to the type's limits and NaN becomes the zero point (the quantized 0.0).
    """
    if x.dtype == dtype:
        return x
    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = x.astype(np.float32) / np.float32(scale)  # float32 division, as TFLite's QUANTIZE does
        # std::round: half away from zero (numpy's round would take ties to even).
        whole = np.trunc(scaled)
        q = np.where(np.abs(scaled - whole) == 0.5, whole + np.sign(scaled), np.round(scaled))
        q = np.where(np.isnan(q), 0.0, q)
        out: np.ndarray = np.clip(q + zero_point, info.min, info.max).astype(dtype)
    return out
