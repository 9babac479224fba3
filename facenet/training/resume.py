"""Where to resume a training run from: `resume=auto` (the newest unfinished run under `output_dir/runs`),
`resume=RUN_DIR` or `resume=CHECKPOINT`.

Every periodic checkpoint (and the one written when a run is stopped by SIGTERM/SIGINT) holds the network and the
optimizer state; its sidecar holds the epoch, the steps done in it, the global step, the best accuracy so far, the
training seconds spent, the unlogged metric window and the MLflow run id, so a resumed run continues exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from facenet.errors import ConfigError
from facenet.training.checkpoints import periodic_checkpoints, sidecar


@dataclass(frozen=True)
class ResumePoint:
    ckpt: Path
    run_dir: Path
    run_id: str | None
    epoch: int
    epoch_step: int  # steps of `epoch` already done
    global_step: int
    best_accuracy: float
    train_seconds: float
    window: list  # per-step telemetry not yet logged (a logging window cut by the interruption)
    older: tuple[Path, ...] = ()  # the run's earlier checkpoints, newest first: used if this one fails to load


def _checkpoints(run_dir: Path) -> list[Path]:
    return periodic_checkpoints(run_dir / "checkpoints")


def _status(run_dir: Path) -> str:
    try:
        return json.loads((run_dir / "run.json").read_text()).get("status", "?")
    except (OSError, ValueError):
        return "?"


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


def load_point(ckpt: Path, older: tuple[Path, ...] = ()) -> ResumePoint:
    """The resume point a checkpoint's sidecar describes."""
    try:
        spec = json.loads(sidecar(ckpt).read_text())
        epoch, step = int(spec["epoch"]), int(spec["step"])
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"cannot resume from {ckpt}: its sidecar is missing or incomplete ({err})") from None
    return ResumePoint(
        ckpt=ckpt,
        run_dir=ckpt.parent.parent,
        run_id=spec.get("run_id"),
        epoch=epoch,
        epoch_step=int(spec.get("epoch_step", -1)),  # -1: an older checkpoint, written at the end of its epoch
        global_step=step,
        best_accuracy=float(spec.get("best_accuracy", float("-inf"))),
        train_seconds=float(spec.get("train_seconds", 0.0)),
        window=spec.get("window", []),
        older=older,
    )
