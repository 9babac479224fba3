"""Triplet loss against hand-computed values; finite at zero distance."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest

from facenet.losses import TripletLoss
from facenet.mining import BatchAllMiner, BatchHardMiner

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
