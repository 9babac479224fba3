"""Embedding heads: feature map -> pooled vector -> [dropout] -> projection -> [batch norm] -> L2 norm x scale."""

from __future__ import annotations

from mindspore import nn, ops

from facenet.errors import ConfigError

POOLS = ("avg", "flatten", "gdc")


def l2_normalize(x, eps: float = 1e-20):
    """x / ||x||, written out: `ops.L2Normalize` has a very slow backward on CPU."""
    return x / ops.sqrt(ops.maximum((x * x).sum(axis=1, keepdims=True), eps))


class EmbeddingHead(nn.Cell):
    """(N, C, h, w) feature map -> (N, embedding_size) vectors of norm `scale`.

    pool: "avg" global average pooling (C features); "flatten" the whole map (C*h*w features, the reference
    recipe's `Dense(2048*7*7, 128)` at 224x224); "gdc" a global depthwise convolution over the h x w map
    (MobileFaceNet's linear GDConv). `dropout` applies before the projection, `batch_norm` after it.
    """

    def __init__(
        self,
        in_channels: int,
        feature_size: tuple[int, int],
        embedding_size: int,
        scale: float,
        pool: str,
        dropout: float,
        batch_norm: bool,
    ):
        super().__init__()
        if embedding_size < 1 or scale <= 0 or not 0 <= dropout < 1:
            raise ConfigError(
                f"head: need embedding_size >= 1, scale > 0, 0 <= dropout < 1; got {embedding_size}, {scale}, {dropout}"
            )
        if pool not in POOLS:
            raise ConfigError(f"head.pool must be one of {POOLS}, got {pool!r}")
        h, w = feature_size
        self.pool = pool
        if pool == "gdc":
            self.gdc = nn.SequentialCell(
                [
                    nn.Conv2d(in_channels, in_channels, (h, w), pad_mode="valid", group=in_channels, has_bias=False),
                    nn.BatchNorm2d(in_channels),
                ]
            )
        features = in_channels * h * w if pool == "flatten" else in_channels
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()
        self.proj = nn.Dense(features, embedding_size)
        self.bn = nn.BatchNorm1d(embedding_size) if batch_norm else nn.Identity()
        self.scale = float(scale)

    def features(self, x):
        """The projection before L2 normalisation (davidsandberg's prelogits): what a classification loss trains."""
        if self.pool == "avg":
            x = x.mean(axis=(2, 3))
        elif self.pool == "gdc":
            x = self.gdc(x).reshape(x.shape[0], -1)
        else:
            x = x.reshape(x.shape[0], -1)
        return self.bn(self.proj(self.dropout(x)))

    def construct(self, x):
        return l2_normalize(self.features(x)) * self.scale
