"""Offline random triplets, as the reference recipe draws them, vectorised.

Rules (the reference's): the anchor and positive are two different images of a class with at least two images,
the negative any image of another class. Classes are drawn uniformly, then images uniformly within a class. The
reference scanned its table once per triplet; here every draw is one numpy call over all triplets, so 3,000,000
triplets over VGGFace2's 3.31M images take seconds (see bench/triplets.py). `facenet triplets` writes them as
the reference CSV.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from facenet.errors import ConfigError, DataError

CSV_COLUMNS = ["anc_id", "pos_id", "neg_id", "pos_class", "neg_class", "pos_name", "neg_name"]


class ClassIndex:
    """Rows grouped by class: `order[start[c] : start[c] + count[c]]` are the rows of class c."""

    def __init__(self, classes: np.ndarray):
        classes = np.asarray(classes)
        self.order = np.argsort(classes, kind="stable")
        self.classes, self.start, self.count = np.unique(classes[self.order], return_index=True, return_counts=True)
        self.eligible = np.flatnonzero(self.count >= 2)  # positions in self.classes
        if len(self.eligible) == 0 or len(self.classes) < 2:
            raise DataError("triplets need at least 2 classes, one of them with at least 2 images")


def draw_triplets(index: ClassIndex, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) row indices (anchor, positive, negative)."""
    pc = index.eligible[rng.integers(len(index.eligible), size=n)]
    a = rng.integers(index.count[pc])
    p = rng.integers(index.count[pc] - 1)
    p += p >= a  # a different image of the same class
    nc = rng.integers(len(index.classes) - 1, size=n)
    nc += nc >= pc  # any other class
    neg = rng.integers(index.count[nc])
    start = index.start
    return np.stack([index.order[start[pc] + a], index.order[start[pc] + p], index.order[start[nc] + neg]], axis=1)


def _image_key(table: pd.DataFrame) -> pd.MultiIndex:
    """(name, id): how the reference CSV names an image; must be unique to mean one file."""
    key = pd.MultiIndex.from_arrays([table["name"], table["id"]])
    if not key.is_unique:
        dup = key[key.duplicated()][:3].tolist()
        raise DataError(
            f"image ids are not unique within identities (e.g. {dup}: same file name, other extension); "
            "triplet CSVs name images by (name, id)"
        )
    return key


def triplets_frame(table: pd.DataFrame, triplets: np.ndarray) -> pd.DataFrame:
    """The reference CSV layout: anc_id,pos_id,neg_id,pos_class,neg_class,pos_name,neg_name."""
    _image_key(table)
    ids, classes, names = table["id"].to_numpy(), table["class"].to_numpy(), table["name"].to_numpy()
    a, p, n = triplets.T
    return pd.DataFrame(
        {
            "anc_id": ids[a],
            "pos_id": ids[p],
            "neg_id": ids[n],
            "pos_class": classes[a],
            "neg_class": classes[n],
            "pos_name": names[a],
            "neg_name": names[n],
        }
    )


def read_triplets_csv(path: str | os.PathLike, table: pd.DataFrame) -> np.ndarray:
    """Rows of `table` named by a reference triplet CSV ((name, id) pairs), as an (n, 3) array."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"triplet CSV {str(path)!r} does not exist")
    try:
        frame = pd.read_csv(
            path,
            dtype={c: str for c in ("anc_id", "pos_id", "neg_id", "pos_name", "neg_name")},
            keep_default_na=False,
            na_filter=False,
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read triplet CSV {path}: {err}") from None
    missing = set(CSV_COLUMNS) - set(frame.columns)
    if missing:
        raise DataError(f"{path} lacks the reference triplet columns {sorted(missing)}")
    key = _image_key(table)
    rows = []
    for col, name in (("anc_id", "pos_name"), ("pos_id", "pos_name"), ("neg_id", "neg_name")):
        idx = key.get_indexer(pd.MultiIndex.from_arrays([frame[name], frame[col]]))
        if (idx < 0).any():
            bad = frame.loc[idx < 0, [name, col]].head(5).to_numpy().tolist()
            raise DataError(f"{path}: {(idx < 0).sum()} images of column {col} are not in the index, e.g. {bad}")
        rows.append(idx)
    return np.stack(rows, axis=1)


class TripletSampler:
    """Batches of `triplets` (anchor, positive, negative) triplets laid out as [anchors | positives | negatives].

    Triplets are drawn per epoch from `(seed, epoch)` (reproducible, resumable), or read once from a reference
    CSV and cycled in file order.
    """

    layout = "triplets"

    def __init__(
        self,
        table: pd.DataFrame,
        triplets: int,
        triplets_per_epoch: int,
        csv: str | None,
        steps_per_epoch: int | None = None,
        seed: int = 0,
    ):
        """`steps_per_epoch` None: triplets_per_epoch // triplets."""
        if triplets < 1 or triplets_per_epoch < 1:
            raise ConfigError(
                f"batch.triplets and batch.triplets_per_epoch must be >= 1, got {triplets}, {triplets_per_epoch}"
            )
        self.index = ClassIndex(table["class"].to_numpy())
        self.b, self.seed = triplets, seed
        self.steps = steps_per_epoch or max(1, triplets_per_epoch // triplets)
        self.fixed = read_triplets_csv(csv, table) if csv else None

    @property
    def batch_size(self) -> int:
        return 3 * self.b

    def __len__(self) -> int:
        return self.steps * self.batch_size

    def epoch_triplets(self, epoch: int) -> np.ndarray:
        n = self.steps * self.b
        if self.fixed is None:
            return draw_triplets(self.index, n, np.random.default_rng([self.seed, epoch]))
        start = ((epoch - 1) * n) % len(self.fixed)
        return np.take(self.fixed, np.arange(start, start + n) % len(self.fixed), axis=0)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        t = self.epoch_triplets(epoch).reshape(self.steps, self.b, 3)
        return t.transpose(0, 2, 1).reshape(-1)  # per step: B anchors, B positives, B negatives
