"""Training with a classification loss: shuffled batches, the loss/miner/batch combinations (refused before any data
is read when impossible), the classifier as the loss's own parameters (in training checkpoints with its moments,
never in an export, warm-started only when it fits, a resume on another identity count refused), the sidecar's loss
record, and the one-line errors for bad settings."""

from __future__ import annotations

import json

import mindspore as ms
import numpy as np
import pandas as pd
import pytest

from facenet.app import run
from facenet.data.sampler import ShuffleSampler
from facenet.errors import ConfigError, DataError, UserError
from tests.conftest import write_faces

SMOKE = ["experiment=smoke", "tracking=off", "epochs=2", "hydra.job_logging.root.level=WARNING"]


def test_shuffled_batches_hold_every_image_once_per_epoch():
    labels = np.repeat(np.arange(7), 5)  # 35 images, batches of 8: 4 steps, 3 images left out each epoch
    sampler = ShuffleSampler(labels, size=8, seed=3)
    assert (sampler.steps, sampler.batch_size, len(sampler), sampler.layout) == (4, 8, 32, "shuffle")
    one, two = sampler.epoch_indices(1), sampler.epoch_indices(2)
    assert len(set(one.tolist())) == 32 and set(one.tolist()) <= set(range(35))
    np.testing.assert_array_equal(one, ShuffleSampler(pd.DataFrame({"class": labels}), 8, seed=3).epoch_indices(1))
    assert not np.array_equal(one, two)
    longer = ShuffleSampler(labels, size=8, steps_per_epoch=9, seed=3).epoch_indices(1)  # 72 > 35: passes go on
    assert len(longer) == 72 and sorted(longer[:35].tolist()) == list(range(35))
    with pytest.raises(DataError, match="batch.size=64 but the training set has 35 images"):
        ShuffleSampler(labels, size=64)
    with pytest.raises(ConfigError, match="batch.size must be >= 1"):
        ShuffleSampler(labels, size=0)


def test_the_classification_figure_draws_what_the_telemetry_has(tmp_path):
    from facenet.training.curves import classifier_figure

    steps = np.arange(1, 6)
    softmax = pd.DataFrame(
        {
            "step": steps,
            "loss": 3 - 0.4 * steps,
            "train_accuracy": 0.1 * steps,
            "cross_entropy": 2.5 - 0.4 * steps,
            "center_loss": 0.5 + 0 * steps,
            "embedding_norm": 10 + steps,
        }
    )
    assert classifier_figure(softmax, tmp_path / "a.png").stat().st_size > 10_000
    triplet = pd.DataFrame({"step": steps, "loss": 0.2 + 0 * steps, "active_fraction": 0.5 + 0 * steps})
    assert classifier_figure(triplet, tmp_path / "b.png") is None and not (tmp_path / "b.png").exists()


def test_a_classification_loss_selects_no_miner_and_shuffled_batches(compose_cfg):
    from hydra.utils import instantiate

    for loss in ("softmax", "arcface", "cosface", "combined"):
        cfg = compose_cfg(f"loss={loss}")
        assert instantiate(cfg.miner) is None and cfg.batch._target_.endswith("ShuffleSampler"), loss
    cfg = compose_cfg("loss=arcface", "batch=pk")  # P x K batches work with it too
    assert instantiate(cfg.miner) is None and cfg.batch._target_.endswith("PKSampler")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["loss=arcface", "miner=semi_hard"], "miner=SemiHardMiner does not apply to loss=ArcFaceLoss"),
        (["miner=none"], "loss=TripletLoss compares images with images and needs a miner"),
        (["batch=shuffle"], "miner=SemiHardMiner mines triplets in P x K batches; batch=shuffle"),
        (["loss=arcface", "train.health=stop"], "train.health=stop watches triplet runs"),
        (["loss=arcface", "loss.m=2.0"], r"loss.m must be in \[0, pi/2\) for arcface"),
        (["loss=cosface", "loss.m=1.5"], r"loss.m must be in \[0, 1\) for cosface"),
        (["loss=arcface", "loss.s=0"], "loss.s must be > 0"),
        (["loss=cosface", "loss.sample_rate=0"], r"loss.sample_rate must be in \(0, 1\]"),
        (["loss=combined", "loss.sample_rate=1.5"], r"loss.sample_rate must be in \(0, 1\]"),
        (["loss=combined", "loss.m2=-0.1"], "loss margins out of range"),
        (["loss=softmax", "loss.center_alpha=2"], "loss.center_alpha=2.0"),
        (["loss=arcface", "hardware.mine_global_batch=true"], "mine_global_batch=true"),
    ],
)
def test_impossible_settings_are_one_line_errors_before_any_data_is_read(compose_cfg, tmp_path, overrides, message):
    cfg = compose_cfg(*SMOKE, f"output_dir={tmp_path}", "dataset.data_dir=/nonexistent/never/read", *overrides)
    with pytest.raises(UserError, match=message) as err:
        run(cfg)
    assert "\n" not in str(err.value)


def test_a_dataset_of_one_identity_is_refused(compose_cfg, tmp_path):
    faces = write_faces(tmp_path / "faces", {"alice": 4})
    cfg = compose_cfg(
        "tracking=off",
        f"output_dir={tmp_path}",
        "loss=arcface",
        "dataset=folder",
        f"dataset.root={faces}",
        "batch.size=2",
        "preprocess.image_size=32",
        "eval.identities_per_fold=2",
        "eval.images_per_identity=2",
        "eval.pairs_per_fold=1",
    )
    with pytest.raises(UserError, match="needs at least 2 identities; the training set has 1"):
        run(cfg)


@pytest.fixture(scope="module")
def arcface_run(compose_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("arcface")
    metrics = run(compose_cfg(*SMOKE, f"output_dir={out}", "loss=arcface", "batch.size=16"))
    (run_dir,) = [p for p in (out / "runs").glob("*/*") if p.is_dir()]
    return run_dir, metrics


def test_the_classifier_trains_and_is_checkpointed_with_its_moments(arcface_run):
    run_dir, metrics = arcface_run
    assert 0 <= metrics["accuracy"] <= 1
    first, last = sorted(run_dir.glob("checkpoints/facenet-rank0-*.ckpt"), key=lambda p: p.stat().st_mtime)[-2:]
    a, b = (ms.load_checkpoint(str(p)) for p in (first, last))
    for name in ("classifier", "moment1.classifier", "moment2.classifier"):
        assert a[name].shape == (16, 128), name  # 16 identities, 128-d
    assert not np.array_equal(a["classifier"].asnumpy(), b["classifier"].asnumpy())  # trained between epochs
    spec = json.loads(last.with_suffix(".json").read_text())
    assert spec["loss"] == {
        "name": "ArcFaceLoss",
        "s": 64.0,
        "sample_rate": 1.0,
        "m": 0.5,
        "straight_through": False,
        "identities": 16,
    }
    telemetry = pd.read_csv(run_dir / "telemetry.csv")
    assert {"loss", "train_accuracy", "target_cos", "nontarget_cos", "embedding_norm"} <= set(telemetry.columns)
    assert (run_dir / "classifier_training.png").stat().st_size > 10_000
    assert not (run_dir / "triplet_health.png").exists()


def test_evaluation_and_export_never_need_the_classifier(arcface_run, compose_cfg, tmp_path):
    from facenet.cli import main
    from facenet.models.load import load_model

    run_dir, metrics = arcface_run
    best = run_dir / "checkpoints" / "best.ckpt"
    net, _ = load_model(best)
    assert not [p.name for p in net.get_parameters() if p.name.startswith("classifier")]
    again = run(compose_cfg("experiment=smoke", "tracking=off", f"output_dir={tmp_path}", "task=eval", f"ckpt={best}"))
    assert again["accuracy"] == pytest.approx(json.loads(best.with_suffix(".json").read_text())["metrics"]["accuracy"])
    images = sorted(str(p) for p in write_faces(tmp_path / "faces", {"a": 2}, size=(32, 32)).rglob("*.png"))
    for fmt in ("MINDIR", "ONNX"):
        run(
            compose_cfg(
                "experiment=smoke",
                "tracking=off",
                f"output_dir={tmp_path}",
                "task=export",
                f"ckpt={best}",
                f"export.format={fmt}",
                f"export.dir={tmp_path / fmt}",
            )
        )
        (model,) = (tmp_path / fmt).glob(f"*.{fmt.lower()}")
        card = json.loads(model.with_name(model.name + ".json").read_text())
        assert card["trained_with"]["name"] == "ArcFaceLoss" and card["output"]["embedding_size"] == 128, fmt
        assert main(["verify", *images, "--model", str(model), "--threshold", "10"]) == 0, fmt


def test_warm_start_takes_a_fitting_classifier_else_starts_fresh(arcface_run, compose_cfg, caplog, tmp_path):
    from facenet.training.setup import build_loss, warm_start_loss
    from tests.conftest import tiny_checkpoint

    run_dir, _ = arcface_run
    best = run_dir / "checkpoints" / "best.ckpt"
    saved = ms.load_checkpoint(str(best))["classifier"].asnumpy()
    same = build_loss(compose_cfg("loss=arcface"), 16)
    warm_start_loss(same, best, "best.ckpt")
    np.testing.assert_array_equal(same.weight.asnumpy(), saved)
    caplog.clear()
    other = build_loss(compose_cfg("loss=arcface"), 20)
    fresh = other.weight.asnumpy().copy()
    warm_start_loss(other, best, "best.ckpt")
    np.testing.assert_array_equal(other.weight.asnumpy(), fresh)
    assert "its classifier is for 16 identities; the classifier (20 identities) starts fresh" in caplog.text
    softmax = build_loss(compose_cfg("loss=softmax"), 16)  # weight and bias: this checkpoint has no bias
    warm_start_loss(softmax, best, "best.ckpt")
    assert "its classifier is another loss's; the classifier (16 identities) starts fresh" in caplog.text
    warm_start_loss(build_loss(compose_cfg("loss=cosface"), 16), tiny_checkpoint(compose_cfg, tmp_path), "tiny")
    assert "tiny: it has no classifier of this loss" in caplog.text  # a triplet-trained model


def test_resuming_on_another_identity_count_is_refused(arcface_run, compose_cfg):
    from facenet.training.resume import load_training_state
    from facenet.training.setup import build_loss, build_model, build_step

    run_dir, _ = arcface_run
    (ckpt,) = sorted(run_dir.glob("checkpoints/facenet-rank0-2_*.ckpt"))
    cfg = compose_cfg("experiment=smoke", "epochs=2", "loss=arcface")
    step, _ = build_step(cfg, build_model(cfg), 3, build_loss(cfg, 20))
    with pytest.raises(ConfigError, match="its classifier is for 16 identities, this training set has 20"):
        load_training_state(step, ckpt)
    step, _ = build_step(cfg, build_model(cfg), 3, build_loss(cfg, 16))
    load_training_state(step, ckpt)  # the run's own count fits


@pytest.mark.slow  # a subprocess
def test_the_command_line_error_names_the_options_as_typed(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    cmd = [sys.executable, "run.py", "loss=arcface", "miner=semi_hard", "tracking=off", f"output_dir={tmp_path}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    said = done.stdout + done.stderr
    assert "miner=semi_hard does not apply to loss=arcface: a classification loss compares" in said
    assert "Traceback" not in said


def test_a_sharded_classifier_warm_starts_from_its_rows_of_a_whole_one(tmp_path, caplog):
    """Rank 1 of 2 holding 7 classes (rows 4-6 and a padding row) takes rows 4-6 of a single process's (7, D)
    classifier and keeps its padding row; a (4, D) share (a sharded run's best.ckpt) is not taken: its rows would be
    another rank's classes."""
    from facenet.losses.arcface import ArcFaceLoss
    from facenet.training.setup import warm_start_loss

    caplog.set_level("INFO")
    whole = np.random.default_rng(3).normal(size=(7, 4)).astype(np.float32)
    ms.save_checkpoint([{"name": "classifier", "data": ms.Tensor(whole)}], str(tmp_path / "whole.ckpt"))
    ms.save_checkpoint([{"name": "classifier", "data": ms.Tensor(whole[:4])}], str(tmp_path / "share.ckpt"))
    rank1 = ArcFaceLoss(7, 4, shard=(1, 2))
    start = rank1.weight.asnumpy().copy()
    warm_start_loss(rank1, tmp_path / "whole.ckpt", "whole.ckpt")
    np.testing.assert_array_equal(rank1.weight.asnumpy()[:3], whole[4:])
    np.testing.assert_array_equal(rank1.weight.asnumpy()[3], start[3])
    assert "classifier rows 4-6 of 7 identities from whole.ckpt" in caplog.text

    rank1 = ArcFaceLoss(7, 4, shard=(1, 2))
    warm_start_loss(rank1, tmp_path / "share.ckpt", "share.ckpt")
    np.testing.assert_array_equal(rank1.weight.asnumpy(), start)
    assert "its classifier is (4, 4), not the whole (7, 4)" in caplog.text and "starts fresh" in caplog.text
    # at world 1 the rows are the single process's draw, as before sharding existed
    one = ArcFaceLoss(7, 4).weight.asnumpy()
    np.testing.assert_array_equal(one, np.random.default_rng(0).normal(0.0, 0.01, (7, 4)).astype(np.float32))
    np.testing.assert_array_equal(start[:3], one[4:])
