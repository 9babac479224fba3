"""Data parallel with msrun on CPU: two ranks train in lockstep (identical trainable weights), rank 0 alone logs to
MLflow, evaluates and writes checkpoints; a distributed config outside msrun is a clear error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from facenet.errors import ConfigError
from tests.conftest import ROOT, free_port


def _msrun(tmp_path, *extra: str):
    out, logs = tmp_path / "out", tmp_path / "logs"
    bin_dir = Path(sys.executable).parent  # msrun starts `python` from PATH: the environment's own
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT)}
    cmd = [str(bin_dir / "msrun"), "--worker_num=2", "--local_worker_num=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", f"--log_dir={logs}", "--join=True", "--cluster_time_out=120",
           "run.py", "hardware=cpu_dp", "experiment=smoke", "epochs=2", "batch.identities=4", f"output_dir={out}",
           f"data_dir={tmp_path / 'data'}", f"hydra.run.dir={out / 'runs' / 'dp' / 'run'}", *extra]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    worker = {r: (logs / f"worker_{r}.log").read_text(errors="replace") for r in (0, 1)}
    assert proc.returncode == 0, (proc.stderr[-2000:], worker[0][-2000:], worker[1][-2000:])
    digests = {r: re.findall(rf"rank {r} of 2: final weights sha1 (\w+)", worker[r]) for r in (0, 1)}
    assert len(digests[0]) == 1 and digests[0] == digests[1]  # gradients averaged: the same update on both ranks
    return out, worker, digests[0][0]


@pytest.mark.slow
def test_msrun_two_cpu_ranks_train_in_lockstep_and_only_rank0_tracks(tmp_path):
    out, worker, local = _msrun(tmp_path / "local")
    for r in (0, 1):
        assert re.search(rf"rank {r} of 2: 32 images of 8 identities, 3 steps/epoch, global batch 32", worker[r])
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["hardware.distributed"] == "True"
    run_dir = out / "runs" / "dp" / "run"
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / "rank_1").is_dir() and not (run_dir / "rank_1" / "checkpoints").exists()
    # hardware.mine_global_batch=true: embeddings all-gathered, triplets mined over both ranks' batches; the ranks
    # stay in lockstep, and mining over 32 embeddings instead of 16 changes the updates
    _, _, global_ = _msrun(tmp_path / "global", "hardware.mine_global_batch=true")
    assert global_ != local


def test_global_mining_needs_data_parallel(compose_cfg, tmp_path):
    from facenet.app import run

    with pytest.raises(ConfigError, match="mine_global_batch=true needs data-parallel ranks"):
        run(compose_cfg("experiment=smoke", f"output_dir={tmp_path}", "hardware.mine_global_batch=true"))


def test_distributed_outside_msrun_is_a_clear_error(compose_cfg, tmp_path, monkeypatch):
    from facenet.runtime import _init_data_parallel

    monkeypatch.delenv("MS_ROLE", raising=False)
    monkeypatch.delenv("RANK_TABLE_FILE", raising=False)
    with pytest.raises(ConfigError, match="needs the processes msrun starts"):
        _init_data_parallel()


@pytest.mark.slow
def test_global_mining_equals_one_process_computing_the_global_loss(tmp_path, compose_cfg):
    """hardware.mine_global_batch=true against a single-process oracle: the same two rank batches, each through the
    network on its own (batch norm statistics per rank, as on the ranks), their embeddings concatenated, the loss
    mined over all of them, one SGD step: the same update as each rank's, to 1e-6 (SGD: an update proportional to
    the gradient, so a wrong gradient scale shows)."""
    import mindspore as ms
    import numpy as np
    from hydra.utils import instantiate
    from mindspore import ops

    from facenet.training.optim import build_optimizer
    from facenet.training.setup import build_loss, build_model
    from tests.dp_one_step import OVERRIDES, batch

    out, logs = tmp_path / "out", tmp_path / "logs"
    out.mkdir()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT)}
    cmd = [str(bin_dir / "msrun"), "--worker_num=2", "--local_worker_num=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", f"--log_dir={logs}", "--join=True", "--cluster_time_out=120",
           "tests/dp_one_step.py", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    worker = [(logs / f"worker_{r}.log").read_text(errors="replace")[-2000:] for r in (0, 1)]
    assert proc.returncode == 0, (proc.stderr[-2000:], *worker)
    ranks = [dict(np.load(out / f"rank{r}.npz")) for r in (0, 1)]
    assert int(ranks[0]["size"]) == 2 and float(ranks[0]["loss"]) == float(ranks[1]["loss"])
    names = [k.removeprefix("after/") for k in ranks[0] if k.startswith("after/")]
    for name in names:  # lockstep, and both started from the same weights
        assert np.array_equal(ranks[0][f"after/{name}"], ranks[1][f"after/{name}"]), name
        assert np.array_equal(ranks[0][f"start/{name}"], ranks[1][f"start/{name}"]), name

    cfg = compose_cfg(*[o for o in OVERRIDES if not o.startswith("hardware")])  # one process
    net = build_model(cfg)
    ms.load_param_into_net(net, {n: ms.Parameter(ranks[0][f"start/{n}"], name=n) for n in names}, strict_load=False)
    net.set_train(True)
    loss_fn = build_loss(cfg)
    optimizer = build_optimizer(instantiate(cfg.optimizer), net, np.array([cfg.lr], np.float32), 1.0)
    (x0, y0), (x1, y1) = batch(0), batch(1)

    def global_loss(a, b, labels):
        return loss_fn(ops.concat((net(a), net(b))), labels)

    grad_fn = ms.value_and_grad(global_loss, None, optimizer.parameters, has_aux=True)
    (loss, _), grads = grad_fn(ms.Tensor(x0), ms.Tensor(x1), ms.Tensor(np.concatenate([y0, y1])))
    optimizer(grads)
    assert abs(float(loss.asnumpy()) - float(ranks[0]["loss"])) <= 1e-6
    moved = 0.0
    for p in net.trainable_params():
        diff = np.abs(p.asnumpy() - ranks[0][f"after/{p.name}"]).max()
        assert diff <= 1e-6, (p.name, diff)
        moved = max(moved, float(np.abs(ranks[0][f"after/{p.name}"] - ranks[0][f"start/{p.name}"]).max()))
    assert moved > 1e-3  # the step did change the weights: the comparison is not between two starting points
