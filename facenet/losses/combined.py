"""InsightFace's combined margin: s * (cos(m1 * theta + m2) - m3) for the own class (ArcFace: m1 = 1, m3 = 0;
CosFace: m1 = 1, m2 = 0)."""

from __future__ import annotations

from facenet.losses.margin import MarginSoftmaxLoss


class CombinedMarginLoss(MarginSoftmaxLoss):
    """Defaults m1 = 1, m2 = 0.3, m3 = 0.2 (InsightFace's published combined setting), s = 64."""

    def __init__(self, num_classes: int, embedding_size: int, s: float = 64.0, m1: float = 1.0, m2: float = 0.3,
                 m3: float = 0.2, straight_through: bool = False, sample_rate: float = 1.0,
                 seed: int = 0, shard: tuple[int, int] = (0, 1)):  # fmt: skip
        super().__init__(num_classes, embedding_size, s, m1, m2, m3, straight_through, sample_rate, seed, shard)
