"""`eval=ijb`: the IJB-B / IJB-C template protocols on a folder in InsightFace's layout (`facenet.data.ijb`).

Every face is aligned with its five landmarks (`facenet.align.align_face`, ArcFace's 112x112 template; `aligned`:
the crops are used as they are) and embedded once; templates are pooled (`facenet.metrics.templates`: mean over
each media's frames, mean over the template's media, L2 normalised; `detector_weights`: each face weighted by its
detector score first, as InsightFace does). 1:1: TAR at each FAR target over the template pairs (the headline:
TAR at FAR 1e-4). 1:N (`identification`): the mixed probes searched in gallery G1 and in G2 separately (a probe whose
subject is not in that gallery is non-mated), CMC and TPIR at rank 1 and 5 at each FPIR target, and their mean over
the two galleries. docs/ijb.md has the layouts and where this differs from InsightFace's script.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenet.align import align_face
from facenet.data.ijb import GALLERIES, TITLES, IjbSet, meta_files, read_ijb
from facenet.data.images import EvalTransform
from facenet.errors import ConfigError, DataError, TrainingDiverged
from facenet.evaluation.base import Protocol
from facenet.evaluation.figures import cmc_plot, template_roc_plot
from facenet.evaluation.verify import embed_images
from facenet.metrics.templates import (
    GallerySearch,
    TemplateVerification,
    check_far_targets,
    gallery_columns,
    lookup,
    pair_scores,
    pool_templates,
    roc_at,
    search_gallery,
    verify_templates,
)
from facenet.tracking import Tracker

log = logging.getLogger(__name__)

HEADLINE_FAR = 1e-4
RANKS = (1, 5)  # TPIR is reported at these ranks; each gallery must enrol at least the largest
CMC_DEPTH = 20  # the CMC runs to this rank (or the smaller gallery's size)
ROC_POINTS = 400  # log-spaced FAR values the ROC is stored and drawn at


class IjbProtocol(Protocol):
    """IJB-B / IJB-C at `root` (`name` ijbb / ijbc, null: inferred from the meta files)."""

    headline = f"tar_at_far_{HEADLINE_FAR:g}"

    def __init__(
        self,
        root: str,
        name: str | None,
        aligned: bool,
        identification: bool,
        detector_weights: bool,
        far_targets: Sequence[float],
        fpir_targets: Sequence[float],
        **kw,
    ):
        super().__init__(**kw)
        if not far_targets or not all(0 < f < 1 for f in far_targets):
            raise ConfigError(f"eval.far_targets must lie in (0, 1), got {list(far_targets)}")
        if not any(abs(f - HEADLINE_FAR) <= 1e-12 for f in far_targets):
            raise ConfigError(
                f"eval.far_targets must include {HEADLINE_FAR:g}: TAR at FAR {HEADLINE_FAR:g} is the protocol's "
                f"headline (what ranks models and picks best.ckpt); got {list(far_targets)}"
            )
        if identification and (not fpir_targets or not all(0 < f < 1 for f in fpir_targets)):
            raise ConfigError(f"eval.fpir_targets must lie in (0, 1), got {list(fpir_targets)}")
        self.root, self.name, self.aligned = root, name, aligned
        self.identification, self.detector_weights = identification, detector_weights
        self.far_targets = tuple(sorted(float(f) for f in far_targets))
        self.fpir_targets = tuple(sorted(float(f) for f in fpir_targets)) if identification else ()

    def prepare(self, workers: int = 2) -> IjbSet:
        """The set, read and checked against the FAR / FPIR targets and ranks it must measure, before any image is
        read."""
        data = read_ijb(self.root, self.name, self.identification, self.missing)
        counts = data.counts()
        where = data.root / meta_files(data.name)["pairs"]
        if not counts["genuine_pairs"] or not counts["impostor_pairs"]:
            raise DataError(
                f"{where}: verification needs genuine and impostor pairs; {counts['genuine_pairs']} genuine and "
                f"{counts['impostor_pairs']} impostor pairs are left"
            )
        check_far_targets(self.far_targets, counts["impostor_pairs"])
        for gallery in data.galleries:
            self._check_gallery(data, gallery)
        return data

    def _check_gallery(self, data: IjbSet, gallery: str) -> None:
        where = data.root / meta_files(data.name)[gallery]
        templates, subjects = data.galleries[gallery]
        if len(templates) < max(RANKS):
            raise DataError(f"{where}: gallery {gallery} enrols {len(templates)} templates; rank {max(RANKS)} needs 5")
        try:
            truth = gallery_columns(data.probes[1], subjects)
        except ValueError as err:
            raise DataError(f"{where}: {err}") from None
        if not (truth >= 0).any():
            raise DataError(f"{where}: no probe's subject is enrolled in gallery {gallery}")
        nonmated = int((truth < 0).sum())
        low = [f for f in self.fpir_targets if f * nonmated < 1 - 1e-9]
        if low:
            kept = [f for f in self.fpir_targets if f not in low]
            raise ConfigError(
                f"FPIR {', '.join(f'{f:g}' for f in low)} needs at least {int(np.ceil(1 / min(low) - 1e-9))} "
                f"non-mated probes in gallery {gallery}; this protocol has {nonmated}: drop it "
                f"(eval.fpir_targets=[{','.join(f'{f:g}' for f in kept)}])"
            )

    def describe(self, data: IjbSet) -> str:
        c = data.counts()
        text = (
            f"{TITLES[data.name]} templates: {c['genuine_pairs']} genuine and {c['impostor_pairs']} impostor pairs "
            f"over {c['templates']} templates ({c['faces']} faces)"
        )
        if data.probes is not None:
            sizes = " and ".join(f"{g} ({len(data.galleries[g][0])} templates)" for g in GALLERIES)
            text += f"; 1:N: {len(data.probes[0])} probes searched in {sizes}"
        return text + (f"; left out: {data.skipped}" if data.skipped else "")

    def size(self, data: IjbSet) -> int:
        """Template pairs plus probe searches (each probe in each gallery)."""
        return len(data.pairs) + (len(data.probes[0]) * len(data.galleries) if data.probes is not None else 0)

    def evaluate(
        self,
        net,
        data: IjbSet,
        transform: EvalTransform,
        workers: int,
        tracker: Tracker,
        step: int,
        out_dir: Path,
        prefix: str = "eval",
    ) -> dict[str, float]:
        faces = data.faces(None if self.aligned else align_face)
        emb = embed_images(net, faces, transform, self.batch_size, workers, f"{data.name} faces", self.flip_tta)
        if not np.isfinite(emb).all():
            n = int((~np.isfinite(emb)).any(axis=1).sum())
            raise TrainingDiverged(
                f"the network gives NaN or infinite embeddings for {n} evaluation images: its weights have "
                "diverged (lower lr)"
            )
        result = score_ijb(emb, data, self.far_targets, self.fpir_targets, self.detector_weights)
        scalars = result.scalars()
        scalars.update({f"skipped_{what}": float(n) for what, n in data.skipped.items()})
        tracker.log_metrics({f"{prefix}/{k}": v for k, v in scalars.items()}, step)
        out_dir.mkdir(parents=True, exist_ok=True)
        settings = {
            "aligned": self.aligned,
            "detector_weights": self.detector_weights,
            "image_size": transform.image_size,
            "center_crop": transform.center_crop,
            "flip_tta": self.flip_tta,
            "normalize": transform.normalize,
        }
        for name in result.write(out_dir, data, settings):
            tracker.log_artifact(out_dir / name, prefix)
        log.info("%s: %s", prefix, result.summary() + (f"; left out: {data.skipped}" if data.skipped else ""))
        return scalars


@dataclass
class IjbResult:
    """The 1:1 verification and, with 1:N, each gallery's search."""

    verification: TemplateVerification
    searches: dict[str, GallerySearch]
    pooled: int  # templates pooled

    def mean(self) -> dict[str, float]:
        """Rank-k and TPIR averaged over the galleries (as InsightFace and the papers report 1:N)."""
        if not self.searches:
            return {}
        per = [s.scalars() for s in self.searches.values()]
        keys = [k for k in per[0] if k.startswith(("rank", "tpir_"))]
        return {k: float(np.mean([p[k] for p in per])) for k in keys}

    def scalars(self) -> dict[str, float]:
        """1:1 scalars unprefixed (tar_at_far_<f>, ...); 1:N under `G1/`, `G2/` and `mean/` (no unprefixed `rank1`:
        the headline of a run is searched by name, `facenet.evaluation.base.objective`)."""
        out = {"templates": float(self.pooled), **self.verification.scalars()}
        for gallery, search in self.searches.items():
            out.update({f"{gallery}/{k}": v for k, v in search.scalars().items()})
        out.update({f"mean/{k}": v for k, v in self.mean().items()})
        return out

    def summary(self) -> str:
        v = self.verification
        parts = [f"TAR@FAR={f:g} {tar:.4f}" for f, (tar, _) in v.tar_at_far.items()]
        text = f"1:1 over {v.genuine} genuine and {v.impostor} impostor template pairs: {', '.join(parts)}"
        if self.searches:
            m = self.mean()
            parts = [f"rank-{k} {m[f'rank{k}']:.4f}" for k in RANKS]
            tpir = next(iter(self.searches.values())).tpir
            parts += [f"TPIR@FPIR={f:g} rank-{k} {m[f'tpir_at_fpir_{f:g}_rank{k}']:.4f}" for f, k in tpir]
            text += f"; 1:N, mean of {' and '.join(self.searches)}: {', '.join(parts)}"
        return text

    def text(self, data: IjbSet, settings: dict) -> str:
        c, v = data.counts(), self.verification
        lines = [
            f"{TITLES[data.name]} at {data.root}: {c['templates']} templates of {c['faces']} faces in {c['media']} "
            f"media; pooled: media mean, template mean, L2 (detector weights: {settings['detector_weights']}); "
            f"faces {'used as they are' if settings['aligned'] else 'aligned by their 5 landmarks'}",
            f"1:1 verification, cosine: {v.genuine} genuine and {v.impostor} impostor template pairs",
        ]
        lines += [f"TAR@FAR={f:<7g} {tar:.4f}  (threshold {t:.4f})" for f, (tar, t) in v.tar_at_far.items()]
        lines.append(f"AUC {v.auc:.4f}, EER {v.eer:.4f}")
        if self.searches:
            lines.append(f"1:N identification, cosine: {len(data.probes[0])} mixed probes searched in each gallery")
            lines += _search_table(self.searches, self.mean())
        if data.skipped:
            lines.append("left out (eval.missing=skip): " + ", ".join(f"{n} {k}" for k, n in data.skipped.items()))
        return "\n".join(lines)

    def write(self, out_dir: Path, data: IjbSet, settings: dict) -> list[str]:
        """report.json, report.txt, roc.png and (1:N) cmc.png in `out_dir`; returns their names."""
        v = self.verification
        grid = np.logspace(np.log10(1.0 / v.impostor), 0, ROC_POINTS)
        roc = {"far": grid.tolist(), "tar": roc_at(v.roc["far"], v.roc["tar"], grid).tolist()}
        body = {
            "kind": "ijb",
            "set": data.name,
            "root": str(data.root),
            "meta_sha1": data.files,
            "fingerprint": data.fingerprint(),
            "counts": data.counts(),
            "skipped": data.skipped,
            "settings": settings,
            "similarity": "cosine",
            "verification": {
                "genuine_pairs": v.genuine,
                "impostor_pairs": v.impostor,
                "tar_at_far": {f"{f:g}": {"tar": tar, "threshold": t} for f, (tar, t) in v.tar_at_far.items()},
                "auc": v.auc,
                "eer": v.eer,
                "roc": roc,
            },
            "identification": {g: _search_json(s) for g, s in self.searches.items()},
        }
        if self.searches:
            body["identification"]["mean"] = self.mean()
        (out_dir / "report.json").write_text(json.dumps(body, indent=1))
        (out_dir / "report.txt").write_text(self.text(data, settings) + "\n")
        marks = {f: tar for f, (tar, _) in v.tar_at_far.items()}
        title = f"{TITLES[data.name]} 1:1 ({v.genuine} genuine, {v.impostor} impostor pairs)"
        template_roc_plot(grid, roc["tar"], marks, out_dir / "roc.png", title, f"AUC {v.auc:.4f}, EER {v.eer:.4f}")
        written = ["report.json", "report.txt", "roc.png"]
        if self.searches:
            depth = min(len(s.cmc) for s in self.searches.values())
            curves = {f"{g}: rank-1 {s.cmc[0]:.4f}": (s.cmc[:depth], None) for g, s in self.searches.items()}
            cmc_plot(curves, out_dir / "cmc.png", f"{TITLES[data.name]} 1:N CMC ({len(data.probes[0])} probes)")
            written.append("cmc.png")
        return written


def _search_table(searches: dict[str, GallerySearch], mean: dict[str, float]) -> list[str]:
    """The galleries side by side (and their mean): sizes, rank-k, TPIR and its threshold at each FPIR and rank."""
    names = list(searches)
    scalars = {g: s.scalars() for g, s in searches.items()}
    rows = [("gallery templates", "gallery", "d"), ("mated probes", "mated_probes", "d")]
    rows += [("non-mated probes", "nonmated_probes", "d")] + [(f"rank-{k}", f"rank{k}", "f") for k in RANKS]
    for f, k in next(iter(searches.values())).tpir:
        rows.append((f"TPIR@FPIR={f:g} rank-{k}", f"tpir_at_fpir_{f:g}_rank{k}", "f"))
        rows.append(("  its cosine threshold", f"threshold_at_fpir_{f:g}_rank{k}", "f"))
    lines = [f"{'':26s}" + "".join(f"{n:>10s}" for n in [*names, "mean"])]
    for label, key, kind in rows:
        cells = [f"{scalars[g][key]:10.0f}" if kind == "d" else f"{scalars[g][key]:10.4f}" for g in names]
        lines.append(f"{label:26s}" + "".join(cells) + (f"{mean[key]:10.4f}" if key in mean else ""))
    return lines


def _search_json(s: GallerySearch) -> dict:
    tpir: dict[str, dict] = {}
    for (f, k), (value, t) in s.tpir.items():
        tpir.setdefault(f"{f:g}", {})[f"rank{k}"] = {"tpir": value, "threshold": t}
    return {
        "gallery": s.gallery,
        "mated_probes": s.mated,
        "nonmated_probes": s.nonmated,
        "cmc": s.cmc.tolist(),
        "tpir": tpir,
    }


def score_ijb(
    emb: np.ndarray,
    data: IjbSet,
    far_targets: Sequence[float],
    fpir_targets: Sequence[float],
    detector_weights: bool = False,
) -> IjbResult:
    """The protocol's metrics from the faces' embeddings `emb` (one row per face of `data`, in order)."""
    ids, pooled = pool_templates(emb, data.templates, data.medias, data.scores if detector_weights else None)
    scores = pair_scores(ids, pooled, data.pairs[:, 0], data.pairs[:, 1])
    verification = verify_templates(scores, data.pairs[:, 2], far_targets)
    searches = {}
    if data.probes is not None:
        probes = pooled[lookup(ids, data.probes[0])]
        depth = min(CMC_DEPTH, *(len(t) for t, _ in data.galleries.values()))
        for gallery, (templates, subjects) in data.galleries.items():
            searches[gallery] = search_gallery(
                probes, data.probes[1], pooled[lookup(ids, templates)], subjects, fpir_targets, RANKS, depth
            )
    return IjbResult(verification, searches, len(ids))
