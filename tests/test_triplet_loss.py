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
