"""Checkpoints: the newest N, the best by accuracy, and a JSON sidecar with the model and preprocessing spec."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import mindspore as ms
from mindspore import nn

log = logging.getLogger(__name__)


def sidecar(path: str | Path) -> Path:
    """`x.ckpt` -> `x.json`: what is needed to rebuild and feed the network (model config, preprocessing)."""
    return Path(path).with_suffix(".json")


class CheckpointManager:
    """Saves `facenet-rank{rank}-{epoch}_{step}.ckpt` into `folder`, keeps the newest `keep_max`, and copies the
    best-accuracy one to `best.ckpt`. `spec` (model + preprocessing) is written beside every file."""

    def __init__(self, folder: str | Path, keep_max: int, spec: dict, rank: int = 0):
        if keep_max < 1:
            raise ValueError(f"train.keep_checkpoint_max must be >= 1, got {keep_max}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep_max, self.spec, self.rank = keep_max, spec, rank
        self.saved: list[Path] = []
        self.best_accuracy = float("-inf")

    def save(self, cell: nn.Cell, epoch: int, step: int, metrics: dict[str, float]) -> Path:
        path = self.folder / f"facenet-rank{self.rank}-{epoch}_{step}.ckpt"
        ms.save_checkpoint(cell, str(path))
        sidecar(path).write_text(json.dumps({**self.spec, "epoch": epoch, "step": step, "metrics": metrics}, indent=2))
        self.saved.append(path)
        while len(self.saved) > self.keep_max:
            old = self.saved.pop(0)
            old.unlink(missing_ok=True)
            sidecar(old).unlink(missing_ok=True)
        return path

    def update_best(self, path: Path, accuracy: float) -> Path | None:
        """Copy `path` to best.ckpt if `accuracy` beats every earlier one; returns the best path if it changed."""
        if accuracy <= self.best_accuracy:
            return None
        self.best_accuracy = accuracy
        best = self.folder / "best.ckpt"
        shutil.copyfile(path, best)
        shutil.copyfile(sidecar(path), sidecar(best))
        return best


def load_network_weights(net: nn.Cell, path: str | Path) -> None:
    """Load the network's parameters from a training checkpoint (which also holds optimizer state)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    params = ms.load_checkpoint(str(path))
    wanted = {p.name for p in net.get_parameters()}
    picked = {k: v for k, v in params.items() if k in wanted}
    missing = sorted(wanted - set(picked))
    if missing:
        raise ValueError(
            f"checkpoint {path} does not fit this network: {len(missing)} parameters missing, e.g. "
            + ", ".join(missing[:5])
        )
    ms.load_param_into_net(net, picked, strict_load=True)
