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
"""

from __future__ import annotations

import math

import mindspore as ms
import numpy as np
from mindspore import Parameter, ops

from facenet.errors import ConfigError
from facenet.losses.classifier import ClassifierLoss
from facenet.losses.partial_fc import check_rate, sample_classes, sample_keys, sampled_count

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

    def __init__(self, num_classes: int, embedding_size: int, s: float = 64.0, m1: float = 1.0, m2: float = 0.0,
                 m3: float = 0.0, straight_through: bool = False, sample_rate: float = 1.0,
                 seed: int = 0):  # fmt: skip
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
        init = np.random.default_rng(seed).normal(0.0, 0.01, (num_classes, embedding_size)).astype(np.float32)
        self.weight = Parameter(ms.Tensor(init), name="classifier")  # the loss's own: saved, never exported

    def step_inputs(self, step: int) -> tuple:
        return (sample_keys(self.seed, step, self.num_classes),) if self.sample_rate < 1 else ()

    def target_logit(self, t):
        """The margined cosine of each sample's own class, from its plain cosine `t` (already clamped)."""
        if not self.angular:
            return t - self.m3
        theta = ops.acos(t)
        margined = ops.cos(self.m1 * theta + self.m2) - self.m3
        fallback = t - self.mm - self.m3
        return ops.select(t > self.th, margined, fallback)

    def construct(self, emb, labels, keys=None):
        weight = self.weight
        if keys is None:
            onehot = ops.one_hot(labels, self.num_classes, ms.Tensor(1.0, ms.float32), ms.Tensor(0.0, ms.float32))
        else:  # Partial FC: the batch's classes and a random sample of the others
            index, onehot = sample_classes(labels, keys, sampled_count(self.num_classes, self.sample_rate,
                                                                       labels.shape[0]))  # fmt: skip
            weight = ops.gather(weight, index, 0)
        x = emb / ops.maximum(ops.norm(emb, dim=1, keepdim=True), 1e-12)
        w = weight / ops.maximum(ops.norm(weight, dim=1, keepdim=True), 1e-12)
        cos = ops.clamp(ops.matmul(x, w.T), -COS_LIMIT, COS_LIMIT)
        t = (cos * onehot).sum(1)
        target = self.target_logit(t)
        if self.straight_through:
            target = t + ops.stop_gradient(target - t)
        logits = self.s * (cos + onehot * (target - t).expand_dims(1))
        loss = -(ops.log_softmax(logits, 1) * onehot).sum(1).mean()
        plain = ops.stop_gradient(cos)
        other = (plain - 4.0 * onehot).max(axis=1)  # largest cosine to another class
        telemetry = ops.stack([
            (other < ops.stop_gradient(t)).astype(ms.float32).mean(),
            ops.stop_gradient(t).mean(),
            other.mean(),
            ops.stop_gradient(ops.norm(emb, dim=1)).mean(),
        ])  # fmt: skip
        return loss, telemetry
