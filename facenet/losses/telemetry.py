"""In-graph statistics of a batch's distances, for a loss's telemetry (no gradient, static shapes, O(B^2 log B)).

`DISTANCE_PERCENTILES` of the positive and of the negative pair distances, and how the batch's valid triplets
(anchor, positive, negative) split into hard (d_an <= d_ap), semi-hard (d_ap < d_an < d_ap + margin) and easy
(d_an >= d_ap + margin, no loss) ones: FaceNet's categories, counted over every valid triplet of the batch whatever
the miner selects (a sort of each anchor's negative distances and a binary search per positive, not a (B, B, B)
array). A cross-batch memory's stored embeddings are left out: these describe the network as it is now.
"""

from __future__ import annotations

import mindspore as ms
from mindspore import ops

from facenet.mining.base import BIG

DISTANCE_PERCENTILES = (10, 50, 90)
DIFFICULTY = ("easy_fraction", "semi_hard_fraction", "hard_fraction")
DISTANCE_STATS = tuple(f"d_{kind}_p{q}" for kind in ("ap", "an") for q in DISTANCE_PERCENTILES)
# with a cross-batch memory: the share of the active triplets whose negative is a stored embedding, those
# negatives' mean age in steps, and the share of the memory's slots mined this step (0 before its start step)
MEMORY_STATS = ("memory_negative_fraction", "memory_negative_age", "memory_in_use")


def masked_percentiles(values, mask, percentiles=DISTANCE_PERCENTILES):
    """Percentiles (numpy's default linear interpolation) of `values` where `mask` is 1; zeros where it is empty."""
    flat, keep = values.reshape(-1), mask.reshape(-1)
    n = keep.sum()
    ordered, _ = ops.sort(ops.select(keep > 0, flat, ops.full_like(flat, BIG)))  # masked-out values sort last
    last = ops.maximum(n - 1.0, 0.0)
    out = []
    for q in percentiles:
        pos = last * (q / 100.0)
        lo = ops.floor(pos)
        hi = ops.minimum(lo + 1.0, last)
        a = ops.gather(ordered, lo.astype(ms.int32), 0)
        b = ops.gather(ordered, hi.astype(ms.int32), 0)
        out.append(ops.select(n > 0, a + (b - a) * (pos - lo), ops.zeros_like(a)))
    return ops.stack(out)


def triplet_difficulty(dist, pos, neg, margin: float):
    """(easy, semi-hard, hard) fractions of the batch's valid triplets; zeros when it has none."""
    negatives, _ = ops.sort(ops.select(neg > 0, dist, ops.full_like(dist, BIG)), axis=1)  # each anchor's, ascending
    hard = ops.searchsorted(negatives, dist, right=True).astype(ms.float32)  # per (a, p): negatives with d_an <= d_ap
    within = ops.searchsorted(negatives, dist + margin, right=False).astype(ms.float32)  # d_an < d_ap + margin
    per_anchor = neg.sum(axis=1, keepdims=True)
    valid = (pos * per_anchor).sum()
    n_hard, n_within = (pos * hard).sum(), (pos * within).sum()
    denominator = ops.maximum(valid, 1.0)
    return ops.stack([(valid - n_within) / denominator, (n_within - n_hard) / denominator, n_hard / denominator])
