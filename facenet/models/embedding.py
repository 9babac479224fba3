"""The embedding network: images in, embeddings out. What gets trained, evaluated and exported."""

from __future__ import annotations

from collections.abc import Callable

from mindspore import nn


class EmbeddingNet(nn.Cell):
    def __init__(self, backbone: nn.Cell, head: Callable[[int], nn.Cell]):
        super().__init__()
        self.backbone = backbone
        self.head = head(backbone.out_channels)

    def construct(self, x):
        return self.head(self.backbone(x))


def count_parameters(net: nn.Cell) -> int:
    """Number of trainable scalars."""
    return int(sum(p.size for p in net.trainable_params()))
