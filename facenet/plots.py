"""Figures for reports and MLflow: ROC curve and distance histograms."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from facenet.metrics import VerificationReport  # noqa: E402


def roc_plot(report: VerificationReport, path: str | Path, title: str = "") -> Path:
    """ROC on log-FAR axes with AUC, EER and VAL@FAR in the legend."""
    fpr, tpr = np.asarray(report.roc["fpr"]), np.asarray(report.roc["tpr"])
    fig, ax = plt.subplots(figsize=(5, 4.2), dpi=120)
    label = f"AUC {report.auc:.4f}, EER {report.eer:.4f}, acc {report.accuracy_mean:.4f}"
    ax.plot(np.maximum(fpr, 1e-4), tpr, lw=1.6, label=label)
    for far, v in report.val_at_far.items():
        ax.axvline(far, color="grey", ls=":", lw=1)
        ax.plot([far], [v["val_mean"]], "o", color="C3", label=f"VAL@FAR={far:g}: {v['val_mean']:.4f}")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title or f"ROC ({report.n_pairs} pairs)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


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
