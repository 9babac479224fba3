"""`mindspore.dataset` pipelines: P x K training batches with augmentation, and ordered evaluation batches."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence

import mindspore as ms
import mindspore.dataset as ds
import numpy as np

from facenet.data.images import EvalTransform, TrainTransform, read_image
from facenet.errors import DataError


def _workers(n: int) -> int:
    """MindSpore refuses more parallel workers than CPU cores; clamp instead of failing."""
    return max(1, min(int(n), os.cpu_count() or 1))


class _EpochSource:
    """Position `j` of one epoch's index stream -> (augmented image, label).

    Augmentation randomness comes from (seed, epoch, j) alone, so a run is reproducible whatever the number of
    worker threads and the order they pick items in.
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: np.ndarray,
        indices: np.ndarray,
        transform: TrainTransform,
        seed: int,
        epoch: int,
        start: int = 0,
        bad: BadImages | None = None,
    ):
        self.paths, self.labels, self.indices = paths, labels.astype(np.int32), indices
        self.transform, self.seed, self.epoch, self.start = transform, seed, epoch, start
        self.bad = bad
        self.error: Exception | None = None  # MindSpore re-raises worker errors as RuntimeError; keep the original

    def __len__(self) -> int:
        return len(self.indices) - self.start

    def __getitem__(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        j += self.start  # a resumed epoch starts part way: positions (and their randomness) are the epoch's
        i = int(self.indices[j])
        try:
            img = self._read(i)
        except Exception as err:
            self.error = err
            raise
        rng = np.random.default_rng([self.seed, self.epoch, int(j)])
        # 0-d array, not a numpy scalar: MindSpore's GeneratorDataset converts rows with np.array(copy=False)
        return self.transform(img, rng), np.array(self.labels[i])

    def _read(self, i: int) -> np.ndarray:
        """Image `i`; an unreadable one is recorded in `bad` and replaced by the next readable image of the same
        identity (the batch keeps its P x K layout), until `bad` exceeds its limit."""
        try:
            return read_image(self.paths[i])
        except DataError:
            if self.bad is None:
                raise
            self.bad.add(self.paths[i])
        same = np.flatnonzero(self.labels == self.labels[i])
        start = int(np.searchsorted(same, i))
        for k in np.roll(same, -start)[1:]:
            if self.paths[k] in self.bad.paths:
                continue
            try:
                return read_image(self.paths[k])
            except DataError:
                self.bad.add(self.paths[k])
        raise DataError(f"no readable image left for the identity of {self.paths[i]}")


class BadImages:
    """Unreadable training images met so far (skipped and replaced); more than `limit` is a DataError."""

    def __init__(self, limit: int):
        self.limit, self.paths = limit, set()
        self._lock = threading.Lock()

    def add(self, path: str) -> None:
        with self._lock:
            self.paths.add(path)
            n = len(self.paths)
        if n > self.limit:
            listed = ", ".join(sorted(self.paths)[:5])
            raise DataError(f"{n} unreadable training images, more than train.max_bad_images={self.limit}: {listed}"
                            + (" ..." if n > 5 else ""))  # fmt: skip


class _EvalSource:
    def __init__(self, paths: Sequence[str], transform: EvalTransform):
        self.paths, self.transform = list(paths), transform
        self.error: Exception | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray]:
        try:
            img = read_image(self.paths[i])
        except Exception as err:
            self.error = err
            raise
        return (self.transform(img),)


def _rows(source: _EpochSource | _EvalSource, data: ds.Dataset, output_numpy: bool) -> Iterator[tuple]:
    """Iterate `data` (built on `source`); a source error is raised as itself (e.g. `DataError` naming the file),
    not as MindSpore's RuntimeError wrapper."""
    iterator = data.create_tuple_iterator(output_numpy=output_numpy, num_epochs=1)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except RuntimeError:
            if source.error is not None:
                raise source.error from None
            raise


def _generator(source: _EpochSource | _EvalSource, columns: list[str], workers: int) -> ds.GeneratorDataset:
    return ds.GeneratorDataset(
        source,
        column_names=columns,
        shuffle=False,
        num_parallel_workers=_workers(workers),
        python_multiprocessing=False,
    )


def train_batches(
    paths: Sequence[str],
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
    source = _EpochSource(paths, labels, sampler.epoch_indices(epoch), transform, seed, epoch,
                          skip_batches * sampler.batch_size, bad)  # fmt: skip
    data = _generator(source, ["image", "label"], workers).batch(sampler.batch_size, drop_remainder=True)
    yield from _rows(source, data, output_numpy=False)


def eval_batches(
    paths: Sequence[str], transform: EvalTransform, batch_size: int, workers: int
) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (batch, n_valid) over `paths` in order; the last batch is zero-padded to `batch_size`, so a compiled
    network sees one shape, and `n_valid` says how many rows are real. No image is dropped."""
    source = _EvalSource(paths, transform)
    data = _generator(source, ["image"], workers).batch(batch_size, drop_remainder=False)
    for (batch,) in _rows(source, data, output_numpy=True):
        n = len(batch)
        if n < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - n, *batch.shape[1:]), batch.dtype)])
        yield batch, n
