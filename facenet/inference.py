"""Using a trained model: `Embedder.from_pretrained(path)` then `embed`, `verify`, `identify`, `cluster`.

`path` is a facenet checkpoint (`.ckpt` with its sidecar `.json`), a published model by name (`casia-webface` or
`pretrained:casia-webface`, see `facenet pretrained list`), an exported MindIR (`.mindir`) or ONNX (`.onnx`, run by
onnxruntime: `pip install onnxruntime`) with its model card (`<file>.json`, written by task=export). Images get
exactly the preprocessing the model was trained with (size, channel order, standardisation, and with `align` its
alignment style, from the sidecar or card); `center_crop` is for unaligned photos, as `eval.center_crop`;
`flip_tta` adds each image's mirror image's embedding (as `eval.flip_tta`). The verification threshold is the one
`facenet calibrate` recorded, else the one chosen at evaluation.

`identify` searches identity folders (`GALLERY/<name>/<image>`, embedded on each call, cached) or a built gallery
(`build_gallery`, `add_to_gallery`; `facenet.gallery`): embeddings stored once with a faiss index and a manifest
that refuses another model or preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facenet.data.images import EvalTransform, normalization
from facenet.data.index import IMAGE_EXTENSIONS
from facenet.errors import ConfigError, DataError
from facenet.interrupts import partial_file
from facenet.models.exported import ModelFile, is_model_file

if TYPE_CHECKING:
    from facenet.gallery import Gallery

CACHE_DIR = Path(os.environ.get("FACENET_CACHE", Path.home() / ".cache" / "facenet"))


class _MindSporeNet:
    """A checkpoint rebuilt from its sidecar (dynamic batch)."""

    batch_size = None

    def __init__(self, ckpt: Path):
        from facenet.models.load import load_model
        from facenet.runtime import ensure_runtime

        ensure_runtime()
        self.net, self.spec = load_model(ckpt)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import mindspore as ms

        return self.net(ms.Tensor(x)).asnumpy()


@dataclass(frozen=True)
class Verdict:
    distance: float
    threshold: float
    same: bool


@dataclass(frozen=True)
class Match:
    identity: str
    distance: float  # L2 distance between embeddings at the model's norm
    similarity: float | None = None  # cosine similarity (built galleries are searched by it)


def list_images(folder: str | Path) -> list[str]:
    """Image files under `folder` (recursively), sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is not a folder")
    files = sorted(str(p) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"no images under {root} (extensions {', '.join(IMAGE_EXTENSIONS)})")
    return files


def gallery_listing(folder: str | Path) -> tuple[list[str], np.ndarray, list[str]]:
    """(paths, identity index per path, identity names) of an identity-folder tree."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"gallery {str(root)!r} is not a folder")
    names, paths, labels = [], [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(str(f) for f in sub.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        if files:
            labels += [len(names)] * len(files)
            names.append(sub.name)
            paths += files
    if not names:
        raise DataError(f"gallery {root} has no identity folders with images (expected {root}/<name>/<image>)")
    return paths, np.asarray(labels), names


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Embedder:
    """Embeddings and decisions from one model. Distances are L2 between embeddings, as in training."""

    def __init__(
        self,
        backend,
        spec: dict,
        model_file: Path,
        batch_size: int = 64,
        workers: int = 2,
        center_crop: int | None = None,
        align: bool = False,
        flip_tta: bool = False,
    ):
        self.backend, self.spec, self.model_file = backend, spec, model_file
        self.align, self.flip_tta = align, flip_tta
        self.image_size = int(spec["preprocess"]["image_size"])
        self.batch_size = backend.batch_size or batch_size
        self.workers = workers
        preprocess = spec["preprocess"]
        self.transform = EvalTransform(self.image_size, center_crop, normalization(preprocess.get("normalize", "unit")))
        style = (preprocess.get("align") or {}).get("style") or "five_point"  # models of unrecorded alignment
        self.align_style = (style, float((preprocess.get("align") or {}).get("margin", 0.0)))
        self.threshold: float | None = spec.get("threshold")
        self.scale = float(spec.get("scale", 1.0))
        self._sha256: str | None = None

    @staticmethod
    def _threshold_of(record: dict, evaluated: float | None) -> float | None:
        """The calibrated threshold (`facenet calibrate`) if there is one, else the evaluation's."""
        calibration = record.get("calibration") or {}
        return calibration.get("threshold", evaluated)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        batch_size: int = 64,
        workers: int = 2,
        center_crop: int | None = None,
        align: bool = False,
        flip_tta: bool = False,
    ) -> Embedder:
        """Load a checkpoint (`.ckpt` + sidecar), MindIR or ONNX file (+ model card). `align`: detect and align the
        face of every image first (MTCNN, as `facenet align`), for raw photos. `flip_tta`: each embedding is the
        sum of the image's and its mirror image's, rescaled to the model's norm."""
        from facenet.models import pretrained

        if (
            not Path(str(path)).expanduser().exists()
            and str(path).removeprefix(pretrained.PREFIX) in pretrained.REGISTRY
        ):
            path = pretrained.resolve(str(path))  # a published model by name
        elif str(path).startswith(pretrained.PREFIX):
            pretrained.lookup(str(path))  # unknown name: the error lists the known ones
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"model {str(path)!r} does not exist (a .ckpt, .mindir, .onnx file, or a published "
                f"model: {', '.join(pretrained.names())})"
            )
        suffix = path.suffix.lower()
        if suffix == ".ckpt":
            backend = _MindSporeNet(path)
            raw = backend.spec
            evaluated = raw.get("metrics", {}).get("threshold")
            spec = {
                "preprocess": raw["preprocess"],
                "threshold": cls._threshold_of(raw, evaluated),
                "scale": raw["model"]["head"].get("scale", 1.0),
                "embedding_size": raw.get("embedding_size"),
            }
        elif is_model_file(path):
            backend = ModelFile.open(path)
            card = backend.card
            evaluated = (card.get("threshold") or {}).get("distance")
            spec = {
                "preprocess": backend.preprocess,
                "threshold": cls._threshold_of(card, evaluated),
                "scale": backend.norm,
                "embedding_size": backend.embedding_size,
            }
        else:
            raise ConfigError(f"model {path.name}: expected a .ckpt, .mindir or .onnx file")
        return cls(backend, spec, path, batch_size, workers, center_crop, align, flip_tta)

    # ------------------------------------------------------------------ embeddings
    def embed(self, images: Sequence[str | np.ndarray], desc: str = "embedding") -> np.ndarray:
        """(N, D) embeddings of image files or HxWx3 uint8 RGB arrays, in order."""
        from tqdm import tqdm

        from facenet.data.sources import ImageFiles
        from facenet.evaluation.embedding import array_batches, embed_batches, embed_source

        if len(images) == 0:
            return np.zeros((0, 0), np.float32)
        if self.align:
            from facenet.align import align_image
            from facenet.data.images import read_image

            style, margin = self.align_style

            def aligned(i: str | np.ndarray) -> np.ndarray:
                if isinstance(i, np.ndarray):
                    return align_image(i, self.image_size, margin, name="an array", style=style)
                return align_image(read_image(str(i)), self.image_size, margin, name=str(i), style=style)

            images = [aligned(i) for i in tqdm(images, desc="aligning", unit="img", leave=False)]
        if all(isinstance(i, np.ndarray) for i in images):
            x = np.stack([self.transform(i) for i in images])
            return embed_batches(self._run, array_batches(x, self.batch_size), len(x), None, self.flip_tta)
        files = ImageFiles([str(i) for i in images])
        return embed_source(self._run, files, self.transform, self.batch_size, self.workers, desc, self.flip_tta)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.backend(np.ascontiguousarray(x, np.float32)))  # a static-batch file pads itself

    def describe(self) -> dict:
        """What makes this model's embeddings comparable with others: the fingerprint of its weights (sha256 of
        the model file), its embedding size and output norm, and the preprocessing as applied here. A built
        gallery records it and refuses a model that differs (facenet.gallery.manifest.check_model)."""
        from facenet.files import sha256

        if self._sha256 is None:
            self._sha256 = sha256(self.model_file)
        style, margin = self.align_style
        return {
            "model": {
                "file": self.model_file.name,
                "sha256": self._sha256,
                "format": self.model_file.suffix.lstrip(".").lower(),
            },
            "embedding_size": self.spec.get("embedding_size"),
            "norm": self.scale,
            "preprocess": {
                "image_size": self.image_size,
                "channel_order": self.spec["preprocess"].get("channel_order", "RGB"),
                "normalize": self.transform.normalize,
                "center_crop": self.transform.center_crop,
                "align": {"style": style, "margin": margin} if self.align else None,
                "flip_tta": self.flip_tta,
            },
        }

    def _threshold(self, threshold: float | None) -> float:
        t = threshold if threshold is not None else self.threshold
        if t is None:
            raise ConfigError(
                f"{self.model_file.name} records no verification threshold: pass one (--threshold) or "
                "choose one on labelled faces of your domain (facenet calibrate)"
            )
        return float(t)

    # ------------------------------------------------------------------ decisions
    def verify(self, a: str | np.ndarray, b: str | np.ndarray, threshold: float | None = None) -> Verdict:
        """Same person? L2 distance of the two embeddings against the threshold chosen at evaluation."""
        t = self._threshold(threshold)
        if isinstance(a, np.ndarray) == isinstance(b, np.ndarray):
            ea, eb = self.embed([a, b])
        else:
            ea, eb = self.embed([a])[0], self.embed([b])[0]
        d = float(np.linalg.norm(ea - eb))
        return Verdict(d, t, d <= t)

    def gallery_embeddings(
        self, gallery: str | Path, cache_dir: str | Path | None = CACHE_DIR
    ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
        """(embeddings, labels, identity names, paths) of an identity-folder tree; cached under `cache_dir`
        keyed by the model file and every gallery file's path, size and modification time."""
        paths, labels, names = gallery_listing(gallery)
        key = hashlib.sha1()
        for p in [str(self.model_file), *paths]:
            st = os.stat(p)
            key.update(f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        key.update(json.dumps([self.image_size, self.transform.center_crop]).encode())
        cache = Path(cache_dir) / f"gallery-{key.hexdigest()[:20]}.npz" if cache_dir else None
        if cache is not None and cache.is_file():
            return np.load(cache)["embeddings"], labels, names, paths
        emb = self.embed(paths, "gallery")
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with partial_file(cache) as tmp:
                np.savez(tmp, embeddings=emb)
        return emb, labels, names, paths

    def identify(
        self,
        queries: Sequence[str | np.ndarray],
        gallery: str | Path,
        k: int = 5,
        method: str | None = None,
        threshold: float | None = None,
        cache_dir: str | Path | None = CACHE_DIR,
        min_similarity: float | None = None,
    ) -> list[list[Match]]:
        """Top-k gallery identities per query, nearest first. `gallery`: identity folders or a built gallery.

        Identity folders: method "mean" (the default) ranks by the distance to each identity's mean embedding
        (rescaled to the network's norm); "nearest" by the distance to the identity's closest image. A built
        gallery ranks by the closest image ("nearest", its only method), searched by cosine similarity.

        A query whose best identity is beyond the threshold gets "unknown" ranked first: `threshold` is an L2
        distance (default: the model's, calibrated or from evaluation); `min_similarity` a cosine similarity (as
        an open-set protocol reports it: facenet.gallery.from_report); give one of them at most."""
        from facenet.gallery import cosine_to_distance, distance_to_cosine, is_gallery

        if threshold is not None and min_similarity is not None:
            raise ConfigError("give a distance threshold or a minimum similarity, not both")
        if min_similarity is not None:
            threshold = cosine_to_distance(min_similarity, self.scale)
        if is_gallery(gallery):
            if method not in (None, "nearest"):
                raise ConfigError(
                    f"a built gallery ranks identities by their closest image (method 'nearest'); method {method!r} "
                    "needs identity folders"
                )
            cosine = (
                min_similarity
                if min_similarity is not None
                else distance_to_cosine(self._threshold(threshold), self.scale)
            )
            return self._identify_built(queries, gallery, k, cosine)
        method = method or "mean"
        if method not in ("mean", "nearest"):
            raise ConfigError(f"method must be 'mean' or 'nearest', got {method!r}")
        t = self._threshold(threshold)
        emb, labels, names, _ = self.gallery_embeddings(gallery, cache_dir)
        q = self.embed(list(queries), "queries")
        d = np.linalg.norm(q[:, None, :] - emb[None, :, :], axis=2)  # (Q, G)
        if method == "mean":
            centres = np.stack([emb[labels == i].mean(axis=0) for i in range(len(names))])
            centres = _normalise(centres) * self.scale
            per_id = np.linalg.norm(q[:, None, :] - centres[None, :, :], axis=2)
        else:
            per_id = np.stack([d[:, labels == i].min(axis=1) for i in range(len(names))], axis=1)
        out = []
        for row in per_id:
            order = np.argsort(row, kind="stable")[:k]
            matches = [Match(names[i], float(row[i]), distance_to_cosine(row[i], self.scale)) for i in order]
            if matches and matches[0].distance > t:
                matches = [Match("unknown", t, distance_to_cosine(t, self.scale)), *matches[: k - 1]]
            out.append(matches)
        return out

    def _identify_built(
        self, queries: Sequence[str | np.ndarray], gallery: str | Path, k: int, cosine: float
    ) -> list[list[Match]]:
        """identify() on a built gallery: refused if it was built otherwise; accept similarity >= `cosine`."""
        from facenet.gallery import Gallery, cosine_to_distance
        from facenet.gallery.manifest import check_model

        built = Gallery.open(gallery)
        check_model(built.manifest, self.describe(), built.folder)
        q = self.embed(list(queries), "queries")
        if len(q) and q.shape[1] != built.embedding_size:
            raise ConfigError(
                f"gallery {built.folder} holds {built.embedding_size}-d embeddings; {self.model_file.name} gives "
                f"{q.shape[1]}-d"
            )
        out = []
        for row in built.search(q, k) if len(q) else []:
            matches = [Match(name, cosine_to_distance(s, self.scale), s) for name, s in row]
            if matches and matches[0].similarity < cosine:
                matches = [Match("unknown", cosine_to_distance(cosine, self.scale), cosine), *matches[: k - 1]]
            out.append(matches)
        return out

    def build_gallery(
        self, folder: str | Path, out: str | Path, index: str = "flat", settings: dict | None = None
    ) -> Gallery:
        """Embed the identity folders `folder/<name>/<image>` and store them as a gallery in `out` (absent or
        empty) with a faiss index of kind `index` (flat, hnsw, ivf; `settings`: facenet.gallery.index)."""
        from facenet.gallery import check_new, create
        from facenet.gallery.index import check

        check_new(out)
        paths, labels, names = gallery_listing(folder)
        settings = check(index, settings, len(paths))  # before any image is embedded
        start = time.perf_counter()
        emb = self.embed(paths, "gallery")
        seconds = time.perf_counter() - start
        identities = [names[i] for i in labels]
        paths = [os.path.abspath(p) for p in paths]
        return create(out, emb, identities, paths, self.describe(), index, settings, seconds, str(folder))

    def add_to_gallery(self, gallery: str | Path, folder: str | Path) -> tuple[Gallery, int, int]:
        """Embed the images of `folder/<name>/<image>` not yet in the built `gallery` (by path) and add them, new
        identities included; the gallery must have been built with this model and preprocessing. Returns (the
        gallery, images added, images already there)."""
        from facenet.gallery import Gallery
        from facenet.gallery.manifest import check_model

        built = Gallery.open(gallery)
        check_model(built.manifest, self.describe(), built.folder)
        paths, labels, names = gallery_listing(folder)
        have = set(built.paths)
        new = [(os.path.abspath(p), names[i]) for p, i in zip(paths, labels, strict=True)]
        new = [(p, name) for p, name in new if p not in have]
        if not new:
            raise DataError(f"every image under {folder} is already in gallery {built.folder}: nothing to add")
        start = time.perf_counter()
        emb = self.embed([p for p, _ in new], "gallery")
        seconds = time.perf_counter() - start
        added = built.add(emb, [name for _, name in new], [p for p, _ in new], seconds)
        return added, len(new), len(paths) - len(new)

    def cluster(
        self,
        images: Sequence[str | np.ndarray],
        threshold: float | None = None,
        method: str = "chinese_whispers",
        seed: int = 0,
    ) -> np.ndarray:
        """Cluster labels (0..C-1, largest cluster first) of unlabelled faces: images closer than the threshold
        are linked; "components" takes the connected components of that graph, "chinese_whispers" (Biemann 2006)
        splits them further by weighted label propagation."""
        t = self._threshold(threshold)
        emb = self.embed(list(images), "cluster")
        return cluster_embeddings(emb, t, method, seed)


def cluster_embeddings(
    emb: np.ndarray, threshold: float, method: str = "chinese_whispers", seed: int = 0, iterations: int = 20
) -> np.ndarray:
    """Cluster labels for embeddings linked where their L2 distance <= threshold (see Embedder.cluster)."""
    if method not in ("components", "chinese_whispers"):
        raise ConfigError(f"method must be 'components' or 'chinese_whispers', got {method!r}")
    n = len(emb)
    d = np.linalg.norm(emb[:, None, :] - emb[None, :, :], axis=2)
    adj = (d <= threshold) & ~np.eye(n, dtype=bool)
    labels = np.arange(n)
    if method == "components":
        changed = True
        while changed:  # min-label propagation to a fixed point = connected components
            neighbour_min = np.where(adj, labels[None, :], n).min(axis=1)
            new = np.minimum(labels, neighbour_min)
            changed = bool((new != labels).any())
            labels = new
    else:
        weight = np.where(adj, 1.0 / np.maximum(d, 1e-6), 0.0)
        rng = np.random.default_rng(seed)
        for _ in range(iterations):
            changed = False
            for i in rng.permutation(n):
                nbrs = np.flatnonzero(adj[i])
                if len(nbrs) == 0:
                    continue
                scores: dict[int, float] = {}
                for j in nbrs:
                    scores[labels[j]] = scores.get(labels[j], 0.0) + weight[i, j]
                best = max(scores.items(), key=lambda kv: (kv[1], -kv[0]))[0]
                if best != labels[i]:
                    labels[i], changed = best, True
            if not changed:
                break
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    rank = np.empty_like(counts)
    rank[np.argsort(-counts, kind="stable")] = np.arange(len(counts))
    return rank[inverse]
