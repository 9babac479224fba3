"""Sweeps: summary tables and plots from job directories; real multiruns (basic and joblib launchers, a real MLflow
server, Optuna) read back through MlflowClient; provenance tags and `facenet rerun`; tracking server failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from facenet.comparison.report import ARTIFACTS as COMPARISON_FILES
from facenet.errors import TrackingError
from facenet.sweep_plots import parallel_coordinates, sweep_plot
from facenet.sweeps import SUMMARY_CSV, override_columns, summarize, varying
from facenet.tracking import MlflowTracker
from tests.conftest import ROOT, free_port

SMOKE = ["experiment=smoke", "hydra.job_logging.root.level=WARNING"]


def _job(sweep: Path, num: int, overrides: list[str], state: dict | None, metrics: dict | None = None) -> None:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if state is not None:
        (job / "run.json").write_text(json.dumps(state))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))


def test_summary_has_every_job_in_order_and_never_drops_a_failure(tmp_path):
    _job(
        tmp_path,
        10,
        ["margin=1.0", "miner=batch_all"],
        {"status": "FINISHED", "run_id": "c"},
        {"accuracy": 0.9, "auc": 0.95, "accuracy_std": 0.01},
    )
    _job(
        tmp_path,
        2,
        ["margin=0.2", "miner=batch_all"],
        {"status": "FINISHED", "run_id": "a"},
        {"accuracy": 0.8, "auc": 0.85, "accuracy_std": 0.02},
    )
    _job(tmp_path, 3, ["margin=0.5", "miner=batch_all"], {"status": "FAILED", "run_id": "b", "error": "ConfigError: x"})
    _job(tmp_path, 4, ["margin=0.7", "miner=batch_all"], {"status": "RUNNING", "run_id": "d"})  # process died
    _job(tmp_path, 5, ["margin=0.9", "miner=batch_all"], None)  # died before writing run.json
    (tmp_path / "not_a_job").mkdir()
    table = summarize(tmp_path)
    assert table["job"].tolist() == [2, 3, 4, 5, 10]
    assert table["status"].tolist() == ["FINISHED", "FAILED", "CRASHED", "CRASHED", "FINISHED"]
    assert list(table.columns[:4]) == ["job", "status", "margin", "miner"] and table.columns[4] == "accuracy"
    assert override_columns(table) == ["margin", "miner"] and varying(table, ["margin", "miner"]) == ["margin"]
    assert table["margin"].dtype.kind == "f" and table["margin"].tolist() == [0.2, 0.5, 0.7, 0.9, 1.0]
    assert table["accuracy"].tolist()[::4] == [0.8, 0.9] and table["accuracy"].isna().tolist()[1:4] == [True] * 3
    assert table.loc[1, "error"] == "ConfigError: x" and table["run_id"].tolist()[:3] == ["a", "b", "d"]
    assert pd.isna(table.loc[3, "run_id"])


def test_sweep_plots_for_numeric_categorical_and_several_parameters(tmp_path):
    table = pd.DataFrame(
        {
            "job": range(5),
            "status": ["FINISHED"] * 4 + ["FAILED"],
            "lr": [0.0003, 0.001, 0.003, 0.01, 0.03],
            "miner": ["a", "b", "a", "c", "b"],
            "accuracy": [0.6, 0.7, 0.8, 0.75, float("nan")],
            "accuracy_std": [0.01] * 5,
        }
    )
    for path in (
        sweep_plot(table, "lr", tmp_path / "lr.png"),
        sweep_plot(table, "miner", tmp_path / "miner.png"),
        parallel_coordinates(table, ["lr", "miner"], tmp_path / "pc.png"),
    ):
        assert path.stat().st_size > 10_000


def test_unreachable_tracking_server_fails_fast_or_falls_back(tmp_path):
    port = free_port()
    url, out = f"http://127.0.0.1:{port}", str(tmp_path)
    tracker = MlflowTracker(url, "facenet", None, out, log_every_steps=10, fallback_local=False, connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(TrackingError, match=rf"127.0.0.1:{port} is unreachable .*fallback_local=true"):
        tracker.start({"a": 1}, {})
    assert time.monotonic() - started < 10
    tracker = MlflowTracker(url, "facenet", None, out, log_every_steps=10, fallback_local=True, connect_timeout=5.0)
    tracker.start({"a": 1}, {"t": "1"})
    tracker.end()
    assert tracker.uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    client = MlflowClient(tracker.uri)
    (r,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    assert r.data.params["a"] == "1" and r.info.status == "FINISHED"


def _run(args: list[str], cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _sweep(client: MlflowClient, experiment: str = "facenet"):
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def _csv(client: MlflowClient, run_id: str, tmp: Path) -> pd.DataFrame:
    return pd.read_csv(client.download_artifacts(run_id, SUMMARY_CSV, str(tmp)))


@pytest.mark.slow
def test_margin_multirun_parent_summary_matches_children_and_rerun_reproduces(tmp_path):
    out = tmp_path / "out"
    proc = _run(["run.py", "-m", "margin=0.01,0.05,1.0", *SMOKE, f"output_dir={out}", f"data_dir={tmp_path / 'data'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    (parent,), children = _sweep(client)
    assert len(children) == 3
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert {c.data.tags["sweep_id"] for c in children} == {parent.data.tags["sweep_id"]}
    assert sorted(c.data.params["margin"] for c in children) == ["0.01", "0.05", "1.0"]
    assert sorted(c.info.run_name for c in children) == ["margin=0.01", "margin=0.05", "margin=1.0"]
    assert parent.data.params["sweep.margin"] == "0.01,0.05,1.0" and "margin" not in parent.data.params
    table = _csv(client, parent.info.run_id, tmp_path)
    assert len(table) == 3 and set(table["status"]) == {"FINISHED"}
    for child in children:
        (row,) = table[table["run_id"] == child.info.run_id].itertuples()
        assert row.margin == float(child.data.params["margin"])
        for key in ("accuracy", "auc", "threshold", "eer"):
            assert getattr(row, key) == pytest.approx(child.data.metrics[f"eval/{key}"], abs=1e-12), key
    assert table["threshold"].nunique() == 3  # the margins lead to different models: rows cannot be mixed up
    best = table.loc[table["accuracy"].idxmax()]
    assert parent.data.metrics["best/accuracy"] == pytest.approx(best["accuracy"])
    assert parent.data.tags["best_run_id"] == best["run_id"] and parent.data.metrics["sweep/failed_jobs"] == 0
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {
        SUMMARY_CSV,
        "sweep_accuracy.png",
        "comparison",
    }
    assert parent.info.status == "FINISHED"
    # the children side by side on the parent (facenet compare), labelled by margin, numbers from their reports
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "comparison")} == {
        f"comparison/{name}" for name in COMPARISON_FILES
    }
    comparison = pd.read_csv(client.download_artifacts(parent.info.run_id, "comparison/comparison.csv", str(tmp_path)))
    assert sorted(comparison["run"]) == ["margin=0.01", "margin=0.05", "margin=1.0"]
    for child in children:
        (row,) = comparison[comparison["run_id"] == child.info.run_id].itertuples()
        assert row.run == child.info.run_name and row.accuracy == child.data.metrics["eval/accuracy"]
    # the same comparison from the parent's MLflow id
    uri = f"sqlite:///{out / 'mlflow.db'}"
    again = _run(
        [
            "-m",
            "facenet.cli",
            "compare",
            parent.info.run_id,
            "--tracking-uri",
            uri,
            "-o",
            str(tmp_path / "again"),
            "--no-mlflow",
        ]
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert pd.read_csv(tmp_path / "again" / "comparison.csv")["run"].tolist() == comparison["run"].tolist()

    # provenance on every child, and `facenet rerun` reproduces one of them exactly
    child = children[0]
    tags = child.data.tags
    assert len(tags["git_commit"]) == 40 and tags["git_dirty"] in ("true", "false")
    assert tags["version.mindspore"] == "2.10.0" and tags["hydra_mode"] == "MULTIRUN"
    assert f"margin={child.data.params['margin']}" in json.loads(tags["hydra_overrides_json"])
    assert "environment.json" in {a.path for a in client.list_artifacts(child.info.run_id)}
    uri = f"sqlite:///{out / 'mlflow.db'}"
    dry = _run(["-m", "facenet.cli", "rerun", child.info.run_id, "--tracking-uri", uri, "--dry-run"])
    assert dry.returncode == 0 and dry.stdout.strip().endswith("hydra.mode=RUN"), dry.stdout + dry.stderr
    rerun = _run(["-m", "facenet.cli", "rerun", child.info.run_id, "--tracking-uri", uri])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (again,) = client.search_runs([child.info.experiment_id], f"tags.rerun_of = '{child.info.run_id}'")
    for key in ("eval/accuracy", "eval/auc", "eval/threshold"):
        assert again.data.metrics[key] == pytest.approx(child.data.metrics[key], abs=1e-9), key
    assert again.data.params == child.data.params
    missing = _run(["-m", "facenet.cli", "rerun", "0123abc", "--tracking-uri", uri])
    assert missing.returncode == 1 and "cannot read run 0123abc" in missing.stderr, missing.stderr


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1 (free port), SQLite backend, local artifact store; stopped afterwards."""
    port = free_port()
    store = tmp_path / "server"
    store.mkdir()
    cmd = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        f"sqlite:///{store / 'mlflow.db'}",
        "--artifacts-destination",
        str(store / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = (store / "server.log").open("w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(uri + "/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"mlflow server did not start: {(store / 'server.log').read_text()[-2000:]}")
        yield uri
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_parallel_sweep_against_a_real_tracking_server_survives_a_failing_job(tmp_path, mlflow_server):
    out = tmp_path / "out"
    proc = _run(
        [
            "run.py",
            "-m",
            "batch.identities=16,8,1",
            *SMOKE,
            "tracking=mlflow_server",
            f"tracking.tracking_uri={mlflow_server}",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            f"output_dir={out}",
            f"data_dir={tmp_path / 'data'}",
        ]
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]  # one job failed: the sweep finishes, then says so
    assert "1 sweep job(s) failed" in output and "triplets need P >= 2" in output
    client = MlflowClient(mlflow_server)
    (parent,), children = _sweep(client)
    assert len(children) == 3 and not (out / "mlflow.db").exists()
    status = {c.data.params["batch.identities"]: c.info.status for c in children}
    assert status == {"16": "FINISHED", "8": "FINISHED", "1": "FAILED"}
    threads = str(max(1, (os.cpu_count() or 1) // 2))  # joblib with 2 jobs: each job gets half of the cores
    assert {c.data.tags["cpu_threads"] for c in children} == {threads}
    table = _csv(client, parent.info.run_id, tmp_path)
    assert sorted(table["batch.identities"]) == [1, 8, 16]
    failed = table[table["status"] == "FAILED"].iloc[0]
    assert failed["batch.identities"] == 1 and "triplets need P >= 2" in failed["error"]
    for child in (c for c in children if c.info.status == "FINISHED"):
        row = table[table["run_id"] == child.info.run_id].iloc[0]
        assert row["accuracy"] == pytest.approx(child.data.metrics["eval/accuracy"], abs=1e-12)
        assert {"eval", "checkpoints", "config.yaml"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
    assert parent.data.metrics["sweep/failed_jobs"] == 1 and parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {
        SUMMARY_CSV,
        "sweep_accuracy.png",
        "comparison",
    }


@pytest.mark.slow
def test_optuna_sweep_file_records_the_best_trial_on_the_parent(tmp_path):
    out = tmp_path / "out"
    proc = _run(
        [
            "run.py",
            "--config-dir",
            "multirun_sweeps",
            "--config-name",
            "optuna",
            "hydra.sweeper.n_trials=2",
            *SMOKE,
            f"output_dir={out}",
            f"data_dir={tmp_path / 'data'}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    (parent,), children = _sweep(client)
    assert len(children) == 2 and parent.data.tags["sweep.sweeper"] == "OptunaSweeper"
    (result_file,) = out.glob("multiruns/*/*/optimization_results.yaml")
    result = yaml.safe_load(result_file.read_text())
    assert result["best_value"] == pytest.approx(max(c.data.metrics["eval/accuracy"] for c in children))
    assert parent.data.metrics["optuna/best_value"] == pytest.approx(result["best_value"])
    for key, value in result["best_params"].items():
        assert parent.data.params[f"optuna.best.{key}"] == str(value)
    best_overrides = {f"{k}={v}" for k, v in result["best_params"].items()}
    (best_child,) = [c for c in children if best_overrides <= set(json.loads(c.data.tags["hydra_overrides_json"]))]
    assert best_child.data.metrics["eval/accuracy"] == pytest.approx(result["best_value"])
    assert {"optimization_results.yaml", SUMMARY_CSV, "sweep_parallel_coordinates.png", "comparison"} == {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }
    # trials go to the children with the config the sweep file composes (rest of the default config kept)
    assert {c.data.params["miner._target_"].rsplit(".", 1)[-1] for c in children} <= {
        "BatchAllMiner",
        "BatchHardMiner",
        "SemiHardMiner",
    }


@pytest.mark.parametrize("name", ["margin", "optimizer_lr", "miner", "optuna"])
def test_sweep_files_compose_and_every_grid_point_is_a_valid_config(name, compose_cfg):
    """Each file is a primary config that runs as a multirun, says how to run it, and (for grids) every job's
    overrides compose against the schemas; Optuna's search space parses."""
    text = (ROOT / "multirun_sweeps" / f"{name}.yaml").read_text()
    assert f"python run.py --config-dir multirun_sweeps --config-name {name}" in text.split("defaults:")[0]
    spec = yaml.safe_load(text)
    assert spec["hydra"]["mode"] == "MULTIRUN" and "config" in spec["defaults"]
    proc = _run(["run.py", "--config-dir", "multirun_sweeps", "--config-name", name, "--cfg", "hydra"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    params = spec["hydra"]["sweeper"]["params"]
    if name == "optuna":
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

        parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
        kinds = {o.key_or_group: type(create_optuna_distribution_from_override(o)).__name__ for o in parsed}
        assert kinds == {
            "lr": "LogUniformDistribution",
            "margin": "UniformDistribution",
            "miner": "CategoricalDistribution",
        }
        assert "targetSweeper" not in proc.stdout and "OptunaSweeper" in proc.stdout
        return
    import itertools

    grid = [[f"{k}={v}" for v in str(values).split(",")] for k, values in params.items()]
    targets = {k: set() for k in params}
    for overrides in itertools.product(*grid):
        cfg = compose_cfg(*overrides)
        for o in overrides:
            key, value = o.split("=")
            node = OmegaConf.select(cfg, key)
            if isinstance(node, DictConfig):  # a config group: each option must compose to its own class
                targets[key].add(node._target_)
            else:
                assert node == pytest.approx(float(value))
        if "miner=random_triplets" in overrides:
            assert cfg.batch._target_.endswith("TripletSampler")  # the miner brings the batches it needs
    for key, found in targets.items():
        assert not found or len(found) == len(str(params[key]).split(",")), (key, found)


def test_tracking_store_lost_mid_run_keeps_the_data_and_training(tmp_path, monkeypatch, caplog):
    """log_metrics / log_artifact never raise when the store stops answering: calls are kept in order and sent
    when it answers again; still unsent at the end, they are written to a file and the run is closed if possible."""
    out = str(tmp_path)
    tracker = MlflowTracker(None, "facenet", None, out, log_every_steps=10, fallback_local=False, connect_timeout=5.0)
    tracker.start({"a": 1}, {})
    client = tracker.client
    real_log_batch = client.log_batch
    down = {"on": True}

    def flaky(*args, **kwargs):
        if down["on"]:
            raise ConnectionError("connection refused")
        return real_log_batch(*args, **kwargs)

    monkeypatch.setattr(client, "log_batch", flaky)
    (tmp_path / "a.txt").write_text("x")
    with caplog.at_level("WARNING"):
        tracker.log_metrics({"train/loss": 1.0}, 1)
        tracker.log_artifact(tmp_path / "a.txt")
        tracker.log_metrics({"train/loss": 0.5}, 2)
    assert len(tracker.pending) == 3 and caplog.text.count("does not answer") == 1
    down["on"] = False
    tracker.log_metrics({"train/loss": 0.25}, 3)
    assert tracker.pending == [] and "answers again" in caplog.text
    history = [(m.step, m.value) for m in client.get_metric_history(tracker.run_id, "train/loss")]
    assert sorted(history) == [(1, 1.0), (2, 0.5), (3, 0.25)]
    assert "a.txt" in {a.path for a in client.list_artifacts(tracker.run_id)}
    down["on"] = True
    tracker.log_metrics({"train/loss": 0.125}, 4)
    tracker.end("FINISHED")
    unsent = json.loads((tmp_path / f"mlflow-unsent-{tracker.run_id}.json").read_text())
    assert unsent == [{"kind": "metrics", "args": [[["train/loss", 0.125, unsent[0]["args"][0][0][2], 4]]]}]
    assert client.get_run(tracker.run_id).info.status == "FINISHED"
