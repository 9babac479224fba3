"""Figures of identification: the CMC curve (identification rate against rank) and the DET curve (FNIR against
FPIR, log axes), each with one or more labelled curves (one model's trials, or several models side by side)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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
