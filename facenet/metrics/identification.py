"""Identification metrics in plain numpy: closed-set CMC, open-set DIR (detection and identification rate,
= 1 - FNIR, or TPIR at rank k) at a false positive identification rate (FPIR), and the DET curve between them.

Inputs: `scores` (P, G), the similarity of each of P probes to each of G enrolled identities (higher is closer: the
cosine of unit embeddings, or of pooled templates), and `truth` (P,), the column of each probe's own identity, or
-1 for a probe whose person is not enrolled (a non-mated probe).

Conventions, written down because papers differ in them:
- A mated probe's rank is the number of identities scoring at least as high as its own one (its own included):
  an identity tied with the right one counts against it, so a tie is never a correct rank-1 answer.
- A probe is accepted at threshold t when its score is >= t: the own identity's score for DIR, the best score
  for FPIR. FPIR(t) = non-mated probes whose best score >= t / non-mated probes; DIR(t, k) = mated probes whose
  rank <= k and whose own score >= t / mated probes (NIST IR 8238's TPIR = 1 - FNIR at rank k).
- The threshold of an FPIR target f: every threshold above the highest non-mated best score that must be refused,
  and up to the next higher distinct one (which stays accepted), gives the same FPIR <= f; the cut is midway
  between the two, as the verification thresholds are cut (`facenet.metrics.verification`), so a threshold read
  off one set of impostors keeps a margin on the next. A mated score inside the lower half of that gap is
  therefore not accepted: a tool that cuts at the refused score itself reports a DIR higher by the mated scores
  that fall in that half-gap. A target below 1 / (non-mated probes) is refused: the data cannot measure it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facenet.errors import ConfigError


def _checked(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=np.int64)
    if scores.ndim != 2 or truth.shape != (scores.shape[0],):
        raise ValueError(f"scores must be (probes, identities) and truth (probes,), got {scores.shape}, {truth.shape}")
    if truth.size and (truth.min() < -1 or truth.max() >= scores.shape[1]):
        raise ValueError(f"truth holds identity columns 0..{scores.shape[1] - 1} or -1 (not enrolled)")
    return scores, truth


def ranks(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(mated probes,) rank of each mated probe's own identity (ties count against it)."""
    scores, truth = _checked(scores, truth)
    mated = truth >= 0
    own = scores[mated, truth[mated]]
    return (scores[mated] >= own[:, None]).sum(axis=1)


def cmc(scores: np.ndarray, truth: np.ndarray, max_rank: int) -> np.ndarray:
    """(max_rank,) closed-set identification rate at ranks 1..max_rank over the mated probes."""
    r = ranks(scores, truth)
    if not r.size:
        raise ValueError("no mated probe: the CMC is undefined")
    return np.array([(r <= k).mean() for k in range(1, max_rank + 1)])


def fpir_threshold(nonmated_best: np.ndarray, fpir: float) -> float:
    """The threshold whose FPIR over these non-mated best scores is <= `fpir`, cut midway (see the module's
    conventions)."""
    best = np.sort(np.asarray(nonmated_best, dtype=np.float64))
    n = best.size
    if not 0 < fpir < 1:
        raise ConfigError(f"an FPIR target lies in (0, 1), got {fpir:g}")
    if n == 0 or fpir * n < 1 - 1e-9:
        raise ConfigError(
            f"FPIR {fpir:g} needs at least {int(np.ceil(1 / fpir - 1e-9))} non-mated probes; this protocol has {n} "
            "(drop the target, or never enrol more people)"
        )
    allowed = int(np.floor(fpir * n + 1e-9))
    distinct = np.unique(best)[::-1]  # descending
    accepted = n - np.searchsorted(best, distinct, side="left")  # non-mated probes with best score >= each value
    kept = int((accepted <= allowed).sum())  # the top `kept` distinct values may stay accepted
    if kept == 0:
        return float(np.nextafter(distinct[0], np.inf))
    return float((distinct[kept - 1] + distinct[kept]) / 2)


def open_set(
    scores: np.ndarray, truth: np.ndarray, fpir_targets: Sequence[float], rank: int = 1
) -> dict[float, tuple[float, float]]:
    """{FPIR target: (DIR at rank `rank`, the threshold)} over the mated and non-mated probes of (scores, truth)."""
    scores, truth = _checked(scores, truth)
    mated = truth >= 0
    if not mated.any():
        raise ValueError("no mated probe: DIR is undefined")
    own = scores[mated, truth[mated]]
    found = ranks(scores, truth) <= rank
    nonmated_best = scores[~mated].max(axis=1) if scores.shape[1] else np.zeros(0)
    out = {}
    for f in fpir_targets:
        t = fpir_threshold(nonmated_best, f)
        out[float(f)] = (float((found & (own >= t)).mean()), t)
    return out


def det_curve(scores: np.ndarray, truth: np.ndarray, rank: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpir, fnir, thresholds) at every distinct non-mated best score (accepting it), and above the highest
    (accepting no non-mated probe), in ascending FPIR; FNIR = 1 - DIR at rank `rank`."""
    scores, truth = _checked(scores, truth)
    mated = truth >= 0
    own = scores[mated, truth[mated]]
    found = ranks(scores, truth) <= rank
    best = np.sort(scores[~mated].max(axis=1))
    distinct = np.unique(best)[::-1]
    thresholds = np.r_[np.nextafter(distinct[0], np.inf), distinct] if distinct.size else np.array([-np.inf])
    fpir = (best.size - np.searchsorted(best, thresholds, side="left")) / max(best.size, 1)
    identified = np.sort(own[found])  # own scores of the probes found within `rank`
    dir_ = (identified.size - np.searchsorted(identified, thresholds, side="left")) / max(own.size, 1)
    return fpir, 1.0 - dir_, thresholds
