"""Index an identity-per-folder tree (VGGFace2 / CASIA-WebFace / LFW layout) as a table, fast and cached."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from facenet.errors import DataError
from facenet.interrupts import partial_file

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".webp", ".tif", ".tiff")
COLUMNS = ["id", "name", "class", "path"]
PARTIAL_MARKER = "ALIGN_INCOMPLETE"  # written into an output folder by an interrupted `facenet align`
STRINGS = {"keep_default_na": False, "na_filter": False}  # a person or file called "NA" or "null" stays a string


def _identity_folders(root: Path) -> list[os.DirEntry]:
    if not root.is_dir():
        raise DataError(f"dataset root {str(root)!r} does not exist or is not a folder")
    with os.scandir(root) as entries:
        return sorted((e for e in entries if e.is_dir()), key=lambda e: e.name)


def _signature(root: Path, folders: list[os.DirEntry]) -> str:
    """Changes when an identity folder is added, removed, replaced or has files added/removed: folder inode, mtime
    and ctime (tools like `tar x` or `rsync -a` restore mtimes, but cannot restore ctimes)."""
    h = hashlib.sha1(str(root).encode())
    for e in folders:
        st = e.stat()
        h.update(f"{e.name}\0{st.st_ino}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0".encode())
    return h.hexdigest()


def _scan(root: Path, folders: list[os.DirEntry]) -> pd.DataFrame:
    names, stems, paths, empty = [], [], [], []
    for e in tqdm(folders, desc="indexing identities", unit="id", leave=False, disable=len(folders) < 1000):
        with os.scandir(e.path) as entries:
            files = sorted(f.name for f in entries if f.is_file() and f.name.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            empty.append(e.name)
        prefix = f"{root}{os.sep}{e.name}{os.sep}"
        names += [e.name] * len(files)
        stems += [os.path.splitext(f)[0] for f in files]
        paths += [prefix + f for f in files]
    if empty:
        shown = ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else "")
        log.warning("%d identity folders under %s hold no images and are ignored: %s", len(empty), root, shown)
    table = pd.DataFrame({"id": stems, "name": names, "path": paths})
    table.insert(2, "class", pd.factorize(table["name"], sort=True)[0])
    return table[COLUMNS]


def index_folder(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per image: `id` (file name without extension), `name` (identity folder), `class` (factorised sorted
    folder name), `path` (absolute): the reference recipe's `id,name,class` plus the path.

    Identities are sorted by name and images by file name, so a tree always gives the same table. With
    `cache_dir`, the table is stored as CSV keyed by the root and reused while no identity folder changed
    (checked through the folders' modification times: one `stat` per identity, not per image).
    """
    root = Path(root).expanduser().resolve()
    if (root / PARTIAL_MARKER).is_file():
        raise DataError(
            f"{root} is a partial alignment (facenet align was interrupted: {root / PARTIAL_MARKER}); "
            "run facenet align again to finish it"
        )
    folders = _identity_folders(root)
    cache = None
    if cache_dir is not None and folders:
        cache = Path(cache_dir).expanduser() / f"index-{_signature(root, folders)[:16]}.csv"
        if cache.is_file():
            return pd.read_csv(cache, dtype={"id": str, "name": str, "class": np.int64, "path": str}, **STRINGS)
    table = _scan(root, folders)
    if table.empty:
        raise DataError(
            f"no images found under {str(root)!r}: expected one sub-folder of images per identity "
            f"(extensions {', '.join(IMAGE_EXTENSIONS)})"
        )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with partial_file(cache) as tmp:  # interrupted: no half-written index is left to be read back
            table.to_csv(tmp, index=False)
    return table


def read_index_csv(csv: str | os.PathLike, root: str | os.PathLike) -> pd.DataFrame:
    """Read the reference recipe's `id,name,class` CSV; images are `root/name/id.<ext>`, the extension found on the
    first row (a tree mixing extensions needs `index_folder` instead)."""
    csv, root = Path(csv).expanduser(), Path(root).expanduser().resolve()
    if not csv.is_file():
        raise DataError(f"index CSV {str(csv)!r} does not exist")
    try:
        table = pd.read_csv(csv, dtype={"id": str, "name": str}, **STRINGS)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read index CSV {csv}: {err}") from None
    missing = {"id", "name", "class"} - set(table.columns)
    if missing or table.empty:
        raise DataError(f"{csv} needs columns id,name,class and at least one row; missing {sorted(missing)}")
    first = root / table["name"].iloc[0] / table["id"].iloc[0]
    ext = next((x for x in IMAGE_EXTENSIONS if first.with_name(first.name + x).is_file()), None)
    if ext is None:
        raise DataError(f"{csv}: first image {first}.* not found under {root} (extensions {IMAGE_EXTENSIONS})")
    classes = pd.to_numeric(table["class"], errors="coerce")
    if classes.isna().any() or (classes != classes.round()).any():
        raise DataError(f"{csv}: column class must hold integers; bad rows: {table.index[classes.isna()][:5].tolist()}")
    table["class"] = classes.astype(np.int64)
    table["path"] = str(root) + os.sep + table["name"] + os.sep + table["id"] + ext
    return table[COLUMNS]
