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


def _on_two_ranks(logs: Path, *args: str) -> dict[int, str]:
    """`msrun` two CPU ranks of `python *args` (from the repository root); each rank's log. Fails the test, with the
    logs' ends, unless every rank exits cleanly."""
    bin_dir = Path(sys.executable).parent  # msrun starts `python` from PATH: the environment's own
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT)}
    cmd = [
        str(bin_dir / "msrun"),
        "--worker_num=2",
        "--local_worker_num=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        f"--log_dir={logs}",
        "--join=True",
        "--cluster_time_out=120",
        *args,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    worker = {r: (logs / f"worker_{r}.log").read_text(errors="replace") for r in (0, 1)}
    assert proc.returncode == 0, (proc.stderr[-2000:], worker[0][-2000:], worker[1][-2000:])
    return worker


def _msrun(tmp_path, *extra: str, batch: str = "batch.identities=4"):
    out = tmp_path / "out"
    worker = _on_two_ranks(
        tmp_path / "logs",
        "run.py",
        "hardware=cpu_dp",
        "experiment=smoke",
        "epochs=2",
        batch,
        f"output_dir={out}",
        f"data_dir={tmp_path / 'data'}",
        f"hydra.run.dir={out / 'runs' / 'dp' / 'run'}",
        *extra,
    )
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


@pytest.mark.slow
def test_a_sharded_classifier_trains_in_lockstep_and_every_rank_keeps_its_centres(tmp_path):
    """loss=arcface under msrun: the network stays identical on both ranks; each rank's periodic checkpoints hold
    its own 8 of the 16 class centres (rank 1's in rank_1/checkpoints), best.ckpt rank 0's."""
    import mindspore as ms

    from facenet.training.resume import own_file

    out, _, _ = _msrun(tmp_path, "loss=arcface", batch="batch.size=8")
    run_dir = out / "runs" / "dp" / "run"
    mine = {
        r: sorted((run_dir / ("" if r == 0 else f"rank_{r}") / "checkpoints").glob(f"facenet-rank{r}-*.ckpt"))
        for r in (0, 1)
    }
    assert [p.name for p in mine[1]] == [p.name.replace("rank0", "rank1") for p in mine[0]] and mine[0]
    assert [own_file(p, run_dir, 1) for p in mine[0]] == mine[1]  # what resume= loads on rank 1
    shards = [ms.load_checkpoint(str(mine[r][-1]))["classifier"].asnumpy() for r in (0, 1)]
    assert shards[0].shape == shards[1].shape == (8, 128) and not (shards[0] == shards[1]).all()
    assert ms.load_checkpoint(str(run_dir / "checkpoints" / "best.ckpt"))["classifier"].shape == (8, 128)


def test_global_mining_needs_data_parallel(compose_cfg, tmp_path):
    from facenet.app import run

    with pytest.raises(ConfigError, match="mine_global_batch=true needs data-parallel ranks"):
        run(compose_cfg("experiment=smoke", f"output_dir={tmp_path}", "hardware.mine_global_batch=true"))


def test_distributed_outside_msrun_is_a_clear_error(compose_cfg, tmp_path, monkeypatch):
    from facenet.runtime import _init_data_parallel

    monkeypatch.delenv("MS_ROLE", raising=False)
    monkeypatch.delenv("RANK_TABLE_FILE", raising=False)
    with pytest.raises(ConfigError, match="needs several processes: msrun"):
        _init_data_parallel()


def _two_ranks(script: str, tmp_path: Path) -> list[dict]:
    """Run `script OUT` on two CPU ranks; each rank's `OUT/rank<r>.npz`."""
    import numpy as np

    out = tmp_path / "out"
    out.mkdir()
    _on_two_ranks(tmp_path / "logs", script, str(out))
    return [dict(np.load(out / f"rank{r}.npz")) for r in (0, 1)]


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

    ranks = _two_ranks("tests/dp_one_step.py", tmp_path)
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


@pytest.mark.slow
def test_a_sharded_classifier_equals_one_process_holding_every_centre(tmp_path, compose_cfg):
    """loss=arcface under msrun: each rank holds its share of the 7 class centres (4 + 3 and a padding row) and
    scores both ranks' features against them. Against one process holding all 7 centres, the two rank batches each
    through the network (batch norm per rank, as on the ranks), their features concatenated, one SGD step: the same
    loss on both ranks, the same network update, and each rank's centres updated as the oracle's rows, to 1e-6."""
    import mindspore as ms
    import numpy as np
    from hydra.utils import instantiate
    from mindspore import ops

    from facenet.losses.arcface import ArcFaceLoss
    from facenet.training.optim import build_optimizer
    from facenet.training.setup import build_model
    from tests.dp_sharded_step import CLASSES, OVERRIDES, batch

    ranks = _two_ranks("tests/dp_sharded_step.py", tmp_path)
    assert int(ranks[0]["size"]) == 2 and float(ranks[0]["loss"]) == float(ranks[1]["loss"])
    assert [len(r["shard_start"]) for r in ranks] == [4, 4] and [int(r["offset"]) for r in ranks] == [0, 4]
    names = [k.removeprefix("after/") for k in ranks[0] if k.startswith("after/")]
    for name in names:
        assert np.array_equal(ranks[0][f"after/{name}"], ranks[1][f"after/{name}"]), name

    cfg = compose_cfg(*[o for o in OVERRIDES if not o.startswith("hardware")])  # one process, every centre
    net = build_model(cfg)
    ms.load_param_into_net(net, {n: ms.Parameter(ranks[0][f"start/{n}"], name=n) for n in names}, strict_load=False)
    net.set_train(True)
    loss_fn = ArcFaceLoss(CLASSES, cfg.embedding_size, s=cfg.loss.s, m=cfg.loss.m, seed=cfg.seed)
    full = np.concatenate([ranks[0]["shard_start"], ranks[1]["shard_start"]])[:CLASSES]
    np.testing.assert_array_equal(loss_fn.weight.asnumpy(), full)  # the shards are the one-process centres
    optimizer = build_optimizer(
        instantiate(cfg.optimizer), net, np.array([cfg.lr], np.float32), 1.0, loss_fn.trainable_params()
    )
    (x0, y0), (x1, y1) = batch(0), batch(1)

    def global_loss(a, b, labels):
        return loss_fn(ops.concat((net.features(a), net.features(b))), labels)

    grad_fn = ms.value_and_grad(global_loss, None, optimizer.parameters, has_aux=True)
    (loss, telemetry), grads = grad_fn(ms.Tensor(x0), ms.Tensor(x1), ms.Tensor(np.concatenate([y0, y1])))
    optimizer(grads)
    assert abs(float(loss.asnumpy()) - float(ranks[0]["loss"])) <= 1e-6
    np.testing.assert_allclose(ranks[0]["telemetry"], telemetry.asnumpy(), atol=1e-6, rtol=0)
    for p in net.trainable_params():
        diff = np.abs(p.asnumpy() - ranks[0][f"after/{p.name}"]).max()
        assert diff <= 1e-6, (p.name, diff)
    after = np.concatenate([ranks[0]["shard_after"], ranks[1]["shard_after"]])[:CLASSES]
    assert np.abs(loss_fn.weight.asnumpy() - after).max() <= 1e-6
    assert np.abs(after - full).max() > 1e-4  # the centres did move


@pytest.mark.slow
def test_a_memory_under_data_parallel_equals_one_process_fed_the_global_batches(tmp_path, compose_cfg):
    """miner.memory.size with hardware.mine_global_batch=true under msrun: every rank stores the global batch, so
    after three steps (the third wrapping round the ring) both ranks hold bit-identical memories; their losses and
    weights equal one process that mines and stores the two rank batches together (batch norm per rank, as on the
    ranks), step by step, to 1e-6."""
    import mindspore as ms
    import numpy as np
    from hydra.utils import instantiate
    from mindspore import ops

    from facenet.training.optim import build_optimizer
    from facenet.training.setup import build_loss, build_model
    from tests.dp_memory_steps import OVERRIDES, STEPS, batch

    ranks = _two_ranks("tests/dp_memory_steps.py", tmp_path)
    assert int(ranks[0]["size"]) == 2 and np.array_equal(ranks[0]["losses"], ranks[1]["losses"])
    for key in (k for k in ranks[0] if k.startswith(("mem/", "after/"))):
        assert np.array_equal(ranks[0][key], ranks[1][key]), key
    assert ranks[0]["mem/memory.step"][0] == STEPS and (ranks[0]["fractions"][1:] > 0).all()  # mined from step 1

    cfg = compose_cfg(*[o for o in OVERRIDES if not o.startswith("hardware")])  # one process
    names = [k.removeprefix("after/") for k in ranks[0] if k.startswith("after/")]
    net = build_model(cfg)
    ms.load_param_into_net(net, {n: ms.Parameter(ranks[0][f"start/{n}"], name=n) for n in names}, strict_load=False)
    net.set_train(True)
    loss_fn = build_loss(cfg)
    optimizer = build_optimizer(instantiate(cfg.optimizer), net, np.array([cfg.lr], np.float32), 1.0)

    def global_loss(a, b, labels):
        embeddings = ops.concat((net(a), net(b)))
        loss, telemetry = loss_fn(embeddings, labels)
        return loss, telemetry, embeddings

    grad_fn = ms.value_and_grad(global_loss, None, optimizer.parameters, has_aux=True)
    for s in range(STEPS):
        (x0, y0), (x1, y1) = batch(0, s), batch(1, s)
        labels = ms.Tensor(np.concatenate([y0, y1]))
        (loss, _, embeddings), grads = grad_fn(ms.Tensor(x0), ms.Tensor(x1), labels)
        optimizer(grads)
        loss_fn.memory.enqueue(embeddings, labels)
        assert abs(float(loss.asnumpy()) - ranks[0]["losses"][s]) <= 1e-6, s
    for p in net.trainable_params():
        assert np.abs(p.asnumpy() - ranks[0][f"after/{p.name}"]).max() <= 1e-6, p.name
    for p in loss_fn.memory.get_parameters():
        assert np.abs(p.asnumpy() - ranks[0][f"mem/{p.name}"]).max() <= 1e-6, p.name


@pytest.mark.slow
def test_msrun_with_a_memory_ends_with_identical_memories_on_both_ranks(tmp_path):
    _, worker, _ = _msrun(
        tmp_path, "hardware.mine_global_batch=true", "miner.memory.size=160", "miner.memory.start_step=2"
    )
    digests = {r: re.findall(rf"rank {r} of 2: final memory sha1 (\w+)", worker[r]) for r in (0, 1)}
    assert len(digests[0]) == 1 and digests[0] == digests[1]
