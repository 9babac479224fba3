"""Face verification metrics in plain numpy: k-fold accuracy with exact threshold search, VAL@FAR, ROC, AUC, EER.

Convention: a pair is predicted "same" when its distance is <= the threshold. With `higher_is_closer=True` the
inputs are similarities and the rule becomes similarity >= threshold; thresholds are reported in input units.
Folds are consecutive blocks of the input order (the order of LFW's `pairs.txt` gives its official folds), or
each pair's fold given explicitly (`folds`: what a pair set with some pairs left out keeps).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


def consecutive_folds(n: int, n_folds: int) -> np.ndarray:
    """Each of `n` pairs' fold when the folds are `n_folds` consecutive blocks of their order, cut as
    `np.array_split` cuts (the first `n % n_folds` blocks one longer)."""
    return np.repeat(np.arange(n_folds), [len(b) for b in np.array_split(np.arange(n), n_folds)])


def _counts(d: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct distances u (ascending) and, for each, #same and #different pairs with distance <= u."""
    order = np.argsort(d, kind="stable")
    ds, ss = d[order], same[order]
    last = np.r_[ds[1:] != ds[:-1], True]  # last occurrence of each distinct value
    tp = np.cumsum(ss)[last]
    fp = np.cumsum(~ss)[last]
    return ds[last], tp, fp


def _cut(u: np.ndarray, i: int) -> float:
    """A threshold that accepts exactly the distances <= u[i]; i = -1 accepts none."""
    if i < 0:
        return float(np.nextafter(u[0], -np.inf))
    return float(u[i]) if i == len(u) - 1 else float((u[i] + u[i + 1]) / 2)


def best_threshold(d: np.ndarray, same: np.ndarray) -> float:
    """Threshold maximising accuracy, searched exactly over every distinct distance (first best on ties)."""
    u, tp, fp = _counts(d, same)
    n_diff = int((~same).sum())
    acc = np.r_[n_diff, tp + (n_diff - fp)]  # index 0: accept nothing
    return _cut(u, int(np.argmax(acc)) - 1)


def threshold_at_far(d: np.ndarray, same: np.ndarray, far: float) -> float:
    """Largest threshold whose false-accept rate on (d, same) is <= `far`."""
    u, _, fp = _counts(d, same)
    allowed = far * int((~same).sum())
    ok = np.flatnonzero(fp <= allowed + 1e-9)
    return _cut(u, int(ok[-1]) if len(ok) else -1)


def accuracy(d: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(((d <= threshold) == same).mean())


def roc_curve(d: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct distance, starting from (0, 0) (accept nothing)."""
    u, tp, fp = _counts(d, same)
    n_same, n_diff = max(int(same.sum()), 1), max(int((~same).sum()), 1)
    return np.r_[0.0, fp / n_diff], np.r_[0.0, tp / n_same], np.r_[np.nextafter(u[0], -np.inf), u]


def auc_score(d: np.ndarray, same: np.ndarray) -> float:
    """P(d_same < d_diff) + P(d_same = d_diff) / 2 (Mann-Whitney U with average ranks for ties)."""
    n_same, n_diff = int(same.sum()), int((~same).sum())
    if n_same == 0 or n_diff == 0:
        return float("nan")
    _, inverse, counts = np.unique(d, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    avg_rank = (ends - (counts - 1) / 2.0)[inverse]  # 1-based average ranks, ascending distance
    u_diff = avg_rank[~same].sum() - n_diff * (n_diff + 1) / 2.0
    return float(u_diff / (n_same * n_diff))


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Rate where false accepts equal false rejects, linearly interpolated between ROC points."""
    gap = (1.0 - tpr) - fpr  # decreasing from 1 to <= 0 along the curve
    i = int(np.argmax(gap <= 0))
    if i == 0:
        return float(fpr[0])
    g0, g1 = gap[i - 1], gap[i]
    t = g0 / (g0 - g1) if g0 != g1 else 0.0
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


@dataclass
class VerificationReport:
    """Everything `verification_report` computes; `to_dict()` for JSON, `scalars()` for metric loggers."""

    n_pairs: int
    n_folds: int
    accuracy_mean: float
    accuracy_std: float
    fold_accuracies: list[float]
    threshold_mean: float
    threshold_std: float
    fold_thresholds: list[float]
    val_at_far: dict[float, dict[str, float]]
    auc: float
    eer: float
    roc: dict[str, list[float]] = field(repr=False)
    far_at_threshold: float = float("nan")  # over all pairs, at threshold_mean: what the threshold means in use
    tar_at_threshold: float = float("nan")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["val_at_far"] = {f"{k:g}": v for k, v in self.val_at_far.items()}
        return out

    def table(self) -> str:
        """The metrics as an aligned text table."""
        lines = [
            f"pairs        {self.n_pairs} in {self.n_folds} folds",
            f"accuracy     {self.accuracy_mean:.4f} +- {self.accuracy_std:.4f}",
            f"threshold    {self.threshold_mean:.4f} +- {self.threshold_std:.4f}",
            f"AUC          {self.auc:.4f}",
            f"EER          {self.eer:.4f}",
            f"at threshold TAR {self.tar_at_threshold:.4f}, FAR {self.far_at_threshold:.4f} (all pairs)",
        ]
        for far, v in self.val_at_far.items():
            lines.append(f"VAL@FAR={far:g}  {v['val_mean']:.4f} +- {v['val_std']:.4f} (FAR {v['far_mean']:.5f})")
        return "\n".join(lines)

    def scalars(self) -> dict[str, float]:
        out = {
            "pairs": self.n_pairs,
            "accuracy": self.accuracy_mean,
            "accuracy_std": self.accuracy_std,
            "threshold": self.threshold_mean,
            "threshold_std": self.threshold_std,
            "auc": self.auc,
            "eer": self.eer,
            "far_at_threshold": self.far_at_threshold,
            "tar_at_threshold": self.tar_at_threshold,
        }
        for far, v in self.val_at_far.items():
            out[f"val_at_far_{far:g}"] = v["val_mean"]
            out[f"val_at_far_{far:g}_std"] = v["val_std"]
        return out


def verification_report(
    distances: np.ndarray,
    issame: np.ndarray,
    n_folds: int = 10,
    far_targets: tuple[float, ...] = (1e-3,),
    higher_is_closer: bool = False,
    folds: np.ndarray | None = None,
) -> VerificationReport:
    """k-fold verification protocol (LFW View 2 style).

    `folds`: each pair's fold in 0..n_folds-1 (every fold holding a pair); default: `n_folds` consecutive blocks of
    the input order, as `np.array_split` cuts them.

    For each fold, the accuracy threshold is chosen on the other folds by exact search over all distinct
    distances and applied to the held-out fold; likewise the VAL@FAR threshold is the largest one whose FAR on
    the other folds is <= the target, and VAL and FAR are then measured on the held-out fold. AUC, EER and the
    ROC curve use all pairs at once.
    """
    d = np.asarray(distances, dtype=np.float64).ravel()
    same = np.asarray(issame).astype(bool).ravel()
    if d.shape != same.shape:
        raise ValueError(f"distances ({d.size}) and issame ({same.size}) differ in length")
    if not np.isfinite(d).all():
        raise ValueError(f"{int((~np.isfinite(d)).sum())} distances are NaN or infinite")
    if not 2 <= n_folds <= len(d):
        raise ValueError(f"n_folds must be between 2 and the number of pairs ({len(d)}), got {n_folds}")
    if same.all() or not same.any():
        raise ValueError("verification needs both same and different pairs")
    folds = consecutive_folds(len(d), n_folds) if folds is None else np.asarray(folds).ravel()
    if folds.shape != d.shape or not np.issubdtype(folds.dtype, np.integer):
        raise ValueError(f"folds must be {d.size} integer labels, one per pair; got {folds.size} of {folds.dtype}")
    sizes = np.bincount(folds, minlength=n_folds) if folds.min() >= 0 else np.zeros(0)
    if len(sizes) != n_folds or not sizes.all():
        raise ValueError(f"folds must label every pair with one of 0..{n_folds - 1}, each fold holding a pair")
    sign = -1.0 if higher_is_closer else 1.0
    d = sign * d
    accs, thresholds = [], []
    vals: dict[float, list[tuple[float, float]]] = {far: [] for far in far_targets}
    for k in range(n_folds):
        test, train = np.flatnonzero(folds == k), np.flatnonzero(folds != k)
        t = best_threshold(d[train], same[train])
        thresholds.append(sign * t)
        accs.append(accuracy(d[test], same[test], t))
        for far in far_targets:
            tf = threshold_at_far(d[train], same[train], far)
            accepted = d[test] <= tf
            s = same[test]
            vals[far].append((accepted[s].mean() if s.any() else np.nan, accepted[~s].mean() if (~s).any() else np.nan))
    fpr, tpr, roc_t = roc_curve(d, same)
    accepted = d <= sign * float(np.mean(thresholds))  # d is signed here, thresholds are not
    val_at_far = {
        far: {
            "val_mean": float(np.nanmean([v for v, _ in r])),
            "val_std": float(np.nanstd([v for v, _ in r])),
            "far_mean": float(np.nanmean([f for _, f in r])),
        }
        for far, r in vals.items()
    }
    return VerificationReport(
        n_pairs=len(d),
        n_folds=n_folds,
        accuracy_mean=float(np.mean(accs)),
        accuracy_std=float(np.std(accs)),
        fold_accuracies=[float(a) for a in accs],
        threshold_mean=float(np.mean(thresholds)),
        threshold_std=float(np.std(thresholds)),
        fold_thresholds=[float(t) for t in thresholds],
        val_at_far=val_at_far,
        auc=auc_score(d, same),
        eer=equal_error_rate(fpr, tpr),
        roc={"fpr": fpr.tolist(), "tpr": tpr.tolist(), "threshold": (sign * roc_t).tolist()},
        far_at_threshold=float(np.mean(accepted[~same])),
        tar_at_threshold=float(np.mean(accepted[same])),
    )
