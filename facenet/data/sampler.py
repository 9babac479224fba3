"""P x K identity sampler: each batch holds P identities with K images each, as batch-mining needs."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from facenet.errors import ConfigError, DataError

log = logging.getLogger(__name__)


class PKSampler:
    """Image indices for batches of P identities x K images (then `singletons` images of single-image identities);
    epoch `e` is reproducible from `(seed, e)` alone, so a run resumed at any epoch replays the same order.

    Identities are drawn without replacement within a batch; an identity with fewer than K images contributes
    all of them plus repeats drawn at random. Identities with a single image cannot form a positive pair: they are
    left out (counted in `skipped`), unless `singletons` > 0 puts that many of them (one image each, distinct
    identities) at the end of every batch, as negatives only, for the others' anchors and a cross-batch memory.
    """

    layout = "pk"

    def __init__(
        self,
        labels: np.ndarray | pd.DataFrame,
        identities: int,
        images_per_identity: int,
        singletons: int,
        steps_per_epoch: int | None = None,
        seed: int = 0,
    ):
        """`labels`: one class per image (or the index table); `steps_per_epoch` None: images // batch size."""
        if identities < 2 or images_per_identity < 2:
            raise ConfigError(
                f"batch.identities={identities}, batch.images_per_identity={images_per_identity}: triplets need "
                "P >= 2 identities with K >= 2 images each"
            )
        if singletons < 0:
            raise ConfigError(f"batch.singletons={singletons}: must be >= 0")
        labels = labels["class"].to_numpy() if isinstance(labels, pd.DataFrame) else np.asarray(labels)
        classes, counts = np.unique(labels, return_counts=True)
        usable = classes[counts >= 2]
        self.skipped = int((counts < 2).sum()) if not singletons else 0
        if self.skipped:
            log.warning(
                "%d identities have a single image and cannot give a positive pair; not sampled "
                "(batch.singletons=N puts N of them in every batch, as negatives)",
                self.skipped,
            )
        if len(usable) < identities:
            raise DataError(f"batch.identities={identities} but only {len(usable)} identities have at least 2 images")
        self._singles = np.flatnonzero(np.isin(labels, classes[counts == 1]))
        if singletons > len(self._singles):
            raise DataError(
                f"batch.singletons={singletons} but only {len(self._singles)} identities have a single image"
            )
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], usable)
        self._members = [order[b : b + c] for b, c in zip(bounds, counts[counts >= 2], strict=True)]
        self.p, self.k, self.singletons, self.seed = identities, images_per_identity, singletons, seed
        self.steps = steps_per_epoch or max(1, len(labels) // self.batch_size)

    @property
    def batch_size(self) -> int:
        return self.p * self.k + self.singletons

    def __len__(self) -> int:
        """Images per epoch."""
        return self.steps * self.batch_size

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """All indices of one epoch, batch after batch (steps x (P x K + singletons))."""
        rng = np.random.default_rng([self.seed, epoch])
        out = np.empty((self.steps, self.batch_size), dtype=np.int64)
        for step in range(self.steps):
            groups = out[step, : self.p * self.k].reshape(self.p, self.k)
            for slot, ident in enumerate(rng.choice(len(self._members), self.p, replace=False)):
                members = self._members[ident]
                if len(members) >= self.k:
                    groups[slot] = rng.choice(members, self.k, replace=False)
                else:
                    groups[slot] = np.concatenate([members, rng.choice(members, self.k - len(members))])
            if self.singletons:
                out[step, self.p * self.k :] = rng.choice(self._singles, self.singletons, replace=False)
        return out.reshape(-1)


class ShuffleSampler:
    """Uniformly shuffled batches of `size` images: every image once per epoch (the last incomplete batch is
    dropped, static shapes), the order reproducible from `(seed, epoch)` alone. What classification losses train on.
    `steps_per_epoch` beyond one pass continues with a fresh permutation."""

    layout = "shuffle"

    def __init__(self, labels: np.ndarray | pd.DataFrame, size: int, steps_per_epoch: int | None = None, seed: int = 0):
        if size < 1:
            raise ConfigError(f"batch.size must be >= 1, got {size}")
        self.images = len(labels)
        if self.images < size:
            raise DataError(f"batch.size={size} but the training set has {self.images} images")
        self.size, self.seed = size, seed
        self.steps = steps_per_epoch or self.images // size

    @property
    def batch_size(self) -> int:
        return self.size

    def __len__(self) -> int:
        return self.steps * self.size

    def epoch_indices(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        passes = -(-len(self) // self.images)
        return np.concatenate([rng.permutation(self.images) for _ in range(passes)])[: len(self)]
