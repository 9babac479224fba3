"""Softmax cross-entropy over logits whose columns may be split across data-parallel ranks (InsightFace's
DistCrossEntropy): with `world` > 1 each rank holds its share of the classes, and the softmax's shift and sums are
combined over ranks (`facenet.losses.sharding`), giving on every rank the loss of one process holding every column."""

from __future__ import annotations

from mindspore import nn, ops

from facenet.losses.sharding import MaxOverRanks, SumOverRanks


class CrossEntropy(nn.Cell):
    """construct(logits (B, K), onehot (B, K)) -> mean over the batch of -log softmax(logits) at the own class (1
    in `onehot`, on the one rank that holds it)."""

    def __init__(self, world: int = 1):
        super().__init__()
        self.world = world
        if world > 1:
            self.max_ranks, self.sum_ranks = MaxOverRanks(world), SumOverRanks()

    def construct(self, logits, onehot):
        shift = ops.stop_gradient(logits.max(axis=1))
        if self.world > 1:
            shift = self.max_ranks(shift)
        total = ops.exp(logits - shift.expand_dims(1)).sum(1)
        own = (logits * onehot).sum(1)
        if self.world > 1:  # one collective for both
            total, own = ops.unstack(self.sum_ranks(ops.stack((total, own))))
        return (ops.log(total) + shift - own).mean()
