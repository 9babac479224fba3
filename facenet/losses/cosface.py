"""CosFace (Wang et al. 2018): additive cosine margin, s * (cos(theta) - m) for the own class; no acos."""

from __future__ import annotations

from facenet.errors import ConfigError
from facenet.losses.margin import MarginSoftmaxLoss


class CosFaceLoss(MarginSoftmaxLoss):
    """Defaults s = 64, m = 0.35."""

    def __init__(self, num_classes: int, embedding_size: int, s: float = 64.0, m: float = 0.35,
                 sample_rate: float = 1.0, seed: int = 0, shard: tuple[int, int] = (0, 1)):  # fmt: skip
        if not 0 <= m < 1:
            raise ConfigError(f"loss.m must be in [0, 1) for cosface (taken off a cosine; 0.35 is usual), got {m}")
        super().__init__(num_classes, embedding_size, s, 1.0, 0.0, m, False, sample_rate, seed, shard)
