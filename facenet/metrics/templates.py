"""Template metrics in plain numpy (the IJB-B / IJB-C protocols): a template is a set of faces, grouped by media (a
photo, or a video whose frames share a media id), and is compared as one pooled feature.

Pooling (`pool_templates`): the mean of each media's face features, then the mean of the template's media features,
then L2 normalisation. Optional per-face weights multiply the features first (InsightFace's `eval_ijbc.py`
multiplies each face by its detector score: its D1 mode). InsightFace sums the media features instead of averaging
them; L2 normalisation makes the two equal.

1:1 verification (`verify_templates`): the cosine of the two pooled templates of each pair; a pair is accepted when
its score is >= the threshold. TAR at a FAR target f is the highest TAR of any threshold whose FAR over the impostor
pairs is <= f (the best ROC point at or left of f): every score above the highest impostor score that must be
refused is accepted, and the threshold is cut midway between that score and the next higher one, as
`facenet.metrics.verification` cuts its thresholds. (InsightFace reads the ROC point whose FAR is nearest f, which
may lie above it.) A target below 1 / (impostor pairs) is refused: the data cannot measure it.

1:N identification (`search_gallery`): every probe template against every gallery template (one per enrolled
subject); a probe whose subject has no template in that gallery is non-mated. CMC and TPIR (DIR) at rank k at an
FPIR target come from `facenet.metrics.identification`, with its conventions (ties count against the probe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from facenet.errors import ConfigError
from facenet.metrics.identification import cmc, open_set
from facenet.metrics.verification import auc_score, equal_error_rate, roc_curve


def pool_templates(
    features: np.ndarray, templates: np.ndarray, medias: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(template ids ascending (T,), their unit pooled features (T, D)) from faces' `features` (N, D), each face's
    template and media id, and optional per-face `weights` (N,) that multiply the features before pooling."""
    x = np.asarray(features)
    templates, medias = np.asarray(templates, dtype=np.int64), np.asarray(medias, dtype=np.int64)
    if x.ndim != 2 or templates.shape != (len(x),) or medias.shape != (len(x),) or not len(x):
        raise ValueError(f"features must be (faces, D) with one template and media id per face, got {x.shape}")
    if weights is not None:
        x = x * np.asarray(weights, dtype=x.dtype)[:, None]
    order = np.lexsort((medias, templates))
    t, m, x = templates[order], medias[order], x[order]  # (IJB-B: 227,630 faces; sums in float64)
    media_starts = np.flatnonzero(np.r_[True, (t[1:] != t[:-1]) | (m[1:] != m[:-1])])
    media_sum = np.add.reduceat(x, media_starts, axis=0, dtype=np.float64)
    media_mean = media_sum / np.diff(np.r_[media_starts, len(t)])[:, None]
    media_template = t[media_starts]
    starts = np.flatnonzero(np.r_[True, media_template[1:] != media_template[:-1]])
    pooled = np.add.reduceat(media_mean, starts, axis=0) / np.diff(np.r_[starts, len(media_template)])[:, None]
    norm = np.linalg.norm(pooled, axis=1, keepdims=True)
    return media_template[starts], pooled / np.maximum(norm, 1e-12)


def lookup(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Rows of the sorted `ids` holding each of `wanted`; KeyError naming the first few absent ones."""
    wanted = np.asarray(wanted, dtype=np.int64)
    at = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
    absent = wanted[ids[at] != wanted]
    if absent.size:
        raise KeyError(f"templates {', '.join(str(t) for t in np.unique(absent)[:5])} have no pooled feature")
    return at


def pair_scores(
    ids: np.ndarray, pooled: np.ndarray, first: np.ndarray, second: np.ndarray, chunk: int = 100_000
) -> np.ndarray:
    """Cosine of each (first, second) template pair's pooled features, `chunk` pairs at a time (IJB-B has 8.0 million
    pairs, IJB-C 15.7 million: all at once would gather two (pairs, D) arrays)."""
    a, b = lookup(ids, first), lookup(ids, second)
    out = np.empty(len(a))
    for i in range(0, len(a), chunk):
        out[i : i + chunk] = np.einsum("ij,ij->i", pooled[a[i : i + chunk]], pooled[b[i : i + chunk]])
    return out


def check_far_targets(far_targets: Sequence[float], impostors: int) -> None:
    """ConfigError (one line) if a FAR target needs more impostor pairs than there are: f * impostors < 1."""
    low = [f for f in far_targets if f * impostors < 1 - 1e-9]
    if low:
        kept = [f for f in far_targets if f not in low]
        raise ConfigError(
            f"FAR {', '.join(f'{f:g}' for f in low)} needs at least {int(np.ceil(1 / min(low) - 1e-9))} impostor "
            f"pairs; this protocol has {impostors}: drop it (eval.far_targets=[{','.join(f'{f:g}' for f in kept)}])"
        )


def far_threshold(impostor_scores: np.ndarray, far: float, scores: np.ndarray | None = None) -> float:
    """The threshold (accepting scores >= it) of a FAR target: it rejects the highest impostor score v that must be
    refused (the (floor(far * n) + 1)-th highest) and accepts every score above v, cut midway between v and the
    next higher of `scores` (all pairs' scores; default the impostor ones), as `facenet.metrics.verification`
    cuts its thresholds."""
    impostor = np.sort(np.asarray(impostor_scores, dtype=np.float64))[::-1]
    check_far_targets([far], len(impostor))
    v = impostor[int(np.floor(far * len(impostor) + 1e-9))]
    pool = impostor if scores is None else np.asarray(scores, dtype=np.float64)
    above = pool[pool > v]
    return float((v + above.min()) / 2) if above.size else float(np.nextafter(v, np.inf))


@dataclass
class TemplateVerification:
    """1:1 template verification: TAR and the threshold at each FAR target, AUC, EER and the ROC (ascending FAR)."""

    genuine: int
    impostor: int
    tar_at_far: dict[float, tuple[float, float]]  # FAR target -> (TAR, cosine threshold)
    auc: float
    eer: float
    roc: dict[str, np.ndarray] = field(repr=False)  # far, tar, threshold

    def scalars(self) -> dict[str, float]:
        out = {"genuine_pairs": float(self.genuine), "impostor_pairs": float(self.impostor)}
        for f, (tar, threshold) in self.tar_at_far.items():
            out[f"tar_at_far_{f:g}"] = tar
            out[f"threshold_at_far_{f:g}"] = threshold
        out.update({"auc": self.auc, "eer": self.eer})
        return out


def verify_templates(scores: np.ndarray, labels: np.ndarray, far_targets: Sequence[float]) -> TemplateVerification:
    """TAR at each FAR target over template pairs' similarity `scores` (higher is closer) and `labels` (1 genuine)."""
    s = np.asarray(scores, dtype=np.float64)
    same = np.asarray(labels).astype(bool)
    if s.shape != same.shape or not same.any() or same.all():
        raise ValueError("verification needs genuine and impostor pairs, one label per score")
    impostor, genuine = s[~same], s[same]
    check_far_targets(far_targets, len(impostor))
    tar = {}
    for f in far_targets:
        t = far_threshold(impostor, f, s)
        tar[float(f)] = (float((genuine >= t).mean()), t)
    fpr, tpr, thresholds = roc_curve(-s, same)  # distances: accepting -s <= u is accepting s >= -u
    return TemplateVerification(
        genuine=int(same.sum()),
        impostor=int((~same).sum()),
        tar_at_far=tar,
        auc=auc_score(-s, same),
        eer=equal_error_rate(fpr, tpr),
        roc={"far": fpr, "tar": tpr, "threshold": -thresholds},
    )


def roc_at(far: np.ndarray, tar: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The ROC (points in ascending FAR) read at each FAR of `grid`: the highest TAR whose FAR does not exceed it."""
    at = np.searchsorted(far, np.asarray(grid) * (1 + 1e-12), side="right") - 1
    return np.where(at >= 0, np.maximum.accumulate(tar)[np.maximum(at, 0)], 0.0)


def gallery_columns(probe_subjects: np.ndarray, gallery_subjects: np.ndarray) -> np.ndarray:
    """(probes,) the gallery column enrolling each probe's subject, -1 if none (a non-mated probe). ValueError if
    a gallery enrols a subject twice."""
    gallery_subjects = np.asarray(gallery_subjects, dtype=np.int64)
    values, counts = np.unique(gallery_subjects, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"the gallery enrols subjects {values[counts > 1][:5].tolist()} in more than one template")
    order = np.argsort(gallery_subjects)
    probe_subjects = np.asarray(probe_subjects, dtype=np.int64)
    at = np.minimum(np.searchsorted(gallery_subjects[order], probe_subjects), len(order) - 1)
    return np.where(gallery_subjects[order][at] == probe_subjects, order[at], -1)


@dataclass
class GallerySearch:
    """1:N search of the probes in one gallery: CMC over the mated probes, TPIR at rank k and FPIR target."""

    gallery: int
    mated: int
    nonmated: int
    cmc: np.ndarray  # (depth,) identification rate at ranks 1..depth
    tpir: dict[tuple[float, int], tuple[float, float]]  # (FPIR target, rank) -> (TPIR, cosine threshold)

    def scalars(self) -> dict[str, float]:
        out = {
            "gallery": float(self.gallery),
            "mated_probes": float(self.mated),
            "nonmated_probes": float(self.nonmated),
            "rank1": float(self.cmc[0]),
            "rank5": float(self.cmc[4]),
        }
        for (f, k), (tpir, threshold) in self.tpir.items():
            out[f"tpir_at_fpir_{f:g}_rank{k}"] = tpir
            out[f"threshold_at_fpir_{f:g}_rank{k}"] = threshold
        return out


def search_gallery(
    probes: np.ndarray,
    probe_subjects: np.ndarray,
    gallery: np.ndarray,
    gallery_subjects: np.ndarray,
    fpir_targets: Sequence[float],
    ranks: Sequence[int] = (1, 5),
    depth: int = 20,
) -> GallerySearch:
    """Unit probe features (P, D) against unit gallery features (G, D) by cosine; the CMC to rank
    min(depth, G) (at least 5) and TPIR at each rank and FPIR target."""
    truth = gallery_columns(probe_subjects, gallery_subjects)
    scores = np.asarray(probes, dtype=np.float64) @ np.asarray(gallery, dtype=np.float64).T
    tpir = {}
    for k in ranks:
        for f, value in open_set(scores, truth, fpir_targets, rank=k).items():
            tpir[(f, int(k))] = value
    return GallerySearch(
        gallery=len(gallery_subjects),
        mated=int((truth >= 0).sum()),
        nonmated=int((truth < 0).sum()),
        cmc=cmc(scores, truth, max(min(depth, len(gallery_subjects)), *ranks)),
        tpir=tpir,
    )
