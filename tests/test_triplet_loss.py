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
def test_batch_all_active_mean_and_mean(margin, pynative):
    hinge = np.maximum(DIFFS + margin, 0)
    active = hinge > 0
    got, tel = loss_of(BatchAllMiner(), margin)
    assert got == pytest.approx(hinge.sum() / active.sum() if active.any() else 0.0, abs=1e-5)
    assert tel[0] == pytest.approx(active.mean())
    assert loss_of(BatchAllMiner(), margin, reduction="mean")[0] == pytest.approx(hinge.mean(), abs=1e-5)


def test_batch_all_compiled_gives_the_hand_computed_loss():
    """The compiled (GRAPH) batch-all path, whose memory part is an empty slice without a memory."""
    hinge = np.maximum(DIFFS + 0.6, 0)
    got, tel = loss_of(BatchAllMiner(), 0.6)
    assert got == pytest.approx(hinge.sum() / (hinge > 0).sum(), abs=1e-5)
    assert tel[0] == pytest.approx((hinge > 0).mean())


def test_telemetry_distances(pynative):
    _, tel = loss_of(BatchAllMiner(), 0.2)
    assert tel[1] == pytest.approx((1.0 + 2.5) / 2, abs=1e-5)  # mean over positive pairs
    assert tel[2] == pytest.approx((1.5 + 4 + 0.5 + 3) / 4, abs=1e-5)  # mean over negative pairs
    assert tel[3] == pytest.approx(np.abs(E).mean(), abs=1e-5)


def test_squared_distances(pynative):
    # batch-hard: anchor 0 -> (p=1, n=2): 1 - 2.25; anchor 1 -> (0, 2): 1 - 0.25; anchor 2 -> (3, 1): 6.25 - 0.25;
    # anchor 3 -> (2, 1): 6.25 - 9
    diffs = np.array([1 - 2.25, 1 - 0.25, 6.25 - 0.25, 6.25 - 9])
    hinge = np.maximum(diffs + 0.5, 0)
    got, _ = loss_of(BatchHardMiner(), 0.5, squared=True)
    assert got == pytest.approx(hinge.sum() / (hinge > 0).sum(), abs=1e-5)


def test_zero_when_no_triplet_is_active(pynative):
    e = np.array([[0.0], [0.1], [5.0], [5.1]], np.float32)
    got, tel = loss_of(BatchAllMiner(), 0.5, e=e)
    assert got == 0.0 and tel[0] == 0.0


def test_gradient_finite_at_zero_distance(pynative):
    e = np.zeros((4, 3), np.float32)
    e[:, 0] = 1.0  # every embedding identical: all distances 0
    criterion = TripletLoss(BatchAllMiner(), 0.2)

    def f(x):
        return criterion(x, ms.Tensor(Y))[0]

    loss = f(ms.Tensor(e))
    grad = ms.grad(f)(ms.Tensor(e)).asnumpy()
    assert float(loss.asnumpy()) == pytest.approx(0.2, abs=1e-4)
    assert np.isfinite(grad).all()


def brute_loss(e, refs, triplets, margin, squared=False, reduction="active_mean"):
    """The loss over `triplets` (a, p, n) of batch `e` (n indexes `refs` = [batch | memory]) and its gradient with
    respect to the batch, term by term in float64: d(x, y) = |x - y| (squared: |x - y|^2), whose gradient is
    (x - y) / d (squared: 2 (x - y)). Stored references (n >= B) are constants that push their anchor twice (the
    separation a live negative adds by moving too), and with a memory the batch's gradient has its mean removed."""
    e, refs = e.astype(np.float64), refs.astype(np.float64)
    grad, total, active = np.zeros_like(e), 0.0, 0

    def dist(x, y):
        diff = x - y
        d2 = float(diff @ diff)
        return (d2, 2 * diff) if squared else (np.sqrt(d2), diff / max(np.sqrt(d2), 1e-6))

    for a, p, n in triplets:
        (d_ap, g_ap), (d_an, g_an) = dist(e[a], e[p]), dist(e[a], refs[n])
        if d_ap - d_an + margin <= 0:
            continue
        total, active = total + d_ap - d_an + margin, active + 1
        grad[a] += g_ap - (g_an if n < len(e) else 2 * g_an)
        grad[p] -= g_ap
        if n < len(e):
            grad[n] += g_an
    scale = (active + 1e-8) if reduction == "active_mean" else max(len(triplets), 1)
    if len(refs) > len(e):  # with a memory: the batch's gradient is centred (no net force on the batch)
        grad -= grad.mean(axis=0)
    return total / scale, grad / scale


def loss_value(criterion):
    """criterion's loss alone, as a function of (embeddings, labels) to differentiate."""

    def value(emb, labels):
        return criterion(emb, labels)[0]

    return value


@pytest.mark.parametrize("mode", ["PYNATIVE", "GRAPH"])
def test_one_negative_miners_loss_and_gradient_equal_the_term_by_term_sum(mode):
    """Batch hard, semi-hard and offline triplets: value and gradient against `brute_loss` over the miner's own
    selection (tests/test_miners.py checks that selection against brute force); op by op, and compiled (one
    setting: a compilation costs 3 s)."""
    settings = [(0.1, False, "active_mean"), (0.5, True, "mean")]
    ms.set_context(mode=getattr(ms, f"{mode}_MODE"))
    try:
        _check_one_negative_miners(settings if mode == "PYNATIVE" else settings[:1])
    finally:
        ms.set_context(mode=ms.GRAPH_MODE)


def _check_one_negative_miners(settings: list[tuple[float, bool, str]]) -> None:
    from tests.test_miners import mined

    rng = np.random.default_rng(3)
    for miner_cls in (BatchHardMiner, SemiHardMiner, RandomTripletsMiner):
        if miner_cls is RandomTripletsMiner:  # anchors | positives | negatives; triplet 2 is invalid (negative's label)
            y = np.array([0, 1, 2, 3, 0, 1, 2, 3, 5, 6, 3, 7], np.int32)
        else:
            y = np.repeat(np.arange(6), 4).astype(np.int32)
        e = rng.normal(size=(len(y), 8)).astype(np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        for margin, squared, reduction in settings:
            criterion = TripletLoss(miner_cls(), margin, squared, reduction, positives_per_anchor=3)
            triplets = mined(criterion, e, y)
            want, want_grad = brute_loss(e, e, triplets, margin, squared, reduction)
            x, t = ms.Tensor(e), ms.Tensor(y)
            value = loss_value(criterion)
            got = float(value(x, t).asnumpy())
            grad = ms.grad(value)(x, t).asnumpy()
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6), (miner_cls, margin, squared)
            assert np.abs(want_grad).max() > 1e-3  # some triplet is active: not a comparison of two zeros
            np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-5)


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
def test_difficulty_fractions_and_distance_percentiles_equal_brute_force(squared, labels, pynative):
    rng = np.random.default_rng(7)
    y = {
        "pk": np.repeat(np.arange(5), 3),
        "uneven": np.array([0, 0, 0, 0, 1, 1, 2, 3, 3, 3, 4]),
        "singletons": np.arange(6),
    }[labels].astype(np.int32)
    e = rng.normal(size=(len(y), 6)).astype(np.float32) * 0.4
    e[1] = e[0]  # a tie: d_ap = 0
    margin = 0.3
    _, tel = loss_of(BatchHardMiner(), margin, squared, e=e, y=y)
    names = TripletLoss.TELEMETRY
    got = tel[names.index("easy_fraction") :]
    assert names[names.index("easy_fraction") :] == (
        "easy_fraction",
        "semi_hard_fraction",
        "hard_fraction",
        "d_ap_p10",
        "d_ap_p50",
        "d_ap_p90",
        "d_an_p10",
        "d_an_p50",
        "d_an_p90",
    )
    np.testing.assert_allclose(got, _brute_force_telemetry(e, y, margin, squared), atol=2e-5)
    if labels == "singletons":  # no positive pair: no valid triplet, no positive distance
        assert got[:6].tolist() == [0.0] * 6


def test_collapsed_embeddings_are_all_hard_triplets_at_distance_zero(pynative):
    e = np.tile(np.array([[0.6, 0.8]], np.float32), (8, 1))
    _, tel = loss_of(BatchHardMiner(), 0.2, e=e, y=np.repeat(np.arange(4), 2).astype(np.int32))
    named = dict(zip(TripletLoss.TELEMETRY, tel, strict=True))
    assert named["hard_fraction"] == 1.0 and named["easy_fraction"] == 0.0
    assert max(named[k] for k in ("d_ap_p90", "d_an_p90")) < 1e-5
