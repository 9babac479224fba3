""".bin verification sets: read as real ones are pickled (Python 2 and 3 protocols, images as bytes or uint8 arrays,
flags as lists or numpy bools), written by `pack-pairs`, refused with one line when malformed, and never allowed to
run code."""

from __future__ import annotations

import os
import pickle
import struct

import cv2
import numpy as np
import pytest

from facenet.data.binsets import pack_pairs, read_bin, safe_load
from facenet.data.pairs import read_pairs
from facenet.errors import DataError


def _jpegs(n: int) -> list[bytes]:
    rng = np.random.default_rng(1)
    return [cv2.imencode(".jpg", rng.integers(0, 255, (12, 10, 3), dtype=np.uint8))[1].tobytes() for _ in range(n)]


IMAGES = _jpegs(3)
# 20 pairs, 2 per fold: image 0 appears in every pair (as LFW repeats images), so 3 unique images
BLOBS = [blob for i in range(20) for blob in (IMAGES[0], IMAGES[1 + i % 2])]
FLAGS = [i % 2 == 0 for i in range(20)]


def _py2_pickle(blobs: list[bytes], flags: list[bool]) -> bytes:
    """What Python 2's `pickle.dump((bins, issame_list), f, protocol=2)` writes, opcode by opcode (its `str` is bytes:
    SHORT_BINSTRING 'U' below 256 bytes, BINSTRING 'T' above)."""
    out = [b"\x80\x02", b"]", b"("]  # PROTO 2, EMPTY_LIST, MARK
    for blob in blobs:
        out.append(b"U" + bytes([len(blob)]) + blob if len(blob) < 256 else b"T" + struct.pack("<I", len(blob)) + blob)
    out += [b"e", b"]", b"("]  # APPENDS, EMPTY_LIST, MARK
    out += [b"\x88" if f else b"\x89" for f in flags]  # NEWTRUE / NEWFALSE
    out += [b"e", b"\x86", b"."]  # APPENDS, TUPLE2, STOP
    return b"".join(out)


def test_images_stored_as_2d_uint8_arrays_are_read_as_their_bytes(tmp_path):
    """Some packers store each encoded image as a (N, 1) uint8 array: the same set as the bytes one."""
    path = tmp_path / "column.bin"
    column = [np.frombuffer(b, np.uint8).reshape(-1, 1) for b in BLOBS]
    path.write_bytes(pickle.dumps((column, np.array(FLAGS)), protocol=2))
    plain = tmp_path / "plain.bin"
    plain.write_bytes(pickle.dumps((BLOBS, FLAGS), protocol=2))
    got, want = read_bin(path), read_bin(plain)
    assert got.images.blobs == want.images.blobs and got.issame.tolist() == FLAGS
    assert got.left.tolist() == want.left.tolist() and got.right.tolist() == want.right.tolist()
    assert got.images.read(0).shape == (12, 10, 3)
    row = tmp_path / "row.bin"  # (1, N) too
    row.write_bytes(pickle.dumps(([np.frombuffer(b, np.uint8)[None] for b in BLOBS], FLAGS), protocol=2))
    assert read_bin(row).images.blobs == want.images.blobs


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: _py2_pickle(BLOBS, FLAGS), id="python2-str"),
        *(pytest.param(lambda p=p: pickle.dumps((BLOBS, FLAGS), protocol=p), id=f"py3-p{p}") for p in (2, 3, 4, 5)),
        pytest.param(
            lambda: pickle.dumps(([np.frombuffer(b, np.uint8) for b in BLOBS], np.array(FLAGS)), protocol=2),
            id="uint8-arrays+bool-array-p2",
        ),
        pytest.param(
            lambda: pickle.dumps(
                (tuple(np.frombuffer(b, np.uint8) for b in BLOBS), [np.bool_(f) for f in FLAGS]), protocol=5
            ),
            id="arrays+numpy-bools-p5",
        ),
    ],
)
def test_bin_files_pickled_the_ways_real_ones_are(tmp_path, make):
    path = tmp_path / "lfw.bin"
    path.write_bytes(make())
    pairs = read_bin(path)
    assert len(pairs) == 20 and pairs.n_folds == 10 and pairs.issame.tolist() == FLAGS
    assert len(pairs.images) == 3  # each distinct image once
    for i in range(20):
        assert pairs.images.read(int(pairs.left[i])).shape == (12, 10, 3)
        blobs = pairs.images.blobs
        assert blobs[pairs.left[i]] == BLOBS[2 * i] and blobs[pairs.right[i]] == BLOBS[2 * i + 1]
    assert pairs.paths[:2] == ["lfw.bin[0]", "lfw.bin[1]"]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_would_run_a_command_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([_Evil(marker)] * 2, [True]), protocol=2))
    pickle.loads(pickle.dumps(_Evil(tmp_path / "control")))  # the plain unpickler would run it
    assert (tmp_path / "control").exists()
    with pytest.raises(DataError, match=r"refused to load posix.system: a .bin verification set holds only"):
        read_bin(path)
    assert not marker.exists()
    for module, name in (("builtins", "eval"), ("subprocess", "Popen"), ("numpy", "load")):
        with pytest.raises(DataError, match=f"refused to load {module}.{name}"):
            safe_load(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b").", "x")


@pytest.mark.parametrize(
    ("content", "message"),
    [  # an object array's bytes are pointers: numpy's own reconstructors would let a file forge them
        (pickle.dumps(([np.array([b"a", b"b"], dtype=object)] * 2, [True]), protocol=2), "refused numpy dtype 'O8'"),
        (pickle.dumps(([np.zeros(3, dtype=[("a", "u1")])] * 2, [True]), protocol=2), "refused numpy dtype 'V1'"),
        # BUILD on a resolved function: {"foo": 1} as its state
        (b"\x80\x02c_codecs\nencode\n}X\x03\x00\x00\x00fooK\x01sb.", "refused to set the state of a function"),
        (b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R.", "encoding 'zlib'"),
    ],
)
def test_numpy_and_builtins_beyond_plain_data_are_refused(tmp_path, content, message):
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_bin(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"definitely not a pickle", "not a pickled verification set"),
        (b"", "not a pickled verification set"),
        (pickle.dumps(BLOBS[:4]), r"expected a pickled \(images, issame\) pair, got list of length 4"),
        (pickle.dumps({"bins": 1}), "expected a pickled .images, issame. pair, got dict"),
        (pickle.dumps((BLOBS[:3], [True, False])), "3 images for 2 pairs"),
        (pickle.dumps((BLOBS[:2] + ["text", b""], [True, False])), "image 2 is a str"),
        (pickle.dumps(([np.zeros((4, 4, 3), np.uint8)] * 2, [True])), r"image 0 is a ndarray of shape \(4, 4, 3\)"),
        (pickle.dumps((BLOBS[:2], ["yes"])), "pair flags are list of <U3"),
        (pickle.dumps((BLOBS[:2], [2])), "must be true/false"),
    ],
)
def test_a_bin_that_is_not_a_pickle_of_the_expected_shape_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_bin(path)


def test_pack_pairs_writes_the_pairs_in_file_order_and_refuses_files_without_folds(tmp_path):
    from facenet.data.synthetic import generate_eval

    root = generate_eval(tmp_path / "d", identities_per_fold=3, images_per_identity=3, pairs_per_fold=2, image_size=24)
    assert pack_pairs(root, root / "pairs.txt", tmp_path / "out" / "s.bin") == (40, 0)
    with open(tmp_path / "out" / "s.bin", "rb") as f:
        blobs, flags = pickle.load(f)  # what InsightFace's loaders do
    txt, binary = read_pairs(root / "pairs.txt", root), read_bin(tmp_path / "out" / "s.bin")
    assert flags == txt.issame.tolist() and len(blobs) == 80
    assert blobs[0] == open(txt.paths[txt.left[0]], "rb").read()  # the file's own bytes
    assert (binary.left == txt.left).all() and (binary.right == txt.right).all()  # same unique-image order
    (root / "plain.txt").write_text("\n".join((root / "pairs.txt").read_text().splitlines()[1:]) + "\n")
    with pytest.raises(DataError, match="no fold header"):
        pack_pairs(root, root / "plain.txt", tmp_path / "p.bin")
    assert not (tmp_path / "p.bin").exists()
