"""Distances, label masks and the miner interface."""

from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops

# Stands in for +inf when masking distances: larger than any distance of scaled embeddings, finite in float32.
BIG = 1e9


def pairwise_distances(emb, squared: bool = False, eps: float = 1e-12):
    """(B, D) -> (B, B) L2 distances. sqrt is taken of max(d^2, eps): finite value and gradient at zero distance."""
    sq = (emb * emb).sum(axis=1, keepdims=True)
    d2 = ops.maximum(sq + sq.T - 2.0 * ops.matmul(emb, emb.T), 0.0)
    d2 = d2 * (1.0 - ops.eye(emb.shape[0], emb.shape[0], emb.dtype))  # exact zeros on the diagonal (cancellation)
    return d2 if squared else ops.sqrt(ops.maximum(d2, eps))


def label_masks(labels):
    """(B,) labels -> float masks (B, B): positives (same label, not self) and negatives (other label)."""
    same = ops.equal(labels.reshape(-1, 1), labels.reshape(1, -1)).astype(ms.float32)
    eye = ops.eye(labels.shape[0], labels.shape[0], ms.float32)
    return same - eye, 1.0 - same


class Miner(nn.Cell):
    """Selects triplets: construct(dist, pos, neg) -> float mask (B, B, B), 1 where (a, p, n) is used.

    `layout` is the batch structure the miner needs: "pk" (any batch with labels) or "triplets" (batch=triplets).
    Miners that choose at most one negative per (anchor, positive) set `one_negative` and implement
    `negatives(dist, pos, neg) -> (index, valid)`, both (B, B): the negative chosen for (a, p) and 1 where (a, p) is
    a selected triplet. The loss then works on (B, B) arrays instead of (B, B, B) ones (bench/NOTES.md: the dense
    form costs a fifth of the default network's step), and their mask is derived from it (`one_negative_mask`).
    """

    layout = "pk"
    one_negative = False

    def construct(self, dist, pos, neg):
        raise NotImplementedError

    def negatives(self, dist, pos, neg):
        raise NotImplementedError


def one_negative_mask(index, valid):
    """(index, valid) of a one-negative miner -> its (B, B, B) selection mask."""
    b = index.shape[0]
    return valid.expand_dims(2) * ops.one_hot(index, b, 1.0, 0.0)
