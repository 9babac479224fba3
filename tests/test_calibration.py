"""`facenet calibrate`: the threshold at a false accept rate, against a brute-force search over every pair."""

from __future__ import annotations

import json
import shutil
from itertools import combinations

import numpy as np
import pytest

from facenet.calibration import calibrate_embeddings, record
from facenet.errors import DataError
from facenet.inference import Embedder


def brute_threshold(emb: np.ndarray, labels: np.ndarray, far: float) -> tuple[float, float, float]:
    """Largest distance t (among those of the pairs) with (impostors <= t) / impostors <= far; (t, FAR, TAR)."""
    pairs = [(np.linalg.norm(emb[i] - emb[j]), labels[i] == labels[j]) for i, j in combinations(range(len(labels)), 2)]
    impostor = sorted(d for d, same in pairs if not same)
    genuine = [d for d, same in pairs if same]
    best = -np.inf
    for t in sorted({d for d, _ in pairs}):
        if sum(d <= t for d in impostor) <= far * len(impostor):
            best = t
    return best, sum(d <= best for d in impostor) / len(impostor), sum(d <= best for d in genuine) / len(genuine)


@pytest.mark.parametrize("far", [0.01, 0.05, 0.2])
def test_threshold_matches_brute_force(far):
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(12), 5)
    emb = rng.normal(size=(12, 4))[labels] + 0.6 * rng.normal(size=(60, 4))
    got = calibrate_embeddings(emb, labels, far, data="toy")
    t, want_far, want_tar = brute_threshold(emb, labels, far)
    # the reported threshold accepts exactly the pairs the brute-force one does (it may sit between two distances)
    assert (got.far, got.tar) == pytest.approx((want_far, want_tar)) and got.far <= far
    assert t <= got.threshold
    assert (got.genuine_pairs, got.impostor_pairs, got.identities, got.images) == (12 * 10, 1770 - 120, 12, 60)


def test_calibration_needs_pairs_of_both_kinds_and_enough_impostors():
    emb = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(DataError, match="no genuine pair"):
        calibrate_embeddings(emb, np.arange(6), 0.1)
    with pytest.raises(DataError, match=r"FAR 0.001 needs at least 1000 impostor pairs; .* gives 9"):
        calibrate_embeddings(emb, np.repeat([0, 1], 3), 1e-3)
    with pytest.raises(DataError, match="must lie in"):
        calibrate_embeddings(emb, np.repeat([0, 1], 3), 1.5)


def test_recorded_threshold_wins_over_the_evaluation_one(tmp_path):
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"")
    (tmp_path / "m.json").write_text(json.dumps({"metrics": {"threshold": 1.1}}))
    labels = np.repeat(np.arange(40), 2)
    emb = np.random.default_rng(1).normal(size=(80, 3))
    calibration = calibrate_embeddings(emb, labels, 0.01)
    assert record(ckpt, calibration) == tmp_path / "m.json"
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["metrics"]["threshold"] == 1.1 and saved["calibration"]["threshold"] == calibration.threshold
    assert Embedder._threshold_of(saved, saved["metrics"]["threshold"]) == calibration.threshold
    assert Embedder._threshold_of({"metrics": {}}, 1.1) == 1.1
    shutil.copy(tmp_path / "m.json", tmp_path / "x.onnx.json")
    assert record(tmp_path / "x.onnx", calibration) == tmp_path / "x.onnx.json"
    with pytest.raises(DataError, match="no sidecar or model card"):
        record(tmp_path / "other.mindir", calibration)
