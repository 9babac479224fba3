"""The one embedding loop: batches of preprocessed images through a model, (N, D) embeddings out, in order.

A model is any callable from a float32 NCHW batch to its (B, D) embeddings: a MindSpore cell (evaluation), or a
checkpoint, MindIR or ONNX backend (`facenet.inference`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from facenet.data.images import EvalTransform
from facenet.data.pipeline import eval_batches
from facenet.data.sources import ImageSource

Model = Callable[[np.ndarray], np.ndarray]


def embed_batches(
    model: Model, batches: Iterable[tuple[np.ndarray, int]], total: int, desc: str | None, flip_tta: bool = False
) -> np.ndarray:
    """(total, D) embeddings of `batches` of (batch, rows that are real). `desc` None: no progress bar.

    `flip_tta`: the embedding of each image and of its horizontal mirror are summed, then rescaled to the
    model's norm (so distances keep their range and thresholds their meaning).
    """
    out = []
    with tqdm(total=total, desc=desc, unit="img", leave=False, disable=desc is None) as bar:
        for batch, n in batches:
            emb = model(batch)[:n]
            if flip_tta:
                both = emb + model(np.ascontiguousarray(batch[..., ::-1]))[:n]
                norm = np.linalg.norm(emb, axis=1, keepdims=True)
                emb = both / np.maximum(np.linalg.norm(both, axis=1, keepdims=True), 1e-12) * norm
            out.append(emb)
            bar.update(n)
    return np.concatenate(out)


def embed_source(
    model: Model,
    images: ImageSource,
    transform: EvalTransform,
    batch_size: int,
    workers: int = 2,
    desc: str | None = "embedding",
    flip_tta: bool = False,
) -> np.ndarray:
    """(N, D) embeddings of `images`, decoded and preprocessed by `workers` threads ahead of the model. Every batch
    is padded to `batch_size`, so a compiled or static-shape model sees one shape."""
    return embed_batches(model, eval_batches(images, transform, batch_size, workers), len(images), desc, flip_tta)


def array_batches(x: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Consecutive slices of an already preprocessed stack, unpadded (the last one may be shorter)."""
    for i in range(0, len(x), batch_size):
        yield x[i : i + batch_size], len(x[i : i + batch_size])
