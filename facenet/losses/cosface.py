"""CosFace (Wang et al. 2018): additive cosine margin, s * (cos(theta) - m) for the own class; no acos."""

from __future__ import annotations

from facenet.losses.margin import MarginLoss
from facenet.losses.margins import CosFaceMargin


class CosFaceLoss(MarginLoss):
    """Defaults s = 64, m = 0.35."""

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        s: float = 64.0,
        m: float = 0.35,
        sample_rate: float = 1.0,
        seed: int = 0,
        shard: tuple[int, int] = (0, 1),
    ):
        super().__init__(num_classes, embedding_size, CosFaceMargin(s, m), sample_rate, seed, shard)
