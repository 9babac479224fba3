"""One evaluation, reported: scalars to the tracker, and `report.json`, `report.txt`, the ROC curve, the distance
histograms and the hardest pairs written to a folder and logged as artifacts; a benchmark suite's sets each so,
then side by side (a table and one ROC figure)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from facenet.data.images import EvalTransform
from facenet.data.pairs import PairSet
from facenet.evaluation.figures import benchmark_roc_plot, distance_histogram, hardest_pairs_grid, roc_plot
from facenet.evaluation.verify import evaluate_pairs
from facenet.metrics import VerificationReport
from facenet.tracking import Tracker

log = logging.getLogger(__name__)

MEAN = "mean"  # a benchmark suite's primary: the mean accuracy over its sets
ARTIFACTS = ("report.json", "report.txt", "scores.csv", "roc.png", "distances.png", "hardest_pairs.png")


def _short(name: str) -> str:
    """An image's name without where its tree lies: `<identity>/<file>` (or a `.bin` set's `<set>.bin[i]`)."""
    parts = Path(name).parts
    return "/".join(parts[-2:])


def write_scores(pairs: PairSet, distances: np.ndarray, n_folds: int, path: Path) -> str:
    """Every pair's distance in fold order (`fold, same, distance, left, right`: what `facenet compare` pairs runs
    on, and a paired test needs; `fold` is the pair's own, counted from 0); returns the pair set's fingerprint (sha1
    of the names and flags in that order)."""
    order = pairs.fold_order(n_folds)
    fold = pairs.folds(n_folds)[order]
    names = [_short(n) for n in pairs.paths]
    left, right = [names[i] for i in pairs.left[order]], [names[i] for i in pairs.right[order]]
    same = pairs.issame[order].astype(int)
    table = pd.DataFrame(
        {"fold": fold, "same": same, "distance": np.asarray(distances, np.float64)[order], "left": left, "right": right}
    )
    table.to_csv(path, index=False)  # floats as repr: the distances read back exactly
    return pairs_fingerprint(left, right, same)


def pairs_fingerprint(left, right, same) -> str:
    """sha1 of the pairs' image names and same-person flags, in order: equal exactly for the same pair set."""
    text = "\n".join(f"{a}\t{b}\t{int(s)}" for a, b, s in zip(left, right, same, strict=True))
    return hashlib.sha1(text.encode()).hexdigest()


def evaluate_and_log(
    net,
    pairs: PairSet,
    protocol,
    transform: EvalTransform,
    workers: int,
    tracker: Tracker,
    step: int,
    out_dir: Path,
    prefix: str = "eval",
) -> dict[str, float]:
    """Score every pair, log `<prefix>/<scalar>` at `step`, write the report and figures into `out_dir` (logged
    under `<prefix>/`); returns the scalars."""
    return _score(net, pairs, protocol, transform, workers, tracker, step, out_dir, prefix)[0]


def _score(
    net,
    pairs: PairSet,
    protocol,
    transform: EvalTransform,
    workers: int,
    tracker: Tracker,
    step: int,
    out_dir: Path,
    prefix: str,
) -> tuple[dict[str, float], VerificationReport]:
    report, distances = evaluate_pairs(
        net, pairs, transform, protocol.batch_size, protocol.far_targets, workers, protocol.flip_tta
    )
    scalars = report.scalars()
    skipping = protocol.missing == "skip"
    if skipping:  # asked for: said even when nothing was missing
        scalars["skipped_pairs"] = pairs.skipped
    tracker.log_metrics({f"{prefix}/{k}": v for k, v in scalars.items()}, step)
    out_dir.mkdir(parents=True, exist_ok=True)
    applied = {
        "image_size": transform.image_size,
        "center_crop": transform.center_crop,
        "flip_tta": protocol.flip_tta,
        "normalize": transform.normalize,
    }
    fingerprint = write_scores(pairs, distances, report.n_folds, out_dir / "scores.csv")
    body = {**report.to_dict(), "preprocess": applied, "pairs_sha1": fingerprint}
    text = report.table()
    if skipping:
        body.update(missing="skip", skipped_pairs=pairs.skipped, missing_images=list(pairs.missing_images))
        text += f"\nskipped      {skipped_note(pairs)}"
    (out_dir / "report.json").write_text(json.dumps(body, indent=1))
    (out_dir / "report.txt").write_text(text + "\n")
    roc_plot(report, out_dir / "roc.png")
    distance_histogram(distances, pairs.issame, report.threshold_mean, out_dir / "distances.png")
    hardest = out_dir / "hardest_pairs.png"
    hardest_pairs_grid(pairs.images, pairs.left, pairs.right, distances, pairs.issame, report.threshold_mean, hardest)
    for name in ARTIFACTS:
        tracker.log_artifact(out_dir / name, prefix)
    log.info(
        "%s: accuracy %.4f +- %.4f, threshold %.3f, AUC %.4f, EER %.4f, %s%s",
        prefix,
        report.accuracy_mean,
        report.accuracy_std,
        report.threshold_mean,
        report.auc,
        report.eer,
        ", ".join(f"VAL@FAR={f:g} {v['val_mean']:.4f}" for f, v in report.val_at_far.items()),
        f" ({pairs.skipped} pairs skipped: images missing, eval.missing=skip)" if skipping else "",
    )
    return scalars, report


def skipped_note(pairs: PairSet) -> str:
    """How many pairs were left out for missing images, and which images (eval.missing=skip)."""
    if not pairs.skipped:
        return "0 pairs (eval.missing=skip; no image was missing)"
    shown = ", ".join(pairs.missing_images[:10]) + (" ..." if len(pairs.missing_images) > 10 else "")
    return (
        f"{pairs.skipped} pairs (eval.missing=skip): they need the {len(pairs.missing_images)} missing images "
        f"{shown}; the other pairs keep their folds"
    )


def evaluate_sets(
    net,
    sets: dict[str, PairSet],
    protocol,
    transform: EvalTransform,
    workers: int,
    tracker: Tracker,
    step: int,
    out_dir: Path,
    prefix: str = "eval",
) -> dict[str, float]:
    """A protocol's pair sets (`protocol.load_sets()`): one unnamed set as `evaluate_and_log`; named sets (a
    benchmark suite) each under `<prefix>/<name>/` and `out_dir/<name>/`, then side by side: `benchmarks.csv`,
    `benchmarks.md` and `benchmarks_roc.png` (one ROC curve per set) logged under `<prefix>/`.

    Returns the scalars; with named sets, `<name>/<scalar>` for each, and unprefixed (also logged as
    `<prefix>/<scalar>`) the primary set's (`protocol.primary`), or with primary "mean" the first set's with
    `accuracy` the mean over the sets; `mean_accuracy` always."""
    if list(sets) == [""]:
        return evaluate_and_log(net, sets[""], protocol, transform, workers, tracker, step, out_dir, prefix)
    primary = protocol.primary(list(sets))
    out, reports = {}, {}
    for name, pairs in sets.items():
        scalars, reports[name] = _score(
            net, pairs, protocol, transform, workers, tracker, step, out_dir / name, f"{prefix}/{name}"
        )
        out.update({f"{name}/{k}": v for k, v in scalars.items()})
    mean = float(np.mean([r.accuracy_mean for r in reports.values()]))
    # the primary's scalars unprefixed (its threshold is the one best.ckpt's sidecar and model card record); with
    # primary=mean, the first set's, and the mean accuracy
    summary = {**reports[list(sets)[0] if primary == MEAN else primary].scalars(), "mean_accuracy": mean}
    if primary == MEAN:
        summary["accuracy"] = mean
    tracker.log_metrics({f"{prefix}/{k}": v for k, v in summary.items()}, step)
    table = benchmark_table(reports)
    table.to_csv(out_dir / "benchmarks.csv", index=False)
    (out_dir / "benchmarks.md").write_text(markdown(table) + f"\n\nprimary: {primary}\n")
    benchmark_roc_plot(reports, out_dir / "benchmarks_roc.png")
    for name in ("benchmarks.csv", "benchmarks.md", "benchmarks_roc.png"):
        tracker.log_artifact(out_dir / name, prefix)
    log.info("%s benchmarks (primary: %s, accuracy %.4f):\n%s", prefix, primary, summary["accuracy"], markdown(table))
    return {**summary, **out}


def benchmark_table(reports: dict[str, VerificationReport]) -> pd.DataFrame:
    """One row per set: pairs, accuracy +- std, VAL at each FAR target, AUC, EER (the table papers print)."""
    rows = []
    for name, r in reports.items():
        row = {"benchmark": name, "pairs": r.n_pairs, "accuracy": f"{r.accuracy_mean:.4f} +- {r.accuracy_std:.4f}"}
        for far, v in r.val_at_far.items():
            row[f"VAL@FAR={far:g}"] = f"{v['val_mean']:.4f} +- {v['val_std']:.4f}"
        row.update({"AUC": f"{r.auc:.4f}", "EER": f"{r.eer:.4f}"})
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    return "\n".join([header, rule, *("| " + " | ".join(str(v) for v in row) + " |" for row in table.to_numpy())])
