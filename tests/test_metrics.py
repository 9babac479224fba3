"""Verification metrics against brute-force computations and data where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from facenet.metrics import verification_report
from facenet.metrics.verification import auc_score, best_threshold, equal_error_rate, roc_curve, threshold_at_far


def random_pairs(n=400, seed=0, sep=1.0, ties=False):
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.5
    d = rng.normal(size=n) + np.where(same, 0.0, sep)
    if ties:
        d = np.round(d, 1)  # many equal distances
    return d, same


def brute_best_accuracy(d, same):
    candidates = np.r_[d.min() - 1, np.unique(d)]
    return max(((d <= t) == same).mean() for t in candidates)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_best_threshold_is_exact_optimum(seed, ties):
    d, same = random_pairs(seed=seed, ties=ties)
    t = best_threshold(d, same)
    assert ((d <= t) == same).mean() == pytest.approx(brute_best_accuracy(d, same))


def oracle_cut(values, i):
    """Documented threshold for "accept values <= values[i]": midpoint to the next distinct value (i=-1: none)."""
    if i < 0:
        return values[0] - 1e-9
    return values[i] if i == len(values) - 1 else (values[i] + values[i + 1]) / 2


def oracle_fold(d, same, test, far):
    """Brute force for one fold: loops over every distinct training distance."""
    dt, st = d[~test], same[~test]
    values = sorted(set(dt.tolist()))
    accs = [np.mean(~st)] + [np.mean((dt <= v) == st) for v in values]
    t_acc = oracle_cut(values, int(np.argmax(accs)) - 1)
    ok = [i for i, v in enumerate(values) if np.sum(dt[~st] <= v) <= far * np.sum(~st)]
    t_far = oracle_cut(values, ok[-1] if ok else -1)
    dv, sv = d[test], same[test]
    return np.mean((dv <= t_acc) == sv), t_acc, np.mean(dv[sv] <= t_far), np.mean(dv[~sv] <= t_far)


@pytest.mark.parametrize("ties", [False, True])
def test_kfold_protocol_matches_brute_force(ties):
    d, same = random_pairs(n=600, seed=5, ties=ties)
    far = 0.02
    rep = verification_report(d, same, n_folds=10, far_targets=(far,))
    rows = []
    for k in range(10):
        test = np.zeros(600, bool)
        test[k * 60 : (k + 1) * 60] = True
        rows.append(oracle_fold(d, same, test, far))
    acc, thr, val, fa = (np.array(c) for c in zip(*rows, strict=True))
    assert rep.fold_accuracies == pytest.approx(acc.tolist())
    assert rep.fold_thresholds == pytest.approx(thr.tolist())
    assert (rep.accuracy_mean, rep.accuracy_std) == pytest.approx((acc.mean(), acc.std()))
    assert (rep.threshold_mean, rep.threshold_std) == pytest.approx((thr.mean(), thr.std()))
    v = rep.val_at_far[far]
    assert (v["val_mean"], v["val_std"], v["far_mean"]) == pytest.approx((val.mean(), val.std(), fa.mean()))
    # what the mean threshold means in use, over all pairs (counted one by one)
    accepted = [di <= thr.mean() for di in d]
    far_all = sum(a for a, s in zip(accepted, same, strict=True) if not s) / (~same).sum()
    tar_all = sum(a for a, s in zip(accepted, same, strict=True) if s) / same.sum()
    assert (rep.far_at_threshold, rep.tar_at_threshold) == pytest.approx((far_all, tar_all))


def test_auc_against_pairwise_counting_and_trapezoid():
    for ties in (False, True):
        d, same = random_pairs(n=300, seed=3, ties=ties)
        ds, dd = d[same], d[~same]
        brute = ((ds[:, None] < dd[None, :]).sum() + 0.5 * (ds[:, None] == dd[None, :]).sum()) / (len(ds) * len(dd))
        assert auc_score(d, same) == pytest.approx(brute)
        fpr, tpr, _ = roc_curve(d, same)
        assert np.trapezoid(tpr, fpr) == pytest.approx(brute)


def test_roc_brute_force():
    d, same = random_pairs(n=200, seed=9, ties=True)
    fpr, tpr, thr = roc_curve(d, same)
    for f, t, th in zip(fpr, tpr, thr, strict=True):
        assert f == pytest.approx((d[~same] <= th).mean())
        assert t == pytest.approx((d[same] <= th).mean())


def test_known_answers():
    same = np.array([True] * 5 + [False] * 5)
    separable = np.r_[np.linspace(0, 1, 5), np.linspace(2, 3, 5)]
    rep = verification_report(separable, same, n_folds=5)
    assert rep.accuracy_mean == 1.0 and rep.auc == 1.0 and rep.eer == 0.0
    reversed_ = verification_report(-separable, same, n_folds=5)
    assert reversed_.auc == 0.0 and reversed_.eer == 1.0
    # EER by hand: same at 1,2,3,4 ; different at 2.5, 3.5, 5, 6 -> FAR = FRR = 0.25 between 3 and 3.5... check
    d = np.array([1, 2, 3, 4, 2.5, 3.5, 5, 6], float)
    s = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    fpr, tpr, _ = roc_curve(d, s)
    assert equal_error_rate(fpr, tpr) == pytest.approx(0.25)


def test_similarities_mirror_distances():
    d, same = random_pairs(seed=2)
    a = verification_report(d, same)
    b = verification_report(-d, same, higher_is_closer=True)
    assert a.accuracy_mean == b.accuracy_mean and a.auc == pytest.approx(b.auc)
    assert (a.far_at_threshold, a.tar_at_threshold) == pytest.approx((b.far_at_threshold, b.tar_at_threshold))
    assert a.threshold_mean == pytest.approx(-b.threshold_mean)


def test_val_at_far_respects_the_target_on_training_folds():
    d, same = random_pairs(n=2000, seed=4, sep=3.0)
    for far in (0.001, 0.01, 0.1):
        t = threshold_at_far(d, same, far)
        assert np.mean(d[~same] <= t) <= far  # never above the target...
        above = d[~same][d[~same] > t].min()
        assert np.mean(d[~same] <= above) > far  # ...and admitting the next different pair would exceed it


def test_bad_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        verification_report(np.zeros(4), np.zeros(3, bool))
    with pytest.raises(ValueError, match="NaN"):
        verification_report(np.array([0.0, np.nan, 1, 2]), np.array([1, 0, 1, 0], bool), n_folds=2)
    with pytest.raises(ValueError, match="both same and different"):
        verification_report(np.arange(4.0), np.ones(4, bool), n_folds=2)


def test_hardest_pairs_are_the_worst_errors():
    from facenet.evaluation.figures import hardest_pairs

    d = np.array([0.1, 0.9, 0.4, 0.45, 1.2, 0.2, 0.55])
    same = np.array([1, 1, 0, 0, 1, 0, 1], bool)
    fa, fr = hardest_pairs(d, same, threshold=0.5, k=2)
    assert fa.tolist() == [5, 2]  # different pairs accepted, closest first
    assert fr.tolist() == [4, 1]  # same pairs rejected, farthest first


def test_report_table_lists_every_metric():
    d, same = random_pairs(seed=6)
    rep = verification_report(d, same, far_targets=(0.01, 0.1))
    table = rep.table()
    for text in (
        f"{rep.accuracy_mean:.4f} +- {rep.accuracy_std:.4f}",
        f"AUC          {rep.auc:.4f}",
        "VAL@FAR=0.01",
        "VAL@FAR=0.1",
        f"EER          {rep.eer:.4f}",
        "400 in 10 folds",
    ):
        assert text in table
