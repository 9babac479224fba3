"""In-graph triplet miners for P x K batches: each turns a distance matrix into a (anchor, positive, negative)
selection mask with static shape (B, B, B), so they compile in GRAPH mode (no boolean indexing)."""

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
