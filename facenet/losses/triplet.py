"""Triplet loss with margin over the triplets a miner selects, plus the telemetry that makes collapse visible."""

from __future__ import annotations

import mindspore as ms
from mindspore import ops

from facenet.errors import ConfigError
from facenet.losses.base import EmbeddingLoss
from facenet.losses.telemetry import DIFFICULTY, DISTANCE_STATS, distance_telemetry
from facenet.mining.base import Miner, label_masks, pairwise_distances

REDUCTIONS = ("active_mean", "mean")


class TripletLoss(EmbeddingLoss):
    """hinge(a, p, n) = max(d(a,p) - d(a,n) + margin, 0) over the selected triplets.

    `squared=False` uses L2 distance (the reference recipe), `True` squared L2 (the FaceNet paper).
    `reduction="active_mean"` averages over active triplets (hinge > 0), as the reference does, and is 0 when none
    is active; `"mean"` averages over all selected triplets.
    construct(emb, labels) -> (loss, telemetry): the active fraction of the selected triplets, the mean distance
    over all positive and all negative pairs of the batch, the mean embedding norm, then the easy / semi-hard / hard
    fractions of all the batch's valid triplets and percentiles of the positive and negative distances
    (`facenet.losses.telemetry`): what `facenet.training.health` watches.
    """

    TELEMETRY = ("active_fraction", "d_ap", "d_an", "embedding_norm", *DIFFICULTY, *DISTANCE_STATS)
    USES_MINER = True

    def __init__(self, miner: Miner, margin: float, squared: bool = False, reduction: str = "active_mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ConfigError(f"loss.reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if margin < 0:
            raise ConfigError(f"margin must be >= 0, got {margin}")
        self.miner, self.margin, self.squared = miner, float(margin), bool(squared)
        self.active_mean = reduction == "active_mean"

    def construct(self, emb, labels):
        dist = pairwise_distances(emb, self.squared)
        pos, neg = label_masks(labels)
        if self.miner.one_negative:  # one negative per (a, p): (B, B) arrays, the same loss and gradient
            index, valid = self.miner.negatives(dist, pos, neg)
            valid = ops.stop_gradient(valid)
            hinge = ops.relu(dist - ops.gather_elements(dist, 1, ops.stop_gradient(index)) + self.margin) * valid
            n_selected = valid.sum()
            n_active = (hinge > 0).astype(ms.float32).sum()
            total = hinge.sum()
        else:
            selected = ops.stop_gradient(self.miner(dist, pos, neg))
            hinge = ops.relu(dist.expand_dims(2) - dist.expand_dims(1) + self.margin)
            n_selected = selected.sum()
            n_active = ((hinge > 0).astype(ms.float32) * selected).sum()
            total = (hinge * selected).sum()
        loss = total / (n_active + 1e-8) if self.active_mean else total / ops.maximum(n_selected, 1.0)
        means = ops.stack(
            [
                n_active / ops.maximum(n_selected, 1.0),
                (dist * pos).sum() / ops.maximum(pos.sum(), 1.0),
                (dist * neg).sum() / ops.maximum(neg.sum(), 1.0),
                ops.sqrt((emb * emb).sum(axis=1)).mean(),
            ]
        )
        telemetry = ops.concat([means, distance_telemetry(dist, pos, neg, self.margin)])
        return loss, ops.stop_gradient(telemetry)
