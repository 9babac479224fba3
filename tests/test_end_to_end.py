"""A short training run through Hydra's compose API, read back from MLflow; evaluation of its checkpoint."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from facenet.app import run
from facenet.errors import UserError


@pytest.fixture(scope="module")
def trained(compose_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    cfg = compose_cfg(
        "experiment=smoke", f"output_dir={out}", "tracking.log_every_steps=1", "epochs=2", "train.keep_checkpoint_max=1"
    )
    metrics = run(cfg)
    return cfg, out, metrics


def test_training_run_is_logged_to_mlflow(trained):
    cfg, out, metrics = trained
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["epoch"] == 2
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("facenet")
    (r,) = client.search_runs([exp.experiment_id])
    assert r.info.status == "FINISHED"
    assert r.data.params["margin"] == "0.2" and r.data.params["batch.identities"] == "4"
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
    assert [m.step for m in history] == list(range(1, 7))  # 2 epochs x 3 steps, every step logged
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"config.yaml", "metrics.json", "eval", "checkpoints"} <= artifacts
    assert {a.path for a in client.list_artifacts(r.info.run_id, "eval")} >= {"eval/roc.png", "eval/report.json"}
    ckpts = {a.path for a in client.list_artifacts(r.info.run_id, "checkpoints")}
    assert ckpts == {"checkpoints/best.ckpt", "checkpoints/best.json"}


def test_checkpoints_rotated_and_best_kept(trained):
    cfg, out, metrics = trained
    (run_dir,) = [p for p in (out / "runs").glob("*/*") if p.is_dir()]
    kept = sorted(p.name for p in (run_dir / "checkpoints").glob("facenet-*.ckpt"))
    assert kept == ["facenet-rank0-2_6.ckpt"]  # keep_checkpoint_max=1
    spec = json.loads((run_dir / "checkpoints" / "best.json").read_text())
    assert spec["preprocess"]["image_size"] == 32 and spec["model"]["head"]["embedding_size"] == 128


def test_eval_task_reproduces_checkpoint_accuracy(trained, compose_cfg):
    cfg, out, metrics = trained
    (run_dir,) = [p for p in (out / "runs").glob("*/*") if p.is_dir()]
    last = run_dir / "checkpoints" / "facenet-rank0-2_6.ckpt"
    ev = compose_cfg("experiment=smoke", f"output_dir={out / 'ev'}", "task=eval", f"ckpt={last}")
    got = run(ev)
    assert got["accuracy"] == pytest.approx(metrics["accuracy"])
    assert got["auc"] == pytest.approx(metrics["auc"], abs=1e-6)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["task=eval"], "needs a checkpoint"),
        (["task=eval", "ckpt=/nonexistent.ckpt"], "does not exist"),
        (["task=fly"], "task must be one of"),
    ],
)
def test_bad_inputs_give_clear_errors_and_failed_runs(compose_cfg, tmp_path, overrides, message):
    cfg = compose_cfg("experiment=smoke", f"output_dir={tmp_path}", *overrides)
    with pytest.raises(UserError, match=message):
        run(cfg)
    if (tmp_path / "mlflow.db").exists():
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
        assert all(r.info.status == "FAILED" for r in runs)


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


def test_corrupt_training_image_fails_clearly(compose_cfg, tmp_path):
    import cv2
    import numpy as np

    for name in ("alice", "bob"):
        (tmp_path / "faces" / name).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(tmp_path / "faces" / name / f"{i}.png"), np.zeros((40, 40, 3), np.uint8))
    (tmp_path / "faces" / "bob" / "1.png").write_bytes(b"\x89PNG truncated")
    cfg = compose_cfg(*SMALL, f"output_dir={tmp_path}", "dataset=folder", f"dataset.root={tmp_path / 'faces'}")
    with pytest.raises(UserError, match="bob/1.png"):
        run(cfg)


def test_pairs_naming_missing_images_fail(compose_cfg, tmp_path):
    import cv2
    import numpy as np

    for name in ("A", "B"):
        (tmp_path / "lfw" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "lfw" / name / f"{name}_0001.jpg"), np.zeros((8, 8, 3), np.uint8))
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
    cfg, out, metrics = trained
    again = run(
        compose_cfg(
            "experiment=smoke",
            f"output_dir={tmp_path}",
            "tracking.log_every_steps=1",
            "epochs=2",
            "train.keep_checkpoint_max=1",
        )
    )
    assert again["accuracy"] == metrics["accuracy"] and again["auc"] == pytest.approx(metrics["auc"], abs=1e-6)
