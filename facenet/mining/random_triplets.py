"""Offline triplets (the reference recipe): the batch already is [anchors | positives | negatives]."""

from mindspore import ops

from facenet.mining.base import Miner


class RandomTripletsMiner(Miner):
    """Selects (i, B + i, 2B + i) for i < B in a batch of 3B images laid out by `batch=triplets`; a triplet whose
    labels are not (same, same, other) is dropped rather than trained on."""

    layout = "triplets"

    def construct(self, dist, pos, neg):
        n = dist.shape[0]
        b = n // 3
        i = ops.arange(n)
        a, p, q = i.reshape(-1, 1, 1), i.reshape(1, -1, 1), i.reshape(1, 1, -1)
        chosen = ops.logical_and(ops.logical_and(a < b, p == a + b), q == a + 2 * b)
        return chosen.astype(dist.dtype) * pos.expand_dims(2) * neg.expand_dims(1)
