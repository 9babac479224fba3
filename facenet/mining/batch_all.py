"""Every valid triplet (Hermans et al. 2017, "batch all")."""

from facenet.mining.base import Miner


class BatchAllMiner(Miner):
    """All (a, p, n): p any batch positive of a, n any negative reference of a (with a memory, the stored
    embeddings of other identities too). The loss counts them per (a, p) and per (a, n) instead of listing them."""
