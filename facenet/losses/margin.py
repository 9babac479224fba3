"""Margin softmax: L2-normalised embeddings against L2-normalised class centres (a `(num_classes, D)` weight the loss
owns), cross-entropy over `s * cos`, with the target class's logit given a margin:

    combined  s * (cos(m1 * theta + m2) - m3)      (InsightFace's combined margin)
    arcface   m1 = 1, m2 = m, m3 = 0               (additive angular margin, Deng et al. 2019)
    cosface   m1 = 1, m2 = 0, m3 = m               (additive cosine margin, Wang et al. 2018; no acos)

Where the angle needs `acos`, cosines are clamped to +-COS_LIMIT first (MindSpore's ACos gradient is
`-dout / sqrt(1 - x^2)`, infinite at +-1). Past `m1 * theta + m2 > pi` the margined cosine would rise again (a worse
angle, a larger logit); there the target logit falls back to `cos(theta) - mm - m3`, with the threshold
`th = cos((pi - m2) / m1)` and `mm = sin(pi - m2) * m2` of the original ArcFace code (`th = cos(pi - m)`,
`mm = sin(pi - m) * m`). `straight_through=True` is InsightFace's current variant: the margin changes the target
logit's value but its gradient is that of the plain cosine. `sample_rate < 1` is Partial FC
(`facenet.losses.partial_fc`): each step scores only the batch's classes and a random sample of the others.

Under data parallel (`shard=(rank, world)`, world > 1) each rank holds `ceil(C / world)` class centres (rows
`rank * C_local ...`, the rows a single process would initialise there), scores every rank's features against them
(features and labels all-gathered), and the softmax's shift and sum are combined over ranks
(`facenet.losses.sharding`): the same loss and gradients as one process holding every centre, with a C / world share
of the memory. Partial FC then samples among each rank's own centres.
"""

from __future__ import annotations

import math

import mindspore as ms
import numpy as np
from mindspore import Parameter, ops

from facenet.errors import ConfigError
from facenet.losses.classifier import ClassifierLoss
from facenet.losses.partial_fc import check_rate, sample_classes, sample_keys, sampled_count
from facenet.losses.sharding import GatherRows, MaxOverRanks, SumOverRanks

COS_LIMIT = 1.0 - 1e-6  # float32 holds it exactly enough; acos' stays finite (about 707)


def margin_constants(m1: float, m2: float) -> tuple[float, float]:
    """(th, mm): below cos(theta) = th the margined angle passes pi and the linear fallback applies."""
    th = math.cos((math.pi - m2) / m1) if m1 > 0 else -1.0
    return th, math.sin(math.pi - m2) * m2


class MarginSoftmaxLoss(ClassifierLoss):
    """construct(features (B, D), labels (B,)[, sample keys]) -> (mean cross-entropy, telemetry).

    Telemetry: the batch's classification accuracy under the plain cosines (among the sampled classes under Partial
    FC), the mean cosine to the own class centre, the mean largest cosine to another centre, and the mean feature
    norm.
    """

    TELEMETRY = ("train_accuracy", "target_cos", "nontarget_cos", "embedding_norm")
    SHARDS = True

    def __init__(self, num_classes: int, embedding_size: int, s: float = 64.0, m1: float = 1.0, m2: float = 0.0,
                 m3: float = 0.0, straight_through: bool = False, sample_rate: float = 1.0, seed: int = 0,
                 shard: tuple[int, int] = (0, 1)):  # fmt: skip
        super().__init__(num_classes, embedding_size, seed)
        if s <= 0:
            raise ConfigError(f"loss.s must be > 0, got {s}")
        if not 0 < m1 <= 4 or not 0 <= m2 < math.pi / 2 or not 0 <= m3 < 1:
            raise ConfigError(f"loss margins out of range: m1 in (0, 4], m2 in [0, pi/2), m3 in [0, 1); got "
                              f"m1={m1}, m2={m2}, m3={m3}")  # fmt: skip
        self.s, self.sample_rate = float(s), check_rate(sample_rate)
        self.m1, self.m2, self.m3 = float(m1), float(m2), float(m3)
        self.angular = not (m1 == 1.0 and m2 == 0.0)  # cosface needs no acos
        self.th, self.mm = margin_constants(self.m1, self.m2)
        self.straight_through = bool(straight_through)
        self.rank, self.world = shard
        self.local = -(-num_classes // self.world)  # centres per rank (the last rank's tail rows are padding)
        self.offset = self.rank * self.local
        init = np.random.default_rng(seed).normal(0.0, 0.01, (self.local * self.world, embedding_size))
        rows = init.astype(np.float32)[self.offset : self.offset + self.local]  # one process's rows, at any world
        self.weight = Parameter(ms.Tensor(rows), name="classifier")  # the loss's own: saved, never exported
        self.ids = ms.Tensor(np.arange(self.offset, self.offset + self.local, dtype=np.int32))  # their classes
        self.padded = self.local * self.world > num_classes  # on every rank: the ranks must run one graph
        if self.world > 1:
            self.gather, self.gather_labels = GatherRows(self.rank, self.world), ms.ops.AllGather()
            self.sum_ranks, self.max_ranks = SumOverRanks(), MaxOverRanks(self.world)

    def step_inputs(self, step: int) -> tuple:
        if self.sample_rate == 1:
            return ()
        keys = sample_keys(self.seed, step, self.local * self.world).asnumpy()[self.offset : self.offset + self.local]
        keys[self.ids.asnumpy() >= self.num_classes] = -1.0  # padding rows last
        return (ms.Tensor(keys),)

    def target_logit(self, t):
        """The margined cosine of each sample's own class, from its plain cosine `t` (already clamped)."""
        if not self.angular:
            return t - self.m3
        theta = ops.acos(t)
        margined = ops.cos(self.m1 * theta + self.m2) - self.m3
        fallback = t - self.mm - self.m3
        return ops.select(t > self.th, margined, fallback)

    def construct(self, emb, labels, keys=None):
        labels = labels.astype(ms.int32)
        if self.world > 1:  # every rank's features against this rank's centres
            labels = self.gather_labels(labels)
            emb = self.gather(ops.depend(emb, labels))  # collectives in one order on every rank
        weight, ids = self.weight, self.ids
        if keys is not None:  # Partial FC: the batch's classes and a random sample of the others
            k = sampled_count(self.local, self.sample_rate, labels.shape[0])
            index = sample_classes(labels, ids, keys, k)
            weight, ids = ops.gather(weight, index, 0), ops.gather(ids, index, 0)
        onehot = (labels.expand_dims(1) == ids.expand_dims(0)).astype(ms.float32)
        x = emb / ops.maximum(ops.norm(emb, dim=1, keepdim=True), 1e-12)
        w = weight / ops.maximum(ops.norm(weight, dim=1, keepdim=True), 1e-12)
        cos = ops.clamp(ops.matmul(x, w.T), -COS_LIMIT, COS_LIMIT)
        t = (cos * onehot).sum(1)  # the own class's cosine, on the rank that holds its centre (else 0)
        target = self.target_logit(t)
        if self.straight_through:
            target = t + ops.stop_gradient(target - t)
        logits = self.s * (cos + onehot * (target - t).expand_dims(1))
        plain = ops.stop_gradient(cos) - 4.0 * onehot
        if self.padded:  # a padding row is no class
            real = (ids < self.num_classes).expand_dims(0).broadcast_to(logits.shape)
            logits = ops.select(real, logits, ops.full_like(logits, -1e9))
            plain = ops.select(real, plain, ops.full_like(plain, -4.0))
        shift = ops.stop_gradient(logits.max(axis=1))
        other = plain.max(axis=1)  # largest cosine to another class
        if self.world > 1:  # one collective for both
            shift, other = ops.split(self.max_ranks(ops.concat((shift, other))), shift.shape[0])
        total = ops.exp(logits - shift.expand_dims(1)).sum(1)
        own = (logits * onehot).sum(1)
        t_plain = ops.stop_gradient(t)
        if self.world > 1:  # one collective for the three
            total, own, t_plain = ops.unstack(self.sum_ranks(ops.stack((total, own, t_plain))))
            t_plain = ops.stop_gradient(t_plain)
        loss = (ops.log(total) + shift - own).mean()
        telemetry = ops.stack([
            (other < t_plain).astype(ms.float32).mean(),
            t_plain.mean(),
            other.mean(),
            ops.stop_gradient(ops.norm(emb, dim=1)).mean(),
        ])  # fmt: skip
        return loss, telemetry
