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
    """Each run's same-person (solid) and different-person (dotted) distance distributions, as densities."""
    fig, ax = plt.subplots(figsize=(6.2, 4.2), dpi=120)
    d = np.concatenate([s["distance"].to_numpy(np.float64) for s in scores])
    bins = np.linspace(d.min(), d.max(), 60) if d.max() > d.min() else 10
    for i, (s, label) in enumerate(zip(scores, labels, strict=True)):
        same = s["same"].to_numpy(bool)
        dist = s["distance"].to_numpy(np.float64)
        ax.hist(dist[same], bins=bins, histtype="step", density=True, color=f"C{i % 10}", lw=1.4, label=label)
        ax.hist(dist[~same], bins=bins, histtype="step", density=True, color=f"C{i % 10}", lw=1.4, ls=":")
    ax.set_xlabel("L2 distance (solid: same person, dotted: different people)")
    ax.set_ylabel("density")
    return _save(fig, ax, path, "pair distances")


def table_image(table: pd.DataFrame, path: Path, title: str) -> Path:
    """The comparison table as a picture (the MLflow artifact view shows images, not markdown)."""
    cells = table.astype(str).to_numpy()
    widths = [max(len(str(c)), *(len(v) for v in cells[:, j])) for j, c in enumerate(table.columns)]
    total = sum(widths)
    fig_w = min(28.0, 1.0 + 0.085 * total)
    fig, ax = plt.subplots(figsize=(fig_w, 0.9 + 0.32 * (len(table) + 1)), dpi=120)
    ax.axis("off")
    t = ax.table(cellText=cells, colLabels=list(table.columns), loc="center", cellLoc="center",
                 colWidths=[w / total for w in widths])  # fmt: skip
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
