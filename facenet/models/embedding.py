"""The embedding network: images in, embeddings out. What gets trained, evaluated and exported."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from mindspore import nn
from mindspore.common.initializer import Normal, initializer

from facenet.errors import ConfigError
from facenet.models.backbone import Backbone


class EmbeddingNet(nn.Cell):
    """backbone (feature map) + head (embedding). The head is built for the backbone's output at `image_size`."""

    def __init__(self, backbone: Backbone, head: Callable[..., nn.Cell], image_size: int):
        super().__init__()
        if not isinstance(backbone, Backbone):
            raise ConfigError(
                f"{type(backbone).__name__} is not a backbone: it needs `out_channels` and "
                "`feature_size(image_size)` (facenet/models/backbone.py)"
            )
        self.backbone = backbone
        self.image_size = image_size
        self.head = head(backbone.out_channels, backbone.feature_size(image_size))

    def check_input_size(self, size: int) -> None:
        """Raise ConfigError unless the network can embed `size` x `size` images: any size its backbone accepts
        with a pooling head; only sizes giving the trained feature map size with a flatten or GDC head."""
        trained, got = self.backbone.feature_size(self.image_size), self.backbone.feature_size(size)
        if got != trained and getattr(self.head, "pool", "avg") != "avg":
            raise ConfigError(
                f"this network's head (pool={self.head.pool}) is built for a {trained[0]}x{trained[1]} feature map "
                f"({self.image_size}x{self.image_size} inputs); {size}x{size} inputs give {got[0]}x{got[1]}"
            )

    def features(self, x):
        """The head's features before L2 normalisation (what classification losses are fed in training)."""
        return self.head.features(self.backbone(x))

    def construct(self, x):
        return self.head(self.backbone(x))


def init_normal(net: nn.Cell, std: float) -> None:
    """N(0, std) for every convolution and dense weight, zero biases (the reference recipe's initialisation)."""
    for _, cell in net.cells_and_names():
        if isinstance(cell, (nn.Conv2d, nn.Dense)):
            cell.weight.set_data(initializer(Normal(sigma=std, mean=0.0), cell.weight.shape, cell.weight.dtype))
            if cell.bias is not None:
                cell.bias.set_data(initializer("zeros", cell.bias.shape, cell.bias.dtype))


def count_parameters(net: nn.Cell) -> int:
    """Number of trainable scalars."""
    return int(sum(np.prod(p.shape) for p in net.trainable_params()))
