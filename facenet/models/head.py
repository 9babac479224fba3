"""Embedding head: global average pooling, linear projection, L2 normalisation (times an optional scale)."""

from __future__ import annotations

from mindspore import nn, ops

from facenet.errors import ConfigError


def l2_normalize(x, eps: float = 1e-20):
    """x / ||x||, written out: `ops.L2Normalize` has a very slow backward on CPU."""
    return x / ops.sqrt(ops.maximum((x * x).sum(axis=1, keepdims=True), eps))


class EmbeddingHead(nn.Cell):
    """(N, C, h, w) feature map -> (N, embedding_size) vectors of norm `scale`."""

    def __init__(self, in_channels: int, embedding_size: int = 128, scale: float = 1.0):
        super().__init__()
        if embedding_size < 1 or scale <= 0:
            raise ConfigError(f"embedding_size must be >= 1 and scale > 0, got {embedding_size}, {scale}")
        self.proj = nn.Dense(in_channels, embedding_size)
        self.scale = float(scale)

    def construct(self, x):
        return l2_normalize(self.proj(x.mean(axis=(2, 3)))) * self.scale
