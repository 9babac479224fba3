"""Softmax loss against a NumPy oracle: cross-entropy on a linear classifier, center loss (value, gradient and
davidsandberg's centre update, repeated classes included) and the prelogits p-norm penalty; bad settings."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest

from facenet.errors import ConfigError
from facenet.losses.softmax import NORM_EPS, SoftmaxLoss

# conf/loss/softmax.yaml's settings: the cross-entropy alone, no center loss, no norm penalty
PLAIN = {"center_weight": 0.0, "center_alpha": 0.95, "prelogits_norm_weight": 0.0, "prelogits_norm_p": 1.0}


def oracle(f, w, b, labels, centers=None, center_weight=0.0, alpha=0.95, norm_weight=0.0, p=1.0):
    """(loss, d/df, d/dW, d/db, centres after the step) in float64."""
    f, w, b = f.astype(np.float64), w.astype(np.float64), b.astype(np.float64)
    n, d = f.shape
    logits = f @ w.T + b
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    onehot = np.eye(len(w))[labels]
    loss = -logp[np.arange(n), labels].mean()
    d_logits = (np.exp(logp) - onehot) / n
    d_f, d_w, d_b = d_logits @ w, d_logits.T @ f, d_logits.sum(0)
    new_centers = None
    if centers is not None:
        own = centers[labels].astype(np.float64)
        loss += center_weight * ((f - own) ** 2).mean()
        d_f += center_weight * 2 * (f - own) / (n * d)
        new_centers = centers.astype(np.float64).copy()
        for i, c in enumerate(labels):  # every sample moves its class's centre (davidsandberg's scatter_sub)
            new_centers[c] -= (1 - alpha) * (own[i] - f[i])
    if norm_weight:
        a = np.abs(f) + NORM_EPS
        norms = (a**p).sum(1) ** (1 / p)
        loss += norm_weight * norms.mean()
        d_f += norm_weight * (a ** (p - 1) * np.sign(f) * norms[:, None] ** (1 - p)) / n
    return loss, d_f, d_w, d_b, new_centers


def ours(cell: SoftmaxLoss, f: np.ndarray, labels: np.ndarray):
    def fn(x):
        return cell(x, ms.Tensor(labels, ms.int32))[0]

    value, (g_f, (g_w, g_b)) = ms.value_and_grad(fn, 0, [cell.weight, cell.bias])(ms.Tensor(f.astype(np.float32)))
    return float(value.asnumpy()), g_f.asnumpy(), g_w.asnumpy(), g_b.asnumpy()


def _close(got, want):
    np.testing.assert_allclose(got, want, atol=1e-5 * max(1.0, np.abs(want).max()), rtol=0)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"center_weight": 0.5},
        {"prelogits_norm_weight": 0.2, "prelogits_norm_p": 1.0},
        {"center_weight": 0.1, "center_alpha": 0.6, "prelogits_norm_weight": 0.05, "prelogits_norm_p": 2.0},
    ],
)
def test_value_gradients_and_centre_update_equal_the_oracle(kw):
    rng = np.random.default_rng(1)
    f, labels = rng.normal(size=(10, 8)) * 3, np.array([0, 1, 1, 4, 2, 2, 2, 5, 0, 3])  # classes repeat
    cell = SoftmaxLoss(6, 8, seed=4, **{**PLAIN, **kw})
    cell.bias.set_data(ms.Tensor(rng.normal(size=6).astype(np.float32)))
    centers = None
    if kw.get("center_weight"):
        centers = rng.normal(size=(6, 8)).astype(np.float32)
        cell.centers.set_data(ms.Tensor(centers))
    settings = [{**PLAIN, **kw}[k] for k in PLAIN]  # in the oracle's order
    want = oracle(f, cell.weight.asnumpy(), cell.bias.asnumpy(), labels, centers, *settings)
    value, g_f, g_w, g_b = ours(cell, f, labels)
    assert value == pytest.approx(want[0], abs=1e-5 * max(1.0, abs(want[0])))
    for got, expected in zip((g_f, g_w, g_b), want[1:4], strict=True):
        _close(got, expected)
    if centers is not None:  # the one forward-and-backward moved the centres once
        _close(cell.centers.asnumpy(), want[4])


def test_telemetry_names_what_is_used_and_is_finite():
    rng = np.random.default_rng(2)
    f, labels = rng.normal(size=(6, 4)).astype(np.float32), np.array([0, 0, 1, 1, 2, 2])
    plain = SoftmaxLoss(3, 4, **PLAIN)
    assert plain.TELEMETRY == ("train_accuracy", "cross_entropy", "embedding_norm")
    both = SoftmaxLoss(3, 4, **{**PLAIN, "center_weight": 1.0, "prelogits_norm_weight": 1.0})
    assert both.TELEMETRY == ("train_accuracy", "cross_entropy", "center_loss", "prelogits_norm", "embedding_norm")
    loss, telemetry = (x.asnumpy() for x in both(ms.Tensor(f), ms.Tensor(labels, ms.int32)))
    assert telemetry.shape == (5,) and np.isfinite(telemetry).all()
    want = oracle(f, both.weight.asnumpy(), both.bias.asnumpy(), labels)[0]
    assert telemetry[1] == pytest.approx(want, abs=1e-5)  # the cross-entropy alone
    assert telemetry[2] == pytest.approx((f**2).mean(), abs=1e-5)  # centres start at zero
    assert telemetry[4] == pytest.approx(np.linalg.norm(f, axis=1).mean(), abs=1e-5)
    logits = f @ both.weight.asnumpy().T
    assert telemetry[0] == pytest.approx((logits.argmax(1) == labels).mean())
    assert float(loss) == pytest.approx(float(telemetry[1] + telemetry[2] + telemetry[3]), abs=1e-5)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"num_classes": 1}, "at least 2 identities"),
        ({"center_weight": -1.0}, "loss.center_weight=-1.0"),
        ({"center_alpha": 1.5}, "loss.center_alpha=1.5"),
        ({"prelogits_norm_weight": -0.1}, "loss.prelogits_norm_weight"),
        ({"prelogits_norm_p": 0.0}, "loss.prelogits_norm_p=0.0"),
    ],
)
def test_bad_settings_are_one_line(kw, message):
    args = {"num_classes": 4, "embedding_size": 8, **PLAIN, **kw}
    with pytest.raises(ConfigError, match=message) as err:
        SoftmaxLoss(**args)
    assert "\n" not in str(err.value)
