"""Where to resume a training run from: `resume=auto` (the newest unfinished run under `output_dir/runs`),
`resume=RUN_DIR` or `resume=CHECKPOINT`, and restoring it.

Every periodic checkpoint (and the one written when a run is stopped by SIGTERM/SIGINT) holds the network and the
optimizer state; its sidecar holds the run's `TrainState` and the MLflow run id, so a resumed run continues exactly.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
from mindspore import nn

from facenet.errors import ConfigError
from facenet.losses.classifier import sharded
from facenet.models.io import CheckpointUnreadable, read_checkpoint, sidecar
from facenet.runs import read_state
from facenet.training.checkpoints import periodic_checkpoints
from facenet.training.state import TrainState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumePoint:
    ckpt: Path
    run_dir: Path
    run_id: str | None
    state: TrainState
    older: tuple[Path, ...] = ()  # the run's earlier checkpoints, newest first: used if this one fails to load


def _checkpoints(run_dir: Path) -> list[Path]:
    """The run's resume points: rank 0's periodic checkpoints (under a sharded classifier every rank has its own)."""
    return periodic_checkpoints(run_dir / "checkpoints", "facenet-rank0-*.ckpt")


def own_file(ckpt: Path, run_dir: Path, rank: int) -> Path:
    """This rank's file of rank 0's checkpoint `ckpt` (ranks other than 0 write into `<run>/rank_<r>/checkpoints`)."""
    if rank == 0:
        return ckpt
    return run_dir / f"rank_{rank}" / "checkpoints" / ckpt.name.replace("facenet-rank0-", f"facenet-rank{rank}-", 1)


def _status(run_dir: Path) -> str:
    return read_state(run_dir).get("status", "?")


def find_resume_point(resume: str, output_dir: str | Path) -> ResumePoint:
    """Resolve `resume` (auto | run dir | checkpoint) to the checkpoint to continue from."""
    target = Path(resume).expanduser()
    if resume == "auto":
        runs = [p.parent for p in Path(output_dir).glob("runs/*/*/checkpoints")]
        candidates = [r for r in runs if _status(r) != "FINISHED" and _checkpoints(r)]
        if not candidates:
            raise ConfigError(f"resume=auto: no unfinished run with a checkpoint under {Path(output_dir) / 'runs'}")
        ckpt = max((_checkpoints(r)[-1] for r in candidates), key=lambda c: c.stat().st_mtime)
    elif target.is_dir():
        ckpts = _checkpoints(target)
        if not ckpts:
            raise ConfigError(f"resume={resume}: no checkpoint with a sidecar in {target / 'checkpoints'}")
        ckpt = ckpts[-1]
    elif target.is_file():
        return load_point(target)  # that checkpoint, no other
    else:
        raise ConfigError(f"resume={resume}: expected auto, a run directory or a checkpoint file")
    older = tuple(c for c in reversed(_checkpoints(ckpt.parent.parent)) if c != ckpt)
    return load_point(ckpt, older)


def latest_point(run_dir: Path) -> ResumePoint | None:
    """The newest checkpoint of the run in `run_dir` to continue from (older ones kept as fallbacks), or None if it
    has none."""
    ckpts = _checkpoints(run_dir)
    return load_point(ckpts[-1], tuple(reversed(ckpts[:-1]))) if ckpts else None


def load_point(ckpt: Path, older: tuple[Path, ...] = ()) -> ResumePoint:
    """The resume point a checkpoint's sidecar describes."""
    try:
        spec = json.loads(sidecar(ckpt).read_text())
        state = TrainState.from_sidecar(spec)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"cannot resume from {ckpt}: its sidecar is missing or incomplete ({err})") from None
    return ResumePoint(ckpt=ckpt, run_dir=ckpt.parent.parent, run_id=spec.get("run_id"), state=state, older=older)


def restore(step: nn.Cell, point: ResumePoint) -> ResumePoint:
    """Load `point` into the training step (network and optimizer); if its checkpoint cannot be read (truncated,
    corrupt), say so and use the run's previous one (not under sharded class centres: each rank loads its own file
    of `point`'s step, or stops). Returns the point restored. A checkpoint that does not fit the configuration is
    an error, not a reason to go back."""
    if sharded(step.loss):  # every rank must load the same step, and a rank sees only its own file: no fallback
        try:
            load_training_state(step, own_file(point.ckpt, point.run_dir, step.loss.rank))
            return point
        except CheckpointUnreadable as err:
            raise ConfigError(
                f"{err}; with sharded class centres every rank must resume from the same step: "
                "resume=<an older facenet-rank0-*.ckpt of the run>"
            ) from None
    candidates = [point.ckpt, *point.older]
    for n, ckpt in enumerate(candidates):
        try:
            chosen = point if n == 0 else load_point(ckpt)
            load_training_state(step, ckpt)
            return chosen
        except CheckpointUnreadable as err:
            if n == len(candidates) - 1:
                raise
            log.error("%s; resuming from the previous checkpoint %s instead", err, candidates[n + 1].name)
    raise AssertionError("unreachable")


def load_training_state(step: nn.Cell, ckpt: Path) -> None:
    """Network and optimizer state (moments, step counter, a memory) from a training checkpoint; every parameter
    must fit."""
    params = read_checkpoint(ckpt)
    check_memory(step, params, ckpt)
    wanted = {p.name: p for p in step.get_parameters()}
    missing = sorted(set(wanted) - set(params))
    shapes = [k for k in wanted if k in params and tuple(params[k].shape) != tuple(wanted[k].shape)]
    theirs, ours = params.get("classifier"), wanted.get("classifier")
    if "classifier" in shapes:
        raise ConfigError(
            f"cannot resume from {ckpt}: its classifier is for {theirs.shape[0]} identities, this "
            f"training set has {ours.shape[0]}; resume on the run's own training set"
        )
    if missing or shapes:
        raise ConfigError(
            f"cannot resume from {ckpt}: it does not fit this configuration ({len(missing)} missing, "
            f"{len(shapes)} reshaped parameters, e.g. {', '.join((missing + shapes)[:3])}); resume "
            "with the overrides of the original run"
        )
    ms.load_param_into_net(step, {k: params[k] for k in wanted}, strict_load=True)


def check_memory(step: nn.Cell, params: dict, ckpt: Path) -> None:
    """ConfigError unless the run resumes with the cross-batch memory it was trained with (its size from the
    checkpoint, its start step from the sidecar's loss record), or without one if it had none."""
    theirs, ours = params.get("memory.rows"), getattr(step, "memory", None)
    if theirs is None and ours is None:
        return
    if theirs is None:
        raise ConfigError(
            f"cannot resume from {ckpt}: it was trained without a cross-batch memory; resume without "
            f"miner.memory.size={ours.size}"
        )
    try:
        recorded = json.loads(sidecar(ckpt).read_text())["loss"]["memory"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = {"size": theirs.shape[0]}
    wanted = {"size": int(theirs.shape[0]), **{k: int(v) for k, v in recorded.items() if k != "size"}}
    have = {"size": ours.size, "start_step": ours.start_step} if ours is not None else {"size": 0}
    differ = [f"miner.memory.{k}={v}" for k, v in wanted.items() if have.get(k) != v]
    if differ:
        trained = ", ".join(f"{k} {v}" for k, v in wanted.items())
        raise ConfigError(
            f"cannot resume from {ckpt}: it was trained with a cross-batch memory ({trained}); resume "
            f"with {' '.join(differ)}"
        )
