"""Two runs, one store: processes started at once against the default SQLite MLflow store of one output_dir (a new
one: both create it) lose nothing and fail nothing; so does a joblib sweep with two jobs at a time."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT

STEPS, EPOCHS = 30, 2
TRAIN = ["experiment=smoke", f"epochs={EPOCHS}", f"train.steps_per_epoch={STEPS}", "tracking.log_every_steps=1"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
def test_two_runs_started_at_once_on_a_new_store_both_finish_with_every_metric(tmp_path):
    out = tmp_path / "out"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "run.py",
                *TRAIN,
                f"seed={seed}",
                f"output_dir={out}",
                f"data_dir={tmp_path / 'data'}",
                f"hydra.run.dir={out / 'runs' / 'x' / str(seed)}",
            ],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in (0, 1)
    ]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log[-3000:]
        assert "database is locked" not in log and "does not answer" not in log, log[-3000:]
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    for run in runs:
        assert run.info.status == "FINISHED"
        loss = client.get_metric_history(run.info.run_id, "train/loss")
        assert sorted(m.step for m in loss) == list(range(1, STEPS * EPOCHS + 1))  # every step, none lost
        assert len(client.get_metric_history(run.info.run_id, "eval/accuracy")) == EPOCHS
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"config.yaml", "metrics.json"}


@pytest.mark.slow
def test_a_joblib_sweep_of_two_parallel_jobs_on_sqlite_loses_nothing(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "run.py",
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "margin=0.1,0.3,0.5,1.0",
            *TRAIN[:1],
            "epochs=1",
            "train.steps_per_epoch=20",
            "tracking.log_every_steps=1",
            f"output_dir={out}",
            f"data_dir={tmp_path / 'data'}",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "database is locked" not in log and "does not answer" not in log, log[-3000:]
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4 and parents[0].info.status == "FINISHED"
    assert sorted(c.data.params["margin"] for c in children) == ["0.1", "0.3", "0.5", "1.0"]
    for child in children:
        assert child.info.status == "FINISHED"
        steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, "train/loss"))
        assert steps == list(range(1, 21)) and "eval/accuracy" in child.data.metrics
    assert parents[0].data.metrics["sweep/jobs"] == 4 and parents[0].data.metrics["sweep/failed_jobs"] == 0
