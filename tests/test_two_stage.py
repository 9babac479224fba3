"""experiment=two_stage: a margin-softmax stage, then triplet fine-tuning from its best checkpoint, as one run: two
nested MLflow runs under a parent with both stages' metrics and a summary; stage 2's settings checked first; an
interrupted two-stage run resumed stage by stage."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from facenet.app import run
from facenet.errors import UserError
from facenet.tasks.two_stage import stage_configs

SMALL = [
    "experiment=two_stage",
    "epochs=1",
    "train.steps_per_epoch=3",
    "dataset.identities=16",
    "dataset.images_per_identity=4",
    "dataset.image_size=32",
    "eval.identities_per_fold=2",
    "eval.images_per_identity=3",
    "eval.pairs_per_fold=2",
    "eval.image_size=32",
    "batch.size=16",
    "two_stage.finetune.epochs=1",
    "two_stage.finetune.batch.identities=4",
    "hydra.job_logging.root.level=WARNING",
]


def test_stage_two_replaces_the_loss_groups_and_merges_the_rest(compose_cfg):
    cfg = compose_cfg(*SMALL, "loss=cosface", "two_stage.finetune.margin=0.4", "two_stage.finetune.lr=0.0001")
    first, second = stage_configs(cfg)
    assert first.task == second.task == "train" and first.two_stage is None and second.two_stage is None
    assert first.loss._target_.endswith("CosFaceLoss") and first.miner._target_ == "facenet.mining.none"
    assert first.margin == 0.2
    assert second.loss == {
        "_target_": "facenet.losses.TripletLoss",
        "_partial_": True,
        "margin": 0.4,
        "squared": False,
        "reduction": "active_mean",
    }
    assert second.miner._target_.endswith("SemiHardMiner") and second.batch._target_.endswith("PKSampler")
    assert (second.lr, second.epochs, second.finetune.bn, second.train.eval_at_start) == (0.0001, 1, "frozen", True)
    assert first.finetune.bn == "train" and first.lr == 0.002
    with pytest.raises(Exception, match="needs two_stage.finetune"):
        stage_configs(compose_cfg("task=two_stage"))


def test_stage_two_settings_are_checked_before_stage_one_runs(compose_cfg, tmp_path):
    cfg = compose_cfg(*SMALL, "tracking=off", f"output_dir={tmp_path}", "two_stage.finetune.epochs=0")
    with pytest.raises(UserError, match=r"epochs=0 \(must be >= 1\)"):
        run(cfg)
    assert not list(tmp_path.glob("runs/*/*/stage1"))
    with pytest.raises(UserError, match="two_stage is read by task=two_stage only; task=train would ignore it"):
        run(compose_cfg(*SMALL, "tracking=off", f"output_dir={tmp_path}", "task=train"))


@pytest.mark.slow  # two short training runs and a resume: 25 s
def test_two_stage_runs_nest_under_a_parent_with_both_stages(compose_cfg, tmp_path):
    metrics = run(compose_cfg(*SMALL, f"output_dir={tmp_path}"))
    (run_dir,) = tmp_path.glob("runs/*/*")
    for stage in ("stage1", "stage2"):
        assert json.loads((run_dir / stage / "run.json").read_text())["status"] == "FINISHED"
    spec1 = json.loads((run_dir / "stage1/checkpoints/best.json").read_text())
    spec2 = json.loads((run_dir / "stage2/checkpoints/best.json").read_text())
    assert spec1["loss"]["name"] == "ArcFaceLoss" and spec2["loss"]["name"] == "TripletLoss"
    config2 = (run_dir / "stage2" / "config.yaml").read_text()
    assert f"ckpt: {run_dir / 'stage1' / 'checkpoints' / 'best.ckpt'}" in config2

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == {"stage1", "stage2"} and parent.info.status == "FINISHED"
    for stage in ("stage1", "stage2"):
        got = parent.data.metrics[f"{stage}/accuracy"]
        assert got == pytest.approx(children[stage].data.metrics["eval/accuracy"])
    assert metrics["accuracy"] == pytest.approx(parent.data.metrics["stage2/accuracy"])
    assert metrics["stage1/accuracy"] == pytest.approx(parent.data.metrics["stage1/accuracy"])
    summary = (run_dir / "two_stage.md").read_text()
    assert "| stage1 | ArcFaceLoss, epochs 1, lr 0.002 |" in summary
    assert "| stage2 | TripletLoss, epochs 1, lr 0.0002, from stage1's best.ckpt |" in summary
    assert "The model to use: `stage2/checkpoints/best.ckpt`" in summary
    assert "two_stage.md" in [a.path for a in client.list_artifacts(parent.info.run_id)]

    # an interrupted fine-tune: resume keeps stage 1 and continues stage 2 in the same MLflow runs
    (run_dir / "stage2" / "metrics.json").unlink()
    state = json.loads((run_dir / "stage2" / "run.json").read_text())
    (run_dir / "stage2" / "run.json").write_text(json.dumps({**state, "status": "KILLED"}))
    again = run(compose_cfg(*SMALL, f"output_dir={tmp_path}", f"resume={run_dir}"))
    assert again["stage1/accuracy"] == metrics["stage1/accuracy"]
    assert len(client.search_runs([client.get_experiment_by_name("facenet").experiment_id])) == 3
    assert client.get_run(children["stage2"].info.run_id).data.tags["resumes"] == "1"
    assert json.loads((run_dir / "stage2" / "run.json").read_text())["status"] == "FINISHED"
    assert "from stage1's best.ckpt" in (run_dir / "two_stage.md").read_text()
