"""Distances, label masks and the miner interface.

Miners work on anchors x references. The anchors are the batch's embeddings (B). The references are the batch
itself, then, with a cross-batch memory (`facenet.mining.memory`), the M stored embeddings: reference i < B is
anchor i. Positives always come from the batch (fresh embeddings of the anchor's identity); negatives from every
reference. So a miner sees each anchor's positives as a short list (B, k) and its negatives as distances (B, R)
with R = B or B + M, and never an (anchor, positive, negative) array: with a memory of 4096 that would hold a
billion entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import mindspore as ms
from mindspore import nn, ops

from facenet.errors import ConfigError

# Stands in for +inf when masking distances: larger than any distance of scaled embeddings, finite in float32.
BIG = 1e9


@dataclass(frozen=True)
class MemorySettings:
    """`miner.memory`: a cross-batch memory of the last `size` embeddings (0: none), mined from global step
    `start_step` on (it fills from step 0)."""

    size: int
    start_step: int

    def __post_init__(self):
        if self.size < 0:
            raise ConfigError(f"miner.memory.size={self.size}: must be >= 0 (0: no memory)")
        if self.start_step < 0:
            raise ConfigError(f"miner.memory.start_step={self.start_step}: must be >= 0")


NO_MEMORY = MemorySettings(size=0, start_step=0)


def pairwise_distances(emb, squared: bool = False, eps: float = 1e-12):
    """(B, D) -> (B, B) L2 distances within a batch (exactly 0 on the diagonal). sqrt is taken of max(d^2, eps):
    finite value and gradient at zero distance."""
    sq = (emb * emb).sum(axis=1, keepdims=True)
    d2 = ops.maximum(sq + sq.T - 2.0 * ops.matmul(emb, emb.T), 0.0)
    d2 = d2 * (1.0 - ops.eye(emb.shape[0], emb.shape[0], emb.dtype))  # exact zeros on the diagonal (cancellation)
    return d2 if squared else ops.sqrt(ops.maximum(d2, eps))


def pair_distances(anchors, others, squared: bool = False, eps: float = 1e-12):
    """(B, D) anchors and (B, k, D) others -> (B, k) L2 distances of each anchor to its k others, from the
    differences (no cancellation), with a finite gradient at zero distance."""
    diff = anchors.expand_dims(1) - others
    d2 = (diff * diff).sum(axis=2)
    return d2 if squared else ops.sqrt(ops.maximum(d2, eps))


def label_masks(labels):
    """(B,) labels -> float masks (B, B): positives (same label, not self) and negatives (other label)."""
    same = ops.equal(labels.reshape(-1, 1), labels.reshape(1, -1)).astype(ms.float32)
    eye = ops.eye(labels.shape[0], labels.shape[0], ms.float32)
    return same - eye, 1.0 - same


class Miner(nn.Cell):
    """Selects triplets (anchor, positive, negative) among anchors x references, in two steps the loss calls:

    - `positives(within, pos, k)` -> (columns, listed), both (B, k): the batch positives each anchor is mined with
      (`within`, `pos`: the batch's (B, B) distances and positive mask), 1 in `listed` where the column is one.
      The default lists the first k of them by column; k is at least the positives an anchor can have (P x K:
      K - 1), so every one is listed.
    - one-negative miners (`OneNegativeMiner`): called on (negative_dist, d_ap, listed), the negative of each
      listed (anchor, positive).
    Batch all (not `one_negative`) selects every (anchor, listed positive, negative); the loss counts them instead
    of listing them (`facenet.losses.triplet.all_triplets`).

    `layout` is the batch structure the miner needs: "pk" (any batch with labels) or "triplets" (batch=triplets).
    `memory`: the cross-batch memory's settings (`miner.memory`; size 0: none); the loss holds the memory.
    """

    layout = "pk"
    one_negative = False

    def __init__(self, memory: Mapping | MemorySettings | None = None):
        super().__init__()
        self.memory = (
            memory if isinstance(memory, MemorySettings) else MemorySettings(**memory) if memory else NO_MEMORY
        )

    def positives(self, within, pos, k: int):
        b = pos.shape[0]
        key = pos * (b - ops.arange(b)).astype(pos.dtype).reshape(1, -1)  # a positive's: larger for a lower column
        top, columns = ops.topk(key, k)
        return columns.astype(ms.int32), (top > 0).astype(ms.float32)


class OneNegativeMiner(Miner):
    """A miner that takes one negative per listed (anchor, positive); a subclass writes `negatives`.

    construct(negative_dist (B, R), d_ap (B, k), listed (B, k)) -> (index, valid), both (B, k), without gradient:
    the reference `negatives` chooses for each listed (anchor, positive), and 1 in `valid` where that triplet is
    selected: its positive is listed and the chosen reference is a negative of the anchor (so an anchor without a
    negative selects nothing). `negative_dist` are the anchors x references distances, at least BIG where the
    reference is not a negative of the anchor; `d_ap` the listed positives' distances.
    """

    one_negative = True

    def negatives(self, negative_dist, d_ap, listed):
        """(B, k) integers: the reference taken as the negative of each listed (anchor, positive); any where the
        anchor has no negative."""
        raise NotImplementedError

    def construct(self, negative_dist, d_ap, listed):
        index = self.negatives(negative_dist, d_ap, listed).astype(ms.int32)
        is_negative = (ops.gather_elements(negative_dist, 1, index) < BIG).astype(ms.float32)
        return ops.stop_gradient(index), ops.stop_gradient(listed * is_negative)
