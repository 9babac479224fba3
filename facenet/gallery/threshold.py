"""Open-set thresholds in the two units the project uses, and the one an open-set protocol report gives.

A gallery is searched by the cosine similarity s of unit embeddings (higher is closer). A model's recorded threshold
(chosen at evaluation, or by `facenet calibrate`) and `--threshold` are L2 distances d between embeddings of norm r
(the network's output norm, 1 unless its head scales): d^2 = r^2 (2 - 2 s), so

    s = 1 - d^2 / (2 r^2)        d = r sqrt(2 - 2 s)

and accepting d <= t is the same decision as accepting s >= 1 - t^2 / (2 r^2).

An open-set protocol report (`eval/report.json` of `task=eval eval=openset`) holds, per FPIR target, the cosine
threshold that kept the false positive identification rate at or under it on the protocol's non-mated probes
(`fpir[<target>].threshold_mean`, mean over the protocol's folds).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from facenet.errors import ConfigError, DataError

COMPARED = ("image_size", "normalize", "center_crop", "flip_tta")  # preprocessing a report and a query share


def distance_to_cosine(distance: float, norm: float = 1.0) -> float:
    """The cosine similarity at L2 distance `distance` between embeddings of norm `norm`."""
    return 1.0 - (float(distance) / float(norm)) ** 2 / 2.0


def cosine_to_distance(cosine: float, norm: float = 1.0) -> float:
    """The L2 distance between embeddings of norm `norm` whose cosine similarity is `cosine`."""
    return float(norm) * math.sqrt(max(0.0, 2.0 - 2.0 * min(1.0, float(cosine))))


@dataclass(frozen=True)
class OpenSetThreshold:
    cosine: float  # accept a probe whose best identity scores at least this
    fpir: float  # the target it was chosen for
    dir: float | None  # the detection and identification rate the protocol measured there
    std: float | None  # the threshold's spread over the protocol's folds
    report: str


def from_report(path: str | Path, fpir: float, preprocess: dict | None = None) -> OpenSetThreshold:
    """The cosine threshold of FPIR target `fpir` in the open-set protocol report `path`. With `preprocess` (the
    queries' preprocessing), a report measured with another one (size, standardisation, crop, flip) is refused."""
    path = Path(path)
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(
            f"protocol report {path} does not exist (task=eval eval=openset writes eval/report.json)"
        ) from None
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"protocol report {path} is not JSON ({err})") from None
    if not isinstance(report, dict) or report.get("kind") != "openset":
        kind = report.get("kind") if isinstance(report, dict) else type(report).__name__
        raise DataError(
            f"{path} is not an open-set protocol report (kind {kind!r}, expected 'openset': task=eval eval=openset)"
        )
    if report.get("similarity") != "cosine":
        raise DataError(f"{path}: thresholds in {report.get('similarity')!r}, expected cosine similarities")
    targets = report.get("fpir")
    if not isinstance(targets, dict) or not targets:
        raise DataError(f"{path} has no FPIR targets ('fpir' section)")
    key = _matching(targets, fpir)
    if key is None:
        raise ConfigError(f"{path} has no FPIR target {fpir:g}; it has {', '.join(targets)}")
    entry = targets[key]
    try:
        cosine = float(entry["threshold_mean"])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: FPIR {key} has no threshold_mean") from None
    if not -1.0 <= cosine <= 1.0:
        raise DataError(f"{path}: FPIR {key} threshold {cosine} is not a cosine similarity in [-1, 1]")
    if preprocess is not None and isinstance(report.get("preprocess"), dict):
        measured = report["preprocess"]
        diffs = [
            f"{k} {measured[k]} (report) vs {preprocess[k]} (queries)"
            for k in COMPARED
            if k in measured and k in preprocess and measured[k] != preprocess[k]
        ]
        if diffs:
            raise ConfigError(
                f"{path} measured its thresholds with other preprocessing: {'; '.join(diffs)}; feed the queries "
                "as the protocol did"
            )
    return OpenSetThreshold(
        cosine, float(key), _number(entry.get("dir_mean")), _number(entry.get("threshold_std")), str(path)
    )


def _matching(targets: dict, fpir: float) -> str | None:
    for key in targets:
        try:
            if math.isclose(float(key), fpir, rel_tol=1e-9, abs_tol=0.0):
                return key
        except ValueError:
            continue
    return None


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
