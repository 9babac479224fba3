"""The class centres of a margin softmax: a `(num_classes, D)` weight (the loss's own parameter `classifier`: saved,
never exported) against which L2-normalised features are scored by cosine.

`sample_rate < 1` is Partial FC (`facenet.losses.partial_fc`): each step scores only the batch's classes and a random
sample of the others. Under data parallel (`shard=(rank, world)`, world > 1) each rank holds `ceil(C / world)`
centres (rows `rank * C_local ...`, the rows a single process would initialise there) and scores every rank's
features against them (features and labels all-gathered, `facenet.losses.sharding`); Partial FC then samples among
each rank's own centres. The last rank's rows past the last class are padding, which is no class.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn, ops

from facenet.losses.partial_fc import check_rate, sample_classes, sample_keys, sampled_count
from facenet.losses.sharding import GatherRows

COS_LIMIT = 1.0 - 1e-6  # float32 holds it exactly enough; acos' stays finite (about 707)


class ClassCentres(nn.Cell):
    """construct(features (B, D), labels (B,)[, sample keys]) -> (cos (B, K), onehot (B, K), ids (K,)): the cosines,
    clamped to +-COS_LIMIT, of the features against the K centres scored this step (all C / world held, or Partial
    FC's sample), 1 in `onehot` at each feature's own class, and the classes of those centres. Under sharding the
    features and labels are every rank's (`batch`)."""

    def __init__(self, num_classes: int, embedding_size: int, sample_rate: float, seed: int, shard: tuple[int, int]):
        super().__init__()
        self.num_classes, self.sample_rate, self.seed = num_classes, check_rate(sample_rate), seed
        self.rank, self.world = shard
        self.local = -(-num_classes // self.world)  # centres per rank (the last rank's tail rows are padding)
        self.offset = self.rank * self.local
        init = np.random.default_rng(seed).normal(0.0, 0.01, (self.local * self.world, embedding_size))
        rows = init.astype(np.float32)[self.offset : self.offset + self.local]  # one process's rows, at any world
        self.weight = Parameter(ms.Tensor(rows), name="classifier")
        self.ids = ms.Tensor(np.arange(self.offset, self.offset + self.local, dtype=np.int32))  # their classes
        self.padded = self.local * self.world > num_classes  # on every rank: the ranks must run one graph
        if self.world > 1:
            self.gather, self.gather_labels = GatherRows(self.rank, self.world), ops.AllGather()

    def step_inputs(self, step: int) -> tuple:
        """Partial FC's keys of the centres held here for global step `step` (none at rate 1)."""
        if self.sample_rate == 1:
            return ()
        keys = sample_keys(self.seed, step, self.local * self.world).asnumpy()[self.offset : self.offset + self.local]
        keys[self.ids.asnumpy() >= self.num_classes] = -1.0  # padding rows last
        return (ms.Tensor(keys),)

    def batch(self, features, labels):
        """(features, int32 labels) of every rank's batch under sharding (rank order); this one's otherwise."""
        labels = labels.astype(ms.int32)
        if self.world > 1:
            labels = self.gather_labels(labels)
            features = self.gather(ops.depend(features, labels))  # collectives in one order on every rank
        return features, labels

    def construct(self, features, labels, keys=None):
        weight, ids = self.weight, self.ids
        if keys is not None:  # Partial FC: the batch's classes and a random sample of the others
            k = sampled_count(self.local, self.sample_rate, labels.shape[0])
            index = sample_classes(labels, ids, keys, k)
            weight, ids = ops.gather(weight, index, 0), ops.gather(ids, index, 0)
        onehot = (labels.expand_dims(1) == ids.expand_dims(0)).astype(ms.float32)
        x = features / ops.maximum(ops.norm(features, dim=1, keepdim=True), 1e-12)
        w = weight / ops.maximum(ops.norm(weight, dim=1, keepdim=True), 1e-12)
        return ops.clamp(ops.matmul(x, w.T), -COS_LIMIT, COS_LIMIT), onehot, ids

    def mask_padding(self, scores, ids, fill: float):
        """`scores` (B, K) with `fill` in the columns of padding rows (unchanged where nothing is padded)."""
        if not self.padded:
            return scores
        real = (ids < self.num_classes).expand_dims(0).broadcast_to(scores.shape)
        return ops.select(real, scores, ops.full_like(scores, fill))
