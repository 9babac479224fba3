"""Training sets from config: each option resolves to an identity table (`id,name,class,path`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from facenet.data.index import index_folder, read_index_csv
from facenet.data.synthetic import generate_train

log = logging.getLogger(__name__)


@dataclass
class TrainSet:
    table: pd.DataFrame  # columns id, name, class, path
    root: Path

    @property
    def num_identities(self) -> int:
        return int(self.table["class"].nunique())

    def __len__(self) -> int:
        return len(self.table)


class FolderDataset:
    """`root/<identity>/<image>`: VGGFace2, CASIA-WebFace, LFW and similar layouts (jpg, png, pgm, ...), indexed
    by scanning (cached in `cache_dir`) or read from the reference recipe's `index_csv`."""

    def __init__(self, root: str, cache_dir: str | None, index_csv: str | None = None):
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
