"""What every evaluation protocol is: the settings of how its images are embedded, the data it reads once
(`prepare`), the evaluation that embeds, scores, logs and writes its report (`evaluate`), and the one scalar that
ranks models on it (`headline`: what picks `best.ckpt` and what a run returns to a sweeper).

Protocols: verification (`facenet.evaluation.protocols`: LFW pairs, `.bin` sets, benchmark suites), open-set
identification (`facenet.evaluation.openset`), IJB-style templates (`facenet.evaluation.ijb`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from facenet.data.images import EvalTransform
from facenet.data.pairs import MISSING
from facenet.errors import ConfigError
from facenet.tracking import Tracker

log = logging.getLogger(__name__)

# every protocol's headline scalar, in the order a run's metrics are searched for the one that ranks it
HEADLINES = ("accuracy", "rank1", "tar_at_far_0.0001")
# eval.missing (MISSING): what to do with images the protocol names that are not there: refuse the protocol (the
# default), or leave out the pairs / probes that need them (counted in the report, the log and the tracker)


class Protocol:
    """An evaluation protocol from config: how to embed its images (batch size, flip TTA, centre crop, input
    size), the data to read once, and how to evaluate a network on it."""

    headline = "accuracy"  # the scalar (in `evaluate`'s output) that ranks models: one of HEADLINES

    def __init__(
        self,
        batch_size: int,
        flip_tta: bool,
        center_crop: int | None,
        override_image_size: int | None,
        missing: str,
    ):
        if missing not in MISSING:
            raise ConfigError(f"eval.missing must be one of {', '.join(MISSING)}, got {missing!r}")
        if batch_size < 1:
            raise ConfigError(f"eval.batch_size must be >= 1, got {batch_size}")
        if center_crop is not None and center_crop < 1:
            raise ConfigError(f"eval.center_crop must be >= 1 or null, got {center_crop}")
        if override_image_size is not None and override_image_size < 8:
            raise ConfigError(f"eval.override_image_size must be >= 8 or null, got {override_image_size}")
        self.batch_size, self.flip_tta, self.center_crop = batch_size, flip_tta, center_crop
        self.override_image_size = override_image_size
        self.missing = missing

    def input_size(self, net) -> int:
        """The input size to evaluate `net` (an EmbeddingNet) at: the size it was trained at, unless
        `eval.override_image_size` deliberately says otherwise (warned about; refused if the network cannot)."""
        size, trained = self.override_image_size, net.image_size
        if size is None or size == trained:
            return trained
        net.check_input_size(size)
        log.warning(
            "eval.override_image_size=%d: evaluating a network trained on %dx%d inputs at %dx%d; these "
            "figures do not describe the model as trained",
            size,
            trained,
            trained,
            size,
            size,
        )
        return size

    def prepare(self, workers: int = 2) -> Any:
        """The protocol's data (pairs, trials, templates), read and checked once, before any network runs."""
        raise NotImplementedError

    def describe(self, data: Any) -> str:
        """What `data` holds, for the log (e.g. '6000 verification pairs')."""
        raise NotImplementedError

    def size(self, data: Any) -> int:
        """The number of comparisons `data` makes (pairs, probes): recorded with the run."""
        raise NotImplementedError

    def evaluate(
        self,
        net,
        data: Any,
        transform: EvalTransform,
        workers: int,
        tracker: Tracker,
        step: int,
        out_dir: Path,
        prefix: str = "eval",
    ) -> dict[str, float]:
        """Embed, score and report `data` with `net`: scalars logged as `<prefix>/<scalar>` at `step`, the report
        and figures written into `out_dir` and logged under `<prefix>/`; returns the scalars (with `headline`)."""
        raise NotImplementedError


def objective(metrics: Mapping[str, float]) -> float:
    """The value that ranks a run (what run.py returns to a sweeper): its protocol's headline scalar."""
    for key in HEADLINES:
        if key in metrics:
            return float(metrics[key])
    return float("nan")
