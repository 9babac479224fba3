"""A classification run's telemetry over training (`classifier_training.png`, beside `telemetry.csv`): how far each
face's own class centre is ahead of the nearest other one, the batch accuracy, and the loss with its parts. The
triplet counterpart is `facenet.training.health.health_figure`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

FIGURE = "classifier_training.png"
PARTS = ("cross_entropy", "center_loss", "prelogits_norm")  # softmax's terms, where used


def classifier_figure(table: pd.DataFrame, path: str | Path) -> Path | None:
    """Three panels over the logged steps; None if the table is not a classification run's (no `train_accuracy`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if table.empty or "train_accuracy" not in table:
        return None
    step = table["step"].to_numpy(float)
    fig, axes = plt.subplots(3, 1, figsize=(6.4, 7.2), dpi=110, sharex=True, height_ratios=(1.6, 1.0, 1.4))
    ax = axes[0]
    if "target_cos" in table:
        ax.plot(step, table["target_cos"], color="C2", lw=1.6, label="cosine to the own class centre")
        ax.plot(step, table["nontarget_cos"], color="C3", lw=1.6, label="largest cosine to another centre")
        ahead = (table["target_cos"] >= table["nontarget_cos"]).to_numpy()
        for where, colour in ((ahead, "C2"), (~ahead, "C3")):  # green: the own centre ahead; red: behind
            ax.fill_between(
                step,
                table["nontarget_cos"],
                table["target_cos"],
                where=where,
                color=colour,
                alpha=0.15,
                lw=0,
                interpolate=True,
            )
        ax.set_ylabel("cosine (batch mean)")
    elif "embedding_norm" in table:
        ax.plot(step, table["embedding_norm"], color="grey", lw=1.4, label="feature norm")
        ax.set_ylabel("feature norm")
    ax.legend(fontsize=7, loc="best")
    ax.set_title("classification run: separation, accuracy, loss")
    ax = axes[1]
    ax.plot(step, table["train_accuracy"], color="C0", lw=1.4, label="batch accuracy (plain cosines / logits)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="best")
    ax = axes[2]
    ax.plot(step, table["loss"], color="k", lw=1.4, label="loss")
    for i, part in enumerate(p for p in PARTS if p in table):
        ax.plot(step, table[part], color=f"C{4 + i}", lw=1.0, ls="--", label=part.replace("_", " "))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="best")
    ax.set_xlabel("step")
    for a in axes:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
