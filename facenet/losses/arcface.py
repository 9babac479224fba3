"""ArcFace (Deng et al. 2019): additive angular margin, s * cos(theta + m) for the own class."""

from __future__ import annotations

from facenet.losses.margin import MarginLoss
from facenet.losses.margins import ArcFaceMargin


class ArcFaceLoss(MarginLoss):
    """Defaults s = 64, m = 0.5 (InsightFace's); past theta + m > pi the original code's linear fallback."""

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        s: float = 64.0,
        m: float = 0.5,
        straight_through: bool = False,
        sample_rate: float = 1.0,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
    ):
        margin = ArcFaceMargin(s, m, straight_through)
        super().__init__(num_classes, embedding_size, margin, sample_rate, seed, shard)
