"""Embed the images of a pair set with a network in inference mode and score the pairs."""

from __future__ import annotations

from collections.abc import Sequence

import mindspore as ms
import numpy as np
from mindspore import nn
from tqdm import tqdm

from facenet.data.images import EvalTransform
from facenet.data.pairs import PairSet
from facenet.data.pipeline import eval_batches
from facenet.metrics import VerificationReport, verification_report


def embed_paths(
    net: nn.Cell,
    paths: Sequence[str],
    transform: EvalTransform,
    batch_size: int,
    workers: int = 2,
    desc: str = "embedding",
) -> np.ndarray:
    """(N, D) embeddings of `paths`, in order, with BatchNorm in inference mode (restored afterwards)."""
    was_training = net.training
    net.set_train(False)
    out = []
    try:
        with tqdm(total=len(paths), desc=desc, unit="img", leave=False) as bar:
            for batch, n in eval_batches(paths, transform, batch_size, workers):
                out.append(net(ms.Tensor(batch)).asnumpy()[:n])
                bar.update(n)
    finally:
        net.set_train(was_training)
    return np.concatenate(out)


def pair_distances(emb: np.ndarray, pairs: PairSet) -> np.ndarray:
    """L2 distance of every pair, in file order."""
    return np.linalg.norm(emb[pairs.left] - emb[pairs.right], axis=1)


def evaluate_pairs(
    net: nn.Cell,
    pairs: PairSet,
    transform: EvalTransform,
    batch_size: int,
    far_targets: Sequence[float],
    workers: int = 2,
) -> tuple[VerificationReport, np.ndarray]:
    """Verification report over every pair, plus the distances it was computed from."""
    emb = embed_paths(net, pairs.paths, transform, batch_size, workers, desc="eval embeddings")
    d = pair_distances(emb, pairs)
    return verification_report(
        d, pairs.issame, n_folds=pairs.n_folds if pairs.n_folds > 1 else 10, far_targets=tuple(far_targets)
    ), d
