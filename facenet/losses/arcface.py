"""ArcFace (Deng et al. 2019): additive angular margin, s * cos(theta + m) for the own class."""

from __future__ import annotations

from facenet.losses.margin import MarginSoftmaxLoss


class ArcFaceLoss(MarginSoftmaxLoss):
    """Defaults s = 64, m = 0.5 (InsightFace's); past theta + m > pi the original code's linear fallback."""

    def __init__(self, num_classes: int, embedding_size: int, s: float = 64.0, m: float = 0.5,
                 straight_through: bool = False, seed: int = 0):  # fmt: skip
        super().__init__(num_classes, embedding_size, s, 1.0, m, 0.0, straight_through, seed)
