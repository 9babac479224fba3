"""Figures of several runs on one pair set: ROC and DET curves on log axes, distance histograms, the table as an
image."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from facenet.metrics.verification import roc_curve  # noqa: E402


def _style(i: int, n: int) -> dict:
    """Colour per run, each line narrower than the one under it: runs with identical curves show as nested bands."""
    return {"color": f"C{i % 10}", "lw": 1.0 + 3.0 * (n - 1 - i) / max(n - 1, 1), "zorder": 2 + i}


def _curves(scores: list[pd.DataFrame]) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for s in scores:
        fpr, tpr, _ = roc_curve(s["distance"].to_numpy(np.float64), s["same"].to_numpy(bool))
        out.append((fpr, tpr))
    return out


def _save(fig, ax, path: Path, title: str) -> Path:
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def roc_compare(scores: list[pd.DataFrame], labels: list[str], path: Path, floor: float) -> Path:
    """True accept rate against false accept rate (log axis down to `floor`: one impostor pair's share)."""
    fig, ax = plt.subplots(figsize=(6.2, 4.6), dpi=120)
    for i, ((fpr, tpr), label) in enumerate(zip(_curves(scores), labels, strict=True)):
        ax.step(np.maximum(fpr, floor), tpr, where="post", label=label, **_style(i, len(labels)))
    ax.set_xscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    return _save(fig, ax, path, f"ROC of {len(labels)} runs ({len(scores[0])} pairs)")


def det_compare(scores: list[pd.DataFrame], labels: list[str], path: Path, floor: float) -> Path:
    """Detection error tradeoff: false reject rate against false accept rate, both on log axes (lower is better)."""
    fig, ax = plt.subplots(figsize=(6.2, 4.6), dpi=120)
    frr_floor = 1.0
    for i, ((fpr, tpr), label) in enumerate(zip(_curves(scores), labels, strict=True)):
        frr = 1.0 - tpr
        frr_floor = min(frr_floor, *(frr[frr > 0]), 1.0)
        ax.step(np.maximum(fpr, floor), np.maximum(frr, floor), where="post", label=label, **_style(i, len(labels)))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(min(floor, frr_floor / 2), 1.05)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("false reject rate")
    return _save(fig, ax, path, f"DET of {len(labels)} runs (lower left is better)")


def distances_compare(scores: list[pd.DataFrame], labels: list[str], path: Path) -> Path:
    """One panel per run (its own distance range: a collapsed run's distances are 100x smaller): same-person and
    different-person distance histograms, and how far the two overlap."""
    n = len(scores)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 2.9 * rows), dpi=110, squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, s, label in zip(axes.ravel(), scores, labels, strict=False):
        same = s["same"].to_numpy(bool)
        dist = s["distance"].to_numpy(np.float64)
        bins = np.linspace(dist.min(), dist.max(), 40) if dist.max() > dist.min() else 10
        ax.hist(dist[same], bins=bins, alpha=0.55, color="C0", label="same person")
        ax.hist(dist[~same], bins=bins, alpha=0.55, color="C3", label="different people")
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("L2 distance", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("pair distances (each run on its own scale)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def table_image(table: pd.DataFrame, path: Path, title: str) -> Path:
    """The comparison table as a picture (the MLflow artifact view shows images, not markdown)."""
    cells = table.astype(str).to_numpy()
    widths = [max(len(str(c)), *(len(v) for v in cells[:, j])) for j, c in enumerate(table.columns)]
    total = sum(widths)
    fig_w = min(28.0, 1.0 + 0.085 * total)
    fig, ax = plt.subplots(figsize=(fig_w, 0.9 + 0.32 * (len(table) + 1)), dpi=120)
    ax.axis("off")
    t = ax.table(
        cellText=cells,
        colLabels=list(table.columns),
        loc="center",
        cellLoc="center",
        colWidths=[w / total for w in widths],
    )
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    t.scale(1, 1.35)
    for j in range(len(table.columns)):
        t[0, j].set_facecolor("#dde4ee")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
