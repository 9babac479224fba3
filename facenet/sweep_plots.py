"""Figures of a sweep: a swept parameter against the metric, parallel coordinates for several."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _axis_values(column) -> tuple[np.ndarray, list[str] | None]:
    """Numeric column -> (values, None); anything else -> (category codes in first-seen order, labels)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(float), None
    labels = list(dict.fromkeys(column.astype(str)))
    return np.array([labels.index(v) for v in column.astype(str)], float), labels


def sweep_plot(table, param: str, path: str | Path, metric: str = "accuracy") -> Path:
    """One swept parameter against the metric (mean +- std over folds where the table has `<metric>_std`):
    a line over sorted numeric values (log x when they span more than a decade), else points per category."""
    ok = table[table[metric].notna()]
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    x, labels = _axis_values(ok[param])
    y = ok[metric].to_numpy(float)
    err = ok[f"{metric}_std"].to_numpy(float) if f"{metric}_std" in ok else None
    order = np.argsort(x, kind="stable")
    ax.errorbar(
        x[order],
        y[order],
        yerr=None if err is None else err[order],
        fmt="o-" if labels is None else "o",
        capsize=3,
        lw=1.4,
    )
    if len(y):
        best = int(np.argmax(y))
        ax.plot([x[best]], [y[best]], "*", ms=14, color="C3", label=f"best {metric} {y[best]:.4f}")
        ax.legend(fontsize=8)
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=20)
    elif len(x) and x.min() > 0 and x.max() / x.min() > 10:
        ax.set_xscale("log")
    failed = len(table) - len(ok)
    ax.set_xlabel(param + (f"  ({failed} failed job{'s' * (failed > 1)} not shown)" if failed else ""))
    ax.set_ylabel(metric)
    ax.set_title(f"sweep: {param} vs {metric} ({len(ok)} jobs)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def parallel_coordinates(table, params: list[str], path: str | Path, metric: str = "accuracy") -> Path:
    """One vertical axis per swept parameter plus the metric; each job a line coloured by its metric (best on top).
    Numeric axes are min-max scaled (log for ranges over a decade) and labelled with their values."""
    ok = table[table[metric].notna()].reset_index(drop=True)
    columns = [*params, metric]
    fig, ax = plt.subplots(figsize=(1.9 * len(columns) + 1.5, 4.2), dpi=120)
    scaled = np.zeros((len(ok), len(columns)))
    for j, name in enumerate(columns):
        values, labels = _axis_values(ok[name])
        log_axis = labels is None and len(values) and values.min() > 0 and values.max() / values.min() > 10
        v = np.log10(values) if log_axis else values
        lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
        scaled[:, j] = (v - lo) / (hi - lo) if hi > lo else 0.5
        ticks = sorted(set(values.tolist())) if labels is None else list(range(len(labels)))
        for t in ticks[:12]:
            pos = ((np.log10(t) if log_axis else t) - lo) / (hi - lo) if hi > lo else 0.5
            text = labels[int(t)] if labels is not None else f"{t:.4g}"
            ax.text(j - 0.04, pos, text, ha="right", va="center", fontsize=7)
        ax.axvline(j, color="k", lw=0.8)
    y = ok[metric].to_numpy(float)
    norm = plt.Normalize(y.min(), y.max()) if len(y) else plt.Normalize(0, 1)
    for i in np.argsort(y):
        ax.plot(range(len(columns)), scaled[i], color=plt.cm.viridis(norm(y[i])), lw=1.2 + 1.3 * (i == np.argmax(y)))
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks([])
    ax.set_xlim(-0.6, len(columns) - 0.8)
    ax.set_ylim(-0.08, 1.08)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label=metric)
    ax.set_title(f"sweep: {len(ok)} jobs" + (f", {len(table) - len(ok)} failed" if len(table) > len(ok) else ""))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
