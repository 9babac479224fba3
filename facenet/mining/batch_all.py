"""Every valid triplet of the batch (Hermans et al. 2017, "batch all")."""

from facenet.mining.base import Miner


class BatchAllMiner(Miner):
    """All (a, p, n) with label(a) = label(p), a != p, label(n) != label(a)."""

    def construct(self, dist, pos, neg):
        return pos.expand_dims(2) * neg.expand_dims(1)
