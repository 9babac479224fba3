"""Margin-softmax losses (ArcFace, CosFace, combined) against a NumPy implementation of the papers' formulas (value,
and the gradient derived by hand), on random embeddings and on the edge cases: cosines of exactly +1 and -1, margined
angles past pi, a batch of one class. Never NaN or inf. Partial FC: the sampled loss is the oracle's over the sampled
classes, every positive class is always sampled, and sampling every class gives the full loss."""

from __future__ import annotations

import math

import mindspore as ms
import numpy as np
import pytest

from facenet.errors import ConfigError
from facenet.losses.arcface import ArcFaceLoss
from facenet.losses.combined import CombinedMarginLoss
from facenet.losses.cosface import CosFaceLoss
from facenet.losses.margin import COS_LIMIT, MarginSoftmaxLoss
from facenet.losses.partial_fc import sample_classes, sample_keys, sampled_count


def oracle(emb, weight, labels, s, m1, m2, m3, straight_through=False):
    """(loss, d loss / d emb, d loss / d weight) in float64."""
    emb, weight = emb.astype(np.float64), weight.astype(np.float64)
    b, c = len(emb), len(weight)
    xn, wn = np.linalg.norm(emb, axis=1, keepdims=True), np.linalg.norm(weight, axis=1, keepdims=True)
    x, w = emb / xn, weight / wn
    raw = x @ w.T
    cos = np.clip(raw, -COS_LIMIT, COS_LIMIT)
    onehot = np.eye(c)[labels]
    t = cos[np.arange(b), labels]
    th, mm = math.cos((math.pi - m2) / m1), math.sin(math.pi - m2) * m2
    if m1 == 1 and m2 == 0:  # CosFace: no angle
        target, slope = t - m3, np.ones(b)
    else:  # ArcFace paper / InsightFace: cos(m1 theta + m2) - m3 while the angle stays below pi
        theta = np.arccos(t)
        past = t <= th
        target = np.where(past, t - mm - m3, np.cos(m1 * theta + m2) - m3)
        slope = np.where(past, 1.0, np.sin(m1 * theta + m2) * m1 / np.sqrt(1 - t**2))
    if straight_through:
        slope = np.ones(b)
    logits = s * (cos + onehot * (target - t)[:, None])
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    loss = -logp[np.arange(b), labels].mean()
    d_logits = (np.exp(logp) - onehot) / b
    d_cos = s * d_logits * np.where(onehot > 0, slope[:, None], 1.0)
    d_raw = d_cos * (np.abs(raw) <= COS_LIMIT)  # the clamp passes no gradient outside its range
    d_x, d_w = d_raw @ w, d_raw.T @ x
    d_emb = (d_x - x * (d_x * x).sum(1, keepdims=True)) / xn  # through the L2 normalisation
    d_weight = (d_w - w * (d_w * w).sum(1, keepdims=True)) / wn
    return loss, d_emb, d_weight


def ours(loss_cell, emb, labels, *inputs):
    def f(e):
        return loss_cell(e, ms.Tensor(labels, ms.int32), *inputs)[0]

    value, (g_emb, g_weight) = ms.value_and_grad(f, grad_position=0, weights=[loss_cell.weight])(ms.Tensor(emb))
    telemetry = loss_cell(ms.Tensor(emb), ms.Tensor(labels, ms.int32), *inputs)[1].asnumpy()
    return (
        float(value.asnumpy()),
        g_emb.asnumpy(),
        g_weight[0].asnumpy() if isinstance(g_weight, tuple) else g_weight.asnumpy(),
        telemetry,
    )


CASES = {
    "arcface": (lambda c, d, **k: ArcFaceLoss(c, d, **k), dict(s=64.0, m1=1.0, m2=0.5, m3=0.0)),
    "cosface": (lambda c, d, **k: CosFaceLoss(c, d, **k), dict(s=64.0, m1=1.0, m2=0.0, m3=0.35)),
    "combined": (
        lambda c, d, **k: CombinedMarginLoss(c, d, s=32.0, m1=0.9, m2=0.4, m3=0.15, **k),
        dict(s=32.0, m1=0.9, m2=0.4, m3=0.15),
    ),
}


def _check(name, emb, labels, weight=None, straight_through=False, classes=7):
    make, m = CASES[name]
    kw = {"straight_through": straight_through} if name != "cosface" else {}
    cell = make(classes, emb.shape[1], **kw)
    if weight is not None:
        cell.weight.set_data(ms.Tensor(weight.astype(np.float32)))
    w = cell.weight.asnumpy()
    value, g_emb, g_weight, telemetry = ours(cell, emb.astype(np.float32), labels)
    o_value, o_emb, o_weight = oracle(emb, w, labels, m["s"], m["m1"], m["m2"], m["m3"], straight_through)
    for got in (value, g_emb, g_weight, telemetry):
        assert np.isfinite(got).all()
    scale = max(1.0, abs(o_value))
    assert value == pytest.approx(o_value, abs=1e-5 * scale)
    np.testing.assert_allclose(g_emb, o_emb, atol=1e-5 * max(1.0, np.abs(o_emb).max()), rtol=0)
    np.testing.assert_allclose(g_weight, o_weight, atol=1e-5 * max(1.0, np.abs(o_weight).max()), rtol=0)
    return cell, telemetry


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("straight_through", [False, True])
def test_value_and_gradient_equal_the_formulas_on_random_embeddings(name, straight_through):
    if name == "cosface" and straight_through:
        pytest.skip("CosFace has no angle: straight-through changes nothing")
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(12, 16))
    labels = rng.integers(0, 7, 12)
    # centres near the embeddings: large cosines, where the margin matters
    weight = rng.normal(size=(7, 16))
    weight[labels[:7]] = emb[:7] + 0.3 * rng.normal(size=(7, 16))
    _check(name, emb, labels, weight, straight_through)


@pytest.mark.parametrize("name", list(CASES))
def test_cosines_of_exactly_one_and_minus_one_stay_finite(name):
    """Embeddings equal to their centre (cos = 1) and opposite to another's (cos = -1): acos' is infinite there."""
    weight = np.eye(7, 16)
    emb = np.stack([weight[0], weight[1] * 3.0, -weight[2], -weight[3] * 0.5])
    labels = np.array([0, 1, 2, 4])
    _check(name, emb, labels, weight)


@pytest.mark.parametrize("name", ["arcface", "combined"])
def test_margined_angle_past_pi_falls_back_linearly(name):
    """theta + m > pi: embeddings almost opposite to their own centre."""
    rng = np.random.default_rng(5)
    weight = rng.normal(size=(7, 16))
    emb = -weight[[0, 1, 2]] + 0.05 * rng.normal(size=(3, 16))
    labels = np.array([0, 1, 2])
    cell, _ = _check(name, emb, labels, weight)
    cos = (emb / np.linalg.norm(emb, axis=1, keepdims=True)) @ (
        weight / np.linalg.norm(weight, axis=1, keepdims=True)
    ).T
    assert (cos[np.arange(3), labels] < cell.th).all()  # the fallback branch was the one tested


@pytest.mark.parametrize("name", list(CASES))
def test_a_batch_of_one_class(name):
    rng = np.random.default_rng(7)
    _check(name, rng.normal(size=(8, 16)), np.full(8, 3))


def test_arcface_margin_makes_the_target_harder_and_cosface_subtracts_m():
    for cell, expected in ((ArcFaceLoss(3, 4), math.cos(math.acos(0.8) + 0.5)), (CosFaceLoss(3, 4), 0.8 - 0.35)):
        got = cell.target_logit(ms.Tensor(np.array([0.8], np.float32))).asnumpy()[0]
        assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_classes=1), "at least 2 identities"),
        (dict(s=0.0), "loss.s must be > 0"),
        (dict(m2=2.0), "margins out of range"),
        (dict(m3=-0.1), "margins out of range"),
        (dict(m1=0.0), "margins out of range"),
        (dict(sample_rate=0.0), r"loss.sample_rate must be in \(0, 1\]"),
        (dict(sample_rate=1.5), r"loss.sample_rate must be in \(0, 1\]"),
    ],
)
def test_bad_settings_are_one_line(kwargs, message):
    args = {"num_classes": 5, "embedding_size": 8, **kwargs}
    with pytest.raises(ConfigError, match=message):
        MarginSoftmaxLoss(**args)


def _numpy_sample(keys: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The classes Partial FC scores: the batch's own, then the largest keys among the others."""
    scores = keys.astype(np.float64) + 2.0 * np.isin(np.arange(len(keys)), labels)
    return np.sort(np.argsort(-scores, kind="stable")[:k])


@pytest.mark.parametrize("name", list(CASES))
def test_partial_fc_is_the_formula_over_the_sampled_classes(name):
    """At sample_rate 0.3 of 40 classes with a batch of 12 (12 centres a step): value and both gradients equal the
    oracle's on the sampled centres alone (the others get no gradient)."""
    make, m = CASES[name]
    rng = np.random.default_rng(11)
    emb, labels = rng.normal(size=(12, 16)), rng.choice(40, 12)
    cell = make(40, 16, sample_rate=0.3, seed=2)
    assert sampled_count(40, 0.3, 12) == 12
    (keys,) = cell.step_inputs(5)
    index = _numpy_sample(keys.asnumpy(), labels, 12)
    w = cell.weight.asnumpy()
    value, g_emb, g_weight, _ = ours(cell, emb.astype(np.float32), labels, keys)
    remap = np.searchsorted(index, labels)
    o_value, o_emb, o_weight = oracle(emb, w[index], remap, m["s"], m["m1"], m["m2"], m["m3"])
    assert value == pytest.approx(o_value, abs=1e-5 * max(1.0, abs(o_value)))
    np.testing.assert_allclose(g_emb, o_emb, atol=1e-5 * max(1.0, np.abs(o_emb).max()), rtol=0)
    np.testing.assert_allclose(g_weight[index], o_weight, atol=1e-5 * max(1.0, np.abs(o_weight).max()), rtol=0)
    assert not np.delete(g_weight, index, axis=0).any()


def test_partial_fc_always_samples_every_positive_class():
    """500 steps of random batches (repeated labels included) over 1000 classes at rate 0.05: every label's class is
    among the sampled, each sampled once, the one-hot names it, and the keys are those of the step alone."""
    rng = np.random.default_rng(0)
    k = sampled_count(1000, 0.05, 32)
    assert k == 50
    for step in range(500):
        labels = rng.choice(1000, 32) if step % 2 else np.repeat(rng.choice(1000, 8), 4)
        keys = sample_keys(3, step, 1000)
        ids = ms.Tensor(np.arange(1000, dtype=np.int32))
        index = sample_classes(ms.Tensor(labels, ms.int32), ids, keys, k).asnumpy()
        onehot = (labels[:, None] == index[None, :]).astype(np.float32)
        assert len(set(index.tolist())) == k and set(labels.tolist()) <= set(index.tolist())
        np.testing.assert_array_equal(index[onehot.argmax(1)], labels)
        assert (onehot.sum(1) == 1).all()
        assert sorted(index.tolist()) == _numpy_sample(keys.asnumpy(), labels, k).tolist()
    np.testing.assert_array_equal(sample_keys(3, 7, 1000).asnumpy(), sample_keys(3, 7, 1000).asnumpy())


# the first case in the default suite, the others (compiling as long) in the slow one
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow if i else ()) for i, n in enumerate(CASES)])
def test_partial_fc_sampling_every_class_is_the_full_loss(name):
    """sample_rate = 1 is the full softmax (no keys, the same graph); a rate whose sample is every class gives the
    same value and gradients up to float32 summation order (the sampled columns come in the keys' order)."""
    make, _ = CASES[name]
    rng = np.random.default_rng(4)
    emb, labels = rng.normal(size=(12, 16)).astype(np.float32), rng.choice(10, 12)
    full = make(10, 16, seed=1)
    assert full.step_inputs(0) == ()
    sampled = make(10, 16, sample_rate=0.5, seed=1)  # 5 classes, but a batch of 12 needs room: all 10
    assert sampled_count(10, 0.5, 12) == 10
    a, b = ours(full, emb, labels), ours(sampled, emb, labels, *sampled.step_inputs(9))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6 * max(1.0, np.abs(y).max()), rtol=0)
