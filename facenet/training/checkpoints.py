"""A training run's checkpoints: the newest N periodic ones (with the run's state, to resume from) and the best by
accuracy, each with its sidecar (`facenet.models.io`: how to rebuild and feed the network)."""

from __future__ import annotations

import json
from pathlib import Path

from mindspore import nn

from facenet.errors import ConfigError, DataError
from facenet.models.io import save_model, sidecar
from facenet.training.state import TrainState


class CheckpointManager:
    """Periodic checkpoints `facenet-rank{rank}-{epoch}_{step}.ckpt` (the newest `keep_max` are kept) and
    `best.ckpt`. `spec` (model + preprocessing, `facenet.models.io.model_spec`) is written beside every file."""

    def __init__(self, folder: str | Path, keep_max: int, spec: dict, rank: int = 0, enabled: bool = True):
        """`enabled` False (data-parallel ranks other than 0): nothing is written."""
        if keep_max < 1:
            raise ConfigError(f"train.keep_checkpoint_max must be >= 1, got {keep_max}")
        self.folder, self.enabled = Path(folder), enabled
        if enabled:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.keep_max, self.spec, self.rank = keep_max, spec, rank
        self.saved: list[Path] = []

    def _write(self, cell: nn.Cell, path: Path, info: dict) -> Path:
        """Atomically: both files are written under temporary names, then renamed (sidecar last), so a crash or a
        full disk never leaves a half-written checkpoint under a real name."""
        if not self.enabled:
            return path
        try:
            save_model(cell, path, {**self.spec, **info})
        except OSError as err:
            raise DataError(f"cannot write checkpoint {path}: {err.strerror or err}") from None
        return path

    def adopt_existing(self) -> None:
        """A resumed run: count the periodic checkpoints already in the folder for `keep_max`."""
        self.saved = periodic_checkpoints(self.folder, f"facenet-rank{self.rank}-*.ckpt")

    def save(self, cell: nn.Cell, state: TrainState, metrics: dict[str, float], **extra) -> Path:
        """A periodic checkpoint of `cell` (network and optimizer) with `state` in its sidecar (plus `extra`)."""
        path = self.folder / f"facenet-rank{self.rank}-{state.epoch}_{state.global_step}.ckpt"
        path = self._write(cell, path, {**state.to_sidecar(), "metrics": metrics, **extra})
        if path in self.saved:
            self.saved.remove(path)
        self.saved.append(path)
        while len(self.saved) > self.keep_max:
            old = self.saved.pop(0)
            old.unlink(missing_ok=True)
            sidecar(old).unlink(missing_ok=True)
        return path

    def save_best(self, cell: nn.Cell, state: TrainState, metrics: dict[str, float], epoch: int) -> Path:
        """`best.ckpt` after `epoch` (0: the starting weights), with the evaluation that made it the best (rank 0:
        the network is every rank's; a sharded classifier in it is rank 0's share)."""
        if self.rank != 0:
            raise AssertionError("best.ckpt is rank 0's to write")
        info = {"epoch": epoch, "step": state.global_step, "metrics": metrics}
        return self._write(cell, self.folder / "best.ckpt", info)

    def last_at_or_before(self, step: int) -> Path | None:
        """The newest checkpoint written (periodic, or best.ckpt) whose weights are from `step` or earlier."""
        found = []
        for ckpt in [*self.saved, self.folder / "best.ckpt"]:
            try:
                at = int(json.loads(sidecar(ckpt).read_text())["step"])
            except (OSError, ValueError, KeyError):
                continue
            if at <= step and ckpt.is_file():
                found.append((at, ckpt.name != "best.ckpt", ckpt))
        return max(found)[2] if found else None


def periodic_checkpoints(folder: Path, pattern: str = "facenet-*.ckpt") -> list[Path]:
    """Periodic / interrupt checkpoints in `folder` with a readable sidecar, oldest to newest by global step."""
    found = []
    for ckpt in folder.glob(pattern):
        try:
            found.append((int(json.loads(sidecar(ckpt).read_text())["step"]), ckpt))
        except (OSError, ValueError, KeyError):
            continue  # no or unreadable sidecar: not resumable
    return [c for _, c in sorted(found)]
