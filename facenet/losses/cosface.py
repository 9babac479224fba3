"""CosFace (Wang et al. 2018): additive cosine margin, s * (cos(theta) - m) for the own class; no acos."""

from __future__ import annotations

from facenet.losses.margin import MarginSoftmaxLoss


class CosFaceLoss(MarginSoftmaxLoss):
    """Defaults s = 64, m = 0.35."""

    def __init__(self, num_classes: int, embedding_size: int, s: float = 64.0, m: float = 0.35, seed: int = 0):
        super().__init__(num_classes, embedding_size, s, 1.0, 0.0, m, False, seed)
