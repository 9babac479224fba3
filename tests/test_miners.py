"""Each miner against a brute-force loop over all (anchor, positive, negative) triples."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest

from facenet.mining import BatchAllMiner, BatchHardMiner, SemiHardMiner, label_masks, pairwise_distances


def brute_distances(e: np.ndarray) -> np.ndarray:
    return np.array([[np.sqrt(((a - b) ** 2).sum()) for b in e] for a in e])


def brute_batch_all(d, y):
    b = len(y)
    return {(a, p, n) for a in range(b) for p in range(b) for n in range(b) if a != p and y[a] == y[p] and y[n] != y[a]}


def brute_batch_hard(d, y):
    out = set()
    for a in range(len(y)):
        pos = [p for p in range(len(y)) if p != a and y[p] == y[a]]
        neg = [n for n in range(len(y)) if y[n] != y[a]]
        if pos and neg:
            out.add((a, max(pos, key=lambda p: (d[a, p], -p)), min(neg, key=lambda n: (d[a, n], n))))
    return out


def brute_semi_hard(d, y):
    out = set()
    for a in range(len(y)):
        neg = [n for n in range(len(y)) if y[n] != y[a]]
        for p in range(len(y)):
            if p == a or y[p] != y[a] or not neg:
                continue
            farther = [n for n in neg if d[a, n] > d[a, p]]
            n = min(farther, key=lambda n: (d[a, n], n)) if farther else max(neg, key=lambda n: (d[a, n], -n))
            out.add((a, p, n))
    return out


def mined(miner, e, y):
    d = pairwise_distances(ms.Tensor(e))
    pos, neg = label_masks(ms.Tensor(y))
    mask = miner(d, pos, neg).asnumpy()
    assert set(np.unique(mask)) <= {0.0, 1.0}
    return {tuple(int(i) for i in t) for t in np.argwhere(mask > 0)}


CASES = [  # (P, K, dim, seed) and irregular label sets
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
@pytest.mark.parametrize(
    "miner,oracle",
    [(BatchAllMiner(), brute_batch_all), (BatchHardMiner(), brute_batch_hard), (SemiHardMiner(), brute_semi_hard)],
    ids=["batch_all", "batch_hard", "semi_hard"],
)
def test_miner_matches_brute_force(miner, oracle, labels, dim, seed):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(len(labels), dim)).astype(np.float32)
    y = labels.astype(np.int32)
    d = brute_distances(e.astype(np.float64))
    assert np.allclose(pairwise_distances(ms.Tensor(e)).asnumpy(), d, atol=1e-4)
    assert mined(miner, e, y) == oracle(d, y)


def test_semi_hard_picks_band_negative_and_falls_back():
    # anchor 0 and positive 1 at distance 1; negatives at 0.5 (hard), 1.2 and 1.5 (farther): picks 1.2
    e = np.array([[0.0], [1.0], [0.5], [1.2], [1.5]], np.float32)
    y = np.array([0, 0, 1, 2, 3], np.int32)
    assert (0, 1, 3) in mined(SemiHardMiner(), e, y)
    # every negative closer than the positive: the farthest negative is taken
    e = np.array([[0.0], [3.0], [0.5], [1.0], [2.0]], np.float32)
    assert (0, 1, 4) in mined(SemiHardMiner(), e, y)


@pytest.mark.parametrize(
    "miner,oracle",
    [(BatchAllMiner(), brute_batch_all), (BatchHardMiner(), brute_batch_hard), (SemiHardMiner(), brute_semi_hard)],
    ids=["batch_all", "batch_hard", "semi_hard"],
)
def test_miner_ties_take_first_index(miner, oracle):
    e, y = tied_case()
    assert mined(miner, e, y) == oracle(brute_distances(e.astype(np.float64)), y)
