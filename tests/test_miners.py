"""Each miner against a brute-force loop over all (anchor, positive, negative) triples: within a batch, and with a
cross-batch memory (anchors x [batch | memory], stored embeddings as negatives only)."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest

from facenet.losses import TripletLoss
from facenet.mining import BatchAllMiner, BatchHardMiner, MemorySettings, SemiHardMiner, pairwise_distances

MINERS = {"batch_all": BatchAllMiner, "batch_hard": BatchHardMiner, "semi_hard": SemiHardMiner}


def brute_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([[np.sqrt(((x - y) ** 2).sum()) for y in b] for x in a])


def roles(y, ref_labels, usable):
    """Per anchor: its positives (other batch images of its identity) and negatives (usable references of
    another identity; the batch's references come first)."""
    b = len(y)
    pos = [[p for p in range(b) if p != a and y[p] == y[a]] for a in range(b)]
    neg = [[n for n in range(len(ref_labels)) if usable[n] and ref_labels[n] != y[a]] for a in range(b)]
    return pos, neg


def brute_batch_all(d, pos, neg):
    return {(a, p, n) for a in range(len(pos)) for p in pos[a] for n in neg[a]}


def brute_batch_hard(d, pos, neg):
    out = set()
    for a in range(len(pos)):
        if pos[a] and neg[a]:
            out.add((a, max(pos[a], key=lambda p: (d[a, p], -p)), min(neg[a], key=lambda n: (d[a, n], n))))
    return out


def brute_semi_hard(d, pos, neg):
    out = set()
    for a in range(len(pos)):
        for p in pos[a] if neg[a] else []:
            farther = [n for n in neg[a] if d[a, n] > d[a, p]]
            n = min(farther, key=lambda n: (d[a, n], n)) if farther else max(neg[a], key=lambda n: (d[a, n], -n))
            out.add((a, p, n))
    return out


ORACLES = {"batch_all": brute_batch_all, "batch_hard": brute_batch_hard, "semi_hard": brute_semi_hard}


class Enqueue(ms.nn.Cell):
    """What the training step does after each step, alone: store a batch."""

    def __init__(self, memory):
        super().__init__()
        self.memory = memory

    def construct(self, emb, labels):
        self.memory.enqueue(emb, labels)
        return emb


def mined(loss: TripletLoss, e, y) -> set[tuple[int, int, int]]:
    """The (anchor, positive, negative) triplets the loss's miner selects; negatives index [batch | memory]."""
    columns, listed, index, valid, negatives = (t.asnumpy() for t in loss.select(ms.Tensor(e), ms.Tensor(y)))
    if (index >= 0).all():
        return {(a, int(columns[a, j]), int(index[a, j])) for a, j in zip(*np.nonzero(valid > 0), strict=True)}
    return {
        (a, int(columns[a, j]), int(n))
        for a, j in zip(*np.nonzero(listed > 0), strict=True)
        for n in np.flatnonzero(negatives[a])
    }  # batch all: every negative


CASES = [  # labels, dim, seed
    (np.repeat(np.arange(4), 3), 2, 0),
    (np.repeat(np.arange(8), 4), 8, 1),
    (np.array([0, 0, 1, 2, 2, 2, 3, 1, 0]), 3, 2),  # unsorted, unequal counts, one identity with K=1
    (np.array([5, 5, 5]), 2, 3),  # one identity: no negatives, nothing to mine
    (np.array([0, 1, 2]), 2, 4),  # no positives
]


def tied_case():
    """Integer points on a line: many equal distances, so "first index on ties" decides."""
    e = np.array([[0], [1], [2], [1], [3], [2], [0], [4]], np.float32)
    return e, np.array([0, 0, 0, 1, 1, 1, 2, 2], np.int32)


@pytest.mark.parametrize("labels,dim,seed", CASES)
@pytest.mark.parametrize("name", list(MINERS))
def test_miner_matches_brute_force(name, labels, dim, seed):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(len(labels), dim)).astype(np.float32)
    y = labels.astype(np.int32)
    d = brute_distances(e.astype(np.float64), e.astype(np.float64))
    assert np.allclose(pairwise_distances(ms.Tensor(e)).asnumpy(), d, atol=1e-4)
    pos, neg = roles(y, y, np.ones(len(y), bool))
    assert mined(TripletLoss(MINERS[name](), 0.2), e, y) == ORACLES[name](d, pos, neg)


def test_semi_hard_picks_band_negative_and_falls_back():
    # anchor 0 and positive 1 at distance 1; negatives at 0.5 (hard), 1.2 and 1.5 (farther): picks 1.2
    e = np.array([[0.0], [1.0], [0.5], [1.2], [1.5]], np.float32)
    y = np.array([0, 0, 1, 2, 3], np.int32)
    assert (0, 1, 3) in mined(TripletLoss(SemiHardMiner(), 0.2), e, y)
    # every negative closer than the positive: the farthest negative is taken
    e = np.array([[0.0], [3.0], [0.5], [1.0], [2.0]], np.float32)
    assert (0, 1, 4) in mined(TripletLoss(SemiHardMiner(), 0.2), e, y)


@pytest.mark.parametrize("name", list(MINERS))
def test_miner_ties_take_first_index(name):
    e, y = tied_case()
    pos, neg = roles(y, y, np.ones(len(y), bool))
    d = brute_distances(e.astype(np.float64), e.astype(np.float64))
    assert mined(TripletLoss(MINERS[name](), 0.2), e, y) == ORACLES[name](d, pos, neg)


@pytest.mark.parametrize("k", [2, pytest.param(1, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)])
def test_listing_k_positives_lists_every_positive_of_a_pk_batch(k):
    """positives_per_anchor = K - 1 (what training passes for P x K batches) mines exactly what B - 1 does."""
    rng = np.random.default_rng(k)
    y = np.repeat(np.arange(5), k + 1).astype(np.int32)
    e = rng.normal(size=(len(y), 4)).astype(np.float32)
    for miner in MINERS.values():
        assert mined(TripletLoss(miner(), 0.2, positives_per_anchor=k), e, y) == mined(TripletLoss(miner(), 0.2), e, y)


# ------------------------------------------------------------------ with a cross-batch memory

MEMORY_CASES = {  # name: (memory size, stored batches, start_step)
    "not yet full": (16, 2, 0),  # 12 of 16 slots written: the 4 empty ones are no one's negative
    "full, wrapped": (10, 3, 0),  # 18 written into 10 slots: the last 10 remain
    "before start_step": (16, 2, 5),  # filled but not yet mined: the batch alone
}


def _loss_with_memory(name, size, start_step, dim, squared=False):
    return TripletLoss(MINERS[name](MemorySettings(size, start_step)), 0.2, squared, embedding_size=dim)


def _stored(rng, batches, dim):
    """Earlier batches: (embeddings, labels) each, with identities shared with the current batch and others; the
    first holds a copy of the current batch's anchor 0 (same image, same label)."""
    out = []
    for i in range(batches):
        e = rng.normal(size=(6, dim)).astype(np.float32)
        y = np.array([0, 1, 7 + i, 7 + i, 9, 2], np.int32)
        out.append((e, y))
    return out


@pytest.mark.parametrize("case", list(MEMORY_CASES))
@pytest.mark.parametrize("name", list(MINERS))
def test_miner_with_memory_matches_brute_force(name, case):
    size, batches, start = MEMORY_CASES[case]
    rng = np.random.default_rng(11)
    e = rng.normal(size=(6, 2)).astype(np.float32)
    y = np.array([0, 0, 1, 1, 2, 2], np.int32)
    loss = _loss_with_memory(name, size, start, 2)
    store = Enqueue(loss.memory)
    history = _stored(rng, batches, 2)
    history[0][0][0] = e[0]  # the anchor's own stored copy: its label, distance 0
    for he, hy in history:
        store(ms.Tensor(he), ms.Tensor(hy))
    # the memory, oldest first, as a deque of the last `size` rows would hold it
    rows = [(he[i], hy[i]) for he, hy in history for i in range(len(hy))][-size:]
    stored = np.array([r[0] for r in rows]).reshape(-1, 2)
    stored_labels = np.array([r[1] for r in rows], np.int32)
    order = (np.arange(size) + int(loss.memory.position.asnumpy()[0])) % size if len(rows) == size else np.arange(size)
    slots = np.full((size, 2), 0.0), np.full(size, -1)
    slots[0][order[: len(rows)]], slots[1][order[: len(rows)]] = stored, stored_labels
    used = np.r_[np.ones(6, bool), (slots[1] >= 0) & (batches >= start)]
    refs = np.concatenate([e, slots[0]]).astype(np.float64)
    d = brute_distances(e.astype(np.float64), refs)
    pos, neg = roles(y, np.r_[y, slots[1]], used)
    want = ORACLES[name](d, pos, neg)
    got = mined(loss, e, y)
    assert got == want
    if case != "before start_step":
        assert any(n >= 6 for _, _, n in got)  # the memory is mined: the comparison covers stored negatives
    if case == "not yet full":  # slot 0 holds anchor 0's own copy: never paired with an anchor of its identity
        assert not any(n == 6 for a, _, n in got if y[a] == 0)


@pytest.mark.parametrize("name", list(MINERS))
def test_miner_with_memory_ties_take_the_batch_first(name):
    """Integer points: stored embeddings at the same distances as batch negatives; the batch's come first."""
    e, y = tied_case()
    loss = _loss_with_memory(name, 8, 0, 1)
    Enqueue(loss.memory)(ms.Tensor(e), ms.Tensor(np.array([3, 3, 4, 4, 0, 1, 2, 5], np.int32)))
    refs = np.concatenate([e, e]).astype(np.float64)
    pos, neg = roles(y, np.r_[y, [3, 3, 4, 4, 0, 1, 2, 5]], np.ones(16, bool))
    assert mined(loss, e, y) == ORACLES[name](brute_distances(e.astype(np.float64), refs), pos, neg)
