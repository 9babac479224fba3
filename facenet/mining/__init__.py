"""In-graph triplet miners: each turns anchor x reference distances into a (anchor, positive, negative) selection
with static shapes, so they compile in GRAPH mode (no boolean indexing). The references are the batch, and with
`miner.memory.size` > 0 a cross-batch memory of earlier batches' embeddings too (`memory.py`)."""

from collections.abc import Mapping

from facenet.mining.base import (
    MemorySettings,
    Miner,
    OneNegativeMiner,
    label_masks,
    pair_distances,
    pairwise_distances,
)
from facenet.mining.batch_all import BatchAllMiner
from facenet.mining.batch_hard import BatchHardMiner
from facenet.mining.memory import CrossBatchMemory
from facenet.mining.random_triplets import RandomTripletsMiner
from facenet.mining.semi_hard import SemiHardMiner


def none(memory: Mapping | MemorySettings | None = None) -> None:
    """`miner=none`, what a classification loss selects: no miner (it compares each image with class centres, not
    with other images). Its `memory` settings are checked against the loss where both are known."""
    return None


__all__ = [
    "Miner",
    "OneNegativeMiner",
    "MemorySettings",
    "CrossBatchMemory",
    "pair_distances",
    "label_masks",
    "pairwise_distances",
    "BatchAllMiner",
    "BatchHardMiner",
    "SemiHardMiner",
    "RandomTripletsMiner",
    "none",
]
