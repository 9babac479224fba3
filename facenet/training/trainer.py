"""`train(cfg)`: build the run's parts (`setup.build_training`), restore it if resuming, run the training loop
(`fit`) and return the final evaluation. Evaluation, checkpoints, the NaN guard and bad-image reports are the small
functions below the loop."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from facenet.data.pipeline import BadImages
from facenet.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from facenet.losses.classifier import sharded
from facenet.models.embedding import count_parameters
from facenet.models.io import model_spec, sidecar
from facenet.models.load import resolve_checkpoint
from facenet.runtime import any_rank, barrier
from facenet.tracking import Tracker
from facenet.training.checkpoints import CheckpointManager
from facenet.training.curves import FIGURE as CLASSIFIER_FIGURE
from facenet.training.curves import classifier_figure
from facenet.training.health import FIGURE, TelemetryLog, TripletHealth, health_figure, window_means
from facenet.training.resume import ResumePoint, restore
from facenet.training.setup import Training, build_training
from facenet.training.state import TrainState
from facenet.training.stopping import StopSignals, TimeBudget

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path, tracker: Tracker, resume: ResumePoint | None = None) -> dict[str, float]:
    """Train with the configured loss; returns the final evaluation metrics plus `best_accuracy`, `train_minutes`,
    `images_per_sec` (training steps only) and `parameters`. `resume`:
    continue from that checkpoint (network, optimizer and `TrainState`)."""
    if resume is not None and cfg.ckpt:
        raise ConfigError("resume= and ckpt= exclude each other: resume continues a run, ckpt starts a new one")
    t = build_training(cfg)
    spec = {**model_spec(cfg), "loss": loss_record(cfg, t), "run_id": tracker.run_id}
    # a sharded classifier (each rank its own class centres): every rank writes its periodic checkpoints
    ckpts = CheckpointManager(
        run_dir / "checkpoints", cfg.train.keep_checkpoint_max, spec, t.rank, enabled=t.is_main or sharded(t.loss)
    )
    if cfg.ckpt and sidecar(parent := resolve_checkpoint(cfg.ckpt)).is_file():  # what a warm start started from
        tracker.log_artifact(sidecar(parent), "parent_model")
    if resume is None:
        state = TrainState()
        sizes = {"images": len(t.data), "identities": t.data.num_identities, "eval_comparisons": t.evaluation.size}
        tracker.log_metrics(
            {"model/parameters": count_parameters(t.net), **{f"data/{k}": v for k, v in sizes.items()}}, 0
        )
    else:
        state = resume_state(t, ckpts, resume)
    metrics = fit(t, state, ckpts, tracker, run_dir)
    tracker.log_metrics(
        {"train/minutes": state.train_seconds / 60, "train/steps": state.global_step}, state.global_step
    )
    if t.world_size > 1:  # trainable weights agree on every rank (BatchNorm running statistics are each rank's own)
        digest = hashlib.sha1(b"".join(p.asnumpy().tobytes() for p in t.net.trainable_params())).hexdigest()
        log.info("rank %d of %d: final weights sha1 %s", t.rank, t.world_size, digest)
        if t.step.memory is not None:  # every rank stored the same global batches
            digest = hashlib.sha1(b"".join(p.asnumpy().tobytes() for p in t.step.memory.get_parameters())).hexdigest()
            log.info("rank %d of %d: final memory sha1 %s", t.rank, t.world_size, digest)
        barrier()  # ranks leave together: the cluster counts an early exit as a failed node
    if not t.is_main:
        return metrics
    best = run_dir / "checkpoints" / "best.ckpt"
    tracker.log_artifact(best, "checkpoints")
    tracker.log_artifact(best.with_suffix(".json"), "checkpoints")
    cost = {
        "train_minutes": state.train_seconds / 60,
        "images_per_sec": state.global_step * t.sampler.batch_size / max(state.train_seconds, 1e-9),
        "parameters": count_parameters(t.net),
    }
    return {**metrics, "best_accuracy": state.best_accuracy, **cost}


def fit(t: Training, state: TrainState, ckpts: CheckpointManager, tracker: Tracker, run_dir: Path) -> dict[str, float]:
    """The loop: from `state` to `cfg.epochs` (or the time budget), each epoch's batches through the compiled
    step, then evaluation and a checkpoint. A stop signal checkpoints at the next step and raises
    TrainingInterrupted. Returns the last evaluation's metrics."""
    cfg, steps = t.cfg, t.steps_per_epoch
    budget = TimeBudget(cfg.train.max_minutes, state.train_seconds)
    bad = BadImageReport(cfg.train.max_bad_images, run_dir, tracker)
    health = HealthWatch(t, state, ckpts, tracker, run_dir)
    first, skip = state.start(steps)
    metrics: dict[str, float] = {}
    if t.is_main and cfg.train.eval_at_start and state.global_step == 0:  # where a fine-tuning run starts from
        metrics = evaluate(t, state, ckpts, tracker, run_dir, epoch=0, also=True)
    before = dict(metrics)
    rate = 0.0
    # data parallel: a signal on any rank stops every rank after the same step (they agree each step, any_rank)
    with StopSignals() as stop:
        for epoch in range(first, cfg.epochs + 1):
            state.epoch, start, out_of_time = epoch, skip if epoch == first else 0, False
            bar = tqdm(total=steps, initial=start, desc=f"epoch {epoch}/{cfg.epochs}", unit="step")
            budget.start()
            for i, (images, labels) in enumerate(t.batches(epoch, start, bad.images), start=start):
                if any_rank(budget.exceeded()):  # data parallel: every rank's clock, one decision
                    out_of_time = True
                    break
                stop.rearm()
                values = train_step(t, images, labels, state)
                state.epoch_step = i + 1
                rate = (i + 1 - start) * t.sampler.batch_size / budget.running()
                first = BAR_NAMES.get(t.loss.TELEMETRY[0], t.loss.TELEMETRY[0]) if t.loss.TELEMETRY else None
                postfix = {"loss": f"{values[0]:.4f}", **({first: f"{values[1]:.2f}"} if first else {})}
                bar.set_postfix({**postfix, "img_s": f"{rate:.0f}"})
                bar.update()
                if state.global_step % tracker.log_every_steps == 0 or i == steps - 1:
                    health.observe(log_window(tracker, t, state, rate), bar)
                stopping = any_rank(stop.received is not None)
                if stopping and i < steps - 1:
                    state.train_seconds = budget.stop()
                    bar.close()
                    path = ckpts.save(t.step, state, metrics, interrupted=stop.name or "another rank's signal")
                    raise TrainingInterrupted(
                        f"stopped by {stop.name or 'a signal to another rank'} at epoch {epoch}, step {i + 1} of "
                        f"{steps}; checkpoint {path}; "
                        f"continue with resume=auto (or resume={run_dir})"
                    )
            bar.close()
            state.train_seconds, state.epoch_step = budget.stop(), steps
            bad.report(state.global_step)
            out_of_time = any_rank(out_of_time or (budget.used_up and epoch < cfg.epochs))
            if state.window:
                health.observe(log_window(tracker, t, state, rate))
            if out_of_time:
                log.info(
                    "train.max_minutes=%g reached after %d steps (epoch %d)",
                    budget.max_minutes,
                    state.global_step,
                    epoch,
                )
            last = epoch == cfg.epochs or out_of_time
            if t.is_main and (epoch % cfg.train.eval_every == 0 or last):
                health.figure()
                metrics = evaluate(t, state, ckpts, tracker, run_dir, epoch, also=last)
            stopping = any_rank(stop.received is not None)
            if epoch % cfg.train.ckpt_every == 0 or last or stopping:
                path = ckpts.save(t.step, state, metrics)
            if stopping and not last:
                raise TrainingInterrupted(
                    f"stopped by {stop.name or 'a signal to another rank'} after epoch {epoch}; checkpoint {path}; "
                    "continue with resume=auto"
                )
            if out_of_time:
                break
    log_change(before, metrics)
    return metrics


def log_change(start: dict[str, float], end: dict[str, float]) -> None:
    """Accuracy at the start (train.eval_at_start) and at the end, per protocol."""
    for key in sorted(k for k in start if k == "accuracy" or k.endswith("/accuracy")):
        if key in end:
            name = key.rpartition("/")[0] or "eval"
            log.info("%s: accuracy %.4f -> %.4f (%+.4f)", name, start[key], end[key], end[key] - start[key])


def resume_state(t: Training, ckpts: CheckpointManager, point: ResumePoint) -> TrainState:
    """Load the resume point into the step (falling back to the run's previous checkpoint if it is unreadable) and
    return its state; the run's existing periodic checkpoints count towards `keep_checkpoint_max`."""
    point = restore(t.step, point)
    ckpts.adopt_existing()
    epoch, skip = point.state.start(t.steps_per_epoch)
    log.info(
        "resuming %s at epoch %d, step %d of %d (global step %d) from %s",
        point.run_dir,
        epoch,
        skip,
        t.steps_per_epoch,
        point.state.global_step,
        point.ckpt.name,
    )
    return point.state


def train_step(t: Training, images, labels, state: TrainState) -> np.ndarray:
    """One compiled step; its [loss, *telemetry] is checked and added to the logging window."""
    loss, telemetry = t.step(images, labels, *t.loss.step_inputs(state.global_step))
    values = np.r_[float(loss.asnumpy()), telemetry.asnumpy()]
    check_finite(values, t.loss.TELEMETRY, state.global_step + 1)
    state.window.append(values)
    state.global_step += 1
    return values


def loss_record(cfg: DictConfig, t: Training) -> dict:
    """What a checkpoint's sidecar says of the loss it was trained with (its classifier and its memory never leave
    the run)."""
    settings = {k: v for k, v in OmegaConf.to_container(cfg.loss, resolve=True).items() if not k.startswith("_")}
    extra = {"identities": t.loss.num_classes} if hasattr(t.loss, "num_classes") else {}
    if t.step.memory is not None:  # resume checks it (facenet.training.resume.check_memory)
        extra["memory"] = {"size": t.step.memory.size, "start_step": t.step.memory.start_step}
    return {"name": type(t.loss).__name__, **settings, **extra}


BAR_NAMES = {"active_fraction": "active", "train_accuracy": "acc"}  # the progress bar's name for telemetry[0]


def check_finite(values: np.ndarray, telemetry: tuple[str, ...], step: int) -> None:
    """Stop at the first step whose loss or telemetry is NaN or infinite, naming the loss first, then the
    embeddings' norm (a hinge can hide NaN embeddings behind a finite loss), then any other telemetry."""
    if np.isfinite(values).all():
        return
    named = dict(zip(("loss", *telemetry), values, strict=True))
    what = next(n for n in ("loss", "embedding_norm", *telemetry) if n in named and not np.isfinite(named[n]))
    raise TrainingDiverged(f"{what.replace('_', ' ')} became {named[what]} at step {step}: lower lr or check the data")


def log_window(tracker: Tracker, t: Training, state: TrainState, rate: float) -> dict[str, float]:
    """Means of the window's loss and telemetry, with the step's lr and the epoch's images/s; empties the window
    and returns the means by name (`loss`, then the telemetry's names). Rows of another length (a window a
    resumed checkpoint carried from a version with other telemetry) are dropped."""
    names = ("loss", *t.loss.TELEMETRY)
    rows = [w for w in state.window if len(w) == len(names)] or [np.full(len(names), np.nan)]
    means = window_means(t.loss.TELEMETRY, rows)
    metrics = {"train/lr": float(t.lr[state.global_step - 1]), "train/images_per_sec": rate}
    metrics.update({f"train/{n}": v for n, v in means.items() if np.isfinite(v)})
    tracker.log_metrics(metrics, state.global_step)
    state.window = []
    return means


class HealthWatch:
    """The training loop's view of `facenet.training.health`: each window into `telemetry.csv` and the monitor,
    findings acted on (warn, or stop with the last good checkpoint), the distance-percentile figure (a
    classification run: `facenet.training.curves`) drawn and logged at each evaluation and when a run is stopped.
    Rank 0 alone watches; under data parallel `stop` warns (a rank that stopped alone would stall the others)."""

    def __init__(self, t: Training, state: TrainState, ckpts: CheckpointManager, tracker: Tracker, run_dir: Path):
        cfg, margin = t.cfg.train, getattr(t.loss, "margin", None)
        mode = cfg.health if t.world_size == 1 or cfg.health != "stop" else "warn"
        if mode != cfg.health:
            log.warning("train.health=stop acts as warn under data parallel (rank 0 watches alone)")
        self.monitor = TripletHealth(mode if t.is_main else "off", cfg.health_windows, margin, t.loss.TELEMETRY)
        self.monitor.last_step = state.global_step
        self.log = TelemetryLog(run_dir, ("loss", *t.loss.TELEMETRY), state.global_step) if t.is_main else None
        self.state, self.ckpts, self.tracker, self.run_dir, self.margin = state, ckpts, tracker, run_dir, margin

    def observe(self, means: dict[str, float], bar=None) -> None:
        if self.log is None or not all(np.isfinite(v) for v in means.values()):
            return
        self.log.append(self.state.global_step, means)
        finding = self.monitor.observe(self.state.global_step, means)
        if finding is None:
            return
        if self.monitor.mode == "stop":
            if bar is not None:
                bar.close()
            self.figure()
        self.monitor.react(finding, self.ckpts.last_at_or_before(finding.since_step), self.tracker)

    def figure(self) -> None:
        if self.log is None:
            return
        table = self.log.table()
        path = health_figure(table, self.run_dir / FIGURE, self.margin, self.monitor.findings)
        path = path or classifier_figure(table, self.run_dir / CLASSIFIER_FIGURE)
        if path is not None:
            self.tracker.log_artifact(path, "train")
        self.tracker.log_artifact(self.log.path, "train")


def evaluate(
    t: Training,
    state: TrainState,
    ckpts: CheckpointManager,
    tracker: Tracker,
    run_dir: Path,
    epoch: int,
    also: bool = False,
) -> dict[str, float]:
    """Evaluate on the configured pairs (logged under `eval/`; a benchmark suite: all its sets); an accuracy (the
    suite's primary) above every earlier one is saved as `best.ckpt` (epoch 0: the starting weights). `also`: the
    `also_eval` protocols too, under `<name>/`."""
    workers, step, own = t.cfg.hardware.data_workers, state.global_step, t.evaluation
    metrics = own.run(t.net, workers, tracker, step, run_dir / "eval", "eval")
    metrics["epoch"] = epoch
    headline = own.protocol.headline
    if metrics[headline] > state.best_accuracy:  # the state keeps its name: checkpoints of earlier runs resume
        state.best_accuracy = metrics[headline]
        ckpts.save_best(t.step, state, metrics, epoch)
        log.info("new best %s %.4f at epoch %d", headline, metrics[headline], epoch)
    for name, e in t.also_eval.items() if also else ():
        scalars = e.run(t.net, workers, tracker, step, run_dir / name, name)
        metrics.update({f"{name}/{k}": v for k, v in scalars.items()})
    return metrics


class BadImageReport:
    """Unreadable training images: the pipeline skips them (replaced within the identity) up to
    `train.max_bad_images`; after each epoch that met new ones they are logged, counted and listed."""

    def __init__(self, limit: int, run_dir: Path, tracker: Tracker):
        self.images, self.run_dir, self.tracker, self.reported = BadImages(limit), run_dir, tracker, 0

    def report(self, step: int) -> None:
        if len(self.images.paths) <= self.reported:
            return
        new = sorted(self.images.paths)
        log.warning(
            "%d unreadable training images so far (skipped, replaced by another image of the same identity; "
            "limit train.max_bad_images=%d): %s",
            len(new),
            self.images.limit,
            ", ".join(new[:5]) + (" ..." if len(new) > 5 else ""),
        )
        self.tracker.log_metrics({"data/bad_images": len(new)}, step)
        (self.run_dir / "bad_images.txt").write_text("\n".join(new) + "\n")
        self.tracker.log_artifact(self.run_dir / "bad_images.txt")
        self.reported = len(new)
