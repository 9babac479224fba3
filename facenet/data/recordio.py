"""MXNet RecordIO, read and written without MXNet: the container of InsightFace's training sets (CASIA-WebFace,
MS1MV2/MS1MV3, Glint360K, WebFace as `train.rec` + `train.idx` + `property`).

The container (dmlc-core `recordio.h`): every record is `uint32 magic 0xced7230a`, `uint32 lrecord` (lower 29 bits:
the length of this part; upper 3 bits: 0 whole record, 1 first, 2 middle, 3 last part), the part's bytes, zero
padding to a multiple of 4. A writer splits a record wherever its data holds the magic at a 4-aligned position
(the magic itself is dropped and put back between the parts on reading). `train.idx` holds `key<TAB>offset` lines.

The image record (MXNet `recordio.pack`): header `uint32 flag, float32 label, uint64 id, uint64 id2` (24 bytes,
little-endian); flag > 0 means `flag` float32 labels follow the header (and the label field is 0); the encoded image
fills the rest. InsightFace's record 0 has labels `[a, b]`: images are records 1..a-1, and, when records a..b-1 exist,
each of them is an identity with labels `[first, end)`: the range of its image records.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facenet.data.images import decode_image
from facenet.errors import DataError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
LENGTH_BITS = 29
MAX_PART = (1 << LENGTH_BITS) - 1
IMAGE_HEADER = struct.Struct("<IfQQ")  # flag, label, id, id2
WHOLE, FIRST, MIDDLE, LAST = 0, 1, 2, 3


def _padded(n: int) -> int:
    return (n + 3) & ~3


# ---------------------------------------------------------------- the container
def encode_record(data: bytes) -> bytes:
    """One record as dmlc-core's `RecordIOWriter::WriteRecord` writes it (split around 4-aligned magics)."""
    if len(data) > MAX_PART:
        raise DataError(f"a RecordIO record holds less than 2^29 bytes; this one has {len(data)}")
    out, start = [], 0
    for i in range(0, len(data) - 3, 4):
        if data[i : i + 4] == MAGIC_BYTES:
            out.append(struct.pack("<II", MAGIC, ((FIRST if start == 0 else MIDDLE) << LENGTH_BITS) | (i - start)))
            out.append(data[start:i])
            start = i + 4
    out.append(struct.pack("<II", MAGIC, ((LAST if start else WHOLE) << LENGTH_BITS) | (len(data) - start)))
    out.append(data[start:])
    out.append(b"\0" * (_padded(len(data)) - len(data)))
    return b"".join(out)


@dataclass(frozen=True)
class ImageRecord:
    flag: int
    labels: np.ndarray  # float32: one label (flag 0), or the `flag` labels that follow the header
    id: int
    id2: int
    image: bytes


def pack_image(labels: float | Sequence[float], image: bytes, record_id: int, id2: int = 0) -> bytes:
    """An image record's payload, as MXNet's `recordio.pack(IRHeader(flag, label, id, id2), image)` makes it."""
    if np.ndim(labels) == 0:
        return IMAGE_HEADER.pack(0, float(labels), record_id, id2) + image
    values = np.asarray(labels, dtype="<f4")
    return IMAGE_HEADER.pack(values.size, 0.0, record_id, id2) + values.tobytes() + image


def unpack_image(payload: bytes, where: str) -> ImageRecord:
    """The inverse of `pack_image`; DataError naming `where` if the payload is too short for its header."""
    if len(payload) < IMAGE_HEADER.size:
        raise DataError(f"{where}: {len(payload)} bytes, shorter than an image record header ({IMAGE_HEADER.size})")
    flag, label, record_id, id2 = IMAGE_HEADER.unpack_from(payload)
    start = IMAGE_HEADER.size + 4 * flag
    if flag == 0:
        return ImageRecord(0, np.array([label], np.float32), record_id, id2, payload[IMAGE_HEADER.size :])
    if len(payload) < start:
        raise DataError(f"{where}: header announces {flag} labels, the record is too short for them")
    labels = np.frombuffer(payload, "<f4", flag, IMAGE_HEADER.size).astype(np.float32)
    return ImageRecord(flag, labels, record_id, id2, payload[start:])


class RecordFile:
    """Random access to the records of a `.rec` through its `.idx`: reads with `os.pread` (thread-safe, nothing
    held in memory but the index), so a multi-gigabyte file costs what the batches read."""

    def __init__(self, rec: str | os.PathLike, idx: str | os.PathLike):
        self.rec, self.idx, self._fd = Path(rec), Path(idx), None
        if not self.rec.is_file():
            raise DataError(f"RecordIO file {str(self.rec)!r} does not exist")
        if not self.idx.is_file():
            raise DataError(
                f"{self.rec} has no index {self.idx.name} beside it: random access needs the "
                f"`key<TAB>offset` file written with it (facenet pack writes both)"
            )
        self.keys, self.offsets = _read_idx(self.idx)
        self._dense = bool(np.array_equal(self.keys, np.arange(len(self.keys))))  # keys 0..n-1: offsets[key]
        if not self._dense:  # any other keys: looked up by binary search, no per-key Python objects
            order = np.argsort(self.keys, kind="stable")
            self.keys, self.offsets = self.keys[order], self.offsets[order]
        self.size = self.rec.stat().st_size
        self._fd = os.open(self.rec, os.O_RDONLY)
        self._check_complete()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.close()

    def __len__(self) -> int:
        return len(self.keys)

    def _position(self, key: int) -> int | None:
        if self._dense:
            return int(key) if 0 <= key < len(self.keys) else None
        i = int(np.searchsorted(self.keys, key))
        return i if i < len(self.keys) and self.keys[i] == key else None

    def __contains__(self, key: int) -> bool:
        return self._position(key) is not None

    def offset(self, key: int) -> int:
        i = self._position(key)
        if i is None:
            raise DataError(f"{self.rec}: no record {key} in {self.idx.name}")
        return int(self.offsets[i])

    def _check_complete(self) -> None:
        """A truncated file: records the index places past its end, or a last record cut short."""
        beyond = int((self.offsets + 8 > self.size).sum())
        if beyond:
            raise DataError(
                f"{self.rec} is truncated: {self.size} bytes, but {self.idx.name} places {beyond} of "
                f"{len(self.offsets)} records beyond its end (an interrupted copy or "
                "download?)"
            )
        if len(self.offsets):
            last = int(self.offsets.max())
            _, length = self._part(last, f"{self.rec} record at offset {last}")
            if last + 8 + length > self.size:
                raise DataError(
                    f"{self.rec} is truncated: its last record (offset {last}) needs "
                    f"{last + 8 + length} bytes, the file has {self.size}"
                )

    def _part(self, pos: int, where: str) -> tuple[int, int]:
        head = os.pread(self._fd, 8, pos)
        if len(head) < 8:
            raise DataError(f"{where}: file ends inside the record header (truncated .rec)")
        magic, lrecord = struct.unpack("<II", head)
        if magic != MAGIC:
            raise DataError(
                f"{where}: no RecordIO magic at offset {pos} (found 0x{magic:08x}): corrupt record "
                "or an index that does not belong to this file"
            )
        return lrecord >> LENGTH_BITS, lrecord & MAX_PART

    def read(self, key: int, head: int | None = None) -> bytes:
        """Record `key`'s data (its parts joined). `head`: the first `head` bytes are enough (a label scan): read
        only those when the first part holds them."""
        pos = self.offset(key)
        where = f"{self.rec} record {key}"
        parts: list[bytes] = []
        while True:
            flag, length = self._part(pos, where)
            if flag > LAST or (flag in (WHOLE, FIRST)) != (not parts):
                raise DataError(f"{where}: continuation flag {flag} out of sequence (corrupt record)")
            if pos + 8 + length > self.size:  # checked before reading: a corrupt length allocates nothing
                raise DataError(
                    f"{where}: a part of {length} bytes at offset {pos} runs past the end of the file "
                    "(corrupt record or truncated .rec)"
                )
            n = head if head is not None and not parts and length >= head else length
            data = os.pread(self._fd, n, pos + 8)
            if len(data) < n:
                raise DataError(f"{where}: file ends inside the record (truncated .rec)")
            if n < length:
                return data
            parts.append(data)
            if flag in (WHOLE, LAST):
                return MAGIC_BYTES.join(parts)
            pos += 8 + _padded(length)


def _read_idx(idx: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        table = pd.read_csv(idx, sep="\t", header=None, names=["key", "offset"], dtype=np.int64)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{idx}: not a RecordIO index (`key<TAB>offset` lines): {err}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{idx} is empty: no records") from None
    if (table["offset"] < 0).any() or table["key"].duplicated().any():
        raise DataError(f"{idx}: negative offsets or repeated keys: not a RecordIO index")
    return table["key"].to_numpy(), table["offset"].to_numpy()


class RecordImages:
    """The image records `keys` of a RecordFile, decoded with OpenCV (an ImageSource)."""

    def __init__(self, file: RecordFile, keys: Sequence[int]):
        self.file, self.keys = file, np.asarray(keys, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.keys)

    def read(self, i: int) -> np.ndarray:
        where = self.name(i)
        return decode_image(unpack_image(self.file.read(int(self.keys[i])), where).image, where)

    def name(self, i: int) -> str:
        return f"{self.file.rec} record {int(self.keys[i])}"

    def subset(self, indices: Sequence[int]) -> RecordImages:
        return RecordImages(self.file, self.keys[np.asarray(indices, dtype=np.int64)])


class RecordWriter:
    """Writes records and their `.idx` lines (`key<TAB>offset`), as MXNet's `MXIndexedRecordIO` does."""

    def __init__(self, rec, idx):
        self._rec, self._idx, self.offset = open(rec, "wb"), open(idx, "w"), 0

    def write(self, key: int, payload: bytes) -> None:
        record = encode_record(payload)
        self._idx.write(f"{key}\t{self.offset}\n")
        self._rec.write(record)
        self.offset += len(record)

    def close(self) -> None:
        self._rec.close()
        self._idx.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
