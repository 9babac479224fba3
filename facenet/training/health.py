"""Is a triplet run learning? `TripletHealth` reads each logging window's mean telemetry and reacts to the three
ways such runs fail silently (`train.health`: warn, stop or off; `train.health_windows` windows in a row):

- collapse: every embedding on one point, positive and negative distances both below `COLLAPSE_RATIO` of the
  embedding norm (or the norm itself near zero); the loss then sits exactly at the margin;
- a dead miner: (almost) no active triplet, under `ACTIVE_FLOOR` of the selected ones (nothing to learn from);
- a loss pinned at the margin: within `PINNED_TOLERANCE` of it, window after window, without collapse (d_an = d_ap on
  average: the network separates nothing).

Each finding names the likely causes and the knobs to turn. Under `stop` the run ends FAILED with the reason and its
last checkpoint written before the trouble began. Every window also goes to `telemetry.csv` in the run directory,
the source of the distance-percentile figure (`health_figure`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facenet.errors import ConfigError, TrainingUnhealthy
from facenet.tracking import Tracker

log = logging.getLogger(__name__)

MODES = ("warn", "stop", "off")
COLLAPSE_RATIO = 0.05  # distances below 5% of the embedding norm (unit vectors spread out sit ~1.4 apart)
NORM_FLOOR = 1e-6  # embeddings at the origin
PINNED_TOLERANCE = 0.02  # |loss - margin| <= 2% of the margin
ACTIVE_FLOOR = 0.02  # fewer than 2% of the selected triplets active: (almost) nothing to learn from
TELEMETRY_CSV = "telemetry.csv"
FIGURE = "triplet_health.png"


@dataclass(frozen=True)
class Finding:
    kind: str  # collapse | dead_miner | pinned_at_margin
    since_step: int  # the step before the first window in which it held (the last one known good)
    step: int  # the step at which it had held for `windows` windows
    message: str


def _collapse(w: dict, margin: float) -> str | None:
    norm = w["embedding_norm"]
    if not (norm < NORM_FLOOR or max(w["d_ap"], w["d_an"]) <= COLLAPSE_RATIO * norm):
        return None
    return (
        f"embeddings collapsed: mean positive distance {w['d_ap']:.2g} and negative distance {w['d_an']:.2g} with "
        f"embedding norm {norm:.3g}, so every face maps to one point and the loss sits at the margin "
        f"({w['loss']:.4f} vs {margin:g}). Likely causes: a learning rate too high (lower lr 10x), a margin too large "
        "for the distance scale, or a miner that picks only the hardest negatives from the start (try miner=semi_hard "
        "or batch_all, or a larger batch.identities / batch.images_per_identity)"
    )


def _dead_miner(w: dict, margin: float) -> str | None:
    if w["active_fraction"] > ACTIVE_FLOOR:
        return None
    easy, semi, hard = (w.get(k, float("nan")) for k in ("easy_fraction", "semi_hard_fraction", "hard_fraction"))
    if easy + semi + hard == 0:
        why = (
            "the batches hold no valid triplet (every identity in a batch needs two images of its own and another "
            "identity beside it: check batch.identities, batch.images_per_identity and the dataset)"
        )
    elif easy >= 0.999:
        why = (
            f"every triplet already satisfies the margin ({easy:.1%} easy): the task is solved at margin={margin:g};"
            " raise margin, or train on harder data"
        )
    else:
        why = (
            f"the batches hold {hard:.1%} hard and {semi:.1%} semi-hard triplets, but the miner selects almost none "
            "whose loss is positive"
        )
        if margin == 0:
            why += (
                " (at margin 0 the semi-hard band d_ap < d_an < d_ap + margin is empty, so semi_hard picks only "
                "negatives that cost nothing): set a margin > 0"
            )
        why += "; try miner=batch_hard or batch_all"
    active = f"{w['active_fraction']:.2%} of the selected triplets active"
    return f"dead miner: {active}, so almost nothing is learnt. {why[0].upper()}{why[1:]}"


def _pinned(w: dict, margin: float) -> str | None:
    if margin <= 0 or abs(w["loss"] - margin) > PINNED_TOLERANCE * margin:
        return None
    return (
        f"loss pinned at the margin: {w['loss']:.4f} vs margin {margin:g} with d_ap {w['d_ap']:.3f} ~ d_an "
        f"{w['d_an']:.3f}, so the network separates nothing. Likely causes: a learning rate too high or too low (try "
        "lr 10x lower, then 10x higher), a margin too large for the distance scale (loss.squared, embedding size), "
        "too few identities per batch (batch.identities), or a miner too hard for the start (miner=semi_hard)"
    )


CONDITIONS = {"collapse": _collapse, "dead_miner": _dead_miner, "pinned_at_margin": _pinned}
NEEDS = ("loss", "active_fraction", "d_ap", "d_an", "embedding_norm")


class TripletHealth:
    """Watches logging windows (`observe`); `mode` warn | stop | off; a condition is reported once it has held for
    `windows` windows in a row, and again only after it went away."""

    def __init__(self, mode: str, windows: int, margin: float | None, telemetry: tuple[str, ...]):
        if mode not in MODES:
            raise ConfigError(f"train.health must be one of {MODES}, got {mode!r}")
        if windows < 1:
            raise ConfigError(f"train.health_windows must be >= 1, got {windows}")
        self.mode, self.windows, self.margin = mode, windows, margin
        # a loss without the triplet telemetry (or without a margin) is not watched
        self.active = mode != "off" and margin is not None and all(n in ("loss", *telemetry) for n in NEEDS)
        self.runs: dict[str, list[int]] = {k: [] for k in CONDITIONS}  # first steps of the windows it held in a row
        self.reported = dict.fromkeys(CONDITIONS, False)
        self.findings: list[Finding] = []
        self.last_step = 0  # where the previous window ended

    def observe(self, step: int, window: dict[str, float]) -> Finding | None:
        """One logging window's means (loss and telemetry by name), ending at `step`. Returns a new finding.
        A resumed run sets `last_step` to its checkpoint's step first."""
        if not self.active:
            return None
        new, start, self.last_step = None, self.last_step, step
        for kind, condition in CONDITIONS.items():
            if kind == "pinned_at_margin" and self.runs["collapse"]:  # the collapse explains it: not reported apart
                self.runs[kind], self.reported[kind] = [], False
                continue
            message = condition(window, self.margin)
            if message is None:
                if self.reported[kind]:
                    log.info("training health: %s no longer holds at step %d", kind.replace("_", " "), step)
                self.runs[kind], self.reported[kind] = [], False
                continue
            self.runs[kind].append(start)
            # one finding per window; a second condition due in the same window is reported in the next one
            if len(self.runs[kind]) >= self.windows and not self.reported[kind] and new is None:
                since = self.runs[kind][0]
                held = f"{self.windows} logging window{'s' * (self.windows > 1)}"
                new = Finding(kind, since, step, f"{message} (for {held}, since step {since})")
                self.reported[kind] = True
        if new is not None:
            self.findings.append(new)
        return new

    def react(self, finding: Finding, last_good: Path | None, tracker: Tracker) -> None:
        """warn: log it and tag the run; stop: raise TrainingUnhealthy naming the last good checkpoint."""
        tracker.set_tag(f"health.{finding.kind}", f"step {finding.step}: {finding.message}"[:5000])
        tracker.log_metrics({f"health/{finding.kind}": 1.0}, finding.step)
        if self.mode == "warn":
            log.warning(
                "training health at step %d: %s. (train.health=stop ends such a run, =off silences this)",
                finding.step,
                finding.message,
            )
            return
        before = (
            f"last checkpoint before it: {last_good}"
            if last_good is not None
            else "no checkpoint was written before it"
        )
        raise TrainingUnhealthy(f"stopped by train.health=stop at step {finding.step}: {finding.message}; {before}")


def _row(row: list[float]) -> str:
    """A CSV line: the step as an integer (exact at any step count), the means to 7 significant digits."""
    return ",".join([str(int(row[0])), *(f"{v:.7g}" for v in row[1:])]) + "\n"


class TelemetryLog:
    """Every logging window's means as a row of `telemetry.csv` (step first). A resumed run drops the rows past its
    checkpoint (they are logged again)."""

    def __init__(self, run_dir: Path, names: tuple[str, ...], resume_step: int | None = None):
        self.path, self.names = Path(run_dir) / TELEMETRY_CSV, ("step", *names)
        self.rows: list[list[float]] = []
        if resume_step is not None and self.path.is_file():
            try:
                old = pd.read_csv(self.path)
            except (OSError, ValueError):
                old = pd.DataFrame()
            if list(old.columns) == list(self.names):
                self.rows = old[old["step"] <= resume_step].to_numpy(float).tolist()
        self._write()

    def append(self, step: int, values: dict[str, float]) -> None:
        self.rows.append([step, *(values[n] for n in self.names[1:])])
        with self.path.open("a") as f:
            f.write(_row(self.rows[-1]))

    def _write(self) -> None:
        with self.path.open("w") as f:
            f.write(",".join(self.names) + "\n")
            f.writelines(_row(row) for row in self.rows)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(self.names))


def health_figure(
    table: pd.DataFrame, path: str | Path, margin: float | None = None, findings: list[Finding] = ()
) -> Path | None:
    """Distance percentiles over training (positive and negative pairs: the median line, p10-p90 band), the triplet
    difficulty fractions, the active fraction and loss / margin, and the embedding norm; findings as vertical
    lines. None if the table lacks the percentiles (a loss without them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if table.empty or "d_ap_p50" not in table:
        return None
    step = table["step"].to_numpy(float)
    fig, axes = plt.subplots(3, 1, figsize=(6.4, 7.2), dpi=110, sharex=True, height_ratios=(2.2, 1.2, 1.2))
    ax = axes[0]
    for kind, label, colour in (("ap", "positive pairs", "C0"), ("an", "negative pairs", "C3")):
        ax.fill_between(step, table[f"d_{kind}_p10"], table[f"d_{kind}_p90"], color=colour, alpha=0.2, lw=0)
        ax.plot(step, table[f"d_{kind}_p50"], color=colour, lw=1.6, label=f"{label}: median, p10-p90")
    if "embedding_norm" in table:
        ax.plot(step, table["embedding_norm"], color="grey", lw=1, ls="--", label="embedding norm")
    ax.set_ylabel("distance in the batch")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="best")
    ax.set_title("triplet health: distances, triplet difficulty, activity")
    ax = axes[1]
    parts = [c for c in ("hard_fraction", "semi_hard_fraction", "easy_fraction") if c in table]
    if parts:
        ax.stackplot(
            step,
            *(table[c] for c in parts),
            labels=[c.replace("_fraction", "") for c in parts],
            colors=("C3", "C1", "C2"),
            alpha=0.7,
        )
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    ax.set_ylabel("valid triplets")
    ax = axes[2]
    ax.plot(step, table["active_fraction"], color="C4", lw=1.4, label="active fraction (selected)")
    if margin:
        ax.plot(step, table["loss"] / margin, color="k", lw=1.2, label="loss / margin")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="best")
    ax.set_xlabel("step")
    for finding in findings:
        for a in axes:
            a.axvline(finding.step, color="C3", ls=":", lw=1.2)
        axes[0].text(finding.step, axes[0].get_ylim()[1] * 0.97, f" {finding.kind}", color="C3", fontsize=8, va="top")
    for a in axes:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def window_means(names: tuple[str, ...], window: list[np.ndarray]) -> dict[str, float]:
    """{'loss': ..., telemetry name: ...}: the window's per-step rows averaged."""
    mean = np.mean(window, axis=0)
    return dict(zip(("loss", *names), (float(v) for v in mean), strict=True))
