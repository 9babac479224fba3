"""Folder index, LFW pairs parsing, image decoding, P x K sampler, synthetic generation: behaviour and bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from facenet.data.images import EvalTransform, TrainTransform, normalization, read_image, to_input
from facenet.data.index import index_folder, read_index_csv
from facenet.data.pairs import read_pairs
from facenet.data.sampler import PKSampler
from facenet.data.sources import ImageFiles
from facenet.data.synthetic import generate_eval, generate_train
from facenet.errors import ConfigError, DataError
from tests.conftest import write_faces


def test_index_folder_columns_and_classes(tmp_path):
    write_faces(tmp_path, {"bob": 2, "alice": 3})
    (tmp_path / "empty").mkdir()
    (tmp_path / "alice" / "notes.txt").write_text("not an image")
    table = index_folder(tmp_path)
    assert list(table.columns) == ["id", "name", "class", "path"]
    assert table["name"].tolist() == ["alice"] * 3 + ["bob"] * 2
    assert table["class"].tolist() == [0, 0, 0, 1, 1]
    assert table["id"].tolist() == ["alice_0001", "alice_0002", "alice_0003", "bob_0001", "bob_0002"]
    assert table["path"].iloc[3] == str((tmp_path / "bob" / "bob_0001.png").resolve())


def test_index_cache_reused_and_invalidated(tmp_path):
    root = write_faces(tmp_path / "faces", {"a": 2, "b": 2})
    cache = tmp_path / "cache"
    first = index_folder(root, cache)
    (cached,) = cache.glob("index-*.csv")
    pd.testing.assert_frame_equal(index_folder(root, cache), first)  # read back from the CSV, same table
    write_faces(root, {"a": 3})  # a new image changes folder a's mtime
    again = index_folder(root, cache)
    assert len(again) == 5 and len(list(cache.glob("index-*.csv"))) == 2


def test_reference_index_csv(tmp_path):
    root = write_faces(tmp_path / "faces", {"n1": 2, "n2": 1}, ext="jpg")
    (tmp_path / "ref.csv").write_text("id,name,class\nn1_0001,n1,0\nn1_0002,n1,0\nn2_0001,n2,1\n")
    table = read_index_csv(tmp_path / "ref.csv", root)
    assert table.columns.tolist() == ["id", "name", "class", "path"]
    assert table["path"].tolist() == [
        str((root / n / f"{i}.jpg").resolve())
        for i, n in zip(["n1_0001", "n1_0002", "n2_0001"], ["n1", "n1", "n2"], strict=True)
    ]
    (tmp_path / "bad.csv").write_text("id,name\nx,y\n")
    with pytest.raises(DataError, match="needs columns"):
        read_index_csv(tmp_path / "bad.csv", root)


def test_index_folder_bad_roots(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        index_folder(tmp_path / "nope")
    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="no images found"):
        index_folder(tmp_path)


def test_read_image_grey_pgm_and_corrupt(tmp_path):
    write_faces(tmp_path, {"s1": 1}, ext="pgm", grey=True)
    img = read_image(str(tmp_path / "s1" / "s1_0001.pgm"))
    assert img.shape == (20, 18, 3) and img.dtype == np.uint8
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(DataError, match="cannot decode"):
        read_image(str(bad))
    with pytest.raises(DataError, match="cannot decode"):
        read_image(str(tmp_path / "missing.png"))


def test_transforms_shape_range_and_determinism():
    img = np.random.default_rng(0).integers(0, 256, (50, 40, 3), dtype=np.uint8)
    x = EvalTransform(32)(img)
    assert x.shape == (3, 32, 32) and x.dtype == np.float32 and -1 <= x.min() and x.max() <= 1
    assert np.array_equal(x, EvalTransform(32)(img))
    aug = TrainTransform(32, hflip=True, max_shift=0.1, random_interpolation=False)
    a = aug(img, np.random.default_rng(1))
    assert a.shape == (3, 32, 32)
    crop = EvalTransform(32, center_crop=30)(img)  # central 30x30 of the 50x40 image, then resized
    assert np.array_equal(crop, EvalTransform(32)(np.ascontiguousarray(img[10:40, 5:35])))
    no_aug = TrainTransform(32, hflip=False, max_shift=0.0, random_interpolation=False)
    assert np.array_equal(no_aug(img, np.random.default_rng(1)), x)


def test_standardisations_by_hand():
    img = np.array([[[0, 127, 255], [64, 128, 192]]], np.uint8)  # 1x2 RGB
    values = img.astype(np.float64)
    unit, fixed, white = (to_input(img, n) for n in ("unit", "fixed", "prewhiten"))
    assert unit.shape == (3, 1, 2) and np.allclose(unit.transpose(1, 2, 0), (values - 127.5) / 127.5)
    assert np.allclose(fixed.transpose(1, 2, 0), (values - 127.5) / 128.0)
    assert np.allclose(white.transpose(1, 2, 0), (values - values.mean()) / values.std(), atol=1e-6)
    flat = np.full((2, 2, 3), 9, np.uint8)  # zero spread: divided by 1/sqrt(12), not by 0
    assert np.array_equal(to_input(flat, "prewhiten"), np.zeros((3, 2, 2), np.float32))
    assert np.allclose(EvalTransform(2, normalize="fixed")(img.repeat(2, axis=0)), fixed.repeat(2, axis=1))
    assert normalization("(x - 127.5) / 127.5") == "unit" and normalization("fixed") == "fixed"
    with pytest.raises(ConfigError, match="unknown input standardisation 'zscore'"):
        to_input(img, "zscore")


def write_pairs(path, lines, header="2\t1"):
    path.write_text("\n".join([header, *lines]) + "\n")


def test_read_pairs_lfw_format(tmp_path):
    write_faces(tmp_path, {"A": 2, "B": 1, "C": 2}, ext="jpg")
    write_pairs(tmp_path / "pairs.txt", ["A\t1\t2", "A\t1\tB\t1", "C\t1\t2", "B\t1\tC\t2"])
    pairs = read_pairs(tmp_path / "pairs.txt", tmp_path)
    assert pairs.n_folds == 2 and len(pairs) == 4
    assert pairs.issame.tolist() == [True, False, True, False]
    assert len(pairs.paths) == 5  # unique images, each embedded once
    assert pairs.paths[pairs.left[1]].endswith("A_0001.jpg") and pairs.paths[pairs.right[1]].endswith("B_0001.jpg")


def test_read_pairs_errors(tmp_path):
    write_faces(tmp_path, {"A": 2}, ext="jpg")
    write_pairs(tmp_path / "p.txt", ["A\t1\t2", "A\t1\tZed\t3", "A\t1\t9", "A\t2\tQ\t1"])
    with pytest.raises(DataError) as info:
        read_pairs(tmp_path / "p.txt", tmp_path)
    msg = str(info.value)
    assert "3 images" in msg and "Zed/Zed_0003" in msg and "A/A_0009" in msg and "Q/Q_0001" in msg
    write_pairs(tmp_path / "p.txt", ["A\t1\t2", "A\t1"], header="1\t1")
    with pytest.raises(DataError, match="malformed"):
        read_pairs(tmp_path / "p.txt", tmp_path)
    write_pairs(tmp_path / "p.txt", ["A\t1\t2"], header="10\t300")
    with pytest.raises(DataError, match="announces 6000 pair lines, the file has 1"):
        read_pairs(tmp_path / "p.txt", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        read_pairs(tmp_path / "nope.txt", tmp_path)


def test_pk_sampler_batches():
    labels = np.repeat(np.arange(6), [5, 4, 3, 2, 1, 6])  # identity 4 has a single image
    sampler = PKSampler(labels, identities=3, images_per_identity=4, singletons=0, steps_per_epoch=5, seed=1)
    assert sampler.skipped == 1 and len(sampler) == 5 * 3 * 4
    epoch0 = sampler.epoch_indices(0)
    for batch in epoch0.reshape(5, 3, 4):
        ids = labels[batch]
        assert (ids == ids[:, :1]).all()  # K images of one identity per slot
        assert len(set(ids[:, 0])) == 3 and 4 not in ids
        for slot, ident in zip(batch, ids[:, 0], strict=True):
            if (labels == ident).sum() >= 4:
                assert len(set(slot)) == 4  # no repeats when the identity has enough images
    same_seed = PKSampler(labels, identities=3, images_per_identity=4, singletons=0, steps_per_epoch=5, seed=1)
    assert np.array_equal(same_seed.epoch_indices(0), epoch0)  # reproducible from (seed, epoch) alone
    assert not np.array_equal(sampler.epoch_indices(1), epoch0)
    with pytest.raises(DataError, match="only 5 identities"):
        PKSampler(labels, identities=6, images_per_identity=2, singletons=0, steps_per_epoch=1)


def test_pk_sampler_feeds_single_image_identities_as_negatives_when_asked():
    """batch.singletons=2: every batch is P x K, then 2 images of distinct single-image identities. The first
    batch's P x K draws are those without singletons; later batches differ (the singletons' draws use the same
    random stream), so switching them on reorders a run."""
    labels = np.repeat(np.arange(9), [5, 4, 3, 2, 1, 6, 1, 1, 1])  # identities 4, 6, 7, 8 have one image each
    plain = PKSampler(labels, identities=3, images_per_identity=4, singletons=0, steps_per_epoch=5, seed=1)
    mixed = PKSampler(labels, identities=3, images_per_identity=4, singletons=2, steps_per_epoch=5, seed=1)
    assert mixed.batch_size == 14 and len(mixed) == 5 * 14 and mixed.skipped == 0 and plain.skipped == 4
    batches = mixed.epoch_indices(0).reshape(5, 14)
    assert np.array_equal(batches[0, :12], plain.epoch_indices(0)[:12])  # the first batch's P x K draws unchanged
    singles = labels[batches[:, 12:]]
    assert set(singles.ravel()) <= {4, 6, 7, 8} and all(len(set(row)) == 2 for row in singles)
    assert not np.isin(labels[batches[:, :12]], [4, 6, 7, 8]).any()
    assert np.array_equal(mixed.epoch_indices(0), batches.reshape(-1))  # reproducible from (seed, epoch) alone
    assert PKSampler(labels, 3, 4, singletons=2, seed=1).steps == len(labels) // 14  # an epoch: the images' count
    with pytest.raises(DataError, match="batch.singletons=5 but only 4 identities have a single image"):
        PKSampler(labels, 3, 4, singletons=5)
    with pytest.raises(ConfigError, match="batch.singletons=-1"):
        PKSampler(labels, 3, 4, singletons=-1)


def test_train_batches_reproducible_across_worker_counts(tmp_path):
    from facenet.data.pipeline import train_batches

    write_faces(tmp_path, {f"p{i}": 3 for i in range(4)})
    table = index_folder(tmp_path)
    sampler = PKSampler(table["class"].to_numpy(), 2, 3, 0, steps_per_epoch=3, seed=0)
    aug = TrainTransform(16, hflip=True, max_shift=0.2, random_interpolation=False)

    def epoch(workers):
        images = ImageFiles(table["path"].tolist())
        out = list(train_batches(images, table["class"].to_numpy(), sampler, aug, workers, 7, 1))
        return np.concatenate([b[0].asnumpy() for b in out]), np.concatenate([b[1].asnumpy() for b in out])

    (x1, y1), (x2, y2) = epoch(1), epoch(2)
    assert x1.shape == (18, 3, 16, 16) and np.array_equal(y1, table["class"].to_numpy()[sampler.epoch_indices(1)])
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)


def test_synthetic_is_deterministic_cached_and_lfw_compatible(tmp_path):
    a = generate_train(tmp_path / "a", identities=3, images_per_identity=2, image_size=24, seed=3, workers=1)
    b = generate_train(tmp_path / "b", identities=3, images_per_identity=2, image_size=24, seed=3, workers=1)
    assert a.name == b.name  # cache folder keyed by parameters
    for f in sorted(a.glob("*/*.png")):
        assert np.array_equal(cv2.imread(str(f)), cv2.imread(str(b / f.parent.name / f.name)))
    mtime = (a / "manifest.json").stat().st_mtime
    assert (
        generate_train(tmp_path / "a", 3, 2, 24, 3, workers=1) == a and (a / "manifest.json").stat().st_mtime == mtime
    )
    ev = generate_eval(tmp_path / "a", identities_per_fold=3, images_per_identity=3, pairs_per_fold=4, image_size=24)
    pairs = read_pairs(ev / "pairs.txt", ev)
    assert pairs.n_folds == 10 and len(pairs) == 80 and pairs.issame.sum() == 40
    fold_of = [p.split("/")[-2].split("_")[1] for p in pairs.paths]
    for k in range(10):  # folds are identity-disjoint and ordered: 4 same then 4 different pairs
        rows = range(k * 8, (k + 1) * 8)
        assert {fold_of[pairs.left[r]] for r in rows} | {fold_of[pairs.right[r]] for r in rows} == {f"{k:02d}"}
        assert pairs.issame[list(rows)].tolist() == [True] * 4 + [False] * 4
    with pytest.raises(ValueError, match="too small"):
        generate_eval(tmp_path, identities_per_fold=2, images_per_identity=2, pairs_per_fold=5, image_size=24)


def test_pairs_without_fold_header_get_stratified_folds(tmp_path):
    write_faces(tmp_path, {"A": 3, "B": 3}, ext="jpg")
    same = ["A\t1\t2", "A\t1\t3", "A\t2\t3", "B\t1\t2", "B\t1\t3", "B\t2\t3"] * 4  # 24 same
    diff = [f"A\t{i}\tB\t{j}" for i in (1, 2, 3) for j in (1, 2, 3)] * 3  # 27 different
    write_pairs(tmp_path / "view1.txt", same[:20] + diff[:20], header="20")  # View 1: count line
    write_pairs(tmp_path / "plain.txt", same + diff, header=same[0])  # no header at all: every line a pair
    for name, n in (("view1.txt", 40), ("plain.txt", 52)):
        pairs = read_pairs(tmp_path / name, tmp_path)
        assert pairs.n_folds == 1 and len(pairs) == n
        order = pairs.fold_order(10)
        assert sorted(order) == list(range(n))
        for block in np.array_split(pairs.issame[order], 10):
            assert block.any() and not block.all()  # every fold holds same and different pairs
    write_pairs(tmp_path / "short.txt", same[:20] + diff[:19], header="20")
    with pytest.raises(DataError, match="announces 40 pair lines, the file has 39"):
        read_pairs(tmp_path / "short.txt", tmp_path)


def test_index_keeps_na_like_names_through_the_cache(tmp_path):
    root = write_faces(tmp_path / "faces", {"NA": 2, "null": 2})
    fresh = index_folder(root, tmp_path / "cache")
    cached = index_folder(root, tmp_path / "cache")
    assert sorted(set(cached["name"])) == ["NA", "null"]
    pd.testing.assert_frame_equal(fresh, cached)


def test_reference_index_csv_bad_class(tmp_path):
    root = write_faces(tmp_path / "faces", {"n1": 1}, ext="jpg")
    (tmp_path / "ref.csv").write_text("id,name,class\nn1_0001,n1,zero\n")
    with pytest.raises(DataError, match="class must hold integers"):
        read_index_csv(tmp_path / "ref.csv", root)


def test_lfw_fold_split_script(tmp_path):
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("lfw_fold_split", ROOT / "scripts" / "lfw_fold_split.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    lfw = write_faces(tmp_path / "lfw", {"A": 2, "B": 1, "C": 2, "D": 1}, ext="jpg")
    (lfw / "pairs.txt").write_text("2\t1\nA\t1\t2\nA\t1\tB\t1\nC\t1\t2\nC\t2\tD\t1\n")
    assert mod.split(lfw, tmp_path / "out", test_fold=2) == (2, 2)
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == ["A", "B"]
    assert (tmp_path / "out" / "test_pairs.txt").read_text().splitlines()[0] == "1\t1"
    mod.split(lfw, tmp_path / "out", test_fold=1)  # reusing the folder: fold 1's identities must not linger
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == ["C", "D"]


def test_pairs_limit_keeps_every_fold_and_says_so(tmp_path, caplog):
    from facenet.evaluation.protocols import LfwPairs

    write_faces(tmp_path, {n: 3 for n in "ABCD"}, ext="jpg")
    same = [f"{n}\t1\t2" for n in "ABCD"]
    diff = ["A\t1\tB\t1", "C\t1\tD\t1", "A\t2\tC\t3", "B\t3\tD\t2"]
    write_pairs(tmp_path / "p.txt", (same + diff) * 2, header="2\t4")  # 2 folds of 4 same + 4 different
    full = read_pairs(tmp_path / "p.txt", tmp_path)
    small = full.limit(4)  # 1 same + 1 different from each fold
    assert small.n_folds == 2 and small.issame.tolist() == [True, False, True, False]
    got = {(small.paths[a], small.paths[b]) for a, b in zip(small.left, small.right, strict=True)}
    want = {(full.paths[full.left[i]], full.paths[full.right[i]]) for i in (0, 4, 8, 12)}
    assert got == want and len(small.paths) == 3  # only the images these pairs use
    kw = dict(
        batch_size=128, far_targets=[1e-3], flip_tta=False, center_crop=None, override_image_size=None, missing="fail"
    )
    with caplog.at_level("WARNING"):
        assert len(LfwPairs(str(tmp_path), str(tmp_path / "p.txt"), max_pairs=8, **kw).load()) == 8
    assert "evaluating 8 of the 16 pairs" in caplog.text
    assert len(LfwPairs(str(tmp_path), str(tmp_path / "p.txt"), max_pairs=100, **kw).load()) == 16
    with pytest.raises(DataError, match="too small"):
        full.limit(3)


def test_unreadable_training_images_are_replaced_counted_and_limited(tmp_path):
    from facenet.data.pipeline import BadImages, train_batches

    write_faces(tmp_path, {f"p{i}": 3 for i in range(4)})
    table = index_folder(tmp_path)
    paths, classes = table["path"].tolist(), table["class"].to_numpy()
    broken = paths[1]  # p0's second image; its replacement is the next image of p0 (the third)
    Path(broken).write_bytes(b"not an image")
    sampler = PKSampler(classes, 2, 3, 0, steps_per_epoch=3, seed=0)
    aug = TrainTransform(16, hflip=True, max_shift=0.2, random_interpolation=False)

    def epoch(p, bad):
        out = list(train_batches(ImageFiles(p), classes, sampler, aug, 1, 7, 1, 0, bad))
        return np.concatenate([b[0].asnumpy() for b in out]), np.concatenate([b[1].asnumpy() for b in out])

    bad = BadImages(limit=1)
    x, y = epoch(paths, bad)
    assert bad.paths == {broken}
    oracle = list(paths)
    oracle[1] = paths[2]  # the same epoch with the replacement in the broken file's place
    x_ref, y_ref = epoch(oracle, None)
    assert np.array_equal(x, x_ref) and np.array_equal(y, y_ref)
    with pytest.raises(DataError, match=r"1 unreadable training images, more than train.max_bad_images=0: .*p0"):
        epoch(paths, BadImages(limit=0))
    with pytest.raises(DataError, match="cannot decode image"):
        epoch(paths, None)  # no budget given: the first unreadable image is an error naming it


def test_batches_come_in_order_from_worker_threads_and_errors_surface_as_themselves():
    import threading
    import time

    from facenet.data.pipeline import _ahead
    from facenet.errors import DataError

    started = []

    def make(b):
        started.append(b)
        time.sleep(0.02 * ((7 - b) % 3))  # later batches can finish first
        if b == 5:
            raise DataError("cannot decode image 'x.jpg'")
        return (b, threading.current_thread().name)

    got = []
    with pytest.raises(DataError, match="x.jpg"):
        for item in _ahead(make, 9, workers=2):
            got.append(item[0])
    assert got == [0, 1, 2, 3, 4]
    assert max(started) <= 5 + 2  # at most workers + 1 batches ahead of the consumer
    assert all(name.startswith("facenet-data") for name in (item[1] for item in _ahead(make, 3, workers=2)))
    early = _ahead(make, 100, workers=1)
    next(early)
    early.close()  # stops building: nothing like 100 batches was started
    assert len(started) < 20
