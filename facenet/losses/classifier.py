"""Losses over identities (softmax, the margin softmaxes): each owns its class weights, built for the training set's
identity count. Those parameters are the loss's, not the network's: the run's optimiser trains them, training
checkpoints hold them (a resume restores them with their moments), and nothing that embeds faces (evaluation,
export, `Embedder`) loads them. They are fed the network's features before L2 normalisation."""

from __future__ import annotations

from facenet.errors import ConfigError
from facenet.losses.base import EmbeddingLoss


class ClassifierLoss(EmbeddingLoss):
    """Base of the classification losses: `num_classes` identities, `embedding_size`-d features, `seed` for the
    class weights' initialisation."""

    FEATURES = True
    SHARDS = False  # True: built with shard=(rank, world) under data parallel, holding its share of the centres

    def __init__(self, num_classes: int, embedding_size: int, seed: int = 0):
        super().__init__(auto_prefix=False)  # parameters keep their checkpoint names in submodules (`classifier`)
        if num_classes < 2:
            raise ConfigError(f"a classification loss needs at least 2 identities; the training set has {num_classes}")
        if embedding_size < 1:
            raise ConfigError(f"embedding_size must be >= 1, got {embedding_size}")
        self.num_classes, self.embedding_size, self.seed = int(num_classes), int(embedding_size), int(seed)


def sharded(loss) -> bool:
    """A classifier whose class centres are split over the data-parallel ranks (`shard=(rank, world)`, world > 1)."""
    return getattr(loss, "world", 1) > 1
