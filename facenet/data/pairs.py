"""Verification pairs in the LFW `pairs.txt` format, resolved against an identity-folder tree.

A pair's fold is a property of its line: LFW View 2 (`10 300` header) puts lines 600k .. 600k + 599 in fold k, a
`.bin` set is 10 consecutive blocks. Folds are carried per pair (`PairSet.fold`), so leaving out pairs whose images
are missing (`missing="skip"`) or limiting the pairs (`max_pairs`) moves no other pair into another fold.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenet.data.index import IMAGE_EXTENSIONS
from facenet.data.sources import ImageFiles, ImageSource
from facenet.errors import DataError
from facenet.metrics.verification import consecutive_folds

log = logging.getLogger(__name__)

MISSING = ("fail", "skip")  # what read_pairs does with pairs whose images are not there


@dataclass
class PairSet:
    """Pairs as indices into unique images (files, or a `.bin` set's encoded images), in file order.

    `n_folds` > 1: the file defines that many folds and `fold` holds each pair's (0-based; default: consecutive
    blocks). `n_folds` == 1: the file defines none (LFW View 1, plain pair lists) and stratified folds are dealt
    when scoring. `skipped` pairs were left out because an image they need is missing (`missing_images`)."""

    images: ImageSource
    left: np.ndarray
    right: np.ndarray
    issame: np.ndarray
    n_folds: int
    fold: np.ndarray | None = None
    skipped: int = 0
    missing_images: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.n_folds > 1 and self.fold is None:
            self.fold = consecutive_folds(len(self.issame), self.n_folds)
        if self.fold is not None:
            self.fold = np.asarray(self.fold, dtype=np.int64)
            if self.fold.shape != self.issame.shape:
                raise ValueError(f"{len(self.fold)} fold labels for {len(self.issame)} pairs")

    def __len__(self) -> int:
        return len(self.issame)

    @property
    def paths(self) -> list[str]:
        """The images' names: file paths, or `<set>.bin[<position>]`."""
        return [self.images.name(i) for i in range(len(self.images))]

    def fold_count(self, default: int = 10) -> int:
        """The number of folds to score with: the file's, else `default`."""
        return self.n_folds if self.n_folds > 1 else default

    def folds(self, n_folds: int = 10) -> np.ndarray:
        """Each pair's fold (0-based).

        The file's folds when it defines them (`fold`). Without (View 1 files, plain pair lists) same and different
        pairs are dealt round-robin into `n_folds` stratified folds, so every fold holds both kinds (consecutive
        blocks of "all same, then all different" would not)."""
        if self.fold is not None:
            return self.fold
        fold = np.empty(len(self), dtype=np.int64)
        for flag in (True, False):
            members = np.flatnonzero(self.issame == flag)
            fold[members] = np.arange(len(members)) % n_folds
        return fold

    def fold_order(self, n_folds: int = 10) -> np.ndarray:
        """Permutation grouping the pairs fold by fold (file order within a fold): the order of `scores.csv`."""
        return np.argsort(self.folds(n_folds), kind="stable")

    def limit(self, max_pairs: int, n_folds: int = 10) -> PairSet:
        """At most `max_pairs` pairs: the first same and the first different pairs of every fold, equally many of
        each (the fold structure is kept); only the images these pairs use remain in `paths`."""
        k = self.fold_count(n_folds)
        per = max_pairs // (2 * k)
        if per < 1:
            raise DataError(f"eval.max_pairs={max_pairs} is too small for {k} folds of same and different pairs")
        folds = self.folds(k)
        keep = []
        for f in range(k):
            members = np.flatnonzero(folds == f)
            keep += [*members[self.issame[members]][:per], *members[~self.issame[members]][:per]]
        keep = np.array(keep)
        used, inverse = np.unique(np.r_[self.left[keep], self.right[keep]], return_inverse=True)
        return PairSet(
            self.images.subset(used),
            inverse[: len(keep)],
            inverse[len(keep) :],
            self.issame[keep],
            k,
            folds[keep],
            self.skipped,
            self.missing_images,
        )


def _folder_name(name: str) -> bool:
    """A pair file's name is one folder directly under the root: no separator, no '..', not absolute."""
    return name not in ("", ".", "..") and not any(sep in name for sep in ("/", "\\", "\0"))


def _resolve(root: Path, name: str, number: int) -> Path | None:
    stem = root / name / f"{name}_{number:04d}"
    for ext in IMAGE_EXTENSIONS:
        for candidate in (stem.with_suffix(ext), stem.with_suffix(ext.upper())):
            if candidate.is_file():
                return candidate
    return None


def _listed(names: list[str], limit: int = 20) -> str:
    return ", ".join(names[:limit]) + (f" ... ({len(names) - limit} more)" if len(names) > limit else "")


def read_pairs(
    pairs_file: str | os.PathLike, root: str | os.PathLike, missing: str = "fail", setting: str | None = None
) -> PairSet:
    """Parse `pairs_file` (header `folds pairs_per_class`, then `name i j` same pairs and `name1 i name2 j`
    different pairs) and resolve every image under `root` as `Name/Name_0001.<ext>`.

    A malformed line is an error that names them all. A missing image is too (`missing="fail"`), or the pairs that
    need it are left out (`"skip"`: counted in `skipped`, the images in `missing_images`, warned about); the pairs
    that remain keep the folds of their lines, and a fold left without a same or a different pair is refused.
    `setting`: the config key that chooses `missing` (e.g. "eval.missing"), named in the messages.
    """
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")
    pairs_file, root = Path(pairs_file).expanduser(), Path(root).expanduser()
    if not pairs_file.is_file():
        raise DataError(f"pairs file {str(pairs_file)!r} does not exist")
    if not root.is_dir():
        raise DataError(f"evaluation root {str(root)!r} does not exist or is not a folder")
    lines = [(no, ln.split()) for no, ln in enumerate(pairs_file.read_text().splitlines(), start=1) if ln.strip()]
    if not lines:
        raise DataError(f"pairs file {pairs_file} is empty")
    header, body = lines[0][1], lines[1:]
    n_folds, per_fold = 1, 0
    if len(header) == 2 and all(t.isdigit() for t in header):  # View 2: folds, same (= different) pairs per fold
        n_folds, per_class = int(header[0]), int(header[1])
        expected = 2 * n_folds * per_class
        per_fold = 2 * per_class if n_folds > 1 else 0  # `1 N` (one held-out fold): no folds to keep, dealt later
    elif len(header) == 1 and header[0].isdigit():  # View 1: N same then N different pairs
        expected = 2 * int(header[0])
    else:  # no header: every line is a pair
        body, expected = lines, len(lines)
    if expected != len(body):
        raise DataError(
            f"{pairs_file}: header {' '.join(header)!r} announces {expected} pair lines, the file has {len(body)}"
        )
    index: dict[Path, int] = {}
    left, right, same, fold, missing_names, bad, unsafe = [], [], [], [], [], [], []
    skipped = 0
    for position, (lineno, tokens) in enumerate(body):
        try:
            if len(tokens) == 3:
                a, b, flag = (tokens[0], int(tokens[1])), (tokens[0], int(tokens[2])), True
            elif len(tokens) == 4:
                a, b, flag = (tokens[0], int(tokens[1])), (tokens[2], int(tokens[3])), False
            else:
                raise ValueError
        except ValueError:
            bad.append(f"line {lineno}: {' '.join(tokens)!r}")
            continue
        if not all(_folder_name(name) for name in {a[0], b[0]}):
            unsafe.append(f"line {lineno}: {' '.join(tokens)!r}")
            continue
        ends = [_resolve(root, name, number) for name, number in (a, b)]
        gone = [f"{name}/{name}_{number:04d}" for (name, number), path in zip((a, b), ends, strict=True) if not path]
        if gone:
            missing_names += gone
            skipped += 1
            continue
        left.append(index.setdefault(ends[0], len(index)))
        right.append(index.setdefault(ends[1], len(index)))
        same.append(flag)
        if per_fold:
            fold.append(position // per_fold)  # the line's fold, whatever was left out before it
    if bad:
        raise DataError(
            f"{pairs_file}: {len(bad)} malformed pair lines (expected 3 or 4 tokens): "
            + "; ".join(bad[:10])
            + (" ..." if len(bad) > 10 else "")
        )
    if unsafe:
        raise DataError(
            f"{pairs_file}: {len(unsafe)} pair lines name a path, not an identity folder under {root} (a name may not "
            "contain '/', '\\' or be '..'): " + "; ".join(unsafe[:10]) + (" ..." if len(unsafe) > 10 else "")
        )
    unique = sorted(set(missing_names))
    key = setting or "missing"
    if unique and missing == "fail":
        hint = f"; fix the tree or the root, or leave out the {skipped} pairs that need them with {key}=skip"
        raise DataError(
            f"{len(unique)} images named in {pairs_file} are missing under {root}: {_listed(unique)}"
            + (hint if setting else "")
        )
    images = ImageFiles([str(p) for p in index])
    pairs = PairSet(
        images,
        np.array(left, dtype=np.int64),
        np.array(right, dtype=np.int64),
        np.array(same, dtype=bool),
        n_folds,
        np.array(fold, dtype=np.int64) if per_fold else None,
        skipped,
        tuple(unique),
    )
    if unique:
        log.warning(
            "%s=skip: %d images named in %s are missing under %s (%s); the %d of its %d pairs that need them are "
            "left out, the others keep their folds",
            key,
            len(unique),
            pairs_file,
            root,
            _listed(unique, 5),
            skipped,
            len(body),
        )
        why = (
            f"{key}=skip: {skipped} of the {len(body)} pairs of {pairs_file} need the {len(unique)} images missing "
            f"under {root} ({_listed(unique, 5)})"
        )
        _check_folds(pairs, pairs.fold_count(), why)
    return pairs


def _check_folds(pairs: PairSet, n_folds: int, why: str) -> None:
    """Refuse, in one line starting with `why`, a fold left without a same or a different pair."""
    folds = pairs.folds(n_folds)
    for k in range(n_folds):
        same = int(pairs.issame[folds == k].sum())
        different = int((folds == k).sum()) - same
        if not same or not different:
            kept = "no pair" if not same + different else f"{same} same and {different} different pairs"
            raise DataError(
                f"{why}: fold {k} (of 0-{n_folds - 1}, as scores.csv numbers them) keeps {kept}, too few to score "
                "it; restore the images"
            )
