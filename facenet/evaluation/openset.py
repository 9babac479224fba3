"""Open-set identification (`eval=openset`): "who is this, among the people enrolled, or nobody?", measured over
seeded trials of an identity-folder tree (`facenet.data.openset`), after Best-Rowden et al. (TIFS 2014) and BLUFR
(Liao et al., IJCB 2014); docs/identification.md says where this follows them and where it differs.

Per trial: every probe (genuine and impostor) is scored against every enrolled person by cosine similarity of unit
embeddings; a person's score is their best gallery image's. Metrics (`facenet.metrics.identification`): the CMC at
`ranks` over the genuine probes, and DIR at rank 1 (= 1 - FNIR) at each FPIR target with the threshold the target
gives on that trial's impostor probes. Reported as mean and std over the trials.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facenet.data.images import EvalTransform
from facenet.data.openset import OpenSetTrials, Trial, make_trials, read_protocol
from facenet.data.sources import ImageFiles
from facenet.errors import ConfigError, TrainingDiverged
from facenet.evaluation.base import Protocol
from facenet.evaluation.figures import cmc_plot, det_plot
from facenet.evaluation.report import markdown
from facenet.evaluation.verify import embed_images
from facenet.gallery.threshold import cosine_to_distance
from facenet.metrics.identification import cmc, det_curve, open_set, ranks
from facenet.tracking import Tracker

log = logging.getLogger(__name__)

ARTIFACTS = ("report.json", "report.txt", "openset.csv", "openset.md", "probes.csv", "cmc.png", "det.png")
INDEXES = ("exact", "flat", "hnsw", "ivf")  # exact: every score (numpy); the others: a FAISS index of the gallery
CMC_RANKS = 20  # the CMC curve of the report and figure runs to this rank (or the enrolled count if fewer)
DET_POINTS = 60  # FPIR values (log-spaced) the trials' DET curves are averaged at


class OpenSet(Protocol):
    """Seeded open-set trials of the tree at `root` (or the trials written in `protocol`, a folder from `facenet
    openset-protocol`, resolved under `root`)."""

    headline = "rank1"

    def __init__(
        self,
        root: str,
        protocol: str | None,
        trials: int,
        enrolled: float,
        gallery_per_person: int,
        seed: int,
        ranks: Sequence[int],
        fpir_targets: Sequence[float],
        index: str,
        **kw,
    ):
        super().__init__(**kw)
        if index not in INDEXES:
            raise ConfigError(f"eval.index must be one of {', '.join(INDEXES)}, got {index!r}")
        self.index = index
        if not ranks or any(int(r) < 1 for r in ranks):
            raise ConfigError(f"eval.ranks must be ranks >= 1, got {list(ranks)}")
        if not all(0 < f < 1 for f in fpir_targets):
            raise ConfigError(f"eval.fpir_targets must lie in (0, 1), got {list(fpir_targets)}")
        self.root, self.protocol = root, protocol
        self.spec = dict(trials=trials, enrolled=enrolled, gallery_per_person=gallery_per_person, seed=seed)
        self.ranks = tuple(sorted({1, *(int(r) for r in ranks)}))
        self.fpir_targets = tuple(float(f) for f in fpir_targets)

    def prepare(self, workers: int = 2) -> OpenSetTrials:
        """The trials, checked against the ranks and FPIR targets they must measure before any image is read."""
        if self.protocol:
            data = read_protocol(self.protocol, self.root, self.missing)
            made = data.settings.get("made_with", {})
            differ = {k: (v, made[k]) for k, v in self.spec.items() if k in made and made[k] != v}
            if differ:
                log.warning(
                    "eval.protocol=%s decides the trials; its files were made with %s (the config's values are "
                    "not used)",
                    self.protocol,
                    ", ".join(f"{k}={m} (config: {v})" for k, (v, m) in differ.items()),
                )
        else:
            data = make_trials(self.root, **self.spec)
        counts = data.counts()
        fewest = min(len(t.enrolled) for t in data.trials)
        if max(self.ranks) > fewest:
            raise ConfigError(
                f"eval.ranks asks for rank {max(self.ranks)}; a trial enrols only {fewest} people: "
                f"use ranks up to {fewest}"
            )
        n = counts["min_impostor"]
        low = [f for f in self.fpir_targets if f * n < 1 - 1e-9]
        if low:
            kept = [f for f in self.fpir_targets if f not in low]
            raise ConfigError(
                f"FPIR {', '.join(f'{f:g}' for f in low)} needs at least {int(np.ceil(1 / min(low) - 1e-9))} "
                f"impostor probes per trial; this protocol has {n} (fewest over its trials): drop it "
                f"(eval.fpir_targets=[{','.join(f'{f:g}' for f in kept)}]) or enrol fewer people"
            )
        return data

    def describe(self, data: OpenSetTrials) -> str:
        c = data.counts()
        return (
            f"open-set identification, {c['trials']} trials of {c['enrolled']:.0f} enrolled people "
            f"({c['gallery']:.0f} gallery images), {c['genuine']:.0f} genuine and {c['impostor']:.0f} impostor "
            "probes per trial"
        )

    def size(self, data: OpenSetTrials) -> int:
        return int(sum(len(t.genuine) + len(t.impostor) for t in data.trials))

    def evaluate(
        self,
        net,
        data: OpenSetTrials,
        transform: EvalTransform,
        workers: int,
        tracker: Tracker,
        step: int,
        out_dir: Path,
        prefix: str = "eval",
    ) -> dict[str, float]:
        emb = embed_images(
            net, ImageFiles(data.paths), transform, self.batch_size, workers, "open-set embeddings", self.flip_tta
        )
        if not np.isfinite(emb).all():
            n = int((~np.isfinite(emb)).any(axis=1).sum())
            raise TrainingDiverged(
                f"the network gives NaN or infinite embeddings for {n} evaluation images: its weights have "
                "diverged (lower lr)"
            )
        result = score_trials(unit(emb), data, self.ranks, self.fpir_targets, self.index)
        scalars = result.scalars()
        if data.skipped:
            scalars.update({f"skipped_{role}": float(n) for role, n in data.skipped.items()})
        tracker.log_metrics({f"{prefix}/{k}": v for k, v in scalars.items()}, step)
        out_dir.mkdir(parents=True, exist_ok=True)
        applied = {
            "image_size": transform.image_size,
            "center_crop": transform.center_crop,
            "flip_tta": self.flip_tta,
            "normalize": transform.normalize,
        }
        result.write(out_dir, data, applied, self.index)
        for name in ARTIFACTS:
            tracker.log_artifact(out_dir / name, prefix)
        log.info("%s: %s", prefix, result.summary() + (f"; left out: {data.skipped}" if data.skipped else ""))
        return scalars


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def person_scores(sim: np.ndarray, gallery_ids: np.ndarray, n_people: int) -> np.ndarray:
    """(probes, people): each person's best score over their gallery images (columns of `sim`)."""
    order = np.argsort(gallery_ids, kind="stable")
    ids = gallery_ids[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    if len(starts) != n_people or not np.array_equal(ids[starts], np.arange(n_people)):
        raise ValueError("every enrolled person needs at least one gallery image")
    return np.maximum.reduceat(sim[:, order], starts, axis=1)


def searched_scores(
    probes: np.ndarray, gallery: np.ndarray, gallery_ids: np.ndarray, n_people: int, kind: str, depth: int
) -> np.ndarray:
    """(probes, people) scores as a FAISS index of `kind` (facenet.gallery.index, at its documented settings) finds
    them: each person's best score among the `depth` people's worth of gallery images retrieved per probe, -inf for
    a person not retrieved (ranked last; the CMC up to `depth` and every rank-1 measure only need the retrieved)."""
    from facenet.gallery import index as indexes

    index, _ = indexes.build(kind, None, gallery.astype(np.float32))
    per_person = int(np.bincount(gallery_ids).max())
    found, ids = indexes.search(index, probes.astype(np.float32), depth * per_person)
    out = np.full((len(probes), n_people), -np.inf)
    rows = np.repeat(np.arange(len(probes)), ids.shape[1]).reshape(ids.shape)
    hit = ids >= 0
    np.maximum.at(out, (rows[hit], gallery_ids[ids[hit]]), found[hit].astype(np.float64))
    return out


class TrialScores:
    """One trial scored: the (probes, people) score matrix and each probe's truth (-1: impostor). `index`
    "exact": every probe against every gallery image; else searched in a FAISS index (`searched_scores`)."""

    def __init__(self, emb: np.ndarray, trial: Trial, index: str = "exact", depth: int = CMC_RANKS):
        self.trial = trial
        probes = np.r_[trial.genuine, trial.impostor]
        self.truth = np.r_[trial.genuine_ids, np.full(len(trial.impostor), -1, np.int64)]
        self.probes = probes
        n_people = len(trial.enrolled)
        if index == "exact":
            sim = emb[probes] @ emb[trial.gallery].T
            self.scores = person_scores(sim, trial.gallery_ids, n_people)
        else:
            depth = min(depth, n_people)
            self.scores = searched_scores(emb[probes], emb[trial.gallery], trial.gallery_ids, n_people, index, depth)


class OpenSetResult:
    """Every trial's CMC, DIR and threshold at each FPIR target and DET curve; mean and std over trials."""

    def __init__(self, trials: list[TrialScores], ranks: Sequence[int], fpir_targets: Sequence[float]):
        self.trials, self.ranks, self.fpir_targets = trials, tuple(ranks), tuple(fpir_targets)
        depth = min(max(CMC_RANKS, max(ranks)), min(len(t.trial.enrolled) for t in trials))
        self.cmc = np.array([cmc(t.scores, t.truth, depth) for t in trials])  # (trials, depth)
        self.open = [open_set(t.scores, t.truth, fpir_targets) for t in trials]  # per trial {f: (DIR, threshold)}
        self.det = [det_curve(t.scores, t.truth) for t in trials]
        fewest = min(int((t.truth < 0).sum()) for t in trials)
        self.grid = np.logspace(np.log10(1 / fewest), 0, DET_POINTS)
        self.fnir_at_grid = np.array([_fnir_at(fpir, fnir, self.grid) for fpir, fnir, _ in self.det])

    def rank(self, k: int) -> np.ndarray:
        return self.cmc[:, k - 1]

    def dir(self, f: float) -> np.ndarray:
        return np.array([o[f][0] for o in self.open])

    def threshold(self, f: float) -> np.ndarray:
        return np.array([o[f][1] for o in self.open])

    def scalars(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in self.ranks:
            out[f"rank{k}"], out[f"rank{k}_std"] = _mean_std(self.rank(k))
        for f in self.fpir_targets:
            out[f"dir_at_fpir_{f:g}"], out[f"dir_at_fpir_{f:g}_std"] = _mean_std(self.dir(f))
            out[f"threshold_at_fpir_{f:g}"], out[f"threshold_at_fpir_{f:g}_std"] = _mean_std(self.threshold(f))
        out["trials"] = float(len(self.trials))
        out["genuine_probes"] = float(np.mean([len(t.trial.genuine) for t in self.trials]))
        out["impostor_probes"] = float(np.mean([len(t.trial.impostor) for t in self.trials]))
        return out

    def table(self) -> pd.DataFrame:
        """One row per trial, then `mean` and `std` rows: people, probes, rank-k, DIR and threshold per FPIR."""
        rows = []
        for i, t in enumerate(self.trials):
            row = {
                "trial": str(i + 1),
                "enrolled": len(t.trial.enrolled),
                "genuine": len(t.trial.genuine),
                "impostor": len(t.trial.impostor),
            }
            row.update({f"rank{k}": self.rank(k)[i] for k in self.ranks})
            for f in self.fpir_targets:
                row[f"DIR@FPIR={f:g}"] = self.dir(f)[i]
                row[f"threshold@FPIR={f:g}"] = self.threshold(f)[i]
            rows.append(row)
        table = pd.DataFrame(rows)
        numeric = table.columns[1:]
        mean = {"trial": "mean", **table[numeric].mean().to_dict()}
        std = {"trial": "std", **table[numeric].std(ddof=0).to_dict()}
        return pd.concat([table, pd.DataFrame([mean, std])], ignore_index=True)

    def summary(self) -> str:
        s = self.scalars()
        parts = [f"rank-{k} {s[f'rank{k}']:.4f} +- {s[f'rank{k}_std']:.4f}" for k in self.ranks]
        parts += [
            f"DIR@FPIR={f:g} {s[f'dir_at_fpir_{f:g}']:.4f} +- {s[f'dir_at_fpir_{f:g}_std']:.4f} "
            f"(cosine threshold {s[f'threshold_at_fpir_{f:g}']:.3f})"
            for f in self.fpir_targets
        ]
        return f"open-set identification over {len(self.trials)} trials: " + ", ".join(parts)

    def text(self) -> str:
        s = self.scalars()
        lines = [
            f"open-set identification, {len(self.trials)} trials (mean +- std over trials); similarity: cosine",
            f"probes per trial: {s['genuine_probes']:.0f} genuine, {s['impostor_probes']:.0f} impostor",
        ]
        lines += [f"rank-{k:<3d} {s[f'rank{k}']:.4f} +- {s[f'rank{k}_std']:.4f}" for k in self.ranks]
        lines += [
            f"DIR@FPIR={f:g}  {s[f'dir_at_fpir_{f:g}']:.4f} +- {s[f'dir_at_fpir_{f:g}_std']:.4f}  (cosine threshold "
            f"{s[f'threshold_at_fpir_{f:g}']:.4f} +- {s[f'threshold_at_fpir_{f:g}_std']:.4f}; L2 distance "
            f"{cosine_to_distance(s[f'threshold_at_fpir_{f:g}']):.4f})"
            for f in self.fpir_targets
        ]
        return "\n".join(lines)

    def write(self, out_dir: Path, data: OpenSetTrials, preprocess: dict, index: str = "exact") -> None:
        """report.json / report.txt, the per-trial table (openset.csv, openset.md), every probe's outcome
        (probes.csv) and the CMC and DET figures."""
        s = self.scalars()
        body = {
            "kind": "openset",
            "similarity": "cosine",
            "search": index,  # exact, or the FAISS index kind the galleries were searched with
            "protocol": data.settings,
            "fingerprint": data.fingerprint(),
            "counts": data.counts(),
            "skipped": data.skipped,
            "ranks": {str(k): {"mean": s[f"rank{k}"], "std": s[f"rank{k}_std"]} for k in self.ranks},
            "cmc": {"mean": self.cmc.mean(axis=0).tolist(), "std": self.cmc.std(axis=0).tolist()},
            "fpir": {
                f"{f:g}": {
                    "dir_mean": s[f"dir_at_fpir_{f:g}"],
                    "dir_std": s[f"dir_at_fpir_{f:g}_std"],
                    "threshold_mean": s[f"threshold_at_fpir_{f:g}"],
                    "threshold_std": s[f"threshold_at_fpir_{f:g}_std"],
                    "distance_threshold": cosine_to_distance(s[f"threshold_at_fpir_{f:g}"]),
                }
                for f in self.fpir_targets
            },
            "det": {
                "fpir": self.grid.tolist(),
                "fnir_mean": self.fnir_at_grid.mean(axis=0).tolist(),
                "fnir_std": self.fnir_at_grid.std(axis=0).tolist(),
            },
            "trials": self.table().iloc[: len(self.trials)].to_dict(orient="records"),
            "preprocess": preprocess,
        }
        (out_dir / "report.json").write_text(json.dumps(body, indent=1))
        (out_dir / "report.txt").write_text(self.text() + "\n")
        table = self.table()
        table.to_csv(out_dir / "openset.csv", index=False)
        shown = table.copy()
        for c in shown.columns[4:]:
            shown[c] = shown[c].map(lambda v: f"{v:.4f}")
        (out_dir / "openset.md").write_text(markdown(shown) + "\n")
        self.probes(data).to_csv(out_dir / "probes.csv", index=False)
        cmc_plot(
            {f"{len(self.trials)} trials, rank-1 {s['rank1']:.4f}": (self.cmc.mean(0), self.cmc.std(0))},
            out_dir / "cmc.png",
            "CMC (genuine probes)",
        )
        marks = {f: 1 - s[f"dir_at_fpir_{f:g}"] for f in self.fpir_targets}
        det_plot(
            {f"mean of {len(self.trials)} trials": (self.grid, self.fnir_at_grid.mean(axis=0))},
            out_dir / "det.png",
            "DET: open-set identification (rank 1)",
            marks=marks,
            faint=[(fpir, fnir) for fpir, fnir, _ in self.det],
        )

    def probes(self, data: OpenSetTrials) -> pd.DataFrame:
        """Every probe of every trial: its role, its rank (genuine), its own person's score (genuine), and the best
        score with whom it belongs to."""
        parts = []
        for i, t in enumerate(self.trials):
            genuine = t.truth >= 0
            rank = np.full(len(t.truth), -1)
            rank[genuine] = ranks(t.scores, t.truth)
            own = np.full(len(t.truth), np.nan)
            own[genuine] = t.scores[genuine, t.truth[genuine]]
            best = t.scores.argmax(axis=1)
            parts.append(
                pd.DataFrame(
                    {
                        "trial": i + 1,
                        "role": np.where(genuine, "genuine", "impostor"),
                        "image": [data.images[j] for j in t.probes],
                        "rank": rank,
                        "own_score": own,
                        "best_score": t.scores.max(axis=1),
                        "best_person": [t.trial.enrolled[j] for j in best],
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)


def score_trials(
    emb: np.ndarray, data: OpenSetTrials, ranks: Sequence[int], fpir_targets: Sequence[float], index: str = "exact"
) -> OpenSetResult:
    """The result of every trial from unit embeddings `emb` (one row per image of `data.images`), each gallery
    searched exactly or through a FAISS index of kind `index`."""
    depth = max(CMC_RANKS, *ranks)
    return OpenSetResult([TrialScores(emb, t, index, depth) for t in data.trials], ranks, fpir_targets)


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    return float(np.mean(x)), float(np.std(x))


def _fnir_at(fpir: np.ndarray, fnir: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The DET step function (points in ascending FPIR) read at each grid FPIR: the FNIR of the last point whose
    FPIR does not exceed it."""
    at = np.searchsorted(fpir, grid * (1 + 1e-12), side="right") - 1
    return fnir[np.maximum(at, 0)]
