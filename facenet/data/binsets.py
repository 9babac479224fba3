"""InsightFace's verification sets (`lfw.bin`, `cfp_fp.bin`, `agedb_30.bin`, ...): a pickled `(images, issame)`,
`images` holding 2 x N encoded images (pair i is images 2i and 2i+1) and `issame` N flags. The official files are
10 folds of consecutive pairs (LFW: 10 x 600, in `pairs.txt` order).

Unpickling can run any code a file asks for, so `.bin` files are read by a restricted unpickler that builds only
what such files hold: bytes, lists, tuples, bools, numbers and numpy arrays; anything else is refused, unrun.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from facenet.data.images import portable_bytes
from facenet.data.pairs import PairSet, read_pairs
from facenet.data.sources import EncodedImages
from facenet.errors import DataError
from facenet.interrupts import partial_file

# the only globals a .bin may name: how Python 3 pickles bytes at protocols 0-2, and how numpy pickles its arrays,
# dtypes and scalars (numpy 1.x and 2.x module names)
ALLOWED_GLOBALS = {
    ("_codecs", "encode"),
    ("builtins", "bytearray"),
    ("__builtin__", "bytearray"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    *((f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("_reconstruct", "scalar")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
}
FOLDS = 10


class _Refused(pickle.UnpicklingError):
    pass


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise _Refused(f"refused to load {module}.{name}: a .bin verification set holds only image bytes, pair "
                       "flags and numpy arrays (unpickling anything else could run code)")  # fmt: skip


def safe_load(data: bytes, where: str):
    """Unpickle `data` with only ALLOWED_GLOBALS; Python 2 strings come back as bytes. DataError otherwise."""
    try:
        return _Restricted(io.BytesIO(data), encoding="bytes").load()
    except _Refused as err:
        raise DataError(f"{where}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            ImportError, MemoryError, OverflowError, struct.error) as err:  # fmt: skip
        raise DataError(f"{where}: not a pickled verification set ({type(err).__name__}: {err})") from None


def _image_bytes(entry, i: int, where: str) -> bytes:
    if isinstance(entry, bytes | bytearray):
        return bytes(entry)
    if isinstance(entry, np.ndarray) and entry.dtype == np.uint8 and entry.ndim == 1:
        return entry.tobytes()
    shape = f" of shape {entry.shape}, dtype {entry.dtype}" if isinstance(entry, np.ndarray) else ""
    raise DataError(f"{where}: image {i} is a {type(entry).__name__}{shape}; expected encoded image bytes (bytes or "
                    "a 1-D uint8 array)")  # fmt: skip


def _flags(values, where: str) -> np.ndarray:
    flags = np.asarray(values)
    if flags.ndim != 1 or not (flags.dtype == bool or np.issubdtype(flags.dtype, np.integer)):
        raise DataError(f"{where}: the pair flags are {type(values).__name__} of {flags.dtype}; expected a list or "
                        "array of bools")  # fmt: skip
    if np.issubdtype(flags.dtype, np.integer) and not np.isin(flags, (0, 1)).all():
        raise DataError(f"{where}: pair flags must be true/false (or 1/0)")
    return flags.astype(bool)


def read_bin(path: str | os.PathLike) -> PairSet:
    """A `.bin` verification set as pairs over its unique images (an image repeated in several pairs, as LFW's
    are, is embedded once), in pair order, with 10 consecutive folds."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"verification set {str(path)!r} does not exist")
    where = str(path)
    obj = safe_load(path.read_bytes(), where)
    if not isinstance(obj, tuple | list) or len(obj) != 2:
        raise DataError(f"{where}: expected a pickled (images, issame) pair, got {type(obj).__name__}"
                        + (f" of length {len(obj)}" if isinstance(obj, tuple | list) else ""))  # fmt: skip
    images, flags = obj
    if not isinstance(images, list | tuple | np.ndarray):
        raise DataError(f"{where}: images are a {type(images).__name__}; expected a list of encoded images")
    issame = _flags(flags, where)
    if len(images) != 2 * len(issame) or len(issame) == 0:
        raise DataError(f"{where}: {len(images)} images for {len(issame)} pairs; expected two images per pair")
    unique: dict[bytes, int] = {}
    positions, index = [], np.empty(len(images), np.int64)
    for i, entry in enumerate(images):
        data = _image_bytes(entry, i, where)
        if data not in unique:
            unique[data] = len(unique)
            positions.append(i)
        index[i] = unique[data]
    source = EncodedImages(list(unique), path.name, positions)
    return PairSet(source, index[0::2], index[1::2], issame, FOLDS)


def pack_pairs(root: str | os.PathLike, pairs_file: str | os.PathLike, out: str | os.PathLike) -> tuple[int, int]:
    """A `pairs.txt` over identity folders as a `.bin` (pickle protocol 4), pairs in file order; JPEG and PNG
    files byte for byte, other formats as lossless PNG. Returns (pairs, re-encoded images)."""
    pairs = read_pairs(pairs_file, root)
    if pairs.n_folds != FOLDS:
        raise DataError(f"{pairs_file}: a .bin is read as {FOLDS} consecutive folds; this file has "
                        f"{'no fold header' if pairs.n_folds == 1 else f'{pairs.n_folds} folds'} (expected a "
                        f"`{FOLDS} N` first line, as LFW's View 2)")  # fmt: skip
    encoded = [portable_bytes(p) for p in pairs.paths]
    blobs = []
    for a, b in zip(pairs.left, pairs.right, strict=True):
        blobs += [encoded[a][0], encoded[b][0]]
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    with partial_file(out) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump((blobs, [bool(s) for s in pairs.issame]), f, protocol=4)
    return len(pairs), sum(converted for _, converted in encoded)
