"""Offline triplets (the reference recipe): the batch already is [anchors | positives | negatives]."""

import mindspore as ms
from mindspore import ops

from facenet.mining.base import Miner, one_negative_mask


class RandomTripletsMiner(Miner):
    """Selects (i, B + i, 2B + i) for i < B in a batch of 3B images laid out by `batch=triplets`; a triplet whose
    labels are not (same, same, other) is dropped rather than trained on."""

    layout = "triplets"
    one_negative = True

    def construct(self, dist, pos, neg):
        return one_negative_mask(*self.negatives(dist, pos, neg))

    def negatives(self, dist, pos, neg):
        n = dist.shape[0]
        b = n // 3
        i = ops.arange(n)
        a, p = i.reshape(-1, 1), i.reshape(1, -1)
        index = ops.broadcast_to(ops.minimum(a + 2 * b, n - 1), (n, n)).astype(ms.int32)
        chosen = ops.logical_and(a < b, p == a + b).astype(dist.dtype)
        return index, chosen * pos * ops.gather_elements(neg, 1, index)
