"""MXNet RecordIO without MXNet: records built byte by byte from dmlc-core's specification are read back; InsightFace's
identity records and the label-scan fallback give the same table; pack/unpack round trips byte for byte; broken
files give one clear line, and a corrupt record in training is skipped, counted and reported."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facenet.data.datasets import FolderDataset, RecordIODataset
from facenet.data.insightface import pack_folder, record_table, unpack
from facenet.data.recordio import RecordFile, RecordImages, RecordWriter, encode_record, pack_image, unpack_image
from facenet.errors import DataError
from tests.conftest import ROOT, write_faces

MAGIC = b"\x0a\x23\xd7\xce"  # 0xced7230a, little-endian (dmlc-core recordio.h kMagic)


def _lrec(cflag: int, length: int) -> bytes:
    return struct.pack("<I", (cflag << 29) | length)


def test_a_record_written_by_hand_from_the_specification_is_read_back(tmp_path):
    jpeg = cv2.imencode(".jpg", np.full((6, 5, 3), 90, np.uint8))[1].tobytes()
    # record 0: an image with one float label 7 (flag 0), id 0; padded to 4 bytes
    payload0 = struct.pack("<IfQQ", 0, 7.0, 0, 0) + jpeg
    rec0 = MAGIC + _lrec(0, len(payload0)) + payload0 + b"\0" * (-len(payload0) % 4)
    # record 1: labels [3, 4] (flag 2) and data holding the magic at a 4-aligned offset: the writer splits the data
    # there into a first part (cflag 1) and a last part (cflag 3), dropping the magic
    data1 = struct.pack("<IfQQ", 2, 0.0, 1, 0) + struct.pack("<ff", 3.0, 4.0) + b"abcd" + MAGIC + b"xyz"
    cut = data1.index(MAGIC)
    assert cut % 4 == 0
    rec1 = MAGIC + _lrec(1, cut) + data1[:cut] + MAGIC + _lrec(3, 3) + b"xyz" + b"\0"
    (tmp_path / "a.rec").write_bytes(rec0 + rec1)
    (tmp_path / "a.idx").write_text(f"0\t0\n1\t{len(rec0)}\n")

    file = RecordFile(tmp_path / "a.rec", tmp_path / "a.idx")
    first = unpack_image(file.read(0), "record 0")
    assert (first.flag, first.labels.tolist(), first.id, first.image) == (0, [7.0], 0, jpeg)
    second = file.read(1)
    assert second == data1  # the parts joined with the magic put back
    record = unpack_image(second, "record 1")
    assert (record.flag, record.labels.tolist(), record.id) == (2, [3.0, 4.0], 1)
    assert record.image == b"abcd" + MAGIC + b"xyz"
    assert (RecordImages(file, [0]).read(0) == 90).all()
    # and our writer produces exactly these bytes
    assert encode_record(payload0) == rec0 and encode_record(data1) == rec1
    assert pack_image(7.0, jpeg, 0) == payload0 and pack_image([3, 4], b"abcd" + MAGIC + b"xyz", 1) == data1


def _write(path: Path, records: dict[int, bytes]) -> None:
    with RecordWriter(path / "train.rec", path / "train.idx") as w:
        for key, payload in records.items():
            w.write(key, payload)


def test_identity_records_and_the_label_scan_give_the_same_table(tmp_path):
    labels = [2, 2, 0, 0, 0, 5]  # three identities, images given out of label order
    images = {i + 1: pack_image(float(c), b"img%d" % i, i + 1) for i, c in enumerate(labels)}
    # InsightFace's layout needs images grouped by identity; build it from the sorted order
    order = np.argsort(labels, kind="stable")
    grouped = {k + 1: pack_image(float(labels[j]), b"img%d" % j, k + 1) for k, j in enumerate(order)}
    a = len(labels) + 1
    ranges = {a + j: pack_image(bounds, b"", a + j) for j, bounds in enumerate(([1, 4], [4, 6], [6, 7]))}
    (tmp_path / "ranges").mkdir()
    _write(tmp_path / "ranges", {0: pack_image([a, a + 3], b"", 0), **grouped, **ranges})
    (tmp_path / "scan").mkdir()  # record 0 = (images + 1, identities) and no identity records (some tools write that)
    _write(tmp_path / "scan", {0: pack_image([a, 3], b"", 0), **images})
    (tmp_path / "plain").mkdir()  # no header record at all: keys 0.. are images
    _write(tmp_path / "plain", {k - 1: v for k, v in images.items()})

    by_ranges = record_table(RecordFile(tmp_path / "ranges/train.rec", tmp_path / "ranges/train.idx"))
    assert by_ranges["class"].tolist() == [0, 0, 0, 1, 1, 2] and by_ranges["record"].tolist() == [1, 2, 3, 4, 5, 6]
    cache = tmp_path / "cache"
    scanned = record_table(RecordFile(tmp_path / "scan/train.rec", tmp_path / "scan/train.idx"), cache)
    assert scanned["class"].tolist() == [0, 0, 0, 1, 1, 2]
    assert scanned["name"].tolist() == ["0", "0", "0", "2", "2", "5"]
    assert scanned["record"].tolist() == [3, 4, 5, 1, 2, 6]  # label order, then record order
    (cached,) = cache.glob("recordio-*.npy")  # the scan is cached, and the cache is what a second call reads:
    np.save(cached, np.load(cached) + 10)  # labels shifted in the cache only
    again = record_table(RecordFile(tmp_path / "scan/train.rec", tmp_path / "scan/train.idx"), cache)
    assert again["name"].tolist() == ["10", "10", "10", "12", "12", "15"] and again["record"].equals(scanned["record"])
    plain = record_table(RecordFile(tmp_path / "plain/train.rec", tmp_path / "plain/train.idx"))
    assert plain["record"].tolist() == [2, 3, 4, 0, 1, 5] and plain["class"].tolist() == [0, 0, 0, 1, 1, 2]


def test_pack_then_unpack_gives_the_same_images_byte_for_byte(tmp_path):
    src = write_faces(tmp_path / "src", {"ann": 3, "bob": 2}, ext="png")
    write_faces(tmp_path / "src", {"cat": 2}, ext="jpg")
    write_faces(tmp_path / "src", {"dan": 2}, ext="pgm", grey=True)  # not JPEG/PNG: stored as lossless PNG
    report = pack_folder(src, tmp_path / "rec")
    assert (report.images, report.identities, report.reencoded, report.size) == (9, 4, 2, (20, 18))
    assert (tmp_path / "rec/property").read_text() == "4,20,18\n"
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["property", "train.idx", "train.rec"]
    assert unpack(tmp_path / "rec", tmp_path / "out") == 9
    folder = FolderDataset(str(src), None, None).load().table
    back = FolderDataset(str(tmp_path / "out"), None, None).load().table
    assert back["class"].tolist() == folder["class"].tolist()
    for a, b in zip(folder["path"], back["path"], strict=True):
        if a.endswith(".pgm"):
            assert b.endswith(".png")
            assert (cv2.imread(a) == cv2.imread(b)).all()
        else:
            assert Path(a).read_bytes() == Path(b).read_bytes(), a
    with pytest.raises(DataError, match="not empty"):
        unpack(tmp_path / "rec", tmp_path / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        unpack(tmp_path / "rec", tmp_path / "file")
    # a record that fails half way: nothing of the unpacking is left behind
    rec = RecordFile(tmp_path / "rec/train.rec", tmp_path / "rec/train.idx")
    data = bytearray((tmp_path / "rec/train.rec").read_bytes())
    data[rec.offset(6) : rec.offset(6) + 4] = b"JUNK"  # record 6 cannot be read (records 1-5 are written first)
    (tmp_path / "rec/train.rec").write_bytes(bytes(data))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="record 6"):
        unpack(tmp_path / "rec", tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.fixture
def packed(tmp_path):
    src = write_faces(tmp_path / "src", {f"p{i}": 4 for i in range(4)}, ext="png")
    pack_folder(src, tmp_path / "rec")
    return tmp_path / "rec"


def test_broken_files_give_one_clear_line(packed, tmp_path):
    (packed / "train.idx").rename(tmp_path / "kept.idx")
    with pytest.raises(DataError, match=r"has no index train.idx beside it"):
        RecordIODataset(str(packed), None).load()
    (tmp_path / "kept.idx").rename(packed / "train.idx")
    data = (packed / "train.rec").read_bytes()
    (packed / "train.rec").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"train.rec is truncated: .* records beyond its end"):
        RecordIODataset(str(packed), None).load()
    (packed / "train.rec").write_bytes(data[:-3])  # the last record cut short
    with pytest.raises(DataError, match=r"is truncated: its last record"):
        RecordIODataset(str(packed), None).load()
    (packed / "train.rec").write_bytes(data)
    (packed / "train.idx").write_text("not an index\n")
    with pytest.raises(DataError, match="not a RecordIO index"):
        RecordIODataset(str(packed), None).load()
    with pytest.raises(DataError, match="has no train.rec"):
        RecordIODataset(str(tmp_path / "src"), None).load()
    out = subprocess.run(
        [sys.executable, "-m", "facenet.cli", "unpack", str(packed), "-o", str(tmp_path / "x")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "error: " in out.stderr, out.stderr


def test_corrupt_records_in_training_are_skipped_counted_and_reported(packed):
    from facenet.data.images import TrainTransform
    from facenet.data.pipeline import BadImages, train_batches
    from facenet.data.sampler import PKSampler

    file = RecordFile(packed / "train.rec", packed / "train.idx")
    data = bytearray((packed / "train.rec").read_bytes())
    garbled, bad_magic = file.offset(2), file.offset(6)
    data[garbled + 8 + 24 : garbled + 8 + 40] = b"\0" * 16  # the PNG signature and header of record 2's image
    data[bad_magic : bad_magic + 4] = b"JUNK"
    (packed / "train.rec").write_bytes(bytes(data))
    train = RecordIODataset(str(packed), None).load()
    labels = train.table["class"].to_numpy()
    sampler = PKSampler(labels, 4, 4, 0, steps_per_epoch=2, seed=0)
    aug = TrainTransform(16, hflip=False, max_shift=0.0, random_interpolation=False)
    bad = BadImages(limit=5)
    batches = list(train_batches(train.images(), labels, sampler, aug, 2, 0, 1, 0, bad))
    assert len(batches) == 2 and all(b[0].shape == (16, 3, 16, 16) for b in batches)
    rec = packed / "train.rec"
    assert bad.paths == {f"{rec} record 2", f"{rec} record 6"}
    with pytest.raises(DataError, match=r"record 6: no RecordIO magic"):
        train.images().read(5)


def test_pack_writes_nothing_when_an_image_is_unreadable(tmp_path):
    src = write_faces(tmp_path / "src", {"ann": 2, "bob": 2}, ext="jpg")
    (src / "bob" / "bob_0002.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match=r"1 files under .* are not readable images, nothing written: .*bob_0002.jpg"):
        pack_folder(src, tmp_path / "rec")
    assert list((tmp_path / "rec").iterdir()) == []
