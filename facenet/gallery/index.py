"""A gallery's faiss index: the kinds, their parameters, building, adding, searching, reading and writing.

Every kind searches by inner product over unit vectors, which is the cosine similarity (higher is closer):
- `flat`: `IndexFlatIP`, exact (the same ranking as a brute-force matrix product); no parameters.
- `hnsw`: `IndexHNSWFlat` (inner product). `M` links per node (memory: about 2 x M x 4 bytes per vector beside the
  vector itself; more links, better recall, slower build), `ef_construction` candidates kept while linking (build
  time grows with it), `ef_search` candidates kept while searching (the recall / speed knob; at least k is used).
- `ivf`: `IndexIVFFlat` (inner product, exact within a list). `nlist` lists found by k-means on the gallery itself
  (default about 2 sqrt(N), at most one list per 39 vectors: k-means needs that many points per centroid), trained
  on at most 64 vectors per list (a seeded sample); `nprobe` lists scanned per query (the recall / speed knob).
  Vectors added later go into the lists trained at build time (rebuild after large additions: `trained_on`).
  Default `nprobe`: an eighth of the lists (recall at a fixed nprobe falls as the gallery, and nlist, grow), and at
  least MIN_PROBED lists (or all of them): on a small gallery an eighth is 2 or 3 lists, and a probe's own person
  often sits in a list next to its nearest centroid (LFW open-set trials, 780 enrolled, 20 lists: nprobe 3 lost
  6.9 points of rank-1 against exact search; docs/identification.md).

The defaults reach recall@1 >= 0.99 against exact search on 1e5 clustered 128-d and 512-d embeddings
(bench/gallery.py, docs/galleries.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np

from facenet.errors import ConfigError, DataError

KINDS = ("flat", "hnsw", "ivf")
DEFAULTS: dict[str, dict[str, int | None]] = {
    "flat": {},
    "hnsw": {"M": 32, "ef_construction": 40, "ef_search": 64},
    "ivf": {"nlist": None, "nprobe": None},  # None: from the gallery's size (auto_nlist, default_nprobe)
}
MIN_POINTS_PER_LIST = 39  # faiss's own k-means minimum per centroid
TRAIN_POINTS_PER_LIST = 64  # the k-means sample (faiss's default, 256, trains a 1e6 gallery for minutes here)
PROBED_FRACTION = 8  # default nprobe: nlist / 8 ...
MIN_PROBED = 16  # ... and at least this many lists
FEW_QUERIES = 20  # a flat search of fewer queries runs on one thread (see `search`)


def params(kind: str, given: dict | None = None) -> dict[str, int | None]:
    """The parameters of `kind`: its defaults, updated with the `given` ones that are not None; unknown names and
    values below 1 refused."""
    if kind not in KINDS:
        raise ConfigError(f"unknown index kind {kind!r}: expected one of {', '.join(KINDS)}")
    out = dict(DEFAULTS[kind])
    for name, value in (given or {}).items():
        if value is None:
            continue
        if name not in out:
            known = ", ".join(out) or "none"
            raise ConfigError(f"index {kind} has no parameter {name!r} (its parameters: {known})")
        if int(value) < 1:
            raise ConfigError(f"index {kind}: {name} must be >= 1, got {value}")
        out[name] = int(value)
    return out


def auto_nlist(n: int) -> int:
    """IVF lists for `n` vectors: about 2 sqrt(n), and at most n / MIN_POINTS_PER_LIST."""
    return max(1, min(round(2 * math.sqrt(n)), n // MIN_POINTS_PER_LIST))


def default_nprobe(nlist: int) -> int:
    """Lists an IVF search scans by default: an eighth of `nlist`, at least MIN_PROBED, at most all of them."""
    return min(nlist, max(math.ceil(nlist / PROBED_FRACTION), MIN_PROBED))


def check(kind: str, settings: dict | None, n: int) -> dict[str, int | None]:
    """The parameters of `kind` (see `params`), refused when `n` vectors cannot build it (an IVF index needs
    MIN_POINTS_PER_LIST vectors per list to train): checked before any image is embedded."""
    settings = params(kind, settings)
    if kind == "ivf":
        nlist = settings["nlist"] or auto_nlist(n)
        if n < nlist * MIN_POINTS_PER_LIST:
            raise DataError(
                f"an IVF index of {nlist} lists needs at least {nlist * MIN_POINTS_PER_LIST} vectors to train "
                f"({MIN_POINTS_PER_LIST} per list); the gallery has {n}: choose --index flat, or fewer lists (--nlist)"
            )
    return settings


def build(kind: str, settings: dict | None, vectors: np.ndarray) -> tuple[faiss.Index, dict]:
    """An index of `kind` holding `vectors` (N, D) float32 unit rows (ids 0..N-1); returns it and the settings it
    was built with (`nlist` resolved, `trained_on` for IVF)."""
    n, d = vectors.shape
    settings = check(kind, settings, n)
    vectors = np.ascontiguousarray(vectors, np.float32)
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, settings["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings["ef_construction"]
        index.hnsw.efSearch = settings["ef_search"]
    else:
        nlist = settings["nlist"] or auto_nlist(n)
        nprobe = min(settings["nprobe"] or default_nprobe(nlist), nlist)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
        index.train(vectors)
        index.nprobe = nprobe
        settings = {**settings, "nlist": nlist, "nprobe": nprobe, "trained_on": n}
    index.add(vectors)
    return index, settings


def add(index: faiss.Index, vectors: np.ndarray) -> None:
    """Append `vectors` (their ids continue from index.ntotal)."""
    index.add(np.ascontiguousarray(vectors, np.float32))


def search(index: faiss.Index, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each (Q, n): the n highest inner products per query, best first; id -1 where the index
    found fewer (an IVF search sees only the vectors of its `nprobe` lists). A flat index searches fewer than
    FEW_QUERIES queries on one thread: faiss's threads wait for each other there, 2-100x slower (bench/NOTES.md;
    the thread count is process-wide: do not search from several Python threads at once)."""
    n = max(1, min(n, index.ntotal))
    if len(queries) < FEW_QUERIES and isinstance(index, faiss.IndexFlat) and faiss.omp_get_max_threads() > 1:
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return index.search(np.ascontiguousarray(queries, np.float32), n)
        finally:
            faiss.omp_set_num_threads(threads)
    hnsw = _as(index, faiss.IndexHNSW)
    if hnsw is not None and hnsw.hnsw.efSearch < n:
        saved = hnsw.hnsw.efSearch
        hnsw.hnsw.efSearch = n  # n results need at least n candidates
        try:
            return index.search(np.ascontiguousarray(queries, np.float32), n)
        finally:
            hnsw.hnsw.efSearch = saved
    return index.search(np.ascontiguousarray(queries, np.float32), n)


def tune(index: faiss.Index, settings: dict) -> None:
    """Apply the search-time settings (`ef_search`, `nprobe`) to a loaded index."""
    hnsw, ivf = _as(index, faiss.IndexHNSW), _as(index, faiss.IndexIVF)
    if hnsw is not None and settings.get("ef_search"):
        hnsw.hnsw.efSearch = int(settings["ef_search"])
    if ivf is not None and settings.get("nprobe"):
        ivf.nprobe = int(settings["nprobe"])


def kind_of(index: faiss.Index) -> str:
    """The kind of a loaded index, as KINDS names it."""
    for kind, cls in (("hnsw", faiss.IndexHNSWFlat), ("ivf", faiss.IndexIVFFlat), ("flat", faiss.IndexFlatIP)):
        if _as(index, cls) is not None:
            return kind
    return type(index).__name__


def write(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def read(path: Path) -> faiss.Index:
    """The index in `path` (its checksum already verified by the caller); a file faiss cannot parse is a DataError."""
    try:
        return faiss.read_index(str(path))  # already of its own class, and owning it
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot read the gallery index {path}: {reason[:200]}") from None


def set_threads(n: int) -> None:
    """faiss's OpenMP threads for building and searching."""
    faiss.omp_set_num_threads(int(n))


def _as(index: faiss.Index, cls: type):
    return index if isinstance(index, cls) else None  # faiss's downcast_index would return a non-owning copy
