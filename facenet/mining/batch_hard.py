"""Hardest positive and hardest negative per anchor (Hermans et al. 2017, "batch hard")."""

from mindspore import ops

from facenet.mining.base import BIG, Miner, one_negative_mask


class BatchHardMiner(Miner):
    """One triplet per anchor: the farthest positive and the closest negative (first index on ties)."""

    one_negative = True

    def construct(self, dist, pos, neg):
        return one_negative_mask(*self.negatives(dist, pos, neg))

    def negatives(self, dist, pos, neg):
        b = dist.shape[0]
        hard_p = ops.argmax(dist * pos - BIG * (1.0 - pos), dim=1)
        hard_n = ops.argmin(dist + BIG * (1.0 - neg), axis=1)
        valid = (pos.max(axis=1) * neg.max(axis=1)).reshape(-1, 1)
        index = ops.broadcast_to(hard_n.reshape(-1, 1), (b, b))
        return index, ops.one_hot(hard_p, b, 1.0, 0.0) * valid
