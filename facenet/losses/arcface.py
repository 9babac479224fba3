"""ArcFace (Deng et al. 2019): additive angular margin, s * cos(theta + m) for the own class."""

from __future__ import annotations

import math

from facenet.errors import ConfigError
from facenet.losses.margin import MarginSoftmaxLoss


class ArcFaceLoss(MarginSoftmaxLoss):
    """Defaults s = 64, m = 0.5 (InsightFace's); past theta + m > pi the original code's linear fallback."""

    def __init__(self, num_classes: int, embedding_size: int, s: float = 64.0, m: float = 0.5,
                 straight_through: bool = False, sample_rate: float = 1.0, seed: int = 0,
                 shard: tuple[int, int] = (0, 1)):  # fmt: skip
        if not 0 <= m < math.pi / 2:
            raise ConfigError(f"loss.m must be in [0, pi/2) for arcface (an angle in radians; 0.5 is usual), got {m}")
        super().__init__(num_classes, embedding_size, s, 1.0, m, 0.0, straight_through, sample_rate, seed, shard)
