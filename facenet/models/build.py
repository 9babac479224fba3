"""Build the embedding network from config nodes (also as stored in a checkpoint's sidecar)."""

from __future__ import annotations

from collections.abc import Mapping

from hydra.utils import instantiate

from facenet.errors import ConfigError
from facenet.models.embedding import EmbeddingNet, init_normal


def build_network(backbone: Mapping, head: Mapping, image_size: int, init_std: float | None = None) -> EmbeddingNet:
    """`init_std` None keeps MindSpore's default initialisers; a float draws conv/dense weights from N(0, std)."""
    net = EmbeddingNet(instantiate(backbone), instantiate(head), image_size)
    if init_std is not None:
        if init_std <= 0:
            raise ConfigError(f"init_std must be > 0 (or null for the default initialisers), got {init_std}")
        init_normal(net, init_std)
    return net
