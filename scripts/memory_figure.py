"""The figure of docs/memory.md: LFW fold-10 accuracy against the cross-batch memory's size, and over the runs'
minutes, from finished run directories (each run's Hydra `.hydra/config.yaml`, `metrics.json` and `run.log`).

    .venv/bin/python scripts/memory_figure.py RUN_DIR [RUN_DIR ...] -o docs/img/memory_lfw.png
    .venv/bin/python scripts/memory_figure.py --telemetry LABEL=RUN_DIR [...] -o docs/img/memory_collapse.png

Each run is labelled by its batch (P x K, + singletons) and its memory size, read from its own config; runs of one
batch shape are joined by a line over memory sizes. Prints the table of docs/memory.md (accuracy +- fold std,
VAL@FAR=1e-3, AUC, images/s, steps). With --telemetry: the mean positive and negative distances of each run's
batches over its first 600 steps (`telemetry.csv`), one labelled line per run: what a collapse looks like.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime
from pathlib import Path

import matplotlib
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

EVAL = re.compile(
    r"^\[([\d-]+ [\d:,]+)\]\[facenet\.evaluation\.report\]\[INFO\] - eval: accuracy ([\d.]+) \+- ([\d.]+)"
)
STAMP = re.compile(r"^\[([\d-]+ [\d:,]+)\]")
STEPS = re.compile(r"after (\d+) steps")


def _time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")


def read_run(path: Path) -> dict:
    """A finished run's shape, final metrics and accuracy curve (minutes since its first log line)."""
    for needed in (".hydra/config.yaml", "metrics.json", "run.log"):
        if not (path / needed).is_file():
            raise SystemExit(f"{path}: no {needed}; is it a finished run directory (hydra.run.dir)?")
    cfg = OmegaConf.load(path / ".hydra/config.yaml")
    metrics = json.loads((path / "metrics.json").read_text())
    lines = (path / "run.log").read_text(errors="replace").splitlines()
    start = next(_time(m.group(1)) for m in map(STAMP.match, lines) if m)
    curve = [
        ((_time(m.group(1)) - start).total_seconds() / 60, float(m.group(2)), float(m.group(3)))
        for m in map(EVAL.match, lines)
        if m
    ]
    steps = [int(m.group(1)) for m in map(STEPS.search, lines) if m]
    singles = cfg.batch.get("singletons", 0)
    shape = f"{cfg.batch.identities} x {cfg.batch.images_per_identity}" + (f" + {singles}" if singles else "")
    return {
        "name": path.name,
        "shape": shape,
        "memory": int(cfg.miner.memory.size),
        "start_step": int(cfg.miner.memory.start_step),
        "miner": cfg.miner._target_.rsplit(".", 1)[-1],
        "metrics": metrics,
        "curve": curve,
        "steps": steps[-1] if steps else None,
    }


def table(runs: list[dict]) -> str:
    rows = [
        "| batch | memory | accuracy +- fold std | VAL@FAR=1e-3 | AUC | images/s | steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        m = r["metrics"]
        rows.append(
            f"| {r['shape']} | {r['memory'] or '-'} | {m['accuracy']:.3f} +- {m['accuracy_std']:.3f} "
            f"| {m['val_at_far_0.001']:.3f} | {m['auc']:.3f} | {m['images_per_sec']:.1f} | {r['steps'] or '?'} |"
        )
    return "\n".join(rows)


def _save(fig, axes, out: Path) -> None:
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def figure(runs: list[dict], out: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    shapes = sorted({r["shape"] for r in runs}, key=lambda s: [int(t) for t in re.findall(r"\d+", s)])
    colors = {s: f"C{i}" for i, s in enumerate(shapes)}
    for shape in shapes:
        mine = sorted((r for r in runs if r["shape"] == shape), key=lambda r: r["memory"])
        x = [max(r["memory"], 1) for r in mine]
        y = [r["metrics"]["accuracy"] for r in mine]
        e = [r["metrics"]["accuracy_std"] for r in mine]
        left.errorbar(x, y, yerr=e, marker="o", capsize=4, color=colors[shape], label=f"{shape} batch")
    for r in runs:
        t, acc, _ = zip(*r["curve"], strict=True) if r["curve"] else ((), (), ())
        label = f"{r['shape']}, M={r['memory']}" if r["memory"] else f"{r['shape']}, no memory"
        marker = {0: "o", 1024: "s"}.get(r["memory"], "^")
        right.plot(t, acc, marker=marker, color=colors[r["shape"]], ls="-" if r["memory"] else "--", label=label)
    left.set_xscale("symlog", linthresh=1)
    left.set_xticks(sorted({max(r["memory"], 1) for r in runs}))
    left.set_xticklabels([str(m) if m > 1 else "0" for m in sorted({max(r["memory"], 1) for r in runs})])
    left.set(
        xlabel="memory size M (stored embeddings)",
        ylabel="LFW fold-10 accuracy (+- fold std)",
        title="final accuracy, 15 training minutes each",
    )
    right.set(
        xlabel="minutes since the run started (training + evaluations)",
        ylabel="LFW fold-10 accuracy",
        title="accuracy at each evaluation",
    )
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    _save(fig, (left, right), out)


def telemetry_figure(labelled: list[str], out: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for i, item in enumerate(labelled):
        label, sep, path = item.rpartition("=")
        if not sep:
            raise SystemExit(f"--telemetry takes LABEL=RUN_DIR, got {item!r}")
        csv = Path(path) / "telemetry.csv"
        if not csv.is_file():
            raise SystemExit(f"{path}: no telemetry.csv (a triplet run's directory?)")
        t = pd.read_csv(csv)
        t = t[t.step <= 600]
        left.plot(t.step, t.d_ap, color=f"C{i}", label=label)
        right.plot(t.step, t.d_an, color=f"C{i}", label=label)
    left.set(xlabel="step", ylabel="mean distance in the batch", title="positive pairs d(a, p)")
    right.set(xlabel="step", title="negative pairs d(a, n)")
    left.legend(fontsize=8)
    _save(fig, (left, right), out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--telemetry", action="store_true", help="runs are LABEL=RUN_DIR; plot their distances")
    args = parser.parse_args(argv)
    if args.telemetry:
        telemetry_figure(args.runs, args.out)
        print(f"figure: {args.out}")
        return 0
    runs = [read_run(Path(p)) for p in args.runs]
    print(table(runs))
    figure(runs, args.out)
    print(f"figure: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
