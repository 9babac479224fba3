"""Is run A better than run B on the same pairs, or is the difference noise? McNemar's exact test on per-pair decisions.

Each run decides every pair with its own threshold for that pair's fold (the threshold the k-fold protocol chose on
the other folds, so the decisions are exactly those its accuracy counts). Pairs both runs decide alike say nothing;
of the `n` pairs where they disagree, `b` are right only in A and `c` only in B. With no real difference, `b` is
Binomial(n, 1/2); the two-sided p-value is the probability of a split at least as uneven.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

ALPHA = 0.05


def decisions(scores: pd.DataFrame, fold_thresholds: list[float]) -> np.ndarray:
    """Per pair (fold order): is the run's decision right? Same person when distance <= its fold's threshold."""
    t = np.asarray(fold_thresholds, dtype=np.float64)[scores["fold"].to_numpy()]
    accepted = scores["distance"].to_numpy(np.float64) <= t
    return accepted == scores["same"].to_numpy(bool)


def binomial_two_sided(k: int, n: int) -> float:
    """P(X <= min(k, n-k)) + P(X >= max(k, n-k)) for X ~ Binomial(n, 1/2), at most 1; summed in log space (no
    underflow for the tens of thousands of pairs a benchmark can hold; relative error ~1e-12)."""
    if n == 0:
        return 1.0
    low = min(k, n - k)
    if 2 * low == n:
        return 1.0
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(low + 1)]
    top = max(logs)
    log_tail = top + math.log(math.fsum(math.exp(v - top) for v in logs))
    return min(1.0, math.exp(math.log(2.0) + log_tail - n * math.log(2.0)))


@dataclass
class McNemar:
    only_a: int  # pairs A decides right and B wrong
    only_b: int
    p_value: float

    @property
    def verdict(self) -> str:
        """Said of run B against run A (the best): which decides more pairs right, and whether that is noise."""
        if self.only_a == self.only_b == 0:
            return "no difference (identical decisions)"
        if self.p_value >= ALPHA:
            return f"no significant difference (p={self.p_value:.3g})"
        better = "worse" if self.only_a > self.only_b else "better on these pairs"
        return f"significantly {better} (p={self.p_value:.3g}; {self.only_a} vs {self.only_b} pairs)"


def mcnemar(right_a: np.ndarray, right_b: np.ndarray) -> McNemar:
    """McNemar's exact test of two runs' per-pair correctness (same pairs, same order)."""
    right_a, right_b = np.asarray(right_a, bool), np.asarray(right_b, bool)
    if right_a.shape != right_b.shape:
        raise ValueError(f"decisions on {right_a.size} and {right_b.size} pairs: not the same pairs")
    b = int((right_a & ~right_b).sum())
    c = int((~right_a & right_b).sum())
    return McNemar(b, c, binomial_two_sided(b, b + c))
