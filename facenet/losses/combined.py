"""InsightFace's combined margin: s * (cos(m1 * theta + m2) - m3) for the own class (ArcFace: m1 = 1, m3 = 0;
CosFace: m1 = 1, m2 = 0)."""

from __future__ import annotations

from facenet.losses.margin import MarginLoss
from facenet.losses.margins import CombinedMargin


class CombinedMarginLoss(MarginLoss):
    """The margins and the scale as configured (conf/loss/combined.yaml: InsightFace's published setting)."""

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        s: float,
        m1: float,
        m2: float,
        m3: float,
        straight_through: bool = False,
        sample_rate: float = 1.0,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
    ):
        margin = CombinedMargin(s, m1, m2, m3, straight_through)
        super().__init__(num_classes, embedding_size, margin, sample_rate, seed, shard)
