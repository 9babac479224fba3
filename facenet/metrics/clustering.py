"""Clustering quality against known identities (numpy only)."""

from __future__ import annotations

import numpy as np


def _comb2(x: np.ndarray | int) -> np.ndarray | float:
    x = np.asarray(x, dtype=np.float64)
    return x * (x - 1) / 2


def adjusted_rand_index(labels_true, labels_pred) -> float:
    """Hubert & Arabie's adjusted Rand index: 1 for identical partitions, about 0 for random ones (can be < 0)."""
    t, p = np.asarray(labels_true), np.asarray(labels_pred)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"labels must be two 1-d arrays of one length, got {t.shape} and {p.shape}")
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    table = np.zeros((ti.max() + 1, pi.max() + 1), np.int64)
    np.add.at(table, (ti, pi), 1)
    index = _comb2(table).sum()
    rows, cols, total = _comb2(table.sum(axis=1)).sum(), _comb2(table.sum(axis=0)).sum(), _comb2(len(t))
    expected = rows * cols / total if total else 0.0
    maximum = (rows + cols) / 2
    if maximum == expected:  # both partitions trivial (all singletons or one cluster)
        return 1.0
    return float((index - expected) / (maximum - expected))


def purity(labels_true, labels_pred) -> float:
    """Share of items whose cluster's majority identity is their own."""
    t, p = np.asarray(labels_true), np.asarray(labels_pred)
    total = 0
    for c in np.unique(p):
        _, counts = np.unique(t[p == c], return_counts=True)
        total += counts.max()
    return total / len(t)
