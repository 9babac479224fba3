"""Offline triplets (the reference recipe): the batch already is [anchors | positives | negatives]."""

import mindspore as ms
from mindspore import ops

from facenet.mining.base import OneNegativeMiner


class RandomTripletsMiner(OneNegativeMiner):
    """Selects (i, B + i, 2B + i) for i < B in a batch of 3B images laid out by `batch=triplets`; a triplet whose
    labels are not (same, same, other) is dropped rather than trained on. Nothing to mine: no memory."""

    layout = "triplets"

    def positives(self, within, pos, k: int):
        n = pos.shape[0]
        i = ops.arange(n, dtype=ms.int32).reshape(-1, 1)
        column = ops.minimum(i + n // 3, n - 1)
        return column, (i < n // 3).astype(ms.float32) * ops.gather_elements(pos, 1, column)

    def negatives(self, negative_dist, d_ap, listed):
        n = negative_dist.shape[0]
        return ops.minimum(ops.arange(n, dtype=ms.int32).reshape(-1, 1) + 2 * (n // 3), n - 1)
