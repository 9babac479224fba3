"""A short training run through Hydra's compose API, read back from MLflow; evaluation of its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

from facenet.app import run
from facenet.errors import UserError
from tests.conftest import write_faces

# 3 epochs x 3 steps, evaluated every epoch, checkpointed every 2nd epoch (and the last), newest 1 kept
TRAIN = [
    "experiment=smoke",
    "tracking.log_every_steps=1",
    "epochs=3",
    "train.ckpt_every=2",
    "train.keep_checkpoint_max=1",
]


@pytest.fixture(scope="module")
def trained(compose_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    metrics = run(compose_cfg(*TRAIN, f"output_dir={out}"))
    (run_dir,) = [p for p in (out / "runs").glob("*/*") if p.is_dir()]
    return run_dir, out, metrics


def test_training_run_is_logged_to_mlflow(trained):
    _, out, metrics = trained
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["epoch"] == 3
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("facenet")
    (r,) = client.search_runs([exp.experiment_id])
    assert r.info.status == "FINISHED"
    assert r.data.params["margin"] == "0.2" and r.data.params["batch.identities"] == "16"
    assert r.data.params["optimizer._target_"] == "mindspore.nn.Adam"
    assert r.data.metrics["eval/accuracy"] == pytest.approx(metrics["accuracy"])
    for key in (
        "train/loss",
        "train/lr",
        "train/active_fraction",
        "train/d_ap",
        "train/d_an",
        "eval/auc",
        "eval/eer",
        "eval/threshold",
        "eval/accuracy_std",
        "eval/val_at_far_0.001",
    ):
        assert key in r.data.metrics, key
    history = client.get_metric_history(r.info.run_id, "train/loss")
    assert [m.step for m in history] == list(range(1, 10))  # 3 epochs x 3 steps, every step logged
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"config.yaml", "metrics.json", "eval", "checkpoints"} <= artifacts
    expected = {
        "eval/roc.png",
        "eval/report.json",
        "eval/report.txt",
        "eval/scores.csv",
        "eval/distances.png",
        "eval/hardest_pairs.png",
    }
    assert {a.path for a in client.list_artifacts(r.info.run_id, "eval")} == expected
    ckpts = {a.path for a in client.list_artifacts(r.info.run_id, "checkpoints")}
    assert ckpts == {"checkpoints/best.ckpt", "checkpoints/best.json"}


def test_checkpoints_rotated_and_best_is_the_best_evaluation(trained):
    run_dir, out, metrics = trained
    kept = sorted(p.name for p in (run_dir / "checkpoints").glob("facenet-*.ckpt"))
    assert kept == ["facenet-rank0-3_9.ckpt"]  # epochs 2 and 3 saved, keep_checkpoint_max=1
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    history = [m.value for m in sorted(client.get_metric_history(r.info.run_id, "eval/accuracy"), key=lambda m: m.step)]
    assert len(history) == 3
    spec = json.loads((run_dir / "checkpoints" / "best.json").read_text())
    assert spec["epoch"] == 1 + history.index(max(history))  # first epoch reaching the best accuracy
    assert spec["metrics"]["accuracy"] == max(history) == metrics["best_accuracy"]
    assert spec["preprocess"]["image_size"] == 32 and spec["model"]["head"]["embedding_size"] == 128


def test_eval_task_reproduces_checkpoint_accuracy(trained, compose_cfg):
    run_dir, out, metrics = trained
    last = run_dir / "checkpoints" / "facenet-rank0-3_9.ckpt"
    got = run(compose_cfg("experiment=smoke", f"output_dir={out / 'ev'}", "task=eval", f"ckpt={last}"))
    assert got["accuracy"] == pytest.approx(metrics["accuracy"])
    assert got["auc"] == pytest.approx(metrics["auc"], abs=1e-6)


def test_eval_applies_the_checkpoints_preprocessing(trained, compose_cfg, caplog):
    """The sidecar says 32x32. Inherited defaults (the synthetic set's 64) do not change that; a training-size
    setting is refused with the way out; eval.override_image_size evaluates at another size, with a warning, and
    the report records what was applied."""
    run_dir, out, metrics = trained
    last = run_dir / "checkpoints" / "facenet-rank0-3_9.ckpt"
    base = [
        "task=eval",
        f"ckpt={last}",
        "eval=synthetic",
        "eval.image_size=32",
        "eval.identities_per_fold=2",
        "eval.images_per_identity=3",
        "eval.pairs_per_fold=2",
    ]
    # no experiment: preprocess.image_size inherits the default synthetic dataset's 64; the checkpoint's 32 wins
    got = run(compose_cfg(*base, f"output_dir={out / 'ev_default'}"))
    assert got["accuracy"] == pytest.approx(metrics["accuracy"]) and got["auc"] == pytest.approx(metrics["auc"])
    (ev_dir,) = (out / "ev_default" / "runs").glob("*/*")
    assert json.loads((ev_dir / "eval" / "report.json").read_text())["preprocess"]["image_size"] == 32

    with pytest.raises(UserError, match=r"trained at 32x32.*eval.override_image_size=48"):
        run(compose_cfg(*base, f"output_dir={out / 'ev_refused'}", "preprocess.image_size=48"))

    with caplog.at_level("WARNING"):
        got = run(compose_cfg(*base, f"output_dir={out / 'ev48'}", "eval.override_image_size=48"))
    assert "trained on 32x32 inputs at 48x48" in caplog.text
    assert got["auc"] != pytest.approx(metrics["auc"], abs=1e-9)  # a different input really was fed
    (ev_dir,) = (out / "ev48" / "runs").glob("*/*")
    assert json.loads((ev_dir / "eval" / "report.json").read_text())["preprocess"]["image_size"] == 48


def test_override_image_size_refused_where_the_head_is_size_bound(compose_cfg):
    from facenet.models.build import build_network

    cfg = compose_cfg("head=reference", "eval.override_image_size=48")
    net = build_network(cfg.backbone, cfg.head, 32)
    protocol = instantiate(cfg.eval)
    refusal = r"pool=flatten\) is built for a 2x2 feature map \(32x32 inputs\); 48x48 inputs give 3x3"
    with pytest.raises(UserError, match=refusal):
        protocol.input_size(net)  # resnet_tiny halves the size 4 times: 32 -> 2, 48 -> 3
    assert instantiate(compose_cfg("head=reference", "eval.override_image_size=31").eval).input_size(net) == 31
    cfg = compose_cfg("eval.override_image_size=48")
    assert instantiate(cfg.eval).input_size(build_network(cfg.backbone, cfg.head, 32)) == 48
    assert instantiate(compose_cfg().eval).input_size(net) == 32
    with pytest.raises(InstantiationException, match="override_image_size must be >= 8"):
        instantiate(compose_cfg("eval.override_image_size=4").eval)


def test_checkpoint_problems_are_clear(trained, compose_cfg, tmp_path):
    run_dir, _, _ = trained
    best = run_dir / "checkpoints" / "best.ckpt"
    # warm start (ckpt with task=train) into another architecture
    cfg = compose_cfg("experiment=smoke", f"output_dir={tmp_path}", f"ckpt={best}", "backbone.base_width=8")
    with pytest.raises(UserError, match="does not fit this network"):
        run(cfg)
    # a sidecar naming something that is not a model class is refused, not instantiated
    (tmp_path / "evil.ckpt").write_bytes(best.read_bytes())
    spec = json.loads(best.with_suffix(".json").read_text())
    spec["model"]["head"]["_target_"] = "os.system"
    (tmp_path / "evil.json").write_text(json.dumps(spec))
    with pytest.raises(UserError, match="names head class 'os.system', which is not one of this project's"):
        run(compose_cfg("experiment=smoke", f"output_dir={tmp_path}", "task=eval", f"ckpt={tmp_path / 'evil.ckpt'}"))
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    (tmp_path / "junk.json").write_text(best.with_suffix(".json").read_text())
    with pytest.raises(UserError, match="cannot read checkpoint"):
        run(compose_cfg("experiment=smoke", f"output_dir={tmp_path}", "task=eval", f"ckpt={tmp_path / 'junk.ckpt'}"))


@pytest.mark.parametrize(
    "overrides,message,logged",
    [
        (["task=eval"], "needs a checkpoint", True),
        (["task=eval", "ckpt=/nonexistent.ckpt"], "does not exist", True),
        (["batch.identities=1"], "batch.identities=1, batch.images_per_identity=4: triplets need P >= 2", True),
        (["train.ckpt_every=0", "train.eval_every=0"], r"eval_every=0 \(must be >= 1\), train.ckpt_every=0", True),
        (["miner=random_triplets", "batch=pk"], "needs batch=triplets, not batch=pk", True),
        (["lr_schedule=step", "lr_schedule.step_epochs=0"], "step_epochs must be >= 1", True),
        (["task=fly"], "task must be one of", False),
    ],
)
def test_bad_inputs_give_clear_errors_and_failed_runs(compose_cfg, tmp_path, overrides, message, logged):
    cfg = compose_cfg("experiment=smoke", f"output_dir={tmp_path}", *overrides)
    with pytest.raises(UserError, match=message):
        run(cfg)
    assert (tmp_path / "mlflow.db").exists() == logged
    if logged:
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        (r,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
        assert r.info.status == "FAILED"


SMALL = [
    "epochs=1",
    "train.steps_per_epoch=1",
    "batch.identities=2",
    "batch.images_per_identity=2",
    "preprocess.image_size=32",
    "eval.identities_per_fold=2",
    "eval.images_per_identity=2",
    "eval.pairs_per_fold=1",
]


def test_missing_dataset_root_fails(compose_cfg, tmp_path):
    cfg = compose_cfg(*SMALL, f"output_dir={tmp_path}", "dataset=folder", "dataset.root=/nonexistent/faces")
    with pytest.raises(UserError, match="does not exist"):
        run(cfg)


def test_empty_identity_folders_fail(compose_cfg, tmp_path):
    (tmp_path / "faces" / "alice").mkdir(parents=True)
    (tmp_path / "faces" / "bob").mkdir()
    cfg = compose_cfg(*SMALL, f"output_dir={tmp_path}", "dataset=folder", f"dataset.root={tmp_path / 'faces'}")
    with pytest.raises(UserError, match="no images found"):
        run(cfg)


def test_corrupt_training_image_is_skipped_reported_or_refused(compose_cfg, tmp_path, caplog):
    write_faces(tmp_path / "faces", {"alice": 2, "bob": 2}, size=(40, 40))
    broken = tmp_path / "faces" / "bob" / "bob_0002.png"
    broken.write_bytes(b"\x89PNG truncated")
    base = [*SMALL, "dataset=folder", f"dataset.root={tmp_path / 'faces'}"]
    with caplog.at_level("WARNING"):
        run(compose_cfg(*base, f"output_dir={tmp_path / 'skip'}"))
    assert "1 unreadable training images so far" in caplog.text and "bob_0002.png" in caplog.text
    (run_dir,) = (tmp_path / "skip").glob("runs/*/*")
    assert (run_dir / "bad_images.txt").read_text().split() == [str(broken)]
    client = MlflowClient(f"sqlite:///{tmp_path / 'skip' / 'mlflow.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    assert r.data.metrics["data/bad_images"] == 1 and r.info.status == "FINISHED"
    with pytest.raises(UserError, match="more than train.max_bad_images=0: .*bob/bob_0002.png"):
        run(compose_cfg(*base, f"output_dir={tmp_path / 'strict'}", "train.max_bad_images=0"))


@pytest.mark.slow  # a training run; CI runs it (.ci/run)
def test_pairs_naming_missing_images_fail(compose_cfg, tmp_path):
    write_faces(tmp_path / "lfw", {"A": 1, "B": 1}, ext="jpg")
    (tmp_path / "pairs.txt").write_text("1\t1\nA\t1\t2\nA\t1\tB\t1\n")
    cfg = compose_cfg(
        *SMALL[:5],
        f"output_dir={tmp_path}",
        "eval=lfw",
        f"eval.root={tmp_path / 'lfw'}",
        f"eval.pairs={tmp_path / 'pairs.txt'}",
    )
    with pytest.raises(UserError, match="A/A_0002"):
        run(cfg)


def test_same_seed_reproduces_the_run(trained, compose_cfg, tmp_path):
    _, _, metrics = trained
    again = run(compose_cfg(*TRAIN, f"output_dir={tmp_path}"))
    assert again["accuracy"] == metrics["accuracy"] and again["auc"] == pytest.approx(metrics["auc"], abs=1e-6)


@pytest.mark.slow  # a training run; CI runs it (.ci/run)
def test_offline_random_triplets_train(compose_cfg, tmp_path):
    cfg = compose_cfg(
        "experiment=smoke",
        f"output_dir={tmp_path}",
        "batch=triplets",
        "batch.triplets=4",
        "miner=random_triplets",
        "margin=0.5",
        "tracking.log_every_steps=1",
    )
    metrics = run(cfg)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    assert r.info.status == "FINISHED" and 0 <= metrics["accuracy"] <= 1
    assert r.data.params["batch.triplets"] == "4" and r.data.metrics["train/loss"] > 0


def test_diverging_loss_stops_clearly_and_keeps_the_best_checkpoint(compose_cfg, tmp_path):
    """Epoch 1 trains normally (best.ckpt written); in epoch 2 the lr is multiplied by 1e30 and the loss blows up:
    the run stops at that step, FAILED, naming its last checkpoint, and best.ckpt is still epoch 1's."""
    from facenet.errors import TrainingDiverged

    cfg = compose_cfg(
        "experiment=smoke",
        f"output_dir={tmp_path}",
        "epochs=2",  # a third epoch's lr (1e60 x) would be beyond float32: refused before training
        "optimizer=sgd",
        "lr_schedule=step",
        "lr_schedule.step_epochs=1",
        "lr_schedule.gamma=1e30",
    )
    with pytest.raises(TrainingDiverged, match=r"(loss|embedding norm) became (nan|inf) at step [4-9]: lower lr"):
        run(cfg)
    (run_dir,) = tmp_path.glob("runs/*/*")
    assert json.loads((run_dir / "checkpoints" / "best.json").read_text())["epoch"] == 1
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    assert r.info.status == "FAILED"
    # the failure names the checkpoint resume=auto would continue from (epoch 1's), in run.json and on the run
    ckpt = json.loads((run_dir / "run.json").read_text())["error"].split("(last checkpoint ")[1].split(";")[0]
    assert Path(ckpt).parent == run_dir / "checkpoints" and Path(ckpt).name.startswith("facenet-rank0-1_")
    assert r.data.tags["last_checkpoint"] == ckpt
