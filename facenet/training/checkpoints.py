"""Checkpoints: the newest N, the best by accuracy, and a JSON sidecar with the model and preprocessing spec."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import mindspore as ms
from mindspore import nn

from facenet.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# A sidecar's `_target_`s are instantiated: only the project's own model classes may be named there.
_ALLOWED_TARGETS = ("facenet.models.",)


def sidecar(path: str | Path) -> Path:
    """`x.ckpt` -> `x.json`: what is needed to rebuild and feed the network (model config, preprocessing)."""
    return Path(path).with_suffix(".json")


class CheckpointManager:
    """Periodic checkpoints `facenet-rank{rank}-{epoch}_{step}.ckpt` (the newest `keep_max` are kept) and
    `best.ckpt`, written whenever an evaluation beats every earlier one. `spec` (model + preprocessing) is written
    beside every file."""

    def __init__(self, folder: str | Path, keep_max: int, spec: dict, rank: int = 0, enabled: bool = True):
        """`enabled` False (data-parallel ranks other than 0): nothing is written."""
        if keep_max < 1:
            raise ConfigError(f"train.keep_checkpoint_max must be >= 1, got {keep_max}")
        self.folder, self.enabled = Path(folder), enabled
        if enabled:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.keep_max, self.spec, self.rank = keep_max, spec, rank
        self.saved: list[Path] = []
        self.best_accuracy = float("-inf")

    def _write(self, cell: nn.Cell, path: Path, epoch: int, step: int, metrics: dict[str, float],
               state: dict | None = None) -> Path:  # fmt: skip
        """Atomically: both files are written under temporary names, then renamed (sidecar last), so a crash or a
        full disk never leaves a half-written checkpoint under a real name."""
        if not self.enabled:
            return path
        tmp = path.with_name(f".partial-{path.name}")
        info = {**self.spec, "epoch": epoch, "step": step, "metrics": metrics, **(state or {})}
        try:
            ms.save_checkpoint(cell, str(tmp))
            sidecar(tmp).write_text(json.dumps(info, indent=2))
            os.replace(tmp, path)
            os.replace(sidecar(tmp), sidecar(path))
        except OSError as err:
            tmp.unlink(missing_ok=True)
            sidecar(tmp).unlink(missing_ok=True)
            raise DataError(f"cannot write checkpoint {path}: {err.strerror or err}") from None
        return path

    def adopt_existing(self) -> None:
        """A resumed run: count the periodic checkpoints already in the folder for `keep_max`."""
        self.saved = periodic_checkpoints(self.folder, f"facenet-rank{self.rank}-*.ckpt")

    def save(self, cell: nn.Cell, epoch: int, step: int, metrics: dict[str, float], state: dict | None = None
             ) -> Path:  # fmt: skip
        """A periodic checkpoint; `state` (resume information) goes into its sidecar."""
        path = self.folder / f"facenet-rank{self.rank}-{epoch}_{step}.ckpt"
        path = self._write(cell, path, epoch, step, metrics, state)
        if path in self.saved:
            self.saved.remove(path)
        self.saved.append(path)
        while len(self.saved) > self.keep_max:
            old = self.saved.pop(0)
            old.unlink(missing_ok=True)
            sidecar(old).unlink(missing_ok=True)
        return path

    def save_if_best(self, cell: nn.Cell, epoch: int, step: int, metrics: dict[str, float]) -> bool:
        """Write best.ckpt if `metrics["accuracy"]` beats every earlier evaluation."""
        if metrics["accuracy"] <= self.best_accuracy:
            return False
        self.best_accuracy = metrics["accuracy"]
        self._write(cell, self.folder / "best.ckpt", epoch, step, metrics)
        return True


def periodic_checkpoints(folder: Path, pattern: str = "facenet-*.ckpt") -> list[Path]:
    """Periodic / interrupt checkpoints in `folder` with a readable sidecar, oldest to newest by global step."""
    found = []
    for ckpt in folder.glob(pattern):
        try:
            found.append((int(json.loads(sidecar(ckpt).read_text())["step"]), ckpt))
        except (OSError, ValueError, KeyError):
            continue  # no or unreadable sidecar: not resumable
    return [c for _, c in sorted(found)]


def read_spec(ckpt: str | Path) -> dict:
    """The sidecar of `ckpt`, checked: model config with allowed targets and the preprocessing spec."""
    path = sidecar(ckpt)
    try:
        spec = json.loads(path.read_text())
        model, size = spec["model"], int(spec["preprocess"]["image_size"])
        targets = [model["backbone"]["_target_"], model["head"]["_target_"]]
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: a checkpoint needs its sidecar (model and preprocessing spec)") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path} is not a valid checkpoint sidecar ({type(err).__name__}: {err})") from None
    bad = [t for t in targets if not str(t).startswith(_ALLOWED_TARGETS)]
    if bad or size < 1:
        raise ConfigError(f"{path} names classes outside {_ALLOWED_TARGETS} or a bad image size: {bad or size}")
    return spec


class CheckpointUnreadable(ConfigError):
    """A checkpoint file that cannot be read (truncated or corrupt)."""


def read_checkpoint(path: str | Path) -> dict:
    """All parameters of a checkpoint file; CheckpointUnreadable (naming it) if it cannot be read."""
    try:
        return ms.load_checkpoint(str(path))
    except (ValueError, RuntimeError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointUnreadable(f"cannot read checkpoint {path}: {first}") from None


def load_network_weights(net: nn.Cell, path: str | Path) -> None:
    """Load the network's parameters from a training checkpoint (which also holds optimizer state)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist")
    params = read_checkpoint(path)
    wanted = {p.name: p for p in net.get_parameters()}
    picked = {k: v for k, v in params.items() if k in wanted}
    missing = sorted(set(wanted) - set(picked))
    shapes = [k for k, v in picked.items() if tuple(v.shape) != tuple(wanted[k].shape)]
    if missing or shapes:
        raise ConfigError(
            f"checkpoint {path} does not fit this network: {len(missing)} parameters missing"
            + (f" (e.g. {', '.join(missing[:3])})" if missing else "")
            + (f", {len(shapes)} with other shapes (e.g. {', '.join(shapes[:3])})" if shapes else "")
        )
    ms.load_param_into_net(net, picked, strict_load=True)
