"""Hardest positive and hardest negative per anchor (Hermans et al. 2017, "batch hard")."""

import mindspore as ms
from mindspore import ops

from facenet.mining.base import BIG, OneNegativeMiner


class BatchHardMiner(OneNegativeMiner):
    """One triplet per anchor: its farthest batch positive and its closest negative reference (with a memory,
    among the stored embeddings too); first index on ties."""

    def positives(self, within, pos, k: int):
        farthest = ops.argmax(within * pos - BIG * (1.0 - pos), dim=1)
        return farthest.reshape(-1, 1).astype(ms.int32), pos.max(axis=1, keepdims=True)

    def negatives(self, negative_dist, d_ap, listed):
        return ops.argmin(negative_dist, axis=1).reshape(-1, 1)
