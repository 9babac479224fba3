"""Embed the images of a pair set with a network in inference mode and score the pairs."""

from __future__ import annotations

from collections.abc import Sequence

import mindspore as ms
import numpy as np
from mindspore import nn

from facenet.data.images import EvalTransform
from facenet.data.pairs import PairSet
from facenet.data.sources import ImageSource
from facenet.errors import DataError, TrainingDiverged
from facenet.evaluation.embedding import embed_source
from facenet.metrics import VerificationReport, verification_report
from facenet.models.exported import ModelFile


def embed_images(
    net: nn.Cell | ModelFile,
    images: ImageSource,
    transform: EvalTransform,
    batch_size: int,
    workers: int = 2,
    desc: str = "embedding",
    flip_tta: bool = False,
) -> np.ndarray:
    """(N, D) embeddings of `images`, in order, with BatchNorm in inference mode (restored afterwards); `flip_tta`
    as `facenet.evaluation.embedding.embed_batches`. `net` may be an exported model file (it embeds numpy batches
    with its own runtime)."""
    if isinstance(net, ModelFile):
        return embed_source(net, images, transform, batch_size, workers, desc, flip_tta)
    was_training = net.training
    net.set_train(False)
    try:
        return embed_source(
            lambda x: net(ms.Tensor(x)).asnumpy(), images, transform, batch_size, workers, desc, flip_tta
        )
    finally:
        net.set_train(was_training)


def pair_distances(emb: np.ndarray, pairs: PairSet) -> np.ndarray:
    """L2 distance of every pair, in file order."""
    return np.linalg.norm(emb[pairs.left] - emb[pairs.right], axis=1)


def check_pairs(pairs: PairSet) -> None:
    """Refuse a pair set that cannot be scored in its folds (no same or no different pairs, an empty fold)."""
    n_folds = pairs.fold_count()
    folds = pairs.folds(n_folds)
    empty = np.flatnonzero(np.bincount(folds, minlength=n_folds) == 0)
    if len(pairs) < 2 * n_folds or pairs.issame.all() or not pairs.issame.any() or len(empty):
        raise DataError(
            f"verification needs same and different pairs and at least {2 * n_folds} pairs for {n_folds} folds, "
            f"each holding some; got {int(pairs.issame.sum())} same and {int((~pairs.issame).sum())} different"
            + (f", none in fold {', '.join(str(k) for k in empty)}" if len(empty) else "")
        )


def finite(emb: np.ndarray) -> np.ndarray:
    """`emb`, refused if any embedding is NaN or infinite (diverged weights)."""
    if not np.isfinite(emb).all():
        n = int((~np.isfinite(emb)).any(axis=1).sum())
        raise TrainingDiverged(
            f"the network gives NaN or infinite embeddings for {n} evaluation images: its "
            "weights have diverged (lower lr)"
        )
    return emb


def evaluate_pairs(
    net: nn.Cell | ModelFile,
    pairs: PairSet,
    transform: EvalTransform,
    batch_size: int,
    far_targets: Sequence[float],
    workers: int = 2,
    flip_tta: bool = False,
) -> tuple[VerificationReport, np.ndarray]:
    """Verification report over every pair, each scored in its own fold (`PairSet.folds`), plus the distances it
    was computed from (in file order)."""
    check_pairs(pairs)
    emb = finite(embed_images(net, pairs.images, transform, batch_size, workers, "eval embeddings", flip_tta))
    return pairs_report(emb, pairs, far_targets)


def pairs_report(
    emb: np.ndarray, pairs: PairSet, far_targets: Sequence[float]
) -> tuple[VerificationReport, np.ndarray]:
    """The verification report of `pairs` from the embeddings of `pairs.images`, and the pair distances."""
    n_folds = pairs.fold_count()
    folds = pairs.folds(n_folds)
    d = pair_distances(emb, pairs)
    order = pairs.fold_order(n_folds)
    report = verification_report(
        d[order], pairs.issame[order], n_folds=n_folds, far_targets=tuple(far_targets), folds=folds[order]
    )
    return report, d
