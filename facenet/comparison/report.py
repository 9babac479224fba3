"""Several runs' evaluations side by side, the way papers compare them: one table (accuracy +- fold std, VAL at FAR
1e-2 / 1e-3 / 1e-4 where the impostor pairs allow, AUC, EER, cost), overlaid ROC / DET curves and distance
histograms, and McNemar's test of the best run against each other, written to a folder and logged to MLflow."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from facenet.comparison.figures import det_compare, distances_compare, roc_compare, table_image
from facenet.comparison.labels import labels as run_labels
from facenet.comparison.openset import ARTIFACTS as OPENSET_ARTIFACTS
from facenet.comparison.openset import compare_openset
from facenet.comparison.runs import ComparisonError, Inputs, RunResult
from facenet.comparison.significance import decisions, mcnemar
from facenet.evaluation.report import markdown, pairs_fingerprint
from facenet.metrics import verification_report

log = logging.getLogger(__name__)

FARS = (1e-2, 1e-3, 1e-4)
LOWER_IS_BETTER = ("eer", "train_minutes", "parameters")  # and every `*_std`
NOT_RANKED = ("pairs", "threshold", "only_best_right", "only_this_right", "p_value")
ARTIFACTS = ("comparison.csv", "comparison.md", "comparison.json", "table.png", "roc.png", "det.png", "distances.png")


def check_same_pairs(runs: list[RunResult], names: list[str]) -> str:
    """The runs' common pair-set fingerprint; a one-line refusal when any run was evaluated on other pairs."""
    prints = [
        r.report.get("pairs_sha1") or pairs_fingerprint(r.scores["left"], r.scores["right"], r.scores["same"])
        for r in runs
    ]
    if len(set(prints)) > 1:
        first = prints[0]
        other = next(i for i, p in enumerate(prints) if p != first)
        a, b = runs[0], runs[other]
        skips = [
            f"{name} left out {r.report['skipped_pairs']} pairs for missing images"
            for r, name in zip(runs, names, strict=True)
            if r.report.get("skipped_pairs")
        ]
        raise ComparisonError(
            f"runs were evaluated on different pair sets: {names[0]} on {a.report['n_pairs']} pairs (sha1 "
            f"{first[:10]}), {names[other]} on {b.report['n_pairs']} pairs (sha1 {prints[other][:10]})"
            + (f" ({'; '.join(skips)}: eval.missing=skip)" if skips else "")
            + "; compare runs evaluated with the same eval settings, or evaluate their checkpoints on one set "
            "(task=eval)"
        )
    folds = {len(r.report["fold_thresholds"]) for r in runs}
    if len(folds) > 1:
        raise ComparisonError(f"runs were evaluated with different fold counts ({sorted(folds)}): not comparable")
    assigned = [r.scores["fold"].to_numpy() for r in runs]
    other = next((i for i, f in enumerate(assigned) if not np.array_equal(f, assigned[0])), None)
    if other is not None:
        raise ComparisonError(
            f"{names[0]} and {names[other]} were evaluated on the same pairs cut into other folds (scores.csv's "
            "fold column differs): their per-fold thresholds decide different pairs; not comparable"
        )
    return prints[0]


def val_at(run: RunResult, far: float) -> tuple[float, float]:
    """VAL at `far` (mean, fold std) as the run's report gives it, else by the same protocol on its scores; NaN
    when the pairs hold fewer than 1 / far impostor pairs (no threshold can measure that rate). At exactly 1 / far,
    the k - 1 folds a threshold is chosen on hold (k - 1) / k of them: it then allows no false accept there."""
    n_impostors = int((~run.scores["same"]).sum())
    if n_impostors * far < 1:
        return float("nan"), float("nan")
    reported = run.report.get("val_at_far", {}).get(f"{far:g}")
    if reported is not None:
        return reported["val_mean"], reported["val_std"]
    r = verification_report(
        run.scores["distance"].to_numpy(np.float64),
        run.scores["same"].to_numpy(bool),
        n_folds=run.report["n_folds"],
        far_targets=(far,),
        folds=run.scores["fold"].to_numpy(np.int64),
    )
    v = r.val_at_far[far]
    return v["val_mean"], v["val_std"]


def numbers(runs: list[RunResult], names: list[str]) -> pd.DataFrame:
    """One row per run: the figures, as numbers (the CSV)."""
    rows = []
    for r, name in zip(runs, names, strict=True):
        row = {
            "run": name,
            "pairs": r.report["n_pairs"],
            "accuracy": r.report["accuracy_mean"],
            "accuracy_std": r.report["accuracy_std"],
        }
        for far in FARS:
            row[f"val_at_far_{far:g}"], row[f"val_at_far_{far:g}_std"] = val_at(r, far)
        row.update(auc=r.report["auc"], eer=r.report["eer"], threshold=r.report["threshold_mean"])
        for key in ("train_minutes", "images_per_sec", "parameters"):
            row[key] = float(r.metrics[key]) if key in r.metrics else float("nan")
        row.update(run_id=r.run_id or "", source=r.source)
        rows.append(row)
    return pd.DataFrame(rows)


def best_index(table: pd.DataFrame, metric: str) -> int:
    if metric not in table or metric in NOT_RANKED or not pd.api.types.is_numeric_dtype(table[metric]):
        usable = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c]) and c not in NOT_RANKED]
        raise ComparisonError(f"--metric {metric!r} is not a figure of the comparison (one of: {', '.join(usable)})")
    values = table[metric].to_numpy(np.float64)
    if np.isnan(values).all():
        raise ComparisonError(f"--metric {metric}: no run has that figure")
    lower = metric in LOWER_IS_BETTER or metric.endswith("_std")
    return int(np.nanargmin(values) if lower else np.nanargmax(values))


def _pm(mean: float, std: float) -> str:
    return "n/a" if np.isnan(mean) else f"{mean:.4f} +- {std:.4f}"


def readable(table: pd.DataFrame, tests: list[str]) -> pd.DataFrame:
    """The table papers print: mean +- fold std, n/a where the pairs cannot measure a rate."""
    accuracy = [_pm(m, s) for m, s in zip(table["accuracy"], table["accuracy_std"], strict=True)]
    out = pd.DataFrame({"run": table["run"], "accuracy": accuracy})
    for far in FARS:
        key = f"val_at_far_{far:g}"
        out[f"VAL@FAR={far:g}"] = [_pm(m, s) for m, s in zip(table[key], table[f"{key}_std"], strict=True)]
    out["AUC"] = [f"{v:.4f}" for v in table["auc"]]
    out["EER"] = [f"{v:.4f}" for v in table["eer"]]
    out["train min"] = ["n/a" if np.isnan(v) else f"{v:.2f}" for v in table["train_minutes"]]
    out["images/s"] = ["n/a" if np.isnan(v) else f"{v:.0f}" for v in table["images_per_sec"]]
    out["parameters"] = ["n/a" if np.isnan(v) else f"{v / 1e6:.2f}M" for v in table["parameters"]]
    out["vs best (McNemar)"] = tests
    return out


def compare(inputs: Inputs, out_dir: str | Path, metric: str | None = None) -> tuple[pd.DataFrame, Path]:
    """Write the comparison of `inputs.runs` into `out_dir`; returns the readable table and the folder. `metric`
    ranks the runs (default: accuracy; open-set runs (`facenet.comparison.openset`): rank1)."""
    runs = inputs.runs
    names = run_labels(runs)
    kinds = {r.report.get("kind", "verification") for r in runs}
    if len(kinds) > 1:
        raise ComparisonError(f"runs were evaluated by different kinds of protocol ({', '.join(sorted(kinds))})")
    if kinds == {"openset"}:
        return compare_openset(runs, names, Path(out_dir), metric), Path(out_dir)
    metric = metric or "accuracy"
    sha1 = check_same_pairs(runs, names)
    table = numbers(runs, names)
    best = best_index(table, metric)
    right = [decisions(r.scores, r.report["fold_thresholds"]) for r in runs]
    tests, results = [], []
    for i in range(len(runs)):
        if i == best:
            tests.append("best")
            results.append({"only_best_right": 0, "only_this_right": 0, "p_value": float("nan")})
            continue
        m = mcnemar(right[best], right[i])
        tests.append(m.verdict)
        results.append({"only_best_right": m.only_a, "only_this_right": m.only_b, "p_value": m.p_value})
    for key in ("only_best_right", "only_this_right", "p_value"):
        table[key] = [r[key] for r in results]
    table["vs_best"] = tests
    pretty = readable(table, tests)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "comparison.csv", index=False)
    n, n_diff = len(runs[0].scores), int((~runs[0].scores["same"]).sum())
    note = (
        f"{len(runs)} runs on the same {n} pairs ({n - n_diff} same, {n_diff} different; sha1 {sha1[:10]}), "
        f"best by {metric}: {names[best]}. VAL@FAR needs at least 1/FAR different pairs (n/a below that). "
        f"McNemar: exact two-sided test of the best run against each on per-pair decisions at each run's own "
        f"fold thresholds; p < 0.05 is called significant (not corrected for multiple comparisons); "
        f"'N vs M pairs': the pairs only the best run decides right, and only this run."
    )
    (out / "comparison.md").write_text(markdown(pretty) + "\n\n" + note + "\n")
    (out / "comparison.json").write_text(
        json.dumps(
            {
                "metric": metric,
                "best": names[best],
                "pairs": n,
                "pairs_sha1": sha1,
                "runs": [
                    {"label": name, "run_id": r.run_id, "source": r.source} for r, name in zip(runs, names, strict=True)
                ],
            },
            indent=1,
        )
    )
    table_image(pretty, out / "table.png", f"{len(runs)} runs, {n} pairs, best by {metric}: {names[best]}")
    floor = 1.0 / max(n_diff, 1)
    scores = [r.scores for r in runs]
    legend = [
        f"{name} (acc {a:.4f}, AUC {u:.4f})" for name, a, u in zip(names, table["accuracy"], table["auc"], strict=True)
    ]
    roc_compare(scores, legend, out / "roc.png", floor)
    det_compare(scores, names, out / "det.png", floor)
    distances_compare(scores, names, out / "distances.png")
    return pretty, out


def tracking_uri(inputs: Inputs, explicit: str | None) -> str | None:
    """Where the comparison is logged: the given URI, else the sweep's or the runs' own store (when they share one)."""
    if explicit:
        return explicit
    if inputs.tracking_uri:
        return inputs.tracking_uri
    uris = {r.tracking_uri for r in inputs.runs}
    return uris.pop() if len(uris) == 1 and None not in uris else None


def log_comparison(inputs: Inputs, out: Path, uri: str, names: list[str] | None = None) -> str:
    """Log the folder's files: under `comparison/` of the sweep's parent run when the inputs were one sweep, else as
    the artifacts of a new run in the MLflow experiment "comparison". Returns the run id."""
    from mlflow.tracking import MlflowClient

    from facenet.tracking import experiment_id, sqlite_file, store_lock

    client = MlflowClient(uri)
    run_id = inputs.parent_run_id
    folder = "comparison" if run_id else None
    if run_id is None:
        with store_lock(uri):
            # a local store keeps artifacts beside it, as runs do (<output_dir>/mlartifacts)
            db = sqlite_file(uri)
            beside = (db.resolve().parent / "mlartifacts").as_uri() if db is not None else None
            exp_id = experiment_id(client, "comparison", beside)
        ids = [r.run_id for r in inputs.runs if r.run_id]
        tags = {"task": "compare", "compared_runs": json.dumps(ids)[:5000], "compared": " | ".join(names or [])[:5000]}
        run_id = client.create_run(
            exp_id, run_name=f"compare {len(inputs.runs)} runs {time.strftime('%H:%M:%S')}", tags=tags
        ).info.run_id
    for name in dict.fromkeys(ARTIFACTS + OPENSET_ARTIFACTS):
        if (out / name).is_file():  # a verification or an open-set comparison's files
            client.log_artifact(run_id, str(out / name), folder)
    if not inputs.parent_run_id:
        client.set_terminated(run_id, "FINISHED")
    return run_id
