"""Fine-tuning: stages kept fixed, batch norm statistics frozen, a lower backbone learning rate, evaluation before
the first step and on more protocols, checked on real runs parameter by parameter."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from facenet.app import run
from facenet.errors import ConfigError, UserError
from facenet.models.build import build_network
from facenet.training.finetune import apply_finetune
from facenet.training.setup import build_step

SMALL_EVAL = [
    "also_eval.syn.identities_per_fold=2",
    "also_eval.syn.images_per_identity=3",
    "also_eval.syn.pairs_per_fold=2",
    "also_eval.syn.image_size=32",
]


def _net(compose_cfg, *overrides):
    cfg = compose_cfg("preprocess.image_size=32", *overrides)
    return cfg, build_network(cfg.backbone, cfg.head, 32)


def test_freeze_by_stage_name(compose_cfg):
    cfg, net = _net(compose_cfg)
    apply_finetune(net, ["stem", "stages.0"], "train")
    frozen = {p.name for p in net.get_parameters() if not p.requires_grad and "moving_" not in p.name}
    trainable = {p.name for p in net.trainable_params()}
    assert frozen and all(n.startswith(("backbone.stem.", "backbone.stages.0.")) for n in frozen)
    assert not any(n.startswith(("backbone.stem.", "backbone.stages.0.")) for n in trainable)
    assert any(n.startswith("backbone.stages.1.") for n in trainable) and any(n.startswith("head.") for n in trainable)
    norms = {
        name: cell.use_batch_statistics for name, cell in net.cells_and_names() if isinstance(cell, ms.nn.BatchNorm2d)
    }
    assert all(v is False for n, v in norms.items() if n.startswith(("backbone.stem.", "backbone.stages.0.")))
    assert all(v is None for n, v in norms.items() if n.startswith("backbone.stages.1."))
    with pytest.raises(
        ConfigError,
        match=r"names \['block35'\], which this backbone does not have; its stages are \['stem', 'stages'\]",
    ):
        apply_finetune(net, ["block35"], "train")
    with pytest.raises(ConfigError, match="finetune.bn must be one of"):
        apply_finetune(net, [], "sometimes")


def test_backbone_learning_rate_scale(compose_cfg):
    cfg, net = _net(compose_cfg, "finetune.backbone_lr_scale=0.1", "finetune.freeze=[stem]")
    step, lr = build_step(cfg, net, steps_per_epoch=5)
    opt = step.optimizer
    assert {p.name for p in opt.parameters} == {p.name for p in net.trainable_params()}  # frozen ones left out
    backbone = next(p for p in opt.parameters if p.name.startswith("backbone.stages."))
    head = next(p for p in opt.parameters if p.name.startswith("head."))
    assert np.allclose(opt.get_lr_parameter(backbone).asnumpy(), lr * 0.1)
    assert np.allclose(opt.get_lr_parameter(head).asnumpy(), lr)
    cfg, net = _net(compose_cfg, "finetune.backbone_lr_scale=1e45")  # lr x 1e45 is beyond float32
    with pytest.raises(ConfigError, match=r"the backbone's lr reaches .* at step 1, beyond float32: lower finetune"):
        build_step(cfg, net, steps_per_epoch=5)


@pytest.fixture(scope="module")
def warm_start(compose_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft0")
    run(compose_cfg("experiment=smoke", f"output_dir={out}", "tracking=off"))
    (ckpt,) = out.glob("runs/*/*/checkpoints/best.ckpt")
    return ckpt


@pytest.mark.slow  # a minute's worth of compiling on 2 cores; CI runs it (.ci/run)
def test_finetune_run_keeps_what_it_freezes_and_reports_before_and_after(compose_cfg, warm_start, tmp_path):
    out = tmp_path / "ft"
    metrics = run(
        compose_cfg(
            "experiment=smoke",
            f"output_dir={out}",
            f"ckpt={warm_start}",
            "epochs=2",
            "finetune.freeze=[stem]",
            "finetune.bn=frozen",
            "train.eval_at_start=true",
            "+eval@also_eval.syn=synthetic",
            *SMALL_EVAL,
        )
    )
    (run_dir,) = out.glob("runs/*/*")
    before, after = (
        ms.load_checkpoint(str(warm_start)),
        ms.load_checkpoint(str(run_dir / "checkpoints" / "facenet-rank0-2_6.ckpt")),
    )
    weights = [k for k in before if k.startswith(("backbone.", "head.")) and "moving" not in k]
    changed = {k for k in weights if not np.array_equal(before[k].asnumpy(), after[k].asnumpy())}
    assert not any(k.startswith("backbone.stem.") for k in changed)  # the frozen stage: bit for bit
    assert any(k.startswith("backbone.stages.") for k in changed) and any(k.startswith("head.") for k in changed)
    statistics = [k for k in before if "moving_" in k]
    assert statistics and all(np.array_equal(before[k].asnumpy(), after[k].asnumpy()) for k in statistics)
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    assert sorted(m.step for m in client.get_metric_history(r.info.run_id, "syn/accuracy")) == [0, 6]
    assert sorted(m.step for m in client.get_metric_history(r.info.run_id, "eval/accuracy")) == [0, 3, 6]
    assert 0 <= metrics["syn/accuracy"] <= 1 and "syn/auc" in metrics


def test_warm_start_must_keep_the_checkpoints_preprocessing(compose_cfg, warm_start, tmp_path):
    cfg = compose_cfg("experiment=smoke", f"output_dir={tmp_path}", f"ckpt={warm_start}", "preprocess.normalize=fixed")
    with pytest.raises(
        UserError, match=r"was trained with preprocess.normalize=unit; this run has preprocess.normalize=fixed"
    ):
        run(cfg)
    with pytest.raises(UserError, match="backbone_lr_scale=0.0 .must be > 0"):
        run(compose_cfg("experiment=smoke", f"output_dir={tmp_path}", "finetune.backbone_lr_scale=0"))
    with pytest.raises(UserError, match=r"also_eval names \['eval'\]"):
        run(compose_cfg("experiment=smoke", f"output_dir={tmp_path}", "+eval@also_eval.eval=synthetic"))
