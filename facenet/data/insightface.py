"""InsightFace's training-set layout: a folder with `train.rec`, `train.idx` and `property` (`<identities>,<h>,<w>`).
Indexed as an identity table (`RecordIODataset`), packed from an identity-folder tree (`pack_folder`) and unpacked
back into one (`unpack`). The container itself is facenet/data/recordio.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from facenet.data.images import decode_image, encode_png, image_format, portable_bytes
from facenet.data.index import PARTIAL_MARKER, index_folder
from facenet.data.recordio import IMAGE_HEADER, RecordFile, RecordImages, RecordWriter, pack_image, unpack_image
from facenet.errors import DataError
from facenet.interrupts import partial_file

log = logging.getLogger(__name__)

FILES = ("train.rec", "train.idx", "property")
COLUMNS = ["id", "name", "class", "record"]  # id = record: the record's key; name: the identity's label


def locate(path: str | os.PathLike) -> tuple[Path, Path, Path]:
    """(train.rec, train.idx, property) of a dataset folder, or of a `.rec` file given directly (its `.idx` and
    the folder's `property` beside it)."""
    path = Path(path).expanduser()
    if path.suffix == ".rec":
        return path, path.with_suffix(".idx"), path.parent / "property"
    if not path.is_dir():
        raise DataError(
            f"RecordIO dataset {str(path)!r} does not exist: expected a folder with "
            f"{', '.join(FILES)} (InsightFace's layout) or a .rec file"
        )
    rec = path / "train.rec"
    if not rec.is_file():
        found = sorted(p.name for p in path.glob("*.rec"))
        hint = f"; it has {', '.join(found)}: give dataset.path=<that file>" if found else ""
        raise DataError(f"{path} has no train.rec{hint}")
    return rec, path / "train.idx", path / "property"


def read_property(path: Path) -> tuple[int, int, int] | None:
    """(identities, height, width) from a `property` file, None if there is none."""
    if not path.is_file():
        return None
    fields = path.read_text().strip().split(",")
    try:
        values = tuple(int(float(f)) for f in fields)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise DataError(f"{path}: expected `identities,height,width` (e.g. 10572,112,112), got {path.read_text()!r}")
    return values  # type: ignore[return-value]


def _header(file: RecordFile) -> tuple[int, int] | None:
    """InsightFace's record 0: labels (a, b), or None when record 0 is missing or is an image."""
    if 0 not in file:
        return None
    record = unpack_image(file.read(0), f"{file.rec} record 0")
    if record.flag < 2 or record.image:
        return None
    return int(record.labels[0]), int(record.labels[1])


def _identity_ranges(file: RecordFile, a: int, b: int) -> list[tuple[int, int]] | None:
    """The image range [first, end) of each identity record a..b-1, or None if the file has no such records (some
    tools write record 0 as (images + 1, identities) and nothing else) or they do not describe image ranges."""
    if b <= a or any(k not in file for k in (a, b - 1)):
        return None
    ranges, end = [], 1
    for key in tqdm(range(a, b), desc="identity records", unit="id", leave=False, disable=b - a < 10000):
        record = unpack_image(file.read(key), f"{file.rec} record {key}")
        if record.flag != 2 or record.image:
            return None
        first, last = int(record.labels[0]), int(record.labels[1])
        if not end <= first < last <= a:
            log.warning(
                "%s: identity record %d holds range [%d, %d), not within the images 1..%d after the "
                "previous identity; reading every record's label instead",
                file.rec,
                key,
                first,
                last,
                a - 1,
            )
            return None
        ranges.append((first, last))
        end = last
    return ranges


def _signature(file: RecordFile) -> str:
    h = hashlib.sha1()
    for p in (file.rec, file.idx):
        st = p.stat()
        h.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0".encode())
    return h.hexdigest()[:16]


def _scan_labels(file: RecordFile, keys: np.ndarray, cache_dir: str | os.PathLike | None) -> np.ndarray:
    """Every image record's (first) label, read from the record headers; cached in `cache_dir` per file."""
    cache = Path(cache_dir).expanduser() / f"recordio-{_signature(file)}.npy" if cache_dir else None
    if cache is not None and cache.is_file():
        labels = np.load(cache)
        if len(labels) == len(keys):
            return labels
    labels = np.empty(len(keys), np.float64)
    head = IMAGE_HEADER.size + 4
    for j, key in enumerate(
        tqdm(keys, desc=f"reading labels of {file.rec.name}", unit="rec", leave=False, disable=len(keys) < 20000)
    ):
        where = f"{file.rec} record {key}"
        data = file.read(int(key), head)
        if len(data) < head:  # a record shorter than a header with one extra label: parse it whole
            labels[j] = unpack_image(data, where).labels[0]
            continue
        flag, label = int.from_bytes(data[:4], "little"), np.frombuffer(data, "<f4", 1, 4)[0]
        labels[j] = label if flag == 0 else np.frombuffer(data, "<f4", 1, IMAGE_HEADER.size)[0]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with partial_file(cache) as tmp:
            np.save(tmp, labels)
    return labels


FLOAT_EXACT = 2**24  # labels are float32: integers above this are rounded (record numbers of the largest sets)


def record_table(file: RecordFile, cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per image record (`id` = `record`: the record's key; `name`: the identity's label, categorical;
    `class`), identities in label order and images in record order (the order `facenet pack` wrote them in: the
    same table as the folder it packed).

    Identities come from InsightFace's identity records when record 0 announces them (no image is read), else
    from a scan of every record's label (cached in `cache_dir`)."""
    header = _header(file)
    if header and max(header) > FLOAT_EXACT:
        log.warning(
            "%s: record 0 announces %d records, past float32's exact integers: its identity ranges may be "
            "rounded; reading every image's own label instead (cached)",
            file.rec,
            header[0] - 1,
        )
    ranges = _identity_ranges(file, *header) if header and max(header) <= FLOAT_EXACT else None
    if ranges is not None:
        records = np.concatenate([np.arange(first, end) for first, end in ranges])
        classes = np.repeat(np.arange(len(ranges)), [end - first for first, end in ranges])
        labels = np.arange(len(ranges), dtype=np.float64)
    else:
        if header:
            keys = np.arange(1, header[0])
            missing = [int(k) for k in keys[:: max(1, len(keys) // 1000)] if k not in file]
            if missing:
                raise DataError(
                    f"{file.rec}: record 0 announces images 1..{header[0] - 1}, but {file.idx.name} "
                    f"lacks record {missing[0]} (and maybe others)"
                )
        else:
            keys = file.keys[file.keys != 0] if 0 in file and _is_header_only(file) else file.keys
        keys = np.sort(keys)
        scanned = _scan_labels(file, keys, cache_dir)
        if not np.isfinite(scanned).all():
            bad = keys[~np.isfinite(scanned)][:5].tolist()
            raise DataError(f"{file.rec}: records {bad} carry a NaN or infinite label (corrupt headers)")
        order = np.lexsort((keys, scanned))
        records = keys[order]
        classes, labels = pd.factorize(scanned[order], sort=True)
    if len(records) == 0:
        raise DataError(f"{file.rec} holds no image records")
    names = [str(int(v)) if float(v).is_integer() else repr(float(v)) for v in labels]  # one per identity
    records = records.astype(np.int64)
    return pd.DataFrame(
        {
            "id": records,
            "name": pd.Categorical.from_codes(classes, names),
            "class": classes.astype(np.int64),
            "record": records,
        }
    )[COLUMNS]


def _is_header_only(file: RecordFile) -> bool:
    return not unpack_image(file.read(0), f"{file.rec} record 0").image


# ---------------------------------------------------------------- writing
@dataclass
class PackReport:
    images: int
    identities: int
    reencoded: int  # images in formats other than JPEG/PNG, stored as lossless PNG
    bytes: int
    size: tuple[int, int]  # (height, width) written to `property`


def pack_folder(src: str | os.PathLike, out: str | os.PathLike) -> PackReport:
    """An identity-folder tree as `out/train.rec`, `train.idx`, `property`, in InsightFace's layout: record 0 =
    labels (images + 1, images + 1 + identities); records 1..N the images (label = the identity's class, folders in
    name order, files in name order); then one record per identity with its image range. JPEG and PNG files are
    stored byte for byte; other formats as lossless PNG. Nothing is written unless every image is readable."""
    table = index_folder(src)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    n, m = len(table), int(table["class"].nunique())
    if n + 1 + m > FLOAT_EXACT:
        raise DataError(
            f"{src}: {n} images of {m} identities; InsightFace's layout stores record numbers as float32 "
            f"labels, exact only up to {FLOAT_EXACT}: pack it in parts"
        )
    first_record = np.searchsorted(table["class"].to_numpy(), np.arange(m)) + 1
    a = n + 1
    reencoded, bad, size = 0, [], None
    with ExitStack() as stack:
        rec = stack.enter_context(partial_file(out / "train.rec"))
        idx = stack.enter_context(partial_file(out / "train.idx"))
        writer = stack.enter_context(RecordWriter(rec, idx))
        writer.write(0, pack_image([a, a + m], b"", 0))
        rows = zip(table["path"], table["class"], strict=True)
        for i, (path, cls) in enumerate(tqdm(rows, total=n, desc=f"packing {out.name}", unit="img"), start=1):
            try:
                data, converted = portable_bytes(path)
            except DataError as err:
                bad.append(str(err))
                continue
            if size is None:
                size = decode_image(data, path).shape[:2]
            reencoded += converted
            writer.write(i, pack_image(float(cls), data, i))
        if bad:
            raise DataError(
                f"{len(bad)} files under {src} are not readable images, nothing written: "
                + "; ".join(bad[:5])
                + (" ..." if len(bad) > 5 else "")
            )
        ends = np.r_[first_record[1:], a]
        for c in range(m):
            writer.write(a + c, pack_image([first_record[c], ends[c]], b"", a + c))
        writer.close()
        total = writer.offset
        with partial_file(out / "property") as tmp:
            tmp.write_text(f"{m},{size[0]},{size[1]}\n")
    return PackReport(n, m, reencoded, total, (int(size[0]), int(size[1])))


def unpack(path: str | os.PathLike, out: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> int:
    """A RecordIO dataset back into identity folders `out/<label>/<record>.<jpg|png>` (labels and record numbers
    zero-padded, so name order is label and record order); returns the images written. An error or an interrupt
    removes what it wrote."""
    rec, idx, _ = locate(path)
    file = RecordFile(rec, idx)
    table = record_table(file, cache_dir)
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(
            f"{out} is {'not empty' if out.is_dir() else 'a file'}: unpack writes into a new or empty folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    try:
        written = _unpack_into(file, table, out, rec)
    except BaseException:  # an error or an interrupt: what was written goes, the folder stays as it was found
        for child in out.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        raise
    finally:
        file.close()
    return written


def _unpack_into(file: RecordFile, table: pd.DataFrame, out: Path, rec: Path) -> int:
    marker = out / PARTIAL_MARKER  # a crash that skips the clean-up leaves this: training refuses the folder
    marker.write_text(f"facenet unpack {rec} did not finish\n")
    label_width = max(len(n) for n in table["name"].cat.categories)
    record_width = len(str(int(table["record"].max())))
    images = RecordImages(file, table["record"].to_numpy())
    for i, (name, record) in enumerate(
        tqdm(
            zip(table["name"], table["record"], strict=True), total=len(table), desc=f"unpacking {rec.name}", unit="img"
        )
    ):
        data = unpack_image(file.read(int(record)), images.name(i)).image
        ext = image_format(data)
        if ext is None:  # another format: lossless PNG (an error names the record, if it is not an image)
            data, ext = encode_png(decode_image(data, images.name(i))), ".png"
        folder = out / name.zfill(label_width)
        folder.mkdir(exist_ok=True)
        (folder / f"{int(record):0{record_width}d}{ext}").write_bytes(data)
    marker.unlink()
    return len(table)
