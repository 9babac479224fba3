"""Margin softmax, as InsightFace's partial_fc_v2 composes it: L2-normalised features against L2-normalised class
centres (`ClassCentres`: the loss's weight, Partial FC sampling, sharding), a margin transform on the cosines
(`facenet.losses.margins`), then the (rank-combined) cross-entropy (`CrossEntropy`) and the telemetry. A new margin
is a `Margin` subclass and a thin `MarginLoss` subclass that builds it.

Under data parallel (`shard=(rank, world)`, world > 1) each rank holds its share of the centres and scores every
rank's features against them: the same loss and gradients as one process holding every centre, with a C / world
share of the memory.
"""

from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops

from facenet.losses.class_centres import COS_LIMIT, ClassCentres
from facenet.losses.classifier import ClassifierLoss
from facenet.losses.cross_entropy import CrossEntropy
from facenet.losses.margins import CombinedMargin, Margin
from facenet.losses.sharding import MaxOverRanks, SumOverRanks

__all__ = ["COS_LIMIT", "MarginLoss", "MarginSoftmaxLoss", "MarginTelemetry"]

PADDING_LOGIT = -1e9  # a padding row's logit: no probability, no gradient
PUSHED = 4.0  # taken off the own class's cosine (and a padding row's is -PUSHED): below every other cosine


class MarginTelemetry(nn.Cell):
    """construct(features (B, D), cos (B, K), onehot (B, K), others (B, K)) -> the batch's classification accuracy
    under the plain cosines, the mean cosine to the own class centre, the mean largest cosine to another centre
    (`others`: the cosines with the own class's and any padding row's pushed below every other), and the mean
    feature norm; combined over ranks where the centres are sharded. No gradient."""

    NAMES = ("train_accuracy", "target_cos", "nontarget_cos", "embedding_norm")

    def __init__(self, world: int = 1):
        super().__init__()
        self.world = world
        if world > 1:
            self.max_ranks, self.sum_ranks = MaxOverRanks(world), SumOverRanks()

    def construct(self, features, cos, onehot, others):
        other = others.max(axis=1)  # largest cosine to another class
        target = ops.stop_gradient((cos * onehot).sum(1))
        if self.world > 1:
            other = self.max_ranks(other)
            target = ops.stop_gradient(self.sum_ranks(ops.depend(target, other)))  # collectives in one order
        return ops.stack(
            [
                (other < target).astype(ms.float32).mean(),
                target.mean(),
                other.mean(),
                ops.stop_gradient(ops.norm(features, dim=1)).mean(),
            ]
        )


class MarginLoss(ClassifierLoss):
    """construct(features (B, D), labels (B,)[, sample keys]) -> (mean cross-entropy of the margined logits,
    telemetry (`MarginTelemetry`)). `margin`: the transform; `sample_rate` < 1: Partial FC; `shard`: (rank, world)."""

    TELEMETRY = MarginTelemetry.NAMES
    SHARDS = True

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: Margin,
        sample_rate: float,
        seed: int,
        shard: tuple[int, int],
    ):
        super().__init__(num_classes, embedding_size, seed)
        self.transform = margin  # the margin transform (facenet.losses.margins)
        self.centres = ClassCentres(self.num_classes, self.embedding_size, sample_rate, self.seed, shard)
        self.rank, self.world = self.centres.rank, self.centres.world
        self.local, self.offset = self.centres.local, self.centres.offset
        self.sample_rate = self.centres.sample_rate
        self.cross_entropy = CrossEntropy(self.world)
        self.telemetry = MarginTelemetry(self.world)

    def step_inputs(self, step: int) -> tuple:
        return self.centres.step_inputs(step)

    def construct(self, features, labels, keys=None):
        features, labels = self.centres.batch(features, labels)
        cos, onehot, ids = self.centres(features, labels, keys)
        logits = self.centres.mask_padding(self.transform(cos, onehot), ids, PADDING_LOGIT)
        others = self.centres.mask_padding(ops.stop_gradient(cos) - PUSHED * onehot, ids, -PUSHED)
        loss = self.cross_entropy(logits, onehot)
        return loss, self.telemetry(features, ops.depend(cos, loss), onehot, ops.depend(others, loss))

    @property
    def weight(self):
        """The class centres held here (the parameter `classifier`)."""
        return self.centres.weight

    @property
    def th(self):
        """The margin's cosine below which its linear fallback applies."""
        return self.transform.th

    def target_logit(self, t):
        """The margin's target logit of plain own-class cosines `t`."""
        return self.transform.target_logit(t)


class MarginSoftmaxLoss(MarginLoss):
    """The combined margin s * (cos(m1 * theta + m2) - m3) in general (ArcFace: m1 = 1, m3 = 0; CosFace: m1 = 1,
    m2 = 0); its defaults are the plain normalised softmax at s = 64."""

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        s: float = 64.0,
        m1: float = 1.0,
        m2: float = 0.0,
        m3: float = 0.0,
        straight_through: bool = False,
        sample_rate: float = 1.0,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
    ):
        margin = CombinedMargin(s, m1, m2, m3, straight_through)
        super().__init__(num_classes, embedding_size, margin, sample_rate, seed, shard)
