"""`python -m facenet.evaluate scores=FILE`: any model's pair scores through our protocol."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from facenet.evaluate import main
from facenet.metrics import verification_report
from tests.conftest import ROOT


def pairs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.5
    return rng.normal(size=n) + np.where(same, 0.0, 1.5), same


def test_csv_distances_match_the_library(tmp_path):
    d, same = pairs()
    pd.DataFrame({"distance": d, "issame": same.astype(int)}).to_csv(tmp_path / "s.csv", index=False)
    report = main([f"scores={tmp_path / 's.csv'}", "far=0.01,0.1"])
    expected = verification_report(d, same, far_targets=(0.01, 0.1))
    assert report.accuracy_mean == expected.accuracy_mean and report.auc == expected.auc
    saved = json.loads((tmp_path / "s.csv.report.json").read_text())
    assert saved["accuracy_mean"] == expected.accuracy_mean and set(saved["val_at_far"]) == {"0.01", "0.1"}
    assert (tmp_path / "s.csv.roc.png").stat().st_size > 0


def test_npz_similarities(tmp_path):
    d, same = pairs(seed=1)
    np.savez(tmp_path / "s.npz", scores=-d, issame=same)
    report = main([f"scores={tmp_path / 's.npz'}", "higher_is_closer=true", f"out={tmp_path / 'rep'}"])
    assert report.accuracy_mean == verification_report(d, same).accuracy_mean
    assert (tmp_path / "rep" / "report.json").exists() and (tmp_path / "rep" / "roc.png").exists()


@pytest.mark.parametrize(
    "content,message",
    [
        ("a,b\n1,2\n", "needs a score column"),
        ("distance,issame\n0.1,maybe\n0.2,1\n", "labels must be 1/0"),
        ("distance,issame\nx,1\n0.2,0\n", "no numeric distance"),
        ("distance,issame\n0.1,1\n0.2,1\n", "both same and different"),
    ],
)
def test_bad_files_fail_clearly(tmp_path, content, message):
    (tmp_path / "s.csv").write_text(content)
    with pytest.raises(SystemExit, match=message):
        main([f"scores={tmp_path / 's.csv'}", "n_folds=2"])


def test_module_entry_point(tmp_path):
    d, same = pairs(n=100)
    pd.DataFrame({"score": d, "label": same}).to_csv(tmp_path / "s.csv", index=False)
    proc = subprocess.run([sys.executable, "-m", "facenet.evaluate", f"scores={tmp_path / 's.csv'}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "VAL@FAR=0.001" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "facenet.evaluate", "score=x"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert bad.returncode != 0 and "unexpected argument" in bad.stderr and "Traceback" not in bad.stderr
