"""Figures computed from per-sample records: percentiles, confusion matrix, ROC AUC, PSI.

Pure numpy, no scikit-learn at run time (the tests check these against scikit-learn).
"""

from __future__ import annotations

import numpy as np


def percentiles(values: np.ndarray) -> dict[str, float | None]:
    """p50/p95/p99/max/mean of ``values`` (numpy's linear interpolation); Nones when empty."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(values.max()),
            "mean": float(values.mean())}


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    """``m[t][p]`` = samples of true class t predicted as p (labels outside 0..n-1 are ignored)."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    ok = (t >= 0) & (t < n_classes) & (p >= 0) & (p < n_classes)
    np.add.at(m, (t[ok], p[ok]), 1)
    return m.tolist()


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for ``labels`` (nonzero = positive, e.g. anomalous).

    The Mann-Whitney statistic with ties counted half, which equals the trapezoidal ROC area
    (scikit-learn's ``roc_auc_score``). None when only one class is present.
    """
    labels = np.asarray(labels) != 0
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks for ties
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10, eps: float = 1e-4) -> float | None:
    """Population stability index of ``current`` against ``reference``.

    Bin edges are the reference's deciles (``bins`` quantile bins, merged where values repeat);
    PSI = sum((c - r) * ln(c / r)) over bins, with empty bins floored at ``eps``. 0 means the same
    distribution; < 0.1 is usually read as no shift, > 0.25 as a major shift.
    """
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    if reference.size == 0 or current.size == 0:
        return None
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    r = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) / reference.size
    c = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1) / current.size
    r = np.maximum(r, eps)
    c = np.maximum(c, eps)
    value = float(np.sum((c - r) * np.log(c / r)))
    return 0.0 if abs(value) < 1e-12 else value


def reconstruction_errors(x: np.ndarray, out_q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Anomaly scores of an autoencoder as MLPerf Tiny's AD benchmark computes them: the mean squared
    error between the (float) input and the dequantized output, one score per sample."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = (np.asarray(out_q, dtype=np.float64).reshape(len(out_q), -1) - zero_point) * scale
    return np.asarray(np.mean((x - y) ** 2, axis=1), dtype=np.float64)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (np.asarray(q, dtype=np.float64) - zero_point) * scale
