"""Build the embedding network from the `backbone` and `head` config nodes (also as stored in a checkpoint)."""

from __future__ import annotations

from collections.abc import Mapping

from hydra.utils import instantiate

from facenet.models.embedding import EmbeddingNet


def build_network(backbone: Mapping, head: Mapping) -> EmbeddingNet:
    return EmbeddingNet(instantiate(backbone), instantiate(head))
