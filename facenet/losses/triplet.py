"""Triplet loss with margin over the triplets a miner selects, plus the telemetry that makes collapse visible."""

from __future__ import annotations

import mindspore as ms
from mindspore import ops

from facenet.errors import ConfigError
from facenet.losses.base import EmbeddingLoss
from facenet.losses.telemetry import DIFFICULTY, DISTANCE_STATS, MEMORY_STATS, masked_percentiles, triplet_difficulty
from facenet.mining.base import BIG, Miner, label_masks, pair_distances, pairwise_distances
from facenet.mining.memory import CrossBatchMemory

REDUCTIONS = ("active_mean", "mean")


class TripletLoss(EmbeddingLoss):
    """hinge(a, p, n) = max(d(a,p) - d(a,n) + margin, 0) over the selected triplets.

    `squared=False` uses L2 distance (the reference recipe), `True` squared L2 (the FaceNet paper).
    `reduction="active_mean"` averages over active triplets (hinge > 0), as the reference does, and is 0 when none
    is active; `"mean"` averages over all selected triplets.

    The anchors are the batch. Their positives are the batch's; their negatives are the batch's other identities
    and, when `miner.memory.size` > 0, those of a cross-batch memory of the last M embeddings
    (`facenet.mining.memory`; the loss holds it, the training step fills it). `positives_per_anchor`: the most
    positives an anchor has in a batch (P x K: K - 1; None: B - 1), the length of each anchor's positive list.

    construct(emb, labels) -> (loss, telemetry): the active fraction of the selected triplets, the mean distance
    over the batch's positive and negative pairs, the mean embedding norm, then the easy / semi-hard / hard
    fractions of the batch's valid triplets and percentiles of its positive and negative distances
    (`facenet.losses.telemetry`): what `facenet.training.health` watches. With a memory, `MEMORY_STATS` follow.
    """

    TELEMETRY = ("active_fraction", "d_ap", "d_an", "embedding_norm", *DIFFICULTY, *DISTANCE_STATS)
    USES_MINER = True

    def __init__(
        self,
        miner: Miner,
        margin: float,
        squared: bool = False,
        reduction: str = "active_mean",
        embedding_size: int | None = None,
        positives_per_anchor: int | None = None,
    ):
        """`embedding_size`: the embeddings' dimension, which a memory (`miner.memory.size` > 0) needs."""
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ConfigError(f"loss.reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if margin < 0:
            raise ConfigError(f"margin must be >= 0, got {margin}")
        self.miner, self.margin, self.squared = miner, float(margin), bool(squared)
        self.active_mean = reduction == "active_mean"
        self.positives_per_anchor = positives_per_anchor
        self.memory = None
        if miner.memory.size:
            if miner.layout != "pk":
                raise ConfigError(
                    f"{type(miner).__name__} trains on offline triplets: it has nothing to mine a memory for "
                    "(miner.memory.size must be 0)"
                )
            if embedding_size is None:
                raise ConfigError("a cross-batch memory needs the embedding size")
            self.memory = CrossBatchMemory(miner.memory, embedding_size)
            self.TELEMETRY = (*TripletLoss.TELEMETRY, *MEMORY_STATS)

    def construct(self, emb, labels):
        b = emb.shape[0]
        if self.memory is not None:
            emb = self._centred(emb)
        pos, neg = label_masks(labels)
        squares, negative_dist, columns, listed = self._candidates(emb, labels, pos, neg)
        d_ap = ops.gather_elements(squares, 1, columns)  # (B, k): each anchor's listed positives, for mining
        ap = pair_distances(emb, ops.gather(emb, columns, 0), self.squared)  # the same, with gradient
        if self.miner.one_negative:
            index, valid = self.miner(negative_dist, d_ap, listed)
            an = self._pushed(pair_distances(emb, self._references(emb, index), self.squared), index >= b)
            hinge = ops.relu(ap - an + self.margin) * valid
            active = (hinge > 0).astype(ms.float32)
            total, n_active, n_selected = hinge.sum(), active.sum(), valid.sum()
            stored_active, ages = active * (index >= b).astype(ms.float32), self._age(index - b)
        else:
            per_positive, per_negative, n_selected = all_triplets(negative_dist, self._bound(d_ap), listed)
            batch_an = (per_negative[:, :b] * pairwise_distances(emb, self.squared)).sum()
            stored_an = self._stored_sum(per_negative[:, b:], emb, negative_dist[:, b:])
            total = (per_positive * (ap + self.margin)).sum() - batch_an - stored_an
            n_active = per_positive.sum()
            stored_active, ages = self._stored_active(per_negative[:, b:])
        loss = total / (n_active + 1e-8) if self.active_mean else total / ops.maximum(n_selected, 1.0)
        within = squares if self.squared else ops.sqrt(ops.maximum(squares, 1e-12))
        means = ops.stack(
            [
                n_active / ops.maximum(n_selected, 1.0),
                (within * pos).sum() / ops.maximum(pos.sum(), 1.0),
                (within * neg).sum() / ops.maximum(neg.sum(), 1.0),
                ops.sqrt((emb * emb).sum(axis=1)).mean(),
            ]
        )
        telemetry = ops.concat(
            [
                means,
                triplet_difficulty(within, pos, neg, self.margin),
                masked_percentiles(within, pos),
                masked_percentiles(within, neg),
            ]
        )
        if self.memory is not None:
            n_stored = stored_active.sum()
            stats = ops.stack(
                [
                    n_stored / ops.maximum(n_active, 1.0),
                    (stored_active * ages).sum() / ops.maximum(n_stored, 1.0),
                    self.memory.in_use().astype(ms.float32).mean(),
                ]
            )
            telemetry = ops.concat([telemetry, stats])
        return loss, ops.stop_gradient(telemetry)

    def select(self, emb, labels):
        """The triplets a step on (emb, labels) uses, for inspection: (columns, listed, index, valid, negatives).
        Anchor a's listed positives are `columns[a]` (batch columns; 1 in `listed` where one is listed), each
        (B, k); `negatives` (B, R) says which references are a's negatives (reference i < B: the batch's; B + s:
        memory slot s). A one-negative miner chooses reference `index` as the negative of each listed (a, p), 1 in
        `valid` where that triplet is selected; batch all selects every (a, listed p, negative): `index` is -1."""
        pos, neg = label_masks(labels)
        squares, negative_dist, columns, listed = self._candidates(emb, labels, pos, neg)
        negatives = negative_dist < BIG
        if not self.miner.one_negative:
            return columns, listed, ops.full_like(columns, -1), listed, negatives
        index, valid = self.miner(negative_dist, ops.gather_elements(squares, 1, columns), listed)
        return columns, listed, index, valid, negatives

    def _candidates(self, emb, labels, pos, neg):
        """What the miner chooses among, without gradient: the batch's squared distances (B, B), the anchors'
        squared distances to every reference (B, R), BIG where the reference is not a negative of the anchor
        (squared: the order of the distance, without a square root per pair), and the positives listed per
        anchor (columns, listed), at most `positives_per_anchor` (else B - 1) each."""
        b = emb.shape[0]
        squares = pairwise_distances(ops.stop_gradient(emb), squared=True)
        negative_dist = ops.select(neg > 0, squares, ops.full_like(squares, BIG))
        if self.memory is not None:  # then the memory's references: (B, B + M)
            stored = self.memory.squared_distances(emb)
            stored = ops.select(self.memory.negatives(labels), stored, ops.full_like(stored, BIG))
            negative_dist = ops.concat([negative_dist, stored], axis=1)
        k = min(self.positives_per_anchor, b - 1) if self.positives_per_anchor else b - 1
        columns, listed = self.miner.positives(squares, pos, k)
        return squares, negative_dist, ops.stop_gradient(columns), ops.stop_gradient(listed)

    def _bound(self, d_ap):
        """Per listed (a, p): the squared distance below which a negative makes the triplet active, d(a,p) + margin
        (both sides >= 0, so squaring keeps the order)."""
        return d_ap + self.margin if self.squared else ops.square(ops.sqrt(d_ap) + self.margin)

    def _references(self, emb, index):
        """(B, k, D): reference `index` of each anchor, a batch embedding (index < B, with its gradient) or a
        stored one (B + slot, a constant)."""
        b = emb.shape[0]
        batch = ops.gather(emb, ops.minimum(index, b - 1), 0)
        if self.memory is None:
            return batch
        memory = ops.gather(self.memory.embeddings(), ops.maximum(index - b, 0), 0)
        return ops.select(ops.broadcast_to((index < b).expand_dims(2), batch.shape), batch, memory)

    @staticmethod
    def _centred(emb):
        """`emb`, whose gradient loses its mean over the batch. A loss of distances between live embeddings gives
        gradients that sum to zero (each pair's two ends get opposite ones), so it never moves the batch as a
        whole; a stored negative's end is a constant, and what it would have taken is a net force on the batch,
        away from where the stored copies are: where the batch was a few steps ago. Followed step after step, that
        force runs the embeddings away from their own past and into one point (docs/memory.md). Taking the mean out
        removes exactly that net force, and nothing of a loss without a memory."""
        centre = emb.mean(axis=0, keep_dims=True)
        return emb - (centre - ops.stop_gradient(centre))  # the value is emb exactly: x - x is 0 in floats

    @staticmethod
    def _pushed(an, stored):
        """d(a, n), with twice its gradient where n is stored. A live negative moves away from its anchor as the
        anchor moves away from it; a stored one cannot, so its anchor takes the separation of both. Otherwise each
        positive pair is pulled from both ends and each stored negative pushed from one, and the embeddings contract
        to a point within tens of steps (docs/memory.md: batch-only training with detached negatives collapses the
        same way)."""
        return an + ops.select(stored, an - ops.stop_gradient(an), ops.zeros_like(an))

    def _age(self, slot):
        """Steps since memory slot `slot` was written (0 where `slot` < 0: a batch reference, or no memory)."""
        if self.memory is None:
            return ops.zeros(slot.shape, ms.float32)
        return ops.gather(self.memory.age(), ops.maximum(slot, 0), 0) * (slot >= 0).astype(ms.float32)

    def _stored_sum(self, per_stored, emb, stored_squares):
        """sum over (a, stored n) of count * d(a, n), with twice its gradient to the anchors (as `_pushed`; 0
        without a memory). `stored_squares` (B, M) are the squared distances, constants; the gradient of d(a, n)
        is (a - n) / d(a, n) (squared: 2 (a - n)), so the anchors' gradient is c * a - C @ n with C = 2 count / d
        (or 4 count) and c its row sums: a surrogate with that gradient carries the value, without differentiating
        a (B, M) distance matrix."""
        if self.memory is None:
            return ops.zeros((), ms.float32)
        counted = per_stored > 0  # elsewhere (other identities' slots not in use among them) d is huge: left out
        d = stored_squares if self.squared else ops.sqrt(stored_squares + 1e-12)
        d = ops.select(counted, d, ops.zeros_like(d))
        coef = 4.0 * per_stored if self.squared else 2.0 * per_stored / ops.select(counted, d, ops.ones_like(d))
        value = (per_stored * d).sum()
        quadratic = (0.5 * coef.sum(axis=1) * (emb * emb).sum(axis=1)).sum()
        surrogate = quadratic - (emb * ops.matmul(coef, self.memory.embeddings())).sum()
        return ops.stop_gradient(value - surrogate) + surrogate

    def _stored_active(self, per_stored):
        """(active triplets per (a, stored n), n's age) for the memory telemetry."""
        if self.memory is None:
            return ops.zeros(1, ms.float32), ops.zeros(1, ms.float32)
        return per_stored, self.memory.age().reshape(1, -1)


def all_triplets(negative_dist, bound, listed):
    """Every (a, listed p, n), counted rather than listed: (active triplets per (a, p) (B, k), active triplets per
    (a, n) (B, R), selected triplets). A triplet is active where d(a,n) < `bound` of (a, p) (its d(a,p) + margin,
    in the units of `negative_dist`): one (B, R) comparison per listed positive. The sum of hinges is then sum over
    (a, p) of count * (d(a,p) + margin) minus sum over (a, n) of count * d(a,n), whose gradient, with the counts
    constant, is the brute-force sum's."""
    bound = ops.select(listed > 0, bound, ops.full_like(bound, -BIG))  # an unlisted column activates nothing
    per_negative = ops.zeros_like(negative_dist)
    counts = []
    for j in range(bound.shape[1]):
        active = (negative_dist < bound[:, j : j + 1]).astype(ms.float32)  # not a negative: >= BIG, never
        counts.append(active.sum(axis=1))
        per_negative = per_negative + active
    negatives = (negative_dist < BIG).astype(ms.float32).sum(axis=1)
    per_positive, per_negative = ops.stop_gradient(ops.stack(counts, axis=1)), ops.stop_gradient(per_negative)
    return per_positive, per_negative, (listed.sum(axis=1) * negatives).sum()
