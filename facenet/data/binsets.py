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
from facenet.metrics.verification import consecutive_folds

FOLDS = 10
# numpy's own reconstructors build whatever dtype a file describes (an object dtype whose flags the file rewrites
# turns raw bytes into pointers), so the numpy names a .bin may use resolve to the stand-ins below, which build
# arrays of plain numeric dtypes from their bytes and nothing else
PLAIN_DTYPES = ("b1", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8")
TEXT_ENCODINGS = ("latin1", "latin-1", "utf-8", "utf8", "ascii")


class _Refused(pickle.UnpicklingError):
    pass


def _text(value) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else value


class _Dtype:
    """numpy.dtype(name, align, copy) and its state: a plain numeric dtype in either byte order, or refused."""

    def __init__(self, name, align=False, copy=True):
        name = _text(name)
        if name not in PLAIN_DTYPES:
            raise _Refused(
                f"refused numpy dtype {name!r}: a .bin holds only plain numeric arrays ({', '.join(PLAIN_DTYPES)})"
            )
        self.dtype = np.dtype(name)

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 5 or any(x is not None for x in state[2:5]):
            raise _Refused("refused a numpy dtype with fields or sub-arrays: a .bin holds only plain numeric arrays")
        order = _text(state[1])
        if order not in ("<", ">", "|", "="):
            raise _Refused(f"refused numpy byte order {order!r}")
        if order in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(order)


def _array(data, dtype, shape, fortran: bool = False) -> np.ndarray:
    """An array of a _Dtype from its raw bytes, which must be exactly its size."""
    if not isinstance(dtype, _Dtype):
        raise _Refused("refused an array whose dtype is not a plain numpy dtype")
    if isinstance(data, str):  # Python 2 pickles read as text by older tools
        data = data.encode("latin1")
    if not isinstance(data, bytes | bytearray) or not isinstance(shape, tuple | list):
        raise _Refused("refused a numpy array without raw bytes and a shape")
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise _Refused(f"refused a numpy array of shape {shape!r}")
    if len(data) != int(np.prod(shape, dtype=np.int64)) * dtype.dtype.itemsize:
        raise _Refused(f"a numpy array of shape {tuple(shape)} and dtype {dtype.dtype} has {len(data)} bytes")
    return np.frombuffer(bytes(data), dtype.dtype).reshape(tuple(shape), order="F" if fortran else "C")


class _Array:
    """numpy.core.multiarray._reconstruct(ndarray, ...) and its state (version, shape, dtype, fortran, data)."""

    array: np.ndarray | None = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise _Refused("refused a numpy array state that is not (version, shape, dtype, fortran, data)")
        _, shape, dtype, fortran, data = state
        self.array = _array(data, dtype, shape, bool(fortran))


_NDARRAY = object()  # what `numpy.ndarray` resolves to: only _reconstruct accepts it


def _reconstruct(cls, shape, typecode) -> _Array:
    if cls is not _NDARRAY:
        raise _Refused("refused numpy _reconstruct of a class other than ndarray")
    return _Array()


def _scalar(dtype, data=b""):
    return _array(data, dtype, ())[()]


def _frombuffer(data, dtype, shape, order="C"):
    return _array(data, dtype, shape, _text(order) == "F")


def _encode(text, encoding="utf-8") -> bytes:
    """`_codecs.encode(str, "latin1")`: how Python 3 pickles bytes at protocols 0-2."""
    if not isinstance(text, str) or _text(encoding).lower() not in TEXT_ENCODINGS:
        raise _Refused(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode(_text(encoding))


def _bytearray(data=b"", encoding=None) -> bytearray:
    if isinstance(data, str) and encoding is not None and _text(encoding).lower() in TEXT_ENCODINGS:
        return bytearray(data.encode(_text(encoding)))
    if isinstance(data, bytes | bytearray) and encoding is None:
        return bytearray(data)
    raise _Refused("refused bytearray() of anything but bytes or text")


STAND_INS = {
    ("_codecs", "encode"): _encode,
    ("builtins", "bytearray"): _bytearray,
    ("__builtin__", "bytearray"): _bytearray,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Dtype,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _reconstruct for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _scalar for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _frombuffer for core in ("core", "_core")},
}


class _Restricted(pickle._Unpickler):  # the Python unpickler: its BUILD can be restricted too
    """Resolves only STAND_INS, and sets state only on the stand-ins' arrays and dtypes (a BUILD on anything else
    could rewrite attributes of live objects)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def _build(self):
        state, inst = self.stack.pop(), self.stack[-1]
        if not isinstance(inst, _Array | _Dtype):
            raise _Refused(f"refused to set the state of a {type(inst).__name__}: a .bin sets only numpy arrays' state")
        inst.__setstate__(state)

    dispatch[pickle.BUILD[0]] = _build

    def find_class(self, module: str, name: str):
        if (module, name) in STAND_INS:
            return STAND_INS[(module, name)]
        raise _Refused(
            f"refused to load {module}.{name}: a .bin verification set holds only image bytes, pair "
            "flags and numpy arrays (unpickling anything else could run code)"
        )


def _plain(obj, depth: int = 0):
    """The unpickled value with the stand-ins replaced by what they built."""
    if isinstance(obj, _Array):
        if obj.array is None:
            raise _Refused("a numpy array without its data")
        return obj.array
    if isinstance(obj, _Dtype):
        return obj.dtype
    if isinstance(obj, list | tuple) and depth < 3:
        return type(obj)(_plain(x, depth + 1) for x in obj)
    return obj


def safe_load(data: bytes, where: str):
    """Unpickle `data` with only the STAND_INS; Python 2 strings come back as bytes. DataError otherwise."""
    try:
        return _plain(_Restricted(io.BytesIO(data), encoding="bytes").load())
    except _Refused as err:
        raise DataError(f"{where}: {err}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        ImportError,
        MemoryError,
        OverflowError,
        RecursionError,
        struct.error,
    ) as err:
        raise DataError(f"{where}: not a pickled verification set ({type(err).__name__}: {err})") from None


# how the encodings a .bin holds begin (JPEG, PNG, BMP, GIF, TIFF both byte orders, WebP's RIFF container)
SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF8", b"II*\x00", b"MM\x00*", b"RIFF")


def _image_bytes(entry, i: int, where: str) -> bytes:
    """The encoded image of entry `i`: bytes, a 1-D uint8 array, or a uint8 array of any shape whose bytes are one
    encoded image (some packers store each as (N, 1)); decoded pixels (H, W, 3) are not."""
    if isinstance(entry, bytes | bytearray):
        return bytes(entry)
    if isinstance(entry, np.ndarray) and entry.dtype == np.uint8:
        blob = entry.tobytes()
        if entry.ndim == 1 or blob.startswith(SIGNATURES):
            return blob
    shape = f" of shape {entry.shape}, dtype {entry.dtype}" if isinstance(entry, np.ndarray) else ""
    raise DataError(
        f"{where}: image {i} is a {type(entry).__name__}{shape}; expected encoded image bytes (bytes, or a uint8 "
        "array holding one encoded image)"
    )


def _flags(values, where: str) -> np.ndarray:
    try:
        flags = np.asarray(values)
    except ValueError:
        raise DataError(f"{where}: the pair flags are not a flat list of bools") from None
    if flags.ndim != 1 or not (flags.dtype == bool or np.issubdtype(flags.dtype, np.integer)):
        raise DataError(
            f"{where}: the pair flags are {type(values).__name__} of {flags.dtype}; expected a list or array of bools"
        )
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
        raise DataError(
            f"{where}: expected a pickled (images, issame) pair, got {type(obj).__name__}"
            + (f" of length {len(obj)}" if isinstance(obj, tuple | list) else "")
        )
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
    return PairSet(source, index[0::2], index[1::2], issame, FOLDS, consecutive_folds(len(issame), FOLDS))


def pack_pairs(root: str | os.PathLike, pairs_file: str | os.PathLike, out: str | os.PathLike) -> tuple[int, int]:
    """A `pairs.txt` over identity folders as a `.bin` (pickle protocol 4), pairs in file order; JPEG and PNG
    files byte for byte, other formats as lossless PNG. Returns (pairs, re-encoded images)."""
    pairs = read_pairs(pairs_file, root)
    if pairs.n_folds != FOLDS:
        raise DataError(
            f"{pairs_file}: a .bin is read as {FOLDS} consecutive folds; this file has "
            f"{'no fold header' if pairs.n_folds == 1 else f'{pairs.n_folds} folds'} (expected a "
            f"`{FOLDS} N` first line, as LFW's View 2)"
        )
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
