"""`task=train` (the default): train the configured network, evaluating and checkpointing as it goes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from facenet.config.overrides import Reads
from facenet.errors import ConfigError
from facenet.tasks.base import Continuation, RunContext, Task

log = logging.getLogger(__name__)


class Train(Task):
    name = "train"
    reads = Reads(
        everything_but={
            "export": "the export section is read by task=export only (train, then run task=export "
            "ckpt=.../best.ckpt with it)",
            "two_stage": "two_stage is read by task=two_stage only (experiment=two_stage)",
        }
    )
    resumes = True
    model_tag = "parent_model"  # ckpt= is the model training starts from
    resume_advice = "; resume=auto continues from its last checkpoint"

    def continuation(self, cfg: DictConfig) -> Continuation | None:
        """`resume=auto` in a sweep job means its own folder (a resubmitted sweep: `hydra.sweep.dir=<it>`): an
        unfinished run there continues, a finished one is not run again, and a job that left no checkpoint starts
        over; elsewhere the newest unfinished run under output_dir (or the run / checkpoint named)."""
        from facenet import sweeps
        from facenet.training.resume import find_resume_point

        job = sweeps.job_dir() if str(cfg.resume) == "auto" else None
        if job is not None:
            return sweep_job_continuation(job, cfg)
        point = find_resume_point(str(cfg.resume), cfg.output_dir)
        return Continuation(point.run_dir, point.run_id, point.state.global_step, point)

    def last_checkpoint(self, run_dir: Path) -> Path | None:
        from facenet.training.resume import latest_point

        try:
            point = latest_point(run_dir)
        except Exception:  # noqa: BLE001 - an unreadable checkpoint is not named; the failure itself goes on
            return None
        return point.ckpt if point else None

    def run(self, cfg: DictConfig, context: RunContext) -> dict[str, float]:
        from facenet.training.trainer import train

        point = context.continuation.point if context.continuation else None
        return train(cfg, context.run_dir, context.tracker, point)


def sweep_job_continuation(job_dir: Path, cfg: DictConfig) -> Continuation | None:
    """A resubmitted sweep job's folder: its metrics if it had finished (it is not run again), else its unfinished
    run's last checkpoint, or None if it left none (the job starts over). The run there must be this job's, with
    the same settings (`resume` aside): an Optuna sweep resubmitted asks new trials, whose job numbers are the old
    ones'."""
    from facenet.runs import read_state
    from facenet.training.resume import latest_point

    recorded = job_dir / "config.yaml"
    if recorded.is_file():
        before, now = OmegaConf.load(recorded), OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        differ = sorted(k for k in {*before, *now} - {"resume"} if before.get(k) != now.get(k))
        if differ:
            raise ConfigError(
                f"resume=auto: {job_dir} holds a run with other settings ({', '.join(differ)}), not this job's; "
                "an Optuna study continues in a new hydra.sweep.dir (its storage keeps the trials)"
            )
    state = read_state(job_dir)
    metrics = job_dir / "metrics.json"
    if state.get("status") == "FINISHED" and metrics.is_file():
        log.info("sweep job %s finished before: kept, not run again", job_dir)
        return Continuation(job_dir, state.get("run_id"), -1, finished=json.loads(metrics.read_text()))
    point = latest_point(job_dir)
    if point is None:
        log.info("sweep job %s: no checkpoint to continue (status %s): it starts over", job_dir, state.get("status"))
        return None
    return Continuation(point.run_dir, point.run_id, point.state.global_step, point)
