"""`mindspore.dataset` pipelines: P x K training batches with augmentation, and ordered evaluation batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import mindspore as ms
import mindspore.dataset as ds
import numpy as np

from facenet.data.images import EvalTransform, TrainTransform, read_image
from facenet.data.sampler import PKSampler


class _TrainSource:
    """Random-access (image, label); augmentation randomness is derived from (seed, draw count) per worker call."""

    def __init__(self, paths: Sequence[str], labels: np.ndarray, transform: TrainTransform, seed: int):
        self.paths, self.labels, self.transform = list(paths), labels.astype(np.int32), transform
        self._rng = np.random.default_rng([seed, 7])
        self.error: Exception | None = None  # MindSpore re-raises worker errors as RuntimeError; keep the original


    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        # 0-d array, not a numpy scalar: MindSpore's GeneratorDataset converts rows with np.array(copy=False)
        try:
            img = read_image(self.paths[i])
        except Exception as err:
            self.error = err
            raise
        return self.transform(img, self._rng), np.array(self.labels[i])


class _EvalSource:
    def __init__(self, paths: Sequence[str], transform: EvalTransform):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray]:
        return (self.transform(read_image(self.paths[i])),)


def train_batches(paths: Sequence[str], labels: np.ndarray, sampler: PKSampler, transform: TrainTransform,
                  workers: int, seed: int) -> Iterator[tuple[ms.Tensor, ms.Tensor]]:
    """(images, labels) batches of P*K in sampler order (P identities x K images each), every epoch in one stream.

    A decoding error is raised as itself (e.g. `DataError` naming the file), not as MindSpore's wrapper.
    """
    source = _TrainSource(paths, labels, transform, seed)
    data = ds.GeneratorDataset(source, column_names=["image", "label"], sampler=sampler,
                               num_parallel_workers=max(1, workers), python_multiprocessing=False)
    iterator = data.batch(sampler.p * sampler.k, drop_remainder=True).create_tuple_iterator(num_epochs=1)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except RuntimeError:
            if source.error is not None:
                raise source.error from None
            raise
        yield batch[0], batch[1]


def eval_batches(paths: Sequence[str], transform: EvalTransform, batch_size: int, workers: int
                 ) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (batch, n_valid) over `paths` in order; the last batch is zero-padded to `batch_size`, so a compiled
    network sees one shape, and `n_valid` says how many rows are real. No image is dropped."""
    data = ds.GeneratorDataset(_EvalSource(paths, transform), column_names=["image"], shuffle=False,
                               num_parallel_workers=max(1, workers), python_multiprocessing=False)
    data = data.batch(batch_size, drop_remainder=False)
    for (batch,) in data.create_tuple_iterator(output_numpy=True, num_epochs=1):
        n = len(batch)
        if n < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - n, *batch.shape[1:]), batch.dtype)])
        yield batch, n
