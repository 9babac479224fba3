"""A gallery folder: unit embeddings (float32 `.npy`), the identity of each row (`labels` into `names`), the image
each row came from (`paths`), the faiss index over the rows, and `manifest.json` (manifest.py).

Row i of the embeddings is id i of the index, `labels[i]` and `paths[i]`. Every change writes a new generation of
data files (`embeddings-<g>.npy`, ...), then the manifest naming them (one rename: the commit), then deletes the
previous generation: an interrupted change leaves the previous gallery whole. One writer at a time (a lock file).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import faiss
import numpy as np

from facenet.errors import DataError
from facenet.gallery import index as indexes
from facenet.gallery import manifest as manifests
from facenet.gallery.search import top_identities
from facenet.interrupts import partial_file

_GENERATION_FILE = re.compile(r"^(embeddings|labels|names|paths|index)-(\d+)\.(npy|json|faiss)$")


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to norm 1 (float32): their inner products are cosine similarities."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Gallery:
    """A built gallery, opened: its manifest, identities and paths in memory; the index read (and verified) on
    first use, the embeddings when asked for (adding to or removing from the gallery)."""

    def __init__(self, folder: Path, manifest: dict, names: list[str], labels: np.ndarray, paths: list[str]):
        self.folder, self.manifest = Path(folder), manifest
        self.names, self.labels, self.paths = names, labels, paths
        self._index: faiss.Index | None = None

    @classmethod
    def open(cls, folder: str | Path) -> Gallery:
        """Read the gallery in `folder`: every data file must have its recorded size; those read now (labels,
        names, paths) also their recorded checksum."""
        folder = Path(folder)
        manifest = manifests.read(folder)
        files = manifest["files"]
        for name in manifests.DATA_FILES:
            manifests.check_size(folder, files[name])
        labels = np.load(manifests.verified(folder, files["labels"]), allow_pickle=False)
        names = json.loads(manifests.verified(folder, files["names"]).read_text())
        paths = json.loads(manifests.verified(folder, files["paths"]).read_text())
        n = int(manifest["counts"]["images"])
        if labels.shape != (n,) or len(paths) != n or (n and not 0 <= labels.min() <= labels.max() < len(names)):
            raise DataError(f"gallery {folder}: labels, names and paths disagree with the manifest's {n} images")
        return cls(folder, manifest, names, labels.astype(np.int64), paths)

    # ------------------------------------------------------------------ what it holds
    @property
    def kind(self) -> str:
        return self.manifest["index"]["kind"]

    @property
    def settings(self) -> dict:
        return self.manifest["index"]["settings"]

    @property
    def size(self) -> int:
        return len(self.paths)

    @property
    def embedding_size(self) -> int:
        return int(self.manifest["embedding_size"])

    @property
    def index(self) -> faiss.Index:
        """The faiss index, read once its checksum is verified, with the manifest's search settings."""
        if self._index is None:
            path = manifests.verified(self.folder, self.manifest["files"]["index"])
            loaded = indexes.read(path)
            if loaded.ntotal != self.size or loaded.d != self.embedding_size or indexes.kind_of(loaded) != self.kind:
                raise DataError(
                    f"gallery {self.folder}: {path.name} is a {indexes.kind_of(loaded)} index of {loaded.ntotal} "
                    f"{loaded.d}-d vectors; the manifest says {self.kind}, {self.size} x {self.embedding_size}"
                )
            indexes.tune(loaded, self.settings)
            self._index = loaded
        return self._index

    def embeddings(self) -> np.ndarray:
        """(N, D) unit embeddings, read once their checksum is verified."""
        emb = np.load(manifests.verified(self.folder, self.manifest["files"]["embeddings"]), allow_pickle=False)
        if emb.dtype != np.float32 or emb.shape != (self.size, self.embedding_size):
            raise DataError(
                f"gallery {self.folder}: embeddings are {emb.dtype} {emb.shape}; the manifest says float32 "
                f"({self.size}, {self.embedding_size})"
            )
        return emb

    def verify(self) -> None:
        """Check every data file against its recorded checksum, and read the index."""
        for name in manifests.DATA_FILES:
            manifests.verified(self.folder, self.manifest["files"][name])
        self.embeddings()
        self._index = None
        _ = self.index

    # ------------------------------------------------------------------ search
    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Per query (rows of `queries`, any norm), the top-k identities as (name, cosine similarity), best first.
        An identity scores its best image (facenet.gallery.search)."""
        q = unit(queries)
        if q.shape[1] != self.embedding_size:
            raise DataError(f"queries are {q.shape[1]}-d; gallery {self.folder} holds {self.embedding_size}-d")
        labels, scores = top_identities(self.index, self.labels, q, k)
        return [
            [(self.names[int(i)], float(s)) for i, s in zip(row_labels, row_scores, strict=True) if i >= 0]
            for row_labels, row_scores in zip(labels, scores, strict=True)
        ]

    # ------------------------------------------------------------------ changes
    def add(self, embeddings: np.ndarray, identities: Sequence[str], paths: Sequence[str], seconds: float) -> Gallery:
        """A new generation with these rows appended (new identities included); the index grows in place (an IVF
        index keeps the lists it was trained with). `seconds`: the time it took to embed them."""
        if len(embeddings) != len(identities) or len(identities) != len(paths):
            raise ValueError("embeddings, identities and paths differ in length")
        emb = unit(embeddings)
        if emb.shape[1] != self.embedding_size:
            raise DataError(f"new embeddings are {emb.shape[1]}-d; gallery {self.folder} holds {self.embedding_size}-d")
        with _writing(self.folder, self.manifest):
            start = time.perf_counter()
            names = list(self.names)
            position = {name: i for i, name in enumerate(names)}
            for name in identities:
                if name not in position:
                    position[name] = len(names)
                    names.append(name)
            labels = np.r_[self.labels, [position[name] for name in identities]].astype(np.int64)
            all_emb = np.concatenate([self.embeddings(), emb])
            index, self._index = self.index, None  # grown in place: read again from disk if the commit fails
            indexes.add(index, emb)
            record = {
                "op": "add",
                "images": len(emb),
                "new_identities": len(names) - len(self.names),
                "embedding_seconds": round(seconds, 3),
                "index_seconds": round(time.perf_counter() - start, 3),
            }
            return _commit(self.folder, self.manifest, all_emb, labels, names, [*self.paths, *paths], index, record)

    def remove(self, names: Sequence[str]) -> Gallery:
        """A new generation without the images of these identities; the index is rebuilt from the remaining rows
        with the settings it was built with (an IVF index is trained again)."""
        unknown = sorted(set(names) - set(self.names))
        if unknown:
            raise DataError(
                f"not in gallery {self.folder}: {', '.join(unknown)} (it holds {len(self.names)} identities: "
                "facenet gallery info lists them)"
            )
        drop = {self.names.index(name) for name in names}
        keep = ~np.isin(self.labels, sorted(drop))
        if not keep.any():
            raise DataError(f"removing {', '.join(names)} would leave gallery {self.folder} empty")
        with _writing(self.folder, self.manifest):
            start = time.perf_counter()
            kept_ids = sorted(set(range(len(self.names))) - drop)
            relabel = np.full(len(self.names), -1, np.int64)
            relabel[kept_ids] = np.arange(len(kept_ids))
            emb = self.embeddings()[keep]
            index, settings = indexes.build(self.kind, self.manifest["index"]["requested"], emb)
            record = {
                "op": "remove",
                "identities": sorted(set(names)),
                "images": int((~keep).sum()),
                "index_seconds": round(time.perf_counter() - start, 3),
            }
            manifest = {**self.manifest, "index": {**self.manifest["index"], "settings": settings}}
            paths = [p for p, k in zip(self.paths, keep, strict=True) if k]
            names_left = [self.names[i] for i in kept_ids]
            return _commit(self.folder, manifest, emb, relabel[self.labels[keep]], names_left, paths, index, record)


def check_new(folder: str | Path) -> Path:
    """`folder` as the output of a build: absent or empty (refused before any embedding is computed)."""
    folder = Path(folder)
    if manifests.is_gallery(folder):
        raise DataError(f"{folder} is already a gallery: add images to it (facenet gallery add) or choose a new folder")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DataError(f"{folder} exists and is not an empty folder: choose a new folder for the gallery")
    return folder


def create(
    folder: str | Path,
    embeddings: np.ndarray,
    identities: Sequence[str],
    paths: Sequence[str],
    model: dict,
    kind: str = "flat",
    settings: dict | None = None,
    embedding_seconds: float = 0.0,
    source: str = "",
) -> Gallery:
    """Build a gallery in `folder` (absent or empty) from embeddings (any norm: stored as unit vectors), the
    identity and image path of each row, and `model` (`Embedder.describe()`: fingerprint, preprocessing)."""
    folder = check_new(folder)
    if not len(embeddings):
        raise DataError("a gallery needs at least one embedding")
    if len(embeddings) != len(identities) or len(identities) != len(paths):
        raise ValueError("embeddings, identities and paths differ in length")
    requested = indexes.params(kind, settings)
    emb = unit(embeddings)
    names = sorted(set(identities))
    position = {name: i for i, name in enumerate(names)}
    labels = np.array([position[name] for name in identities], np.int64)
    start = time.perf_counter()
    index, resolved = indexes.build(kind, requested, emb)
    index_seconds = time.perf_counter() - start
    n = len(emb)
    manifest = {
        "format": manifests.FORMAT,
        "version": manifests.VERSION,
        "model": model["model"],
        "embedding_size": int(emb.shape[1]),
        "norm": model.get("norm"),
        "preprocess": model["preprocess"],
        "metric": manifests.METRIC,
        "similarity": "cosine",
        "index": {"kind": kind, "settings": resolved, "requested": requested, "faiss": faiss.__version__},
        "build": {
            "source": source,
            "images": n,
            "identities": len(names),
            "embedding_seconds": round(embedding_seconds, 3),
            "images_per_s": round(n / embedding_seconds, 1) if embedding_seconds > 0 else None,
            "index_seconds": round(index_seconds, 3),
            "vectors_per_s": round(n / index_seconds, 1) if index_seconds > 0 else None,
            "faiss_threads": faiss.omp_get_max_threads(),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "history": [],
        "generation": 0,
    }
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with _writing(folder, None):
            return _commit(folder, manifest, emb, labels, names, list(paths), index, None)
    except BaseException:  # an interrupted or failed build leaves the folder as it was: absent or empty
        for path in folder.iterdir():
            if _GENERATION_FILE.match(path.name) or path.name in (manifests.NAME, ".lock"):
                path.unlink(missing_ok=True)
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise


def _commit(
    folder: Path,
    manifest: dict,
    emb: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    paths: list[str],
    index: faiss.Index,
    record: dict | None,
) -> Gallery:
    """Write a new generation of data files, then the manifest naming them, then drop the older generations."""
    generation = int(manifest.get("generation", 0)) + (record is not None)
    writers = {
        "embeddings": ("npy", lambda p: np.save(p, np.ascontiguousarray(emb, np.float32))),
        "labels": ("npy", lambda p: np.save(p, labels.astype(np.int32))),
        "names": ("json", lambda p: p.write_text(json.dumps(names))),
        "paths": ("json", lambda p: p.write_text(json.dumps(paths))),
        "index": ("faiss", lambda p: indexes.write(index, p)),
    }
    files, written = {}, []
    try:
        for name, (suffix, write) in writers.items():
            path = folder / f"{name}-{generation}.{suffix}"
            written.append(path)
            with partial_file(path) as tmp:
                write(tmp)
            files[name] = manifests.describe_file(path)
    except BaseException:  # not committed: the new generation's files go, the manifest still names the old ones
        for path in written:
            path.unlink(missing_ok=True)
        raise
    history = list(manifest.get("history", []))
    if record is not None:
        history.append({**record, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    manifest = {
        **manifest,
        "counts": {"images": len(paths), "identities": len(names)},
        "history": history,
        "generation": generation,
        "files": files,
    }
    manifests.write(folder, manifest)
    current = {entry["file"] for entry in files.values()}
    for path in folder.iterdir():
        if _GENERATION_FILE.match(path.name) and path.name not in current:
            path.unlink(missing_ok=True)
    gallery = Gallery(folder, manifest, names, labels.astype(np.int64), paths)
    gallery._index = index
    return gallery


@contextlib.contextmanager
def _writing(folder: Path, opened: dict | None) -> Iterator[None]:
    """Hold the gallery's lock file for a change. Another process changing it at the same time is refused, and so
    is a change to a gallery that changed since it was `opened` (its manifest then)."""
    import fcntl

    with (folder / ".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(
                f"gallery {folder} is being changed by another process; try again when it is done"
            ) from None
        try:
            if opened is not None and manifests.read(folder).get("generation") != opened.get("generation"):
                raise DataError(f"gallery {folder} changed since it was opened: open it again, then change it")
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
