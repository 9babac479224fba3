"""Where images come from: files on disk, encoded images held in memory (a `.bin` verification set), or records of
a RecordIO file (facenet/data/recordio.py). The input pipelines read image `i` of a source and never care which.

A source reads from several worker threads at once: `read` must be thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from facenet.data.images import decode_image, read_image


class ImageSource(Protocol):
    def __len__(self) -> int: ...

    def read(self, i: int) -> np.ndarray:
        """Image `i` as RGB uint8 HxWx3; DataError if it cannot be read or decoded."""

    def name(self, i: int) -> str:
        """What reports and error messages call image `i` (a path, `lfw.bin[12]`, `train.rec record 7`)."""

    def subset(self, indices: Sequence[int]) -> ImageSource:
        """The images at `indices`, in that order."""


class ImageFiles:
    """Image files by path."""

    def __init__(self, paths: Sequence[str]):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> np.ndarray:
        return read_image(self.paths[i])

    def name(self, i: int) -> str:
        return self.paths[i]

    def subset(self, indices: Sequence[int]) -> ImageFiles:
        return ImageFiles([self.paths[i] for i in indices])


class EncodedImages:
    """Encoded images (JPEG, PNG, ... bytes) held in memory, named `<label>[<position>]` after their origin."""

    def __init__(self, blobs: Sequence[bytes], label: str, positions: Sequence[int] | None = None):
        self.blobs, self.label = list(blobs), label
        self.positions = list(range(len(self.blobs))) if positions is None else list(positions)

    def __len__(self) -> int:
        return len(self.blobs)

    def read(self, i: int) -> np.ndarray:
        return decode_image(self.blobs[i], self.name(i))

    def name(self, i: int) -> str:
        return f"{self.label}[{self.positions[i]}]"

    def subset(self, indices: Sequence[int]) -> EncodedImages:
        return EncodedImages([self.blobs[i] for i in indices], self.label, [self.positions[i] for i in indices])
