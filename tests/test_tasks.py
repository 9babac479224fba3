"""The task contract: a task is one class plus one registration line; one that does not state what it reads is
refused; the run context gives every task its run directory, run.json, tracker and end status."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from facenet import app
from facenet.config.overrides import Reads
from facenet.errors import ConfigError
from facenet.tasks import TASKS, Task, registry


class Toy(Task):
    name = "toy"
    reads = Reads(keys=frozenset({"tracking", "output_dir", "seed"}))

    def run(self, cfg, context):
        (context.run_dir / "toy.txt").write_text(f"seed {cfg.seed}")
        context.tracker.log_artifact(context.run_dir / "toy.txt")
        return {"accuracy": 0.5, "seed": float(cfg.seed)}


class Failing(Toy):
    name = "failing"

    def run(self, cfg, context):
        raise RuntimeError("the toy broke")


def test_a_task_without_its_settings_list_cannot_be_registered():
    class Unstated(Task):
        name = "unstated"

        def run(self, cfg, context):
            return {}

    with pytest.raises(TypeError, match="task unstated does not state the settings it reads"):
        registry(*TASKS.values(), Unstated())
    with pytest.raises(TypeError, match="two tasks are named 'train'"):
        registry(*TASKS.values(), type("Again", (Toy,), {"name": "train"})())
    assert set(registry(*TASKS.values(), Toy())) == {*TASKS, "toy"}


def test_every_registered_task_states_what_it_reads():
    assert set(TASKS) == {"train", "eval", "export", "two_stage"}
    assert all(isinstance(t.reads, Reads) for t in TASKS.values())
    assert [t.name for t in TASKS.values() if t.resumes] == ["train", "two_stage"]


def test_a_registered_toy_task_runs_in_the_run_context(compose_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(app, "TASKS", registry(*TASKS.values(), Toy(), Failing()))
    metrics = app.run(compose_cfg("task=toy", f"output_dir={tmp_path}", "seed=3"))
    assert metrics == {"accuracy": 0.5, "seed": 3.0}
    (run_json,) = tmp_path.glob("runs/*/*/run.json")
    run_dir = run_json.parent
    assert json.loads(run_json.read_text())["status"] == "FINISHED"
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    assert r.info.status == "FINISHED" and r.data.tags["task"] == "toy" and r.data.params["seed"] == "3"
    assert {a.path for a in client.list_artifacts(r.info.run_id)} >= {"toy.txt", "config.yaml", "metrics.json"}
    with pytest.raises(RuntimeError, match="the toy broke"):
        app.run(compose_cfg("task=failing", f"output_dir={tmp_path / 'f'}"))
    (run_json,) = (tmp_path / "f").glob("runs/*/*/run.json")
    assert json.loads(run_json.read_text())["status"] == "FAILED"
    with pytest.raises(ConfigError, match="resume= continues a training run; task=toy has nothing to resume"):
        app.run(compose_cfg("task=toy", f"output_dir={tmp_path / 'r'}", "resume=auto"))
    assert not (tmp_path / "r").exists()  # refused before any work


def test_a_toy_task_refuses_an_override_it_does_not_read():
    from facenet.config.overrides import check_overrides

    check_overrides("toy", Toy.reads, ["seed=1", "tracking=off", "experiment=smoke", "hardware=cpu"])
    with pytest.raises(
        ConfigError,
        match=r"task=toy does not read lr=0.1; drop it \(lr=0.1\). task=toy reads: "
        r"hardware, output_dir, seed, tracking",
    ):
        check_overrides("toy", Toy.reads, ["seed=1", "lr=0.1"])
