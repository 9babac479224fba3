"""`facenet compare`: McNemar against a brute-force binomial, labels from what differs, VAL@FAR only where the pairs
can measure it, and real runs: a miner pair, an identical pair (same seed), runs on other pairs refused."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from facenet.app import run
from facenet.cli import main
from facenet.comparison import ComparisonError, compare, resolve
from facenet.comparison.labels import labels
from facenet.comparison.report import ARTIFACTS, val_at
from facenet.comparison.runs import RunResult
from facenet.comparison.significance import binomial_two_sided, decisions, mcnemar
from facenet.metrics import verification_report


def test_mcnemar_p_value_is_the_exact_two_sided_binomial_tail():
    """Oracle: every outcome of n fair coins enumerated; the p-value sums the outcomes at most as likely as the
    observed split (for Binomial(n, 1/2) that is the two tails beyond it)."""
    for n in range(0, 13):
        pmf = [
            Fraction(sum(1 for bits in itertools.product((0, 1), repeat=n) if sum(bits) == i), 2**n)
            for i in range(n + 1)
        ]
        for k in range(n + 1):
            expected = float(min(Fraction(1), sum(p for p in pmf if p <= pmf[k])))
            assert binomial_two_sided(k, n) == pytest.approx(expected, rel=1e-10), (k, n)
    assert binomial_two_sided(0, 10) == pytest.approx(2 / 1024)
    assert binomial_two_sided(34000, 70000) < 1e-10 and binomial_two_sided(35000, 70000) == 1.0


def test_mcnemar_counts_only_the_pairs_the_runs_decide_differently():
    a = np.array([1, 1, 1, 1, 0, 0, 1, 0, 1, 1], bool)
    b = np.array([1, 0, 0, 0, 0, 1, 1, 0, 0, 1], bool)
    m = mcnemar(a, b)
    assert (m.only_a, m.only_b) == (4, 1) and m.p_value == pytest.approx(2 * (1 + 5) / 32)
    assert "no significant difference (p=0.375)" == m.verdict
    assert mcnemar(a, a).verdict == "no difference (identical decisions)"
    assert mcnemar(np.ones(40, bool), np.r_[np.ones(30), np.zeros(10)].astype(bool)).verdict.startswith("significant")


def _scores(n_same: int, n_diff: int, seed: int = 0, folds: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    same = np.r_[np.ones(n_same, bool), np.zeros(n_diff, bool)]
    d = np.where(same, rng.normal(0.8, 0.2, same.size), rng.normal(1.3, 0.2, same.size))
    order = np.concatenate(
        [np.r_[np.flatnonzero(same)[f::folds], np.flatnonzero(~same)[f::folds]] for f in range(folds)]
    )
    fold = np.repeat(np.arange(folds), [len(b) for b in np.array_split(order, folds)])
    names = [f"p{i}/a.png" for i in range(same.size)]
    return pd.DataFrame(
        {
            "fold": fold,
            "same": same[order],
            "distance": d[order],
            "left": np.array(names)[order],
            "right": [f"q{i}/b.png" for i in order],
        }
    )


def _result(scores: pd.DataFrame, far_targets=(1e-3,), **kw) -> RunResult:
    r = verification_report(scores["distance"].to_numpy(), scores["same"].to_numpy(), 10, far_targets)
    return RunResult(name=kw.pop("name", "r"), source="-", report=r.to_dict(), scores=scores, **kw)


def test_decisions_are_the_ones_the_reported_fold_accuracies_count():
    run_ = _result(_scores(300, 300))
    right = decisions(run_.scores, run_.report["fold_thresholds"])
    per_fold = [right[run_.scores["fold"].to_numpy() == f].mean() for f in range(10)]
    assert per_fold == pytest.approx(run_.report["fold_accuracies"], abs=1e-12)


def test_val_at_far_from_the_report_else_the_same_protocol_and_n_a_below_one_impostor_per_rate():
    scores = _scores(500, 2000)
    run_ = _result(scores, far_targets=(1e-3,))
    reported = run_.report["val_at_far"]["0.001"]
    assert val_at(run_, 1e-3) == (reported["val_mean"], reported["val_std"])
    oracle = verification_report(scores["distance"].to_numpy(), scores["same"].to_numpy(), 10, (1e-2,))
    assert val_at(run_, 1e-2) == pytest.approx(
        (oracle.val_at_far[1e-2]["val_mean"], oracle.val_at_far[1e-2]["val_std"])
    )
    assert np.isnan(val_at(run_, 1e-4)).all()  # 2000 impostor pairs cannot measure a rate of 1 in 10,000


def _configured(config: dict, choices: dict, overrides=(), name="r") -> RunResult:
    return RunResult(
        name=name,
        source="-",
        report={},
        scores=pd.DataFrame(),
        config=config,
        choices=choices,
        overrides=list(overrides),
    )


def test_labels_name_only_what_differs():
    base = {
        "margin": "0.2",
        "loss.margin": "0.2",
        "lr": "0.002",
        "miner._target_": "SemiHard",
        "output_dir": "/a",
        "tracking.run_name": "x",
    }
    runs = [
        _configured(base, {"miner": "semi_hard", "backbone": "resnet"}),
        _configured(
            {**base, "margin": "0.5", "loss.margin": "0.5", "output_dir": "/b"},
            {"miner": "semi_hard", "backbone": "resnet"},
            ["margin=0.5"],
        ),
        _configured({**base, "miner._target_": "BatchHard"}, {"miner": "batch_hard", "backbone": "resnet"}),
    ]
    assert labels(runs) == ["miner=semi_hard margin=0.2", "miner=semi_hard margin=0.5", "miner=batch_hard margin=0.2"]
    same = [
        _configured(base, {"miner": "semi_hard"}, name="05-00-01"),
        _configured(base, {"miner": "semi_hard"}, name="05-00-01"),
    ]
    assert labels(same) == ["05-00-01 #1", "05-00-01 #2"]
    # a run without recorded choices (composed from Python) beside one with them: compared by keys, not "group=-"
    width = [
        _configured({**base, "backbone.width": "16"}, {"backbone": "resnet_tiny", "dataset": "synthetic"}),
        _configured({**base, "backbone.width": "32"}, {}),
    ]
    assert labels(width) == ["backbone.width=16", "backbone.width=32"]


# real runs: the smoke set, 3 steps; every evaluation writes report.json and scores.csv
def _train(compose_cfg, out: Path, *overrides: str) -> Path:
    before = set(out.glob("runs/*/*"))
    run(compose_cfg("experiment=smoke", f"output_dir={out}", *overrides))
    (new,) = set(out.glob("runs/*/*")) - before
    return new


@pytest.fixture(scope="module")
def three_runs(compose_cfg, tmp_path_factory):
    """semi_hard, batch_hard, semi_hard again (same seed): differ only in the miner, or not at all."""
    out = tmp_path_factory.mktemp("compare")
    return out, [_train(compose_cfg, out, f"miner={m}") for m in ("semi_hard", "batch_hard", "semi_hard")]


def test_the_table_holds_each_runs_own_report_and_scores_reproduce_it(three_runs, tmp_path):
    out, (semi, hard, _) = three_runs
    table, folder = compare(resolve([str(semi), str(hard)]), tmp_path / "c")
    assert table["run"].tolist() == ["miner=semi_hard", "miner=batch_hard"]
    numbers = pd.read_csv(folder / "comparison.csv")
    for row, run_dir in zip(numbers.itertuples(), (semi, hard), strict=True):
        report = json.loads((run_dir / "eval" / "report.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert (row.pairs, row.accuracy, row.accuracy_std, row.auc, row.eer, row.threshold) == (
            report["n_pairs"],
            report["accuracy_mean"],
            report["accuracy_std"],
            report["auc"],
            report["eer"],
            report["threshold_mean"],
        )
        assert (row.train_minutes, row.images_per_sec, row.parameters) == (
            metrics["train_minutes"],
            metrics["images_per_sec"],
            metrics["parameters"],
        )
        assert row.run_id == json.loads((run_dir / "run.json").read_text())["run_id"]
        # scores.csv reproduces the whole report: same protocol, same numbers
        scores = pd.read_csv(run_dir / "eval" / "scores.csv")
        again = verification_report(
            scores["distance"],
            scores["same"].astype(bool),
            report["n_folds"],
            tuple(float(f) for f in report["val_at_far"]),
        )
        assert again.to_dict() == {k: v for k, v in report.items() if k not in ("preprocess", "pairs_sha1")}
    assert (numbers["val_at_far_0.01"].isna()).all()  # 20 impostor pairs: no FAR below 5% is measurable
    assert "| n/a |" in (folder / "comparison.md").read_text()
    assert {p.name for p in folder.iterdir()} == set(ARTIFACTS)


def test_identical_runs_make_no_difference(three_runs, tmp_path):
    out, (semi, _, again) = three_runs
    table, _ = compare(resolve([str(semi), str(again)]), tmp_path / "c")
    assert table["vs best (McNemar)"].tolist() == ["best", "no difference (identical decisions)"]
    assert table["run"].tolist() == ["/".join(semi.parts[-2:]), "/".join(again.parts[-2:])]


def test_runs_on_other_pairs_are_refused_in_one_line(three_runs, compose_cfg, tmp_path):
    out, (semi, *_) = three_runs
    fewer = _train(compose_cfg, tmp_path, "eval.max_pairs=20")
    with pytest.raises(ComparisonError, match=r"different pair sets: .* on 40 pairs .* on 20 pairs") as refused:
        compare(resolve([str(semi), str(fewer)]), tmp_path / "c")
    assert "\n" not in str(refused.value)


def test_cli_compares_mlflow_ids_and_logs_a_comparison_run(three_runs, tmp_path, capsys):
    out, (semi, hard, _) = three_runs
    uri = f"sqlite:///{out / 'mlflow.db'}"
    ids = [json.loads((d / "run.json").read_text())["run_id"] for d in (semi, hard)]
    assert main(["compare", *ids, "--tracking-uri", uri, "-o", str(tmp_path / "c"), "--metric", "auc"]) == 0
    printed = capsys.readouterr().out
    assert "miner=batch_hard" in printed and "experiment 'comparison'" in printed
    client = MlflowClient(uri)
    (logged,) = client.search_runs([client.get_experiment_by_name("comparison").experiment_id])
    assert json.loads(logged.data.tags["compared_runs"]) == ids
    assert {a.path for a in client.list_artifacts(logged.info.run_id)} == set(ARTIFACTS)
    best = json.loads((tmp_path / "c" / "comparison.json").read_text())["best"]
    aucs = {
        r: json.loads((d / "eval" / "report.json").read_text())["auc"]
        for r, d in zip(("miner=semi_hard", "miner=batch_hard"), (semi, hard), strict=True)
    }
    assert best == max(aucs, key=aucs.get)
    assert main(["compare", str(semi), "--no-mlflow"]) == 1
    assert "at least two runs" in capsys.readouterr().err
    assert main(["compare", str(semi), str(hard), "--metric", "speed", "--no-mlflow", "-o", str(tmp_path / "d")]) == 1
    assert "--metric 'speed' is not a figure" in capsys.readouterr().err
