"""In-graph triplet miners for P x K batches: each turns a distance matrix into a (anchor, positive, negative)
selection with static shapes, so they compile in GRAPH mode (no boolean indexing): a (B, B, B) mask, and for the
miners that pick one negative per (anchor, positive) the (B, B) index of that negative, which the loss uses."""

from facenet.mining.base import Miner, label_masks, pairwise_distances
from facenet.mining.batch_all import BatchAllMiner
from facenet.mining.batch_hard import BatchHardMiner
from facenet.mining.random_triplets import RandomTripletsMiner
from facenet.mining.semi_hard import SemiHardMiner

__all__ = [
    "Miner",
    "label_masks",
    "pairwise_distances",
    "BatchAllMiner",
    "BatchHardMiner",
    "SemiHardMiner",
    "RandomTripletsMiner",
]
