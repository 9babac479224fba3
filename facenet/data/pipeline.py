"""Input pipelines: P x K training batches with augmentation, and ordered evaluation batches.

Whole batches are built ahead by worker threads (decoding and OpenCV release the GIL) and handed over in order.
Not `mindspore.dataset.GeneratorDataset`: on 2 cores its per-row machinery costs more than the decoding itself
(end to end 0.83 vs 0.90 of compute-only for the default network, same batches; bench/NOTES.md).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import mindspore as ms
import numpy as np

from facenet.data.images import EvalTransform, TrainTransform
from facenet.data.sources import ImageSource
from facenet.errors import DataError


def _workers(n: int) -> int:
    """Worker threads: at least 1, at most the cores (more threads than cores only add contention)."""
    return max(1, min(int(n), os.cpu_count() or 1))


class _EpochSource:
    """Position `j` of one epoch's index stream -> (augmented image, label).

    Augmentation randomness comes from (seed, epoch, j) alone, so a run is reproducible whatever the number of
    worker threads and the order they pick items in.
    """

    def __init__(
        self,
        images: ImageSource,
        labels: np.ndarray,
        indices: np.ndarray,
        transform: TrainTransform,
        seed: int,
        epoch: int,
        start: int = 0,
        bad: BadImages | None = None,
    ):
        self.images, self.labels, self.indices = images, labels.astype(np.int32), indices
        self.transform, self.seed, self.epoch, self.start = transform, seed, epoch, start
        self.bad = bad

    def __len__(self) -> int:
        return len(self.indices) - self.start

    def __getitem__(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        j += self.start  # a resumed epoch starts part way: positions (and their randomness) are the epoch's
        i = int(self.indices[j])
        img = self._read(i)
        rng = np.random.default_rng([self.seed, self.epoch, int(j)])
        return self.transform(img, rng), self.labels[i]

    def _read(self, i: int) -> np.ndarray:
        """Image `i`; an unreadable one is recorded in `bad` and replaced by the next readable image of the same
        identity (the batch keeps its P x K layout), until `bad` exceeds its limit."""
        try:
            return self.images.read(i)
        except DataError:
            if self.bad is None:
                raise
            self.bad.add(self.images.name(i))
        same = np.flatnonzero(self.labels == self.labels[i])
        start = int(np.searchsorted(same, i))
        for k in np.roll(same, -start)[1:]:
            if self.images.name(k) in self.bad.paths:
                continue
            try:
                return self.images.read(int(k))
            except DataError:
                self.bad.add(self.images.name(k))
        raise DataError(f"no readable image left for the identity of {self.images.name(i)}")


class BadImages:
    """Unreadable training images met so far, by name (skipped and replaced); more than `limit` is a DataError."""

    def __init__(self, limit: int):
        self.limit, self.paths = limit, set()
        self._lock = threading.Lock()

    def add(self, path: str) -> None:
        with self._lock:
            self.paths.add(path)
            n = len(self.paths)
        if n > self.limit:
            listed = ", ".join(sorted(self.paths)[:5])
            raise DataError(
                f"{n} unreadable training images, more than train.max_bad_images={self.limit}: {listed}"
                + (" ..." if n > 5 else "")
            )


class _EvalSource:
    def __init__(self, images: ImageSource, transform: EvalTransform):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.transform(self.images.read(i))


def _ahead(make: Callable[[int], tuple], count: int, workers: int) -> Iterator[tuple]:
    """make(0), ..., make(count - 1) in order, built ahead by `workers` threads (at most workers + 1 pending).
    An error in `make` is raised here as itself; closing the iterator cancels what is not started yet."""
    workers = _workers(workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facenet-data") as pool:
        pending: deque = deque()
        nxt = 0
        try:
            while nxt < count or pending:
                while nxt < count and len(pending) <= workers:
                    pending.append(pool.submit(make, nxt))
                    nxt += 1
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def train_batches(
    images: ImageSource,
    labels: np.ndarray,
    sampler,
    transform: TrainTransform,
    workers: int,
    seed: int,
    epoch: int,
    skip_batches: int = 0,
    bad: BadImages | None = None,
) -> Iterator[tuple[ms.Tensor, ms.Tensor]]:
    """One epoch of (images, labels) batches in sampler order (`sampler.epoch_indices(epoch)`, `batch_size` each:
    P identities x K images, or anchors | positives | negatives for offline triplets), from batch `skip_batches`
    on (a resumed epoch gets exactly the batches the uninterrupted one would have)."""
    source = _EpochSource(
        images, labels, sampler.epoch_indices(epoch), transform, seed, epoch, skip_batches * sampler.batch_size, bad
    )
    size = sampler.batch_size

    def make(b: int) -> tuple[np.ndarray, np.ndarray]:
        rows = [source[j] for j in range(b * size, (b + 1) * size)]
        return np.stack([r[0] for r in rows]), np.array([r[1] for r in rows], np.int32)

    for images, batch_labels in _ahead(make, len(source) // size, workers):
        yield ms.Tensor(images), ms.Tensor(batch_labels)


def eval_batches(
    images: ImageSource, transform: EvalTransform, batch_size: int, workers: int
) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (batch, n_valid) over `images` in order; the last batch is zero-padded to `batch_size`, so a compiled
    network sees one shape, and `n_valid` says how many rows are real. No image is dropped."""
    source = _EvalSource(images, transform)

    def make(b: int) -> tuple[np.ndarray, int]:
        rows = [source[i] for i in range(b * batch_size, min(len(source), (b + 1) * batch_size))]
        batch = np.stack(rows)
        if len(rows) < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - len(rows), *batch.shape[1:]), batch.dtype)])
        return batch, len(rows)

    yield from _ahead(make, -(-len(source) // batch_size), workers)
