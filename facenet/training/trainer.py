"""`train(cfg)`: data, model, loss, optimiser, the training loop with evaluation, checkpoints and tracking."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import mindspore as ms
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from facenet.data.images import EvalTransform, TrainTransform
from facenet.data.pipeline import BadImages, train_batches
from facenet.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from facenet.evaluation.verify import evaluate_pairs
from facenet.models.build import build_network
from facenet.models.embedding import count_parameters
from facenet.plots import distance_histogram, hardest_pairs_grid, roc_plot
from facenet.runtime import barrier, mixed_precision, world
from facenet.training.checkpoints import (
    CheckpointManager,
    CheckpointUnreadable,
    load_network_weights,
    read_checkpoint,
)
from facenet.training.optim import build_optimizer
from facenet.training.resume import ResumePoint, load_point
from facenet.training.step import TELEMETRY, TrainStep

log = logging.getLogger(__name__)


def model_spec(cfg: DictConfig) -> dict:
    """What a checkpoint needs to be rebuilt and fed exactly as in training."""
    return {
        "model": {
            "backbone": OmegaConf.to_container(cfg.backbone, resolve=True),
            "head": OmegaConf.to_container(cfg.head, resolve=True),
        },
        "preprocess": {
            "image_size": int(cfg.preprocess.image_size),
            "channel_order": "RGB",
            "normalize": "(x - 127.5) / 127.5",
            "layout": "NCHW",
        },
        "embedding_size": int(cfg.embedding_size),
    }


def evaluate_and_log(
    net, pairs, protocol, transform, workers: int, tracker, step: int, out_dir: Path, prefix: str = "eval"
) -> dict[str, float]:
    """Score every pair, log scalars, write the ROC plot, histogram and report JSON (logged as artifacts)."""
    report, distances = evaluate_pairs(
        net, pairs, transform, protocol.batch_size, protocol.far_targets, workers, protocol.flip_tta
    )
    scalars = report.scalars()
    tracker.log_metrics({f"{prefix}/{k}": v for k, v in scalars.items()}, step)
    out_dir.mkdir(parents=True, exist_ok=True)
    preprocess = {"image_size": transform.image_size, "center_crop": transform.center_crop}
    preprocess["flip_tta"] = protocol.flip_tta
    (out_dir / "report.json").write_text(json.dumps({**report.to_dict(), "preprocess": preprocess}, indent=1))
    (out_dir / "report.txt").write_text(report.table() + "\n")
    roc_plot(report, out_dir / "roc.png")
    distance_histogram(distances, pairs.issame, report.threshold_mean, out_dir / "distances.png")
    hardest_pairs_grid(pairs.paths, pairs.left, pairs.right, distances, pairs.issame, report.threshold_mean,
                       out_dir / "hardest_pairs.png")  # fmt: skip
    for name in ("report.json", "report.txt", "roc.png", "distances.png", "hardest_pairs.png"):
        tracker.log_artifact(out_dir / name, prefix)
    log.info(
        "%s: accuracy %.4f +- %.4f, threshold %.3f, AUC %.4f, EER %.4f, %s",
        prefix,
        report.accuracy_mean,
        report.accuracy_std,
        report.threshold_mean,
        report.auc,
        report.eer,
        ", ".join(f"VAL@FAR={f:g} {v['val_mean']:.4f}" for f, v in report.val_at_far.items()),
    )
    return scalars


def validate(cfg: DictConfig) -> None:
    """Range checks the schema's types cannot express, before any data is touched."""
    checks = {
        "epochs": (cfg.epochs, 1),
        "train.eval_every": (cfg.train.eval_every, 1),
        "train.ckpt_every": (cfg.train.ckpt_every, 1),
        "train.keep_checkpoint_max": (cfg.train.keep_checkpoint_max, 1),
        "preprocess.image_size": (cfg.preprocess.image_size, 8),
        "hardware.data_workers": (cfg.hardware.data_workers, 1),
        "train.max_bad_images": (cfg.train.max_bad_images, 0),
    }
    if cfg.train.max_minutes is not None:
        checks["train.max_minutes"] = (cfg.train.max_minutes, 1e-9)
    if cfg.train.steps_per_epoch is not None:
        checks["train.steps_per_epoch"] = (cfg.train.steps_per_epoch, 1)
    bad = [f"{key}={value} (must be >= {low})" for key, (value, low) in checks.items() if value < low]
    if bad:
        raise ConfigError("invalid settings: " + ", ".join(bad))


def _log_window(tracker, window: list[np.ndarray], lr: float, rate: float, step: int) -> None:
    mean = np.mean(window, axis=0)
    metrics = {"train/loss": mean[0], "train/lr": lr, "train/images_per_sec": rate}
    metrics.update({f"train/{n}": v for n, v in zip(TELEMETRY, mean[1:], strict=True)})
    tracker.log_metrics(metrics, step)


class _StopSignals:
    """SIGTERM / SIGINT set a flag the training loop checks at each step boundary (a second SIGINT interrupts at
    once). Installed only in the main thread; the previous handlers come back on exit."""

    def __init__(self, enabled: bool = True) -> None:
        self.received: int | None = None
        self.previous: dict[int, object] = {}
        self.enabled = enabled

    def __enter__(self) -> _StopSignals:
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def rearm(self) -> None:
        """Install the handlers again: MindSpore components can set C-level handlers of their own (its
        `mindspore.dataset` pipeline did, when this package used it; Python still reported ours, but SIGTERM no
        longer reached it). Cheap, so done every step."""
        if self.previous and self.received is None:
            for sig in self.previous:
                signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = signum
        signal.signal(signum, self.previous.get(signum, signal.SIG_DFL))  # the second one is not deferred
        log.warning("%s received: stopping after this step (checkpoint, then exit)", signal.Signals(signum).name)

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def train(cfg: DictConfig, run_dir: Path, tracker, resume: ResumePoint | None = None) -> dict[str, float]:
    """Train with triplet loss; returns the final evaluation metrics (plus `best_accuracy`). `resume`: continue
    from that checkpoint (network, optimizer, step, epoch position, best accuracy, time spent)."""
    validate(cfg)
    if resume is not None and cfg.ckpt:
        raise ConfigError("resume= and ckpt= exclude each other: resume continues a run, ckpt starts a new one")
    ms.set_seed(cfg.seed)
    workers = cfg.hardware.data_workers
    # generating a synthetic set (once, cached) is a process pool: all cores, whatever the pipeline's thread count
    data = instantiate(cfg.dataset).load(os.cpu_count() or 1)
    protocol = instantiate(cfg.eval)
    pairs = protocol.load(os.cpu_count() or 1)
    rank, size = world()
    table = data.table
    sampler = instantiate(cfg.batch)(table, steps_per_epoch=cfg.train.steps_per_epoch, seed=cfg.seed)
    if size > 1:  # data parallel: each rank samples its own identities (class % size == rank), same step count
        table = table[table["class"] % size == rank].reset_index(drop=True)
        per_rank = cfg.train.steps_per_epoch or max(1, sampler.steps // size)
        sampler = instantiate(cfg.batch)(table, steps_per_epoch=per_rank, seed=cfg.seed + rank)
        log.info("rank %d of %d: %d images of %d identities, %d steps/epoch, global batch %d", rank, size,
                 len(table), table["class"].nunique(), per_rank, size * sampler.batch_size)  # fmt: skip
    miner = instantiate(cfg.miner)
    if miner.layout != "pk" and miner.layout != sampler.layout:
        raise ConfigError(f"miner={type(miner).__name__} needs batch={miner.layout}, not batch={sampler.layout}")
    steps, batch_size = sampler.steps, sampler.batch_size
    log.info(
        "training set: %d images of %d identities from %s; %d verification pairs; %d steps/epoch of %d images (%s)",
        len(data), data.num_identities, data.root, len(pairs), steps, batch_size, sampler.layout,
    )  # fmt: skip

    net = build_network(cfg.backbone, cfg.head, cfg.preprocess.image_size, cfg.init_std)
    eval_transform = EvalTransform(protocol.input_size(net), protocol.center_crop)
    if cfg.ckpt:
        load_network_weights(net, cfg.ckpt)
        log.info("initial weights from %s (optimizer state starts fresh)", cfg.ckpt)
    net = mixed_precision(net, cfg.hardware.amp_level, cfg.hardware.device)
    n_params = count_parameters(net)
    log.info("network: %s, %.2fM parameters", cfg.backbone._target_.rsplit(".", 1)[-1], n_params / 1e6)
    lr = instantiate(cfg.lr_schedule)(epochs=cfg.epochs, steps_per_epoch=steps)
    optimizer = build_optimizer(instantiate(cfg.optimizer), net, lr)
    loss = instantiate(cfg.loss, miner=miner)
    if cfg.hardware.mine_global_batch and size == 1:
        raise ConfigError("hardware.mine_global_batch=true needs data-parallel ranks (hardware=cpu_dp/gpu_dp/...)")
    step_fn = TrainStep(net, loss, optimizer, cfg.hardware.mine_global_batch)
    step_fn.set_train(True)

    augment = TrainTransform(int(cfg.preprocess.image_size), **OmegaConf.to_container(cfg.augment))
    paths, classes = table["path"].tolist(), table["class"].to_numpy()
    is_main = rank == 0  # evaluates and writes checkpoints (all ranks hold the same weights)
    ckpts = CheckpointManager(
        run_dir / "checkpoints",
        cfg.train.keep_checkpoint_max,
        {**model_spec(cfg), "run_id": tracker.run_id},
        enabled=is_main,
    )

    metrics: dict[str, float] = {}
    global_step, first_epoch, skip = 0, 1, 0
    spent, out_of_time = 0.0, False  # seconds in training steps (evaluation excluded)
    window: list[np.ndarray] = []
    if resume is not None:
        resume = _restore_newest_readable(step_fn, resume)
        global_step, spent, ckpts.best_accuracy = resume.global_step, resume.train_seconds, resume.best_accuracy
        ckpts.adopt_existing()
        done = resume.epoch_step if 0 <= resume.epoch_step < steps else steps
        first_epoch, skip = (resume.epoch, done) if done < steps else (resume.epoch + 1, 0)
        window = [np.asarray(w) for w in resume.window]
        log.info("resuming %s at epoch %d, step %d of %d (global step %d) from %s", run_dir, first_epoch, skip,
                 steps, global_step, resume.ckpt.name)  # fmt: skip
    else:
        sizes = {"images": len(data), "identities": data.num_identities, "eval_pairs": len(pairs)}
        tracker.log_metrics({"model/parameters": n_params, **{f"data/{k_}": v for k_, v in sizes.items()}}, 0)
    budget = cfg.train.max_minutes * 60 if cfg.train.max_minutes is not None else float("inf")
    rate = 0.0
    bad = BadImages(cfg.train.max_bad_images)
    reported = 0
    # under msrun the cluster's own signal handling stays in place (a rank stopping alone would stall the others)
    with _StopSignals(enabled=size == 1) as stop:
        for epoch in range(first_epoch, cfg.epochs + 1):
            start = skip if epoch == first_epoch else 0
            bar = tqdm(total=steps, initial=start, desc=f"epoch {epoch}/{cfg.epochs}", unit="step")
            t0 = time.perf_counter()
            batches = train_batches(paths, classes, sampler, augment, workers, cfg.seed, epoch, start, bad)
            for i, (images, labels) in enumerate(batches, start=start):
                if spent + time.perf_counter() - t0 > budget:
                    out_of_time = True
                    break
                stop.rearm()
                loss_value, telemetry = step_fn(images, labels)
                values = np.r_[float(loss_value.asnumpy()), telemetry.asnumpy()]
                if not np.isfinite(values).all():  # the loss, or the embeddings (their norm) the hinge may hide
                    what = "loss" if not np.isfinite(values[0]) else "embedding norm"
                    bad_value = values[0] if what == "loss" else values[1 + TELEMETRY.index("embedding_norm")]
                    raise TrainingDiverged(
                        f"{what} became {bad_value} at step {global_step + 1}: lower lr or check the data"
                    )
                window.append(values)
                global_step += 1
                rate = (i + 1 - start) * batch_size / (time.perf_counter() - t0)
                bar.set_postfix(loss=f"{values[0]:.4f}", active=f"{values[1]:.2f}", img_s=f"{rate:.0f}")
                bar.update()
                if global_step % tracker.log_every_steps == 0 or i == steps - 1:
                    _log_window(tracker, window, float(lr[global_step - 1]), rate, global_step)
                    window = []
                if stop.received is not None and i < steps - 1:
                    spent += time.perf_counter() - t0
                    path = ckpts.save(step_fn, epoch, global_step, metrics, state={
                        "epoch_step": i + 1, "best_accuracy": ckpts.best_accuracy, "train_seconds": spent,
                        "window": [w.tolist() for w in window], "interrupted": signal.Signals(stop.received).name,
                    })  # fmt: skip
                    bar.close()
                    raise TrainingInterrupted(
                        f"stopped by {signal.Signals(stop.received).name} at epoch {epoch}, step {i + 1} of {steps}; "
                        f"checkpoint {path}; continue with resume=auto (or resume={run_dir})"
                    )
            bar.close()
            spent += time.perf_counter() - t0
            if len(bad.paths) > reported:
                new = sorted(bad.paths)
                log.warning("%d unreadable training images so far (skipped, replaced by another image of the same "
                            "identity; limit train.max_bad_images=%d): %s", len(new), bad.limit,
                            ", ".join(new[:5]) + (" ..." if len(new) > 5 else ""))  # fmt: skip
                tracker.log_metrics({"data/bad_images": len(new)}, global_step)
                (run_dir / "bad_images.txt").write_text("\n".join(new) + "\n")
                tracker.log_artifact(run_dir / "bad_images.txt")
                reported = len(new)
            out_of_time = out_of_time or (spent >= budget and epoch < cfg.epochs)
            if window:
                _log_window(tracker, window, float(lr[global_step - 1]), rate, global_step)
                window = []
            if out_of_time:
                log.info(
                    "train.max_minutes=%g reached after %d steps (epoch %d)", cfg.train.max_minutes, global_step, epoch
                )
            last = epoch == cfg.epochs or out_of_time
            if is_main and (epoch % cfg.train.eval_every == 0 or last):
                metrics = evaluate_and_log(
                    net, pairs, protocol, eval_transform, workers, tracker, global_step, run_dir / "eval", "eval"
                )
                metrics["epoch"] = epoch
                if ckpts.save_if_best(step_fn, epoch, global_step, metrics):
                    log.info("new best accuracy %.4f at epoch %d", metrics["accuracy"], epoch)
            if epoch % cfg.train.ckpt_every == 0 or last or stop.received is not None:
                ckpts.save(step_fn, epoch, global_step, metrics, state={
                    "epoch_step": steps, "best_accuracy": ckpts.best_accuracy, "train_seconds": spent, "window": [],
                })  # fmt: skip
            if stop.received is not None and not last:
                raise TrainingInterrupted(
                    f"stopped by {signal.Signals(stop.received).name} after epoch {epoch}; continue with resume=auto"
                )
            if out_of_time:
                break
    tracker.log_metrics({"train/minutes": spent / 60, "train/steps": global_step}, global_step)
    if size > 1:  # trainable weights agree on every rank (BatchNorm running statistics are each rank's own)
        digest = hashlib.sha1(b"".join(p.asnumpy().tobytes() for p in net.trainable_params())).hexdigest()
        log.info("rank %d of %d: final weights sha1 %s", rank, size, digest)
        barrier()  # ranks leave together: the cluster counts an early exit as a failed node
    if not is_main:
        return metrics
    best = run_dir / "checkpoints" / "best.ckpt"
    tracker.log_artifact(best, "checkpoints")
    tracker.log_artifact(best.with_suffix(".json"), "checkpoints")
    metrics["best_accuracy"] = ckpts.best_accuracy
    return metrics


def _restore_newest_readable(step_fn, point: ResumePoint) -> ResumePoint:
    """Restore `point`; if its checkpoint cannot be read (truncated, corrupt), say so and use the run's previous
    one. A checkpoint that does not fit the configuration is an error, not a reason to go back."""
    candidates = [point.ckpt, *point.older]
    for n, ckpt in enumerate(candidates):
        try:
            chosen = point if n == 0 else load_point(ckpt)
            restore_training_state(step_fn, ckpt)
            return chosen
        except CheckpointUnreadable as err:
            if n == len(candidates) - 1:
                raise
            log.error("%s; resuming from the previous checkpoint %s instead", err, candidates[n + 1].name)
    raise AssertionError("unreachable")


def restore_training_state(step_fn, ckpt: Path) -> None:
    """Network and optimizer state (moments, step counter) from a training checkpoint; every parameter must fit."""
    params = read_checkpoint(ckpt)
    wanted = {p.name: p for p in step_fn.get_parameters()}
    missing = sorted(set(wanted) - set(params))
    shapes = [k for k in wanted if k in params and tuple(params[k].shape) != tuple(wanted[k].shape)]
    if missing or shapes:
        raise ConfigError(f"cannot resume from {ckpt}: it does not fit this configuration ({len(missing)} missing, "
                          f"{len(shapes)} reshaped parameters, e.g. {', '.join((missing + shapes)[:3])}); resume "
                          "with the overrides of the original run")  # fmt: skip
    ms.load_param_into_net(step_fn, {k: params[k] for k in wanted}, strict_load=True)
