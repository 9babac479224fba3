"""Figures of an evaluation: ROC curve, distance histograms, hardest pairs (verification); TAR against FAR
(templates); CMC and DET curves (identification: one or more labelled curves, one model's trials or several
models side by side)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from facenet.metrics import VerificationReport  # noqa: E402


def _roc_figure(
    path: str | Path,
    title: str,
    curves: list[tuple[VerificationReport, str]],
    size=(5, 4.2),
    marks: VerificationReport | None = None,
) -> Path:
    """ROC curves on log-FAR axes, one per (report, legend label); `marks`: that report's VAL@FAR points."""
    fig, ax = plt.subplots(figsize=size, dpi=120)
    for report, label in curves:
        fpr, tpr = np.asarray(report.roc["fpr"]), np.asarray(report.roc["tpr"])
        ax.plot(np.maximum(fpr, 1e-4), tpr, lw=1.6, label=label)
    for far, v in marks.val_at_far.items() if marks is not None else ():
        ax.axvline(far, color="grey", ls=":", lw=1)
        ax.plot([far], [v["val_mean"]], "o", color="C3", label=f"VAL@FAR={far:g}: {v['val_mean']:.4f}")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def roc_plot(report: VerificationReport, path: str | Path, title: str = "") -> Path:
    """ROC on log-FAR axes with AUC, EER and VAL@FAR in the legend."""
    label = f"AUC {report.auc:.4f}, EER {report.eer:.4f}, acc {report.accuracy_mean:.4f}"
    return _roc_figure(path, title or f"ROC ({report.n_pairs} pairs)", [(report, label)], marks=report)


def benchmark_roc_plot(reports: dict[str, VerificationReport], path: str | Path) -> Path:
    """One ROC curve per benchmark on log-FAR axes, each labelled with its accuracy and AUC."""
    curves = [(r, f"{name}: acc {r.accuracy_mean:.4f}, AUC {r.auc:.4f}") for name, r in reports.items()]
    return _roc_figure(path, f"ROC of {len(reports)} benchmarks", curves, size=(5.6, 4.4))


def distance_histogram(distances: np.ndarray, issame: np.ndarray, threshold: float, path: str | Path) -> Path:
    """Same vs different pair distances, with the chosen threshold."""
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    bins = np.linspace(distances.min(), distances.max(), 50)
    ax.hist(distances[issame], bins=bins, alpha=0.6, label="same")
    ax.hist(distances[~issame], bins=bins, alpha=0.6, label="different")
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    ax.set_xlabel("L2 distance")
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def hardest_pairs(
    distances: np.ndarray, issame: np.ndarray, threshold: float, k: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the k worst false accepts (different pairs, smallest distances <= threshold) and false rejects
    (same pairs, largest distances > threshold), worst first."""
    fa = np.flatnonzero(~issame & (distances <= threshold))
    fr = np.flatnonzero(issame & (distances > threshold))
    return fa[np.argsort(distances[fa], kind="stable")][:k], fr[np.argsort(-distances[fr], kind="stable")][:k]


def hardest_pairs_grid(
    images,
    left: np.ndarray,
    right: np.ndarray,
    distances: np.ndarray,
    issame: np.ndarray,
    threshold: float,
    path: str | Path,
    k: int = 8,
) -> Path:
    """Image grid (`images`: an ImageSource): the worst false accepts (left column) and false rejects (right
    column), each with its distance."""
    from facenet.data.images import resize

    columns = dict(zip(("false accepts", "false rejects"), hardest_pairs(distances, issame, threshold, k), strict=True))
    n_rows = max(1, *(len(v) for v in columns.values()))
    fig, axes = plt.subplots(n_rows, 2, figsize=(6.4, 1.75 * n_rows), dpi=100, squeeze=False)
    for col, (kind, indices) in enumerate(columns.items()):
        axes[0, col].set_title(f"{kind} (threshold {threshold:.3f})", fontsize=9, color=f"C{3 * (1 - col)}")
        for row in range(n_rows):
            ax = axes[row, col]
            ax.axis("off")
            if row < len(indices):
                i = indices[row]
                a, b = (resize(images.read(int(j)), 112) for j in (left[i], right[i]))
                ax.imshow(np.concatenate([a, b], axis=1))
                ax.text(
                    0.5, -0.06, f"d = {distances[i]:.3f}", transform=ax.transAxes, ha="center", va="top", fontsize=8
                )
            elif row == 0:
                ax.text(0.5, 0.5, "none", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def template_roc_plot(
    far: np.ndarray, tar: np.ndarray, marks: dict[float, float], path: str | Path, title: str, label: str = ""
) -> Path:
    """TAR against FAR (log axis, from the smallest measurable FAR to 1) with the TAR at each FAR target marked."""
    far, tar = np.asarray(far, np.float64), np.asarray(tar, np.float64)
    low = float(far[far > 0].min()) if (far > 0).any() else 1e-6
    fig, ax = plt.subplots(figsize=(5, 4.2), dpi=120)
    ax.step(np.maximum(far, low), tar, where="post", lw=1.6, label=label or None)
    for f, t in marks.items():
        ax.axvline(f, color="grey", ls=":", lw=1)
        ax.plot([f], [t], "o", color="C3", ms=4, label=f"TAR@FAR={f:g}: {t:.4f}")
    ax.set_xscale("log")
    ax.set_xlim(low, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def cmc_plot(curves: dict[str, tuple[Sequence[float], Sequence[float] | None]], path: str | Path, title: str) -> Path:
    """`curves`: label -> (identification rate at ranks 1..R, its std over trials or None)."""
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for label, (mean, std) in curves.items():
        mean = np.asarray(mean, dtype=np.float64)
        ranks = np.arange(1, mean.size + 1)
        ax.plot(ranks, mean, lw=1.6, marker="o" if mean.size <= 20 else None, ms=3, label=label)
        if std is not None:
            std = np.asarray(std, dtype=np.float64)
            ax.fill_between(ranks, mean - std, np.minimum(mean + std, 1), alpha=0.2)
    ax.set_xlabel("rank")
    ax.set_ylabel("identification rate (genuine probes)")
    ax.set_xlim(1, max(len(m) for m, _ in curves.values()))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def det_plot(
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    title: str,
    marks: dict[float, float] | None = None,
    faint: Sequence[tuple[Sequence[float], Sequence[float]]] = (),
) -> Path:
    """`curves`: label -> (FPIR, FNIR) points; `marks`: {FPIR target: FNIR there} drawn as points; `faint`: more
    (FPIR, FNIR) curves drawn thin and grey (e.g. each trial under their mean)."""
    fig, ax = plt.subplots(figsize=(5, 4.2), dpi=120)
    floor = 1e-4
    positive = [v for _, fnir in [*curves.values(), *faint] for v in np.asarray(fnir) if v > 0]
    bottom = max(floor, min(positive, default=1.0) / 2)
    for fpir, fnir in faint:
        ax.step(np.maximum(fpir, floor), np.maximum(fnir, bottom), where="post", color="grey", lw=0.6, alpha=0.5)
    for label, (fpir, fnir) in curves.items():
        ax.step(np.maximum(fpir, floor), np.maximum(fnir, bottom), where="post", lw=1.6, label=label)
    for fpir, fnir in (marks or {}).items():
        ax.plot([fpir], [max(fnir, bottom)], "o", color="C3", ms=4, label=f"FNIR@FPIR={fpir:g}: {fnir:.4f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(bottom, 1.05)
    ax.set_xlabel("false positive identification rate (impostor probes)")
    ax.set_ylabel("false negative identification rate (rank 1)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
