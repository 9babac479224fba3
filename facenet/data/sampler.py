"""P x K identity sampler: each batch holds P identities with K images each, as batch-mining needs."""

from __future__ import annotations

import logging

import numpy as np

from facenet.errors import DataError

log = logging.getLogger(__name__)


class PKSampler:
    """Image indices for batches of P identities x K images; epoch `e` is reproducible from `(seed, e)` alone, so a
    run resumed at any epoch replays the same order.

    Identities are drawn without replacement within a batch; an identity with fewer than K images contributes
    all of them plus repeats drawn at random; identities with a single image cannot form a positive pair and are
    left out (counted in `skipped`).
    """

    def __init__(
        self, labels: np.ndarray, identities: int, images_per_identity: int, steps_per_epoch: int, seed: int = 0
    ):
        labels = np.asarray(labels)
        classes, counts = np.unique(labels, return_counts=True)
        usable = classes[counts >= 2]
        self.skipped = int((counts < 2).sum())
        if self.skipped:
            log.warning("%d identities have a single image and cannot give a positive pair; not sampled", self.skipped)
        if len(usable) < identities:
            raise DataError(f"batch.identities={identities} but only {len(usable)} identities have at least 2 images")
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], usable)
        self._members = [order[b : b + c] for b, c in zip(bounds, counts[counts >= 2], strict=True)]
        self.p, self.k, self.steps, self.seed = identities, images_per_identity, steps_per_epoch, seed

    @property
    def batch_size(self) -> int:
        return self.p * self.k

    def __len__(self) -> int:
        """Images per epoch."""
        return self.steps * self.p * self.k

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """All indices of one epoch, batch after batch (steps x P x K)."""
        rng = np.random.default_rng([self.seed, epoch])
        out = np.empty((self.steps, self.p, self.k), dtype=np.int64)
        for step in range(self.steps):
            for slot, ident in enumerate(rng.choice(len(self._members), self.p, replace=False)):
                members = self._members[ident]
                if len(members) >= self.k:
                    out[step, slot] = rng.choice(members, self.k, replace=False)
                else:
                    out[step, slot] = np.concatenate([members, rng.choice(members, self.k - len(members))])
        return out.reshape(-1)
