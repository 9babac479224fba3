"""Training sets from config: each option resolves to an identity table (`id,name,class` plus where each image is)
and the image source that reads it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from facenet.data.index import index_folder, read_index_csv
from facenet.data.sources import ImageFiles, ImageSource
from facenet.data.synthetic import generate_train

log = logging.getLogger(__name__)


def _files(table: pd.DataFrame) -> ImageSource:
    return ImageFiles(table["path"].tolist())


@dataclass
class TrainSet:
    table: pd.DataFrame  # columns id, name, class and, for folders, path; for RecordIO, record
    root: Path
    reader: Callable[[pd.DataFrame], ImageSource] = _files

    def images(self, table: pd.DataFrame | None = None) -> ImageSource:
        """The images of `table`'s rows (default: the whole set), in row order."""
        return self.reader(self.table if table is None else table)

    @property
    def num_identities(self) -> int:
        return int(self.table["class"].nunique())

    def __len__(self) -> int:
        return len(self.table)


class FolderDataset:
    """`root/<identity>/<image>`: VGGFace2, CASIA-WebFace, LFW and similar layouts (jpg, png, pgm, ...), indexed
    by scanning (cached in `cache_dir`) or read from the reference recipe's `index_csv`."""

    def __init__(self, root: str, cache_dir: str | None, index_csv: str | None):
        """`cache_dir` None: scan `root` every time."""
        self.root, self.index_csv, self.cache_dir = Path(root).expanduser(), index_csv, cache_dir

    def load(self, workers: int = 2) -> TrainSet:
        if self.index_csv:
            return TrainSet(read_index_csv(self.index_csv, self.root), self.root)
        return TrainSet(index_folder(self.root, self.cache_dir), self.root)


class SyntheticDataset:
    """Generated identities (facenet.data.synthetic), cached under `data_dir`."""

    def __init__(self, identities: int, images_per_identity: int, image_size: int, seed: int, data_dir: str):
        self.identities, self.images_per_identity = identities, images_per_identity
        self.image_size, self.seed, self.data_dir = image_size, seed, data_dir

    def load(self, workers: int = 2) -> TrainSet:
        root = generate_train(
            self.data_dir, self.identities, self.images_per_identity, self.image_size, self.seed, workers
        )
        return TrainSet(index_folder(root), root)


class RecordIODataset:
    """InsightFace's packed training sets (CASIA-WebFace, MS1MV2/V3, Glint360K, WebFace): a folder with `train.rec`,
    `train.idx` and `property` (or a `.rec` file), read record by record, without MXNet and without unpacking.
    Identities come from the file's identity records, else from a scan of the labels (cached in `cache_dir`)."""

    def __init__(self, path: str, cache_dir: str | None):
        self.path, self.cache_dir = path, cache_dir

    def load(self, workers: int = 2) -> TrainSet:
        from facenet.data.insightface import locate, read_property, record_table
        from facenet.data.recordio import RecordFile, RecordImages

        rec, idx, prop = locate(self.path)
        file = RecordFile(rec, idx)
        table = record_table(file, self.cache_dir)
        declared = read_property(prop)
        identities = int(table["class"].nunique())
        if declared is not None and declared[0] != identities:
            log.warning("%s declares %d identities; %s holds images of %d", prop, declared[0], rec.name, identities)
        log.info(
            "%s: %d image records of %d identities%s",
            rec,
            len(table),
            identities,
            f", {declared[1]}x{declared[2]} (property)" if declared else "",
        )
        return TrainSet(table, rec.parent, lambda rows: RecordImages(file, rows["record"].to_numpy()))
