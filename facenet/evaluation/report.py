"""One evaluation, reported: scalars to the tracker, and `report.json`, `report.txt`, the ROC curve, the distance
histograms and the hardest pairs written to a folder and logged as artifacts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from facenet.data.images import EvalTransform
from facenet.data.pairs import PairSet
from facenet.evaluation.figures import distance_histogram, hardest_pairs_grid, roc_plot
from facenet.evaluation.protocols import VerificationProtocol
from facenet.evaluation.verify import evaluate_pairs

log = logging.getLogger(__name__)

ARTIFACTS = ("report.json", "report.txt", "roc.png", "distances.png", "hardest_pairs.png")


def evaluate_and_log(net, pairs: PairSet, protocol: VerificationProtocol, transform: EvalTransform, workers: int,
                     tracker, step: int, out_dir: Path, prefix: str = "eval") -> dict[str, float]:  # fmt: skip
    """Score every pair, log `<prefix>/<scalar>` at `step`, write the report and figures into `out_dir` (logged
    under `<prefix>/`); returns the scalars."""
    report, distances = evaluate_pairs(
        net, pairs, transform, protocol.batch_size, protocol.far_targets, workers, protocol.flip_tta
    )
    scalars = report.scalars()
    tracker.log_metrics({f"{prefix}/{k}": v for k, v in scalars.items()}, step)
    out_dir.mkdir(parents=True, exist_ok=True)
    applied = {
        "image_size": transform.image_size,
        "center_crop": transform.center_crop,
        "flip_tta": protocol.flip_tta,
        "normalize": transform.normalize,
    }
    (out_dir / "report.json").write_text(json.dumps({**report.to_dict(), "preprocess": applied}, indent=1))
    (out_dir / "report.txt").write_text(report.table() + "\n")
    roc_plot(report, out_dir / "roc.png")
    distance_histogram(distances, pairs.issame, report.threshold_mean, out_dir / "distances.png")
    hardest_pairs_grid(pairs.paths, pairs.left, pairs.right, distances, pairs.issame, report.threshold_mean,
                       out_dir / "hardest_pairs.png")  # fmt: skip
    for name in ARTIFACTS:
        tracker.log_artifact(out_dir / name, prefix)
    log.info(
        "%s: accuracy %.4f +- %.4f, threshold %.3f, AUC %.4f, EER %.4f, %s",
        prefix,
        report.accuracy_mean,
        report.accuracy_std,
        report.threshold_mean,
        report.auc,
        report.eer,
        ", ".join(f"VAL@FAR={f:g} {v['val_mean']:.4f}" for f, v in report.val_at_far.items()),
    )
    return scalars
