"""The field's formats in runs: training on a packed RecordIO set gives the batches and losses of training on the
folder it was packed from; a `.bin` set evaluates exactly as its `pairs.txt`; `eval=benchmarks` scores every set,
logs them side by side and picks the primary."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from facenet.app import run
from facenet.data.binsets import pack_pairs
from facenet.data.insightface import pack_folder
from facenet.data.synthetic import generate_eval
from facenet.errors import ConfigError, DataError
from facenet.training.setup import build_training
from tests.conftest import tiny_checkpoint, write_faces

# experiment=smoke without its eval and dataset settings (other options here)
SMALL_EVAL = ("eval.identities_per_fold=2", "eval.images_per_identity=3", "eval.pairs_per_fold=2", "eval.image_size=32")
SMALL_TRAIN = (
    "dataset.identities=16",
    "dataset.images_per_identity=4",
    "dataset.image_size=32",
    "train.steps_per_epoch=3",
)


@pytest.mark.slow  # a training run; CI runs it (.ci/run)
def test_recordio_training_gives_the_folder_batches_and_losses(compose_cfg, tmp_path):
    tree = write_faces(tmp_path / "faces", {f"id{i:02d}": 3 + i % 3 for i in range(16)}, size=(32, 32))
    pack_folder(tree, tmp_path / "packed")
    common = (
        "preprocess.image_size=32",
        "train.steps_per_epoch=3",
        "seed=5",
        "batch.identities=4",
        "batch.images_per_identity=3",
        *SMALL_EVAL,
    )
    runs = {}
    for name, data in (("folder", [f"dataset.root={tree}"]), ("recordio", [f"dataset.path={tmp_path / 'packed'}"])):
        t = build_training(compose_cfg(*common, f"dataset={name}", *data))
        batches = [(x.asnumpy(), y.asnumpy()) for x, y in t.batches(1)]
        losses = [float(t.step(*b)[0].asnumpy()) for b in t.batches(1)]
        runs[name] = t, batches, losses
    (tf, bf, lf), (tr, br, lr) = runs["folder"], runs["recordio"]
    assert tf.table["class"].tolist() == tr.table["class"].tolist()
    assert len(bf) == 3
    for (xf, yf), (xr, yr) in zip(bf, br, strict=True):
        assert (yf == yr).all() and np.array_equal(xf, xr)  # identities, images and augmentation alike
    assert lf == lr  # the same loss curve, exactly
    resumed = [(x.asnumpy(), y.asnumpy()) for x, y in tr.batches(1, skip=1)]  # a run resumed after its first step
    assert all(np.array_equal(a[0], b[0]) and (a[1] == b[1]).all() for a, b in zip(resumed, br[1:], strict=True))


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    """A folder with lfw.bin and att.bin (two generated sets), and the pairs.txt lfw.bin was packed from."""
    base = tmp_path_factory.mktemp("bench")
    root = generate_eval(base / "a", identities_per_fold=3, images_per_identity=3, pairs_per_fold=3, image_size=32)
    other = generate_eval(
        base / "b", identities_per_fold=3, images_per_identity=3, pairs_per_fold=2, image_size=32, seed=9
    )
    pack_pairs(root, root / "pairs.txt", base / "sets" / "lfw.bin")
    pack_pairs(other, other / "pairs.txt", base / "sets" / "att.bin")
    return base / "sets", root


def test_a_bin_set_evaluates_exactly_as_its_pairs_txt(compose_cfg, tmp_path, bench_dir):
    sets, root = bench_dir
    ckpt = tiny_checkpoint(compose_cfg, tmp_path)
    base = ("task=eval", f"ckpt={ckpt}", "tracking=off", f"output_dir={tmp_path}")
    by_txt = run(compose_cfg(*base, "eval=lfw", f"eval.root={root}", f"eval.pairs={root / 'pairs.txt'}"))
    by_bin = run(compose_cfg(*base, "eval=bin", f"eval.path={sets / 'lfw.bin'}"))
    assert by_bin == by_txt and by_bin["pairs"] == 60


def test_benchmarks_report_every_set_side_by_side(compose_cfg, tmp_path, bench_dir):
    sets, _ = bench_dir
    ckpt = tiny_checkpoint(compose_cfg, tmp_path)
    base = ("task=eval", f"ckpt={ckpt}", f"output_dir={tmp_path}", "eval=benchmarks", f"eval.dir={sets}")
    metrics = run(compose_cfg(*base))
    assert metrics["lfw/accuracy"] != metrics["att/accuracy"]  # else primary and mean could not be told apart
    assert metrics["accuracy"] == metrics["lfw/accuracy"]  # primary: lfw when present
    assert metrics["threshold"] == metrics["lfw/threshold"]  # what best.ckpt's sidecar and model cards record
    assert metrics["mean_accuracy"] == pytest.approx((metrics["lfw/accuracy"] + metrics["att/accuracy"]) / 2)
    assert metrics["lfw/pairs"] == 60 and metrics["att/pairs"] == 40
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    for name in ("lfw", "att"):
        for key in ("accuracy", "val_at_far_0.001", "auc", "eer"):
            assert r.data.metrics[f"eval/{name}/{key}"] == pytest.approx(metrics[f"{name}/{key}"])
    assert r.data.metrics["eval/accuracy"] == pytest.approx(metrics["lfw/accuracy"])
    logged = {a.path for a in client.list_artifacts(r.info.run_id, "eval")}
    assert {"eval/benchmarks.csv", "eval/benchmarks.md", "eval/benchmarks_roc.png", "eval/lfw", "eval/att"} <= logged
    run_dir = next((tmp_path / "runs").glob("*/*"))
    table = (run_dir / "eval" / "benchmarks.md").read_text().splitlines()
    assert table[0] == "| benchmark | pairs | accuracy | VAL@FAR=0.001 | AUC | EER |"
    assert [row.split(" | ")[0] for row in table[2:4]] == ["| lfw", "| att"]  # known sets first
    assert f"{metrics['att/accuracy']:.4f} +- {metrics['att/accuracy_std']:.4f}" in table[3]
    mean = run(compose_cfg(*base, "eval.primary=mean", "tracking=off"))
    assert mean["accuracy"] == metrics["mean_accuracy"] and mean["threshold"] == metrics["lfw/threshold"]
    only = run(compose_cfg(*base, "eval.sets=[att]", "tracking=off"))
    assert only["accuracy"] == metrics["att/accuracy"] and "lfw/accuracy" not in only  # no lfw: the mean of one
    with pytest.raises(ConfigError, match="eval.primary=cplfw: no such set"):
        run(compose_cfg(*base, "eval.primary=cplfw", "tracking=off"))
    with pytest.raises(DataError, match=r"eval.sets names \['agedb_30'\], not found"):
        run(compose_cfg(*base, "eval.sets=[agedb_30]", "tracking=off"))


@pytest.mark.slow  # a training run; CI runs it (.ci/run)
def test_training_evaluates_every_benchmark_and_keeps_the_primary_best(compose_cfg, tmp_path, bench_dir):
    import json

    sets, _ = bench_dir
    metrics = run(
        compose_cfg(
            *SMALL_TRAIN,
            "epochs=2",
            "eval=benchmarks",
            f"eval.dir={sets}",
            "eval.primary=att",
            "tracking=off",
            f"output_dir={tmp_path}",
        )
    )
    assert metrics["accuracy"] == metrics["att/accuracy"] and "lfw/auc" in metrics
    best = json.loads(next((tmp_path / "runs").glob("*/*/checkpoints/best.json")).read_text())
    assert best["metrics"]["accuracy"] == metrics["best_accuracy"] == best["metrics"]["att/accuracy"]
    assert best["metrics"]["threshold"] == best["metrics"]["att/threshold"]  # facenet verify uses it
