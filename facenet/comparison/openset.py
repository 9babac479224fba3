"""Runs evaluated with `eval=openset` side by side: one table (rank-k and DIR at each FPIR, mean +- std over the
trials, with the threshold and the cost), the paired difference of each run from the best over the same trials,
and the CMC and DET curves overlaid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from facenet.comparison.figures import table_image
from facenet.comparison.runs import ComparisonError, RunResult
from facenet.evaluation.figures import cmc_plot, det_plot
from facenet.evaluation.report import markdown

LOWER_IS_BETTER = ("train_minutes", "parameters")  # and every `*_std` and threshold
ARTIFACTS = ("comparison.csv", "comparison.md", "comparison.json", "table.png", "cmc.png", "det.png")


def check_same_trials(runs: list[RunResult], names: list[str]) -> str:
    """The runs' common trials fingerprint; a one-line refusal when any run was evaluated on other trials."""
    prints = [r.report.get("fingerprint") for r in runs]
    other = next((i for i, p in enumerate(prints) if p != prints[0]), None)
    if other is not None:
        raise ComparisonError(
            f"runs were evaluated on different open-set trials: {names[0]} (fingerprint {str(prints[0])[:10]}), "
            f"{names[other]} (fingerprint {str(prints[other])[:10]}); evaluate them on one protocol (the same "
            "eval.root and trial settings, or one eval.protocol=FOLDER from facenet openset-protocol)"
        )
    return prints[0]


def _trial_column(run: RunResult, key: str) -> np.ndarray:
    return np.array([t[key] for t in run.report["trials"]], dtype=np.float64)


def numbers(runs: list[RunResult], names: list[str]) -> pd.DataFrame:
    """One row per run: rank-k and DIR@FPIR (mean, std over trials), thresholds, cost (the CSV)."""
    ranks = list(runs[0].report["ranks"])
    fpirs = [f for f in runs[0].report["fpir"] if all(f in r.report["fpir"] for r in runs)]
    rows = []
    for r, name in zip(runs, names, strict=True):
        row = {"run": name, "trials": len(r.report["trials"])}
        for k in ranks:
            got = r.report["ranks"].get(k, {"mean": float("nan"), "std": float("nan")})
            row[f"rank{k}"], row[f"rank{k}_std"] = got["mean"], got["std"]
        for f in fpirs:
            v = r.report["fpir"][f]
            row[f"dir_at_fpir_{f}"], row[f"dir_at_fpir_{f}_std"] = v["dir_mean"], v["dir_std"]
            row[f"threshold_at_fpir_{f}"] = v["threshold_mean"]
        for key in ("train_minutes", "images_per_sec", "parameters"):
            row[key] = float(r.metrics[key]) if key in r.metrics else float("nan")
        row.update(run_id=r.run_id or "", source=r.source)
        rows.append(row)
    return pd.DataFrame(rows)


def best_index(table: pd.DataFrame, metric: str) -> int:
    usable = [c for c in table.columns if c.startswith(("rank", "dir_at_fpir_")) or c in ("images_per_sec",)]
    usable += [c for c in LOWER_IS_BETTER if c in table]
    if metric not in usable:
        raise ComparisonError(f"--metric {metric!r} is not a figure of this comparison (one of: {', '.join(usable)})")
    values = table[metric].to_numpy(np.float64)
    if np.isnan(values).all():
        raise ComparisonError(f"--metric {metric}: no run has that figure")
    lower = metric in LOWER_IS_BETTER or metric.endswith("_std")
    return int(np.nanargmin(values) if lower else np.nanargmax(values))


def paired(best: RunResult, run: RunResult) -> str:
    """Rank-1 of `run` minus the best's, trial by trial over the same trials: mean +- std, and how many trials the
    best is ahead in (a sign count, not a significance test: trials share images)."""
    a, b = _trial_column(best, "rank1"), _trial_column(run, "rank1")
    d = b - a
    return f"{d.mean():+.4f} +- {d.std():.4f} (best ahead in {int((a > b).sum())}/{len(d)})"


def compare_openset(runs: list[RunResult], names: list[str], out: Path, metric: str | None) -> pd.DataFrame:
    """Write the comparison of open-set runs into `out`; returns the readable table."""
    fingerprint = check_same_trials(runs, names)
    metric = metric or "rank1"
    table = numbers(runs, names)
    best = best_index(table, metric)
    table["vs_best_rank1"] = ["best" if i == best else paired(runs[best], r) for i, r in enumerate(runs)]
    pretty = pd.DataFrame({"run": table["run"]})
    for c in table.columns:
        if c.startswith(("rank", "dir_at_fpir_")) and not c.endswith("_std") and c != "vs_best_rank1":
            label = c.replace("dir_at_fpir_", "DIR@FPIR=").replace("rank", "rank-")
            pretty[label] = [
                "n/a" if np.isnan(m) else f"{m:.4f} +- {s:.4f}"
                for m, s in zip(table[c], table[f"{c}_std"], strict=True)
            ]
    pretty["train min"] = ["n/a" if np.isnan(v) else f"{v:.2f}" for v in table["train_minutes"]]
    pretty["rank-1 vs best (paired over trials)"] = table["vs_best_rank1"]
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "comparison.csv", index=False)
    first = runs[0].report["counts"]
    note = (
        f"{len(runs)} runs on the same {first['trials']} open-set trials (fingerprint {fingerprint[:10]}; per trial "
        f"{first['enrolled']:.0f} enrolled, {first['genuine']:.0f} genuine and {first['impostor']:.0f} impostor "
        f"probes), best by {metric}: {names[best]}. Figures: mean +- std over trials. The paired column: rank-1 of "
        "each run minus the best's on each trial."
    )
    (out / "comparison.md").write_text(markdown(pretty) + "\n\n" + note + "\n")
    body = {
        "kind": "openset",
        "metric": metric,
        "best": names[best],
        "fingerprint": fingerprint,
        "runs": [{"label": n, "run_id": r.run_id, "source": r.source} for r, n in zip(runs, names, strict=True)],
    }
    (out / "comparison.json").write_text(json.dumps(body, indent=1))
    table_image(
        pretty, out / "table.png", f"{len(runs)} runs, open-set identification, best by {metric}: {names[best]}"
    )
    cmc_plot(
        {
            f"{n} (rank-1 {r.report['ranks']['1']['mean']:.4f})": (r.report["cmc"]["mean"], None)
            for r, n in zip(runs, names, strict=True)
        },
        out / "cmc.png",
        "CMC (genuine probes), mean over trials",
    )
    det_plot(
        {n: (r.report["det"]["fpir"], r.report["det"]["fnir_mean"]) for r, n in zip(runs, names, strict=True)},
        out / "det.png",
        "DET: open-set identification (rank 1), mean over trials",
    )
    return pretty
