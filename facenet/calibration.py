"""A verification threshold for one's own faces (`facenet calibrate`): thresholds do not transfer between domains,
so pick the distance at which a labelled identity folder of the target domain gives the wanted false accept rate,
and record it with the model (sidecar or model card), where `verify`, `identify` and `cluster` read it."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facenet.errors import DataError
from facenet.interrupts import partial_file
from facenet.metrics.verification import threshold_at_far

MAX_PAIRS = 5_000_000  # beyond this many pairs of a kind, a seeded random sample of them is used


@dataclass(frozen=True)
class Calibration:
    threshold: float
    far_target: float
    far: float  # measured at the threshold on the impostor pairs
    tar: float  # measured at the threshold on the genuine pairs
    genuine_pairs: int
    impostor_pairs: int
    identities: int
    images: int
    data: str
    calibrated_at: str


def _pairs(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) index arrays of the pairs to score: all of them, or (for large folders) every genuine pair and random
    impostor pairs, at most MAX_PAIRS of each kind, drawn with `rng`."""
    n = len(labels)
    if n * (n - 1) // 2 <= 2 * MAX_PAIRS:
        return np.triu_indices(n, k=1)
    genuine = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        a, b = np.triu_indices(len(members), k=1)
        genuine.append(np.stack([members[a], members[b]], axis=1))
    g = np.concatenate(genuine)
    if len(g) > MAX_PAIRS:
        g = g[rng.choice(len(g), MAX_PAIRS, replace=False)]
    a, b = rng.integers(0, n, (2, 4 * MAX_PAIRS))
    impostor = np.stack([a, b], axis=1)[labels[a] != labels[b]][:MAX_PAIRS]
    return np.r_[g[:, 0], impostor[:, 0]], np.r_[g[:, 1], impostor[:, 1]]


def _distances(emb: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 50_000) -> np.ndarray:
    return (
        np.concatenate(
            [np.linalg.norm(emb[i[k : k + chunk]] - emb[j[k : k + chunk]], axis=1) for k in range(0, len(i), chunk)]
        )
        if len(i)
        else np.zeros(0)
    )


def calibrate_embeddings(emb: np.ndarray, labels: np.ndarray, far: float, data: str = "", seed: int = 0) -> Calibration:
    """The largest distance threshold whose false accept rate over the impostor pairs is at most `far`."""
    if not 0 < far < 1:
        raise DataError(f"--far must lie in (0, 1), got {far}")
    labels = np.asarray(labels)
    i, j = _pairs(labels, np.random.default_rng(seed))
    d = _distances(emb, i, j)
    same = labels[i] == labels[j]
    n_genuine, n_impostor = int(same.sum()), int((~same).sum())
    if n_genuine == 0:
        raise DataError(f"{data or 'the data'}: no identity has two images, so there is no genuine pair")
    if n_impostor * far < 1:
        raise DataError(
            f"FAR {far:g} needs at least {int(np.ceil(1 / far))} impostor pairs; {data or 'the data'} "
            f"gives {n_impostor}: add identities or choose a larger --far"
        )
    t = threshold_at_far(d, same, far)
    return Calibration(
        threshold=t,
        far_target=far,
        far=float((d[~same] <= t).mean()),
        tar=float((d[same] <= t).mean()),
        genuine_pairs=n_genuine,
        impostor_pairs=n_impostor,
        identities=int(len(np.unique(labels))),
        images=int(len(labels)),
        data=data,
        calibrated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


def record(model_file: Path, calibration: Calibration) -> Path:
    """Write the calibration into the model's sidecar (`.ckpt`) or model card (`.mindir`, `.onnx`); returns it."""
    target = (
        model_file.with_suffix(".json")
        if model_file.suffix == ".ckpt"
        else model_file.with_name(model_file.name + ".json")
    )
    if not target.is_file():
        raise DataError(f"{model_file} has no sidecar or model card ({target.name}) to record the threshold in")
    info = json.loads(target.read_text())
    info["calibration"] = asdict(calibration)
    with partial_file(target) as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    return target
