"""Stopping and resuming: SIGTERM mid-epoch writes a checkpoint and marks the run KILLED; `resume=auto` continues
it to the same weights and metric history as an uninterrupted run; atomic checkpoint writes; resume errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from facenet.errors import ConfigError
from facenet.training.resume import find_resume_point
from tests.conftest import ROOT

TRAIN = [
    "experiment=smoke",
    "epochs=2",
    "train.steps_per_epoch=30",
    "tracking.log_every_steps=3",
    "hydra.job_logging.root.level=WARNING",
]
COMPARED = {
    "triplet": (
        "train/loss",
        "train/lr",
        "train/active_fraction",
        "train/d_ap",
        "train/d_an",
        "eval/accuracy",
        "eval/auc",
    ),
    # Partial FC (8 of 16 class centres a step): the sampled classes must replay too
    "arcface": ("train/loss", "train/lr", "train/train_accuracy", "train/target_cos", "eval/accuracy", "eval/auc"),
    # a cross-batch memory (2 batches, mined from step 5): its content and write position must resume too
    "memory": (
        "train/loss",
        "train/active_fraction",
        "train/memory_negative_fraction",
        "train/memory_negative_age",
        "train/memory_in_use",
        "eval/accuracy",
        "eval/auc",
    ),
}
LOSS = {
    "triplet": [],
    "arcface": ["loss=arcface", "loss.sample_rate=0.5", "batch.size=8"],
    "memory": ["miner.memory.size=128", "miner.memory.start_step=5"],
}


def _cmd(out: Path, data: Path, *extra: str) -> list[str]:
    return [sys.executable, "run.py", *TRAIN, f"output_dir={out}", f"data_dir={data}", *extra]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _runs(out: Path):
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    return client, client.search_runs([client.get_experiment_by_name("facenet").experiment_id])


def _history(client: MlflowClient, run_id: str, keys) -> dict[str, list[tuple[int, float]]]:
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in keys}


@pytest.mark.slow
@pytest.mark.parametrize("loss", list(LOSS))
def test_sigterm_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path, loss):
    data = tmp_path / "data"
    ref = subprocess.run(
        _cmd(tmp_path / "ref", data, *LOSS[loss]), cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert ref.returncode == 0, ref.stderr[-3000:]

    out = tmp_path / "cut"
    proc = subprocess.Popen(
        _cmd(out, data, *LOSS[loss]), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:  # wait until epoch 1 is under way
        try:
            client, runs = _runs(out)
            if runs and len(client.get_metric_history(runs[0].info.run_id, "train/loss")) >= 4:  # step >= 12
                break
        except Exception:  # noqa: BLE001 - the store is being created
            pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1, log[-3000:]
    assert "stopped by SIGTERM at epoch 1" in log and "resume=auto" in log
    client, (run,) = _runs(out)
    assert run.info.status == "KILLED"
    (run_dir,) = out.glob("runs/*/*")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "KILLED"
    point = find_resume_point("auto", out)
    assert point.run_id == run.info.run_id and point.state.epoch == 1 and 12 <= point.state.epoch_step < 30
    assert not list(run_dir.glob("checkpoints/.*partial-*"))

    resumed = subprocess.run(
        _cmd(out, data, *LOSS[loss], "resume=auto"), cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    client, (run,) = _runs(out)  # the same MLflow run, continued
    assert run.info.status == "FINISHED" and run.data.tags["resumes"] == "1"
    ref_client, (ref_run,) = _runs(tmp_path / "ref")
    got, want = (_history(c, r.info.run_id, COMPARED[loss]) for c, r in ((client, run), (ref_client, ref_run)))
    for key in COMPARED[loss]:
        assert got[key], key
        assert [s for s, _ in got[key]] == [s for s, _ in want[key]], key
        # rtol: a margin-softmax loss is ~40, where float32 steps by 4e-6, and the CPU kernels' reduction order can
        # move a logged loss by an ulp between two identical uninterrupted runs (seen at a step before the cut, with
        # every later value equal: the weights do not move)
        assert np.allclose([v for _, v in got[key]], [v for _, v in want[key]], rtol=2e-7, atol=1e-6), key
    (ref_dir,) = (tmp_path / "ref").glob("runs/*/*")
    a = ms.load_checkpoint(str(run_dir / "checkpoints" / "facenet-rank0-2_60.ckpt"))
    b = ms.load_checkpoint(str(ref_dir / "checkpoints" / "facenet-rank0-2_60.ckpt"))
    assert a.keys() == b.keys()
    worst = max(float(np.abs(a[k].asnumpy() - b[k].asnumpy()).max()) for k in a)
    assert worst <= 1e-6, worst  # weights, Adam moments, step counter (a classifier's weights and moments, a memory)
    assert ("classifier" in a) == (loss == "arcface")
    assert ("memory.rows" in a) == (loss == "memory")
    if loss == "memory":  # filled, wrapped round, mined: the memory compared above is a real one
        assert int(a["memory.step"].asnumpy()[0]) == 60 and (a["memory.written"].asnumpy() >= 58).all()


def test_resume_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="no unfinished run with a checkpoint"):
        find_resume_point("auto", tmp_path)
    with pytest.raises(ConfigError, match="expected auto, a run directory or a checkpoint"):
        find_resume_point(str(tmp_path / "nope"), tmp_path)
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(ConfigError, match="no checkpoint with a sidecar"):
        find_resume_point(str(tmp_path), tmp_path)


def test_checkpoint_write_failure_is_an_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import errno

    from facenet.errors import DataError
    from facenet.training.checkpoints import CheckpointManager
    from facenet.training.state import TrainState

    cell = ms.nn.Dense(2, 2)
    manager = CheckpointManager(tmp_path, keep_max=2, spec={"model": {}})
    good = manager.save(cell, TrainState(epoch=1, global_step=10), {"accuracy": 0.5})
    assert good.is_file() and good.with_suffix(".json").is_file()

    def full_disk(cell, path):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ms, "save_checkpoint", full_disk)  # what checkpoints save through (models.io)
    with pytest.raises(DataError, match=r"cannot write checkpoint .*facenet-rank0-2_20.ckpt: No space left on device"):
        manager.save(cell, TrainState(epoch=2, global_step=20), {"accuracy": 0.6})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["facenet-rank0-1_10.ckpt", "facenet-rank0-1_10.json"]
    assert manager.saved == [good]  # the failed write is not counted, the previous checkpoint stays usable


@pytest.mark.slow  # a minute's worth of compiling on 2 cores; CI runs it (.ci/run)
def test_unreadable_newest_checkpoint_falls_back_to_the_previous(compose_cfg, tmp_path, caplog):
    from facenet.app import run

    base = ["experiment=smoke", "epochs=2", f"output_dir={tmp_path}", "tracking=off"]
    first = run(compose_cfg(*base))
    (run_dir,) = tmp_path.glob("runs/*/*")
    newest = run_dir / "checkpoints" / "facenet-rank0-2_6.ckpt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    with caplog.at_level("INFO"):
        again = run(compose_cfg(*base, f"resume={run_dir}"))
    assert "cannot read checkpoint" in caplog.text and "previous checkpoint facenet-rank0-1_3.ckpt" in caplog.text
    assert "resuming" in caplog.text and "at epoch 2, step 0 of 3 (global step 3)" in caplog.text
    assert again["accuracy"] == first["accuracy"]  # epoch 2 retrained from epoch 1's state: the same result
    newest.write_bytes(newest.read_bytes()[:1000])  # (the resumed run rewrote it)
    with pytest.raises(ConfigError, match="cannot read checkpoint"):
        run(compose_cfg(*base, f"resume={newest}"))  # that file alone, nothing older to fall back to


def test_a_sharded_classifier_never_falls_back_to_another_step(tmp_path):
    """Rank 1 of a sharded run whose own file of the chosen step is missing: a clear error, not rank 1 quietly
    resuming an older step than rank 0 (the ranks would then disagree on the weights and the step)."""
    from types import SimpleNamespace

    from facenet.losses.arcface import ArcFaceLoss
    from facenet.training.resume import ResumePoint, restore
    from facenet.training.state import TrainState

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    newest, older = (run_dir / "checkpoints" / f"facenet-rank0-{e}_5.ckpt" for e in (2, 1))
    (run_dir / "rank_1" / "checkpoints").mkdir(parents=True)
    (run_dir / "rank_1" / "checkpoints" / older.name.replace("rank0", "rank1")).write_bytes(b"exists")
    point = ResumePoint(newest, run_dir, None, TrainState(), older=(older,))
    step = SimpleNamespace(loss=ArcFaceLoss(7, 4, shard=(1, 2)))
    with pytest.raises(ConfigError, match="every rank must resume from the same step: resume=<an older"):
        restore(step, point)
