"""Verification pairs in the LFW `pairs.txt` format, resolved against an identity-folder tree."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenet.data.index import IMAGE_EXTENSIONS
from facenet.data.sources import ImageFiles, ImageSource
from facenet.errors import DataError


@dataclass
class PairSet:
    """Pairs as indices into unique images (files, or a `.bin` set's encoded images), in file order (the official
    fold order)."""

    images: ImageSource
    left: np.ndarray
    right: np.ndarray
    issame: np.ndarray
    n_folds: int

    def __len__(self) -> int:
        return len(self.issame)

    @property
    def paths(self) -> list[str]:
        """The images' names: file paths, or `<set>.bin[<position>]`."""
        return [self.images.name(i) for i in range(len(self.images))]

    def fold_order(self, n_folds: int = 10) -> np.ndarray:
        """Permutation whose consecutive blocks are the evaluation folds.

        With a View 2 header (`folds pairs`) the file order already is the official fold order. Without one (View 1
        files, plain pair lists) same and different pairs are dealt round-robin into `n_folds` stratified folds,
        so every fold holds both kinds (consecutive blocks of "all same, then all different" would not).
        """
        if self.n_folds > 1:
            return np.arange(len(self))
        fold = np.empty(len(self), dtype=np.int64)
        for flag in (True, False):
            members = np.flatnonzero(self.issame == flag)
            fold[members] = np.arange(len(members)) % n_folds
        return np.lexsort((np.arange(len(self)), fold))

    def limit(self, max_pairs: int, n_folds: int = 10) -> PairSet:
        """At most `max_pairs` pairs: the first same and the first different pairs of every fold, equally many of
        each (the fold structure is kept); only the images these pairs use remain in `paths`."""
        k = self.n_folds if self.n_folds > 1 else n_folds
        per = max_pairs // (2 * k)
        if per < 1:
            raise DataError(f"eval.max_pairs={max_pairs} is too small for {k} folds of same and different pairs")
        keep = []
        for fold in np.array_split(self.fold_order(k), k):
            keep += [*fold[self.issame[fold]][:per], *fold[~self.issame[fold]][:per]]
        keep = np.array(keep)
        used, inverse = np.unique(np.r_[self.left[keep], self.right[keep]], return_inverse=True)
        return PairSet(self.images.subset(used), inverse[: len(keep)], inverse[len(keep) :], self.issame[keep], k)


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


def read_pairs(pairs_file: str | os.PathLike, root: str | os.PathLike) -> PairSet:
    """Parse `pairs_file` (header `folds pairs_per_class`, then `name i j` same pairs and `name1 i name2 j`
    different pairs) and resolve every image under `root` as `Name/Name_0001.<ext>`.

    Every pair is kept. A malformed line or a missing image is an error that names them all.
    """
    pairs_file, root = Path(pairs_file).expanduser(), Path(root).expanduser()
    if not pairs_file.is_file():
        raise DataError(f"pairs file {str(pairs_file)!r} does not exist")
    if not root.is_dir():
        raise DataError(f"evaluation root {str(root)!r} does not exist or is not a folder")
    lines = [(no, ln.split()) for no, ln in enumerate(pairs_file.read_text().splitlines(), start=1) if ln.strip()]
    if not lines:
        raise DataError(f"pairs file {pairs_file} is empty")
    header, body = lines[0][1], lines[1:]
    n_folds = 1
    if len(header) == 2 and all(t.isdigit() for t in header):  # View 2: folds, same (= different) pairs per fold
        n_folds, per_class = int(header[0]), int(header[1])
        expected = 2 * n_folds * per_class
    elif len(header) == 1 and header[0].isdigit():  # View 1: N same then N different pairs
        expected = 2 * int(header[0])
    else:  # no header: every line is a pair
        body, expected = lines, len(lines)
    if expected != len(body):
        raise DataError(
            f"{pairs_file}: header {' '.join(header)!r} announces {expected} pair lines, the file has {len(body)}"
        )
    index: dict[Path, int] = {}
    left, right, same, missing, bad, unsafe = [], [], [], [], [], []
    for lineno, tokens in body:
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
        ends = []
        for name, number in (a, b):
            path = _resolve(root, name, number)
            if path is None:
                missing.append(f"{name}/{name}_{number:04d}")
                continue
            ends.append(index.setdefault(path, len(index)))
        if len(ends) == 2:
            left.append(ends[0])
            right.append(ends[1])
            same.append(flag)
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
    if missing:
        unique = sorted(set(missing))
        raise DataError(
            f"{len(unique)} images named in {pairs_file} are missing under {root}: "
            + ", ".join(unique[:20])
            + (f" ... ({len(unique) - 20} more)" if len(unique) > 20 else "")
        )
    images = ImageFiles([str(p) for p in index])
    return PairSet(images, np.array(left), np.array(right), np.array(same, dtype=bool), n_folds)
