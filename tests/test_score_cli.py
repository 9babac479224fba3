"""`facenet score FILE`: any model's pair scores through our protocol."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facenet.cli import main
from facenet.evaluation.scores import score_file
from facenet.metrics import verification_report
from tests.conftest import ROOT


def pairs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.5
    return rng.normal(size=n) + np.where(same, 0.0, 1.5), same


def test_csv_distances_match_the_library(tmp_path, capsys):
    d, same = pairs()
    pd.DataFrame({"distance": d, "issame": same.astype(int)}).to_csv(tmp_path / "s.csv", index=False)
    assert main(["score", str(tmp_path / "s.csv"), "--far", "0.01,0.1"]) == 0
    expected = verification_report(d, same, far_targets=(0.01, 0.1))
    saved = json.loads((tmp_path / "s.csv.report.json").read_text())
    assert saved["accuracy_mean"] == expected.accuracy_mean and saved["auc"] == expected.auc
    assert set(saved["val_at_far"]) == {"0.01", "0.1"}
    assert (tmp_path / "s.csv.roc.png").stat().st_size > 0
    assert f"{expected.accuracy_mean:.4f}" in capsys.readouterr().out


def test_npz_similarities(tmp_path):
    d, same = pairs(seed=1)
    np.savez(tmp_path / "s.npz", scores=-d, issame=same)
    report, json_path, roc_path = score_file(tmp_path / "s.npz", higher_is_closer=True, out=tmp_path / "rep")
    assert report.accuracy_mean == verification_report(d, same).accuracy_mean
    assert json_path == tmp_path / "rep" / "report.json" and json_path.exists() and roc_path.exists()


@pytest.mark.parametrize(
    "content,message",
    [
        ("a,b\n1,2\n", "needs a score column"),
        ("distance,issame\n0.1,maybe\n0.2,1\n", "labels must be 1/0"),
        ("distance,issame\nx,1\n0.2,0\n", "no numeric distance"),
        ("distance,issame\n0.1,1\n0.2,1\n", "both same and different"),
    ],
)
def test_bad_files_fail_clearly(tmp_path, capsys, content, message):
    (tmp_path / "s.csv").write_text(content)
    assert main(["score", str(tmp_path / "s.csv"), "--folds", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_bad_far_fails_clearly(tmp_path, capsys):
    assert main(["score", str(tmp_path / "s.csv"), "--far", "often"]) == 1
    assert "--far often: expected comma-separated rates" in capsys.readouterr().err


def test_every_option_reaches_the_report(tmp_path, capsys):
    """--higher-is-closer, --folds, --far and --out each do what the library's argument of that name does."""
    d, same = pairs(seed=2)
    pd.DataFrame({"similarity": -d, "same": same.astype(int)}).to_csv(tmp_path / "s.csv", index=False)
    args = ["--higher-is-closer", "--folds", "5", "--far", "0.01,0.1", "--out", str(tmp_path / "r")]
    assert main(["score", str(tmp_path / "s.csv"), *args]) == 0
    expected = verification_report(d, same, n_folds=5, far_targets=(0.01, 0.1))
    saved = json.loads((tmp_path / "r" / "report.json").read_text())
    assert saved["n_folds"] == 5 and set(saved["val_at_far"]) == {"0.01", "0.1"}
    assert saved["accuracy_mean"] == expected.accuracy_mean and saved["auc"] == pytest.approx(expected.auc)
    assert (tmp_path / "r" / "roc.png").exists() and not (tmp_path / "s.csv.report.json").exists()
    assert "in 5 folds" in capsys.readouterr().out
    assert main(["score", str(tmp_path / "s.csv"), *args[1:]]) == 0  # the same file read as distances
    assert json.loads((tmp_path / "r" / "report.json").read_text())["accuracy_mean"] < expected.accuracy_mean


FACENET = Path(sys.executable).with_name("facenet")  # the console script beside this interpreter


@pytest.mark.parametrize("command", [[str(FACENET), "score"], [sys.executable, "-m", "facenet.cli", "score"]])
def test_entry_points(tmp_path, command):
    d, same = pairs(n=100)
    pd.DataFrame({"score": d, "label": same}).to_csv(tmp_path / "s.csv", index=False)
    if not Path(command[0]).exists():
        pytest.skip(f"{command[0]} is not installed (pip install -e .)")
    proc = subprocess.run([*command, str(tmp_path / "s.csv")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "VAL@FAR=0.001" in proc.stdout
    bad = subprocess.run(
        [*command, str(tmp_path / "missing.csv")], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
