"""Index an identity-per-folder tree (VGGFace2 / CASIA-WebFace / LFW layout) as a table."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from facenet.errors import DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".webp", ".tif", ".tiff")


def index_folder(root: str | os.PathLike) -> pd.DataFrame:
    """One row per image: `id` (row number), `name` (folder), `class` (factorised sorted folder name), `path`.

    Columns follow the reference recipe's CSV (`id,name,class`) plus the absolute path. Identities are sorted by
    name and images by file name, so the same tree always gives the same table.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset root {str(root)!r} does not exist or is not a folder")
    names, paths = [], []
    empty = []
    with os.scandir(root) as entries:
        folders = sorted(e.name for e in entries if e.is_dir())
    for name in tqdm(folders, desc="indexing identities", unit="id", leave=False, disable=len(folders) < 1000):
        with os.scandir(root / name) as entries:
            files = sorted(e.name for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            empty.append(name)
        names += [name] * len(files)
        paths += [str((root / name / f).resolve()) for f in files]
    if not paths:
        raise DataError(
            f"no images found under {str(root)!r}: expected one sub-folder of images per identity "
            f"(extensions {', '.join(IMAGE_EXTENSIONS)})"
        )
    if empty:
        log.warning(
            "%d identity folders under %s hold no images and are ignored: %s",
            len(empty),
            root,
            ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else ""),
        )
    table = pd.DataFrame({"name": names, "path": paths})
    table.insert(0, "id", range(len(table)))
    table.insert(2, "class", pd.factorize(table["name"], sort=True)[0])
    return table


def save_index(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write the index as CSV (`id,name,class,path`)."""
    table.to_csv(path, index=False)
