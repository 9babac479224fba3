"""Identification metrics (CMC, DIR at FPIR, the DET curve) against brute-force loops and a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest

from facenet.errors import ConfigError
from facenet.metrics.identification import cmc, det_curve, fpir_threshold, open_set, ranks


def trial(seed: int, probes: int = 60, identities: int = 12, ties: bool = False):
    """Scores of probes against enrolled identities; a third of the probes are not enrolled (truth -1)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, identities, probes)
    truth[rng.random(probes) < 1 / 3] = -1
    scores = rng.normal(0.0, 1.0, (probes, identities))
    mated = truth >= 0
    scores[mated, truth[mated]] += 1.5
    if ties:
        scores = np.round(scores, 1)  # many equal scores, own ones tied with others too
    return scores, truth


def brute_rank(row, own_col):
    return sum(1 for g in range(len(row)) if row[g] >= row[own_col])


def brute_open_set(scores, truth, fpir, rank):
    """The lowest threshold, among all cuts between distinct non-mated best scores, whose FPIR <= fpir; then DIR."""
    nonmated = [max(scores[p]) for p in range(len(truth)) if truth[p] < 0]
    values = sorted(set(nonmated))
    cuts = [values[-1] + 1.0] + [(values[i] + values[i + 1]) / 2 for i in range(len(values) - 1)] + [values[0] - 1]
    best_t = None
    for t in sorted(cuts, reverse=True):  # descending thresholds: keep the lowest that holds the target
        if sum(1 for s in nonmated if s >= t) / len(nonmated) <= fpir + 1e-12:
            best_t = t
    mated = [p for p in range(len(truth)) if truth[p] >= 0]
    hits = sum(1 for p in mated if brute_rank(scores[p], truth[p]) <= rank and scores[p][truth[p]] >= best_t)
    return hits / len(mated), best_t


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_ranks_and_cmc_equal_brute_force(seed, ties):
    scores, truth = trial(seed, ties=ties)
    mated = np.flatnonzero(truth >= 0)
    want = [brute_rank(scores[p], truth[p]) for p in mated]
    assert ranks(scores, truth).tolist() == want
    assert cmc(scores, truth, 5).tolist() == [np.mean([r <= k for r in want]) for k in range(1, 6)]


@pytest.mark.parametrize("rank", [1, 5])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_dir_at_fpir_equals_brute_force(seed, ties, rank):
    scores, truth = trial(seed, ties=ties)
    n_nonmated = int((truth < 0).sum())
    targets = [1 / n_nonmated, 0.1, 0.25, 0.5]
    got = open_set(scores, truth, targets, rank)
    for f in targets:
        want_dir, want_t = brute_open_set(scores, truth, f, rank)
        assert got[f][0] == pytest.approx(want_dir, abs=1e-12)
        nonmated_best = scores[truth < 0].max(axis=1)
        assert (nonmated_best >= got[f][1]).mean() <= f + 1e-12  # the threshold holds the target
        if want_t < nonmated_best.max():  # an ordinary cut: the same one
            assert got[f][1] == pytest.approx(want_t, abs=1e-12)


def test_a_hand_computed_case_with_ties_and_a_target_between_two_scores():
    # identities A, B, C; probes 0-3 mated, 4-7 not enrolled
    scores = np.array(
        [
            [0.9, 0.1, 0.2],  # A, rank 1, own 0.9
            [0.5, 0.5, 0.1],  # A, tied with B: rank 2
            [0.1, 0.7, 0.3],  # B, rank 1, own 0.7
            [0.2, 0.3, 0.4],  # C, rank 1, own 0.4
            [0.6, 0.1, 0.1],  # non-mated, best 0.6
            [0.3, 0.2, 0.1],  # best 0.3
            [0.1, 0.45, 0.2],  # best 0.45
            [0.2, 0.2, 0.3],  # best 0.3
        ]
    )
    truth = np.array([0, 0, 1, 2, -1, -1, -1, -1])
    assert ranks(scores, truth).tolist() == [1, 2, 1, 1]
    assert cmc(scores, truth, 2).tolist() == [0.75, 1.0]
    # FPIR 0.3 of 4 non-mated probes allows 1 false alarm: 0.6 may stay accepted, 0.45 not: threshold
    # (0.45 + 0.6) / 2 = 0.525; rank-1 own scores >= 0.525: 0.9, 0.7 -> DIR 2/4
    ((dir_, t),) = open_set(scores, truth, [0.3]).values()
    assert t == pytest.approx(0.525) and dir_ == 0.5
    # FPIR 0.5 allows 2, but 0.3 is held by two probes: only 0.6 and 0.45 stay: threshold (0.3 + 0.45) / 2
    ((dir_, t),) = open_set(scores, truth, [0.5]).values()
    assert t == pytest.approx(0.375) and dir_ == 0.75  # 0.9, 0.7, 0.4
    # FPIR 0.25 allows exactly 1: the same cut as 0.3
    assert open_set(scores, truth, [0.25])[0.25] == pytest.approx((0.5, 0.525))
    # DET: thresholds just above 0.6, then 0.6, 0.45, 0.3 (accepting each); found at rank 1: own 0.9, 0.7, 0.4
    fpir, fnir, thresholds = det_curve(scores, truth)
    assert thresholds[1:].tolist() == [0.6, 0.45, 0.3] and thresholds[0] > 0.6
    assert fpir.tolist() == [0.0, 0.25, 0.5, 1.0] and fnir.tolist() == [0.5, 0.5, 0.5, 0.25]


def test_a_target_the_data_cannot_measure_is_refused_in_one_line():
    scores, truth = trial(0)
    n = int((truth < 0).sum())
    with pytest.raises(ConfigError, match=rf"FPIR 0.001 needs at least 1000 non-mated probes; this protocol has {n}"):
        open_set(scores, truth, [1e-3])
    with pytest.raises(ConfigError, match="lies in"):
        fpir_threshold(np.zeros(5), 1.5)


@pytest.mark.parametrize("ties", [False, True])
def test_det_curve_equals_brute_force_at_each_threshold(ties):
    scores, truth = trial(5, ties=ties)
    fpir, fnir, thresholds = det_curve(scores, truth, rank=1)
    nonmated = [max(scores[p]) for p in range(len(truth)) if truth[p] < 0]
    mated = [p for p in range(len(truth)) if truth[p] >= 0]
    assert np.all(np.diff(fpir) >= 0) and fpir[0] == 0.0 and fpir[-1] == 1.0
    for f, n, t in zip(fpir, fnir, thresholds, strict=True):
        assert f == sum(s >= t for s in nonmated) / len(nonmated)
        hits = sum(brute_rank(scores[p], truth[p]) == 1 and scores[p][truth[p]] >= t for p in mated)
        assert n == pytest.approx(1 - hits / len(mated), abs=1e-12)
