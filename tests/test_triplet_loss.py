"""Triplet loss against hand-computed values; finite at zero distance."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest

from facenet.losses import TripletLoss
from facenet.mining import BatchAllMiner, BatchHardMiner, RandomTripletsMiner, SemiHardMiner

# 1-D embeddings: class 0 at 0 and 1, class 1 at 1.5 and 4.
E = np.array([[0.0], [1.0], [1.5], [4.0]], np.float32)
Y = np.array([0, 0, 1, 1], np.int32)
# batch-all triplets (a, p, n) and d_ap - d_an:
#  (0,1,2): 1-1.5=-0.5  (0,1,3): 1-4=-3   (1,0,2): 1-0.5=0.5  (1,0,3): 1-3=-2
#  (2,3,0): 2.5-1.5=1   (2,3,1): 2.5-0.5=2 (3,2,0): 2.5-4=-1.5 (3,2,1): 2.5-3=-0.5
DIFFS = np.array([-0.5, -3, 0.5, -2, 1, 2, -1.5, -0.5])


def loss_of(miner, margin, squared=False, reduction="active_mean", e=E, y=Y):
    loss, tel = TripletLoss(miner, margin, squared, reduction)(ms.Tensor(e), ms.Tensor(y))
    return float(loss.asnumpy()), tel.asnumpy()


@pytest.mark.parametrize("margin", [0.0, 0.2, 0.6, 1.0])
def test_batch_all_active_mean_and_mean(margin):
    hinge = np.maximum(DIFFS + margin, 0)
    active = hinge > 0
    got, tel = loss_of(BatchAllMiner(), margin)
    assert got == pytest.approx(hinge.sum() / active.sum() if active.any() else 0.0, abs=1e-5)
    assert tel[0] == pytest.approx(active.mean())
    assert loss_of(BatchAllMiner(), margin, reduction="mean")[0] == pytest.approx(hinge.mean(), abs=1e-5)


def test_telemetry_distances():
    _, tel = loss_of(BatchAllMiner(), 0.2)
    assert tel[1] == pytest.approx((1.0 + 2.5) / 2, abs=1e-5)  # mean over positive pairs
    assert tel[2] == pytest.approx((1.5 + 4 + 0.5 + 3) / 4, abs=1e-5)  # mean over negative pairs
    assert tel[3] == pytest.approx(np.abs(E).mean(), abs=1e-5)


def test_squared_distances():
    # batch-hard: anchor 0 -> (p=1, n=2): 1 - 2.25; anchor 1 -> (0, 2): 1 - 0.25; anchor 2 -> (3, 1): 6.25 - 0.25;
    # anchor 3 -> (2, 1): 6.25 - 9
    diffs = np.array([1 - 2.25, 1 - 0.25, 6.25 - 0.25, 6.25 - 9])
    hinge = np.maximum(diffs + 0.5, 0)
    got, _ = loss_of(BatchHardMiner(), 0.5, squared=True)
    assert got == pytest.approx(hinge.sum() / (hinge > 0).sum(), abs=1e-5)


def test_zero_when_no_triplet_is_active():
    e = np.array([[0.0], [0.1], [5.0], [5.1]], np.float32)
    got, tel = loss_of(BatchAllMiner(), 0.5, e=e)
    assert got == 0.0 and tel[0] == 0.0


def test_gradient_finite_at_zero_distance():
    e = np.zeros((4, 3), np.float32)
    e[:, 0] = 1.0  # every embedding identical: all distances 0
    criterion = TripletLoss(BatchAllMiner(), 0.2)

    def f(x):
        return criterion(x, ms.Tensor(Y))[0]

    loss = f(ms.Tensor(e))
    grad = ms.grad(f)(ms.Tensor(e)).asnumpy()
    assert float(loss.asnumpy()) == pytest.approx(0.2, abs=1e-4)
    assert np.isfinite(grad).all()


def _dense_loss(miner, margin):
    """The (B, B, B) formula over the miner's own mask: the reference for the one-negative (B, B) path."""
    from mindspore import ops

    from facenet.mining import label_masks, pairwise_distances

    def f(x, y):
        dist = pairwise_distances(x)
        pos, neg = label_masks(y)
        selected = ops.stop_gradient(miner(dist, pos, neg))
        hinge = ops.relu(dist.expand_dims(2) - dist.expand_dims(1) + margin)
        return (hinge * selected).sum() / (((hinge > 0).astype(ms.float32) * selected).sum() + 1e-8)

    return f


@pytest.mark.parametrize("miner_cls", [BatchHardMiner, SemiHardMiner, RandomTripletsMiner])
@pytest.mark.parametrize("margin", [0.1, 0.5])
def test_one_negative_path_gives_the_dense_loss_and_gradient(miner_cls, margin):
    rng = np.random.default_rng(3)
    if miner_cls is RandomTripletsMiner:  # anchors | positives | negatives; triplet 2 is invalid (negative's label)
        y = np.array([0, 1, 2, 3, 0, 1, 2, 3, 5, 6, 3, 7], np.int32)
    else:
        y = np.repeat(np.arange(6), 4).astype(np.int32)
    e = rng.normal(size=(len(y), 8)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    miner = miner_cls()
    assert miner.one_negative
    criterion = TripletLoss(miner, margin)

    def fast(x, y):
        return criterion(x, y)[0]

    dense = _dense_loss(miner, margin)
    x, t = ms.Tensor(e), ms.Tensor(y)
    for fn in (fast, dense):
        assert np.isfinite(float(fn(x, t).asnumpy()))
    assert float(fast(x, t).asnumpy()) == pytest.approx(float(dense(x, t).asnumpy()), rel=1e-5, abs=1e-6)
    g_fast = ms.jit(ms.grad(fast))(x, t).asnumpy()
    g_dense = ms.jit(ms.grad(dense))(x, t).asnumpy()
    assert np.abs(g_fast).max() > 1e-3  # some triplet is active: the comparison is not between two zeros
    np.testing.assert_allclose(g_fast, g_dense, rtol=1e-4, atol=1e-6)


def _brute_force_telemetry(e, y, margin, squared):
    """Every valid (a, p, n) triplet classified one by one, and numpy's percentiles of the pair distances."""
    d = np.linalg.norm(e[:, None] - e[None], axis=2).astype(np.float64)
    d = d**2 if squared else d
    counts = {"easy": 0, "semi": 0, "hard": 0}
    for a in range(len(y)):
        for p in range(len(y)):
            for n in range(len(y)):
                if a == p or y[a] != y[p] or y[n] == y[a]:
                    continue
                kind = "hard" if d[a, n] <= d[a, p] else "semi" if d[a, n] < d[a, p] + margin else "easy"
                counts[kind] += 1
    total = max(sum(counts.values()), 1)
    same = (y[:, None] == y[None]) & ~np.eye(len(y), dtype=bool)
    diff = y[:, None] != y[None]
    pct = [np.percentile(d[m], [10, 50, 90]) if m.any() else np.zeros(3) for m in (same, diff)]
    return np.r_[counts["easy"] / total, counts["semi"] / total, counts["hard"] / total, pct[0], pct[1]]


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("labels", ["pk", "uneven", "singletons"])
def test_difficulty_fractions_and_distance_percentiles_equal_brute_force(squared, labels):
    rng = np.random.default_rng(7)
    y = {"pk": np.repeat(np.arange(5), 3), "uneven": np.array([0, 0, 0, 0, 1, 1, 2, 3, 3, 3, 4]),
         "singletons": np.arange(6)}[labels].astype(np.int32)  # fmt: skip
    e = rng.normal(size=(len(y), 6)).astype(np.float32) * 0.4
    e[1] = e[0]  # a tie: d_ap = 0
    margin = 0.3
    _, tel = loss_of(BatchHardMiner(), margin, squared, e=e, y=y)
    names = TripletLoss.TELEMETRY
    got = tel[names.index("easy_fraction") :]
    assert names[names.index("easy_fraction") :] == ("easy_fraction", "semi_hard_fraction", "hard_fraction",
        "d_ap_p10", "d_ap_p50", "d_ap_p90", "d_an_p10", "d_an_p50", "d_an_p90")  # fmt: skip
    np.testing.assert_allclose(got, _brute_force_telemetry(e, y, margin, squared), atol=2e-5)
    if labels == "singletons":  # no positive pair: no valid triplet, no positive distance
        assert got[:6].tolist() == [0.0] * 6


def test_collapsed_embeddings_are_all_hard_triplets_at_distance_zero():
    e = np.tile(np.array([[0.6, 0.8]], np.float32), (8, 1))
    _, tel = loss_of(BatchHardMiner(), 0.2, e=e, y=np.repeat(np.arange(4), 2).astype(np.int32))
    named = dict(zip(TripletLoss.TELEMETRY, tel, strict=True))
    assert named["hard_fraction"] == 1.0 and named["easy_fraction"] == 0.0
    assert max(named[k] for k in ("d_ap_p90", "d_an_p90")) < 1e-5
