"""Offline random triplets: the reference rules, reproducibility, the reference CSV, the in-graph selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facenet.data.triplets import ClassIndex, TripletSampler, draw_triplets, read_triplets_csv, triplets_frame
from facenet.errors import DataError
from facenet.losses import TripletLoss
from facenet.mining import RandomTripletsMiner
from tests.test_miners import mined


def table_of(counts):
    names = np.repeat([f"id{c:03d}" for c in range(len(counts))], counts)
    stems = [f"{i:04d}" for i in range(len(names))]
    frame = pd.DataFrame({"id": stems, "name": names, "class": np.repeat(np.arange(len(counts)), counts)})
    return frame.sample(frac=1, random_state=0).reset_index(drop=True)  # rows not grouped by class


def test_draw_triplets_follows_the_reference_rules():
    table = table_of([1, 2, 5, 3, 1, 8])  # classes 0 and 4 have a single image
    t = draw_triplets(ClassIndex(table["class"].to_numpy()), 20_000, np.random.default_rng(0))
    c = table["class"].to_numpy()
    assert t.shape == (20_000, 3)
    assert (c[t[:, 0]] == c[t[:, 1]]).all() and (t[:, 0] != t[:, 1]).all()  # two different images of one class
    assert (c[t[:, 2]] != c[t[:, 0]]).all()  # negative from another class
    assert not np.isin(c[t[:, 0]], [0, 4]).any()  # anchors only from classes with >= 2 images
    # classes uniform: each of the 4 eligible anchor classes about 1/4 of the triplets
    share = np.bincount(c[t[:, 0]], minlength=6)[[1, 2, 3, 5]] / len(t)
    assert np.allclose(share, 0.25, atol=0.02)
    assert np.isin(c[t[:, 2]], [0, 4]).any()  # single-image classes still serve as negatives


def test_triplets_reproducible_and_csv_roundtrip(tmp_path):
    table = table_of([3, 4, 2, 5])
    a = TripletSampler(table, triplets=4, triplets_per_epoch=40, csv=None, seed=7)
    b = TripletSampler(table, triplets=4, triplets_per_epoch=40, csv=None, seed=7)
    assert a.steps == 10 and a.batch_size == 12
    assert np.array_equal(a.epoch_triplets(1), b.epoch_triplets(1))
    assert not np.array_equal(a.epoch_triplets(1), a.epoch_triplets(2))
    frame = triplets_frame(table, a.epoch_triplets(1))
    assert frame.columns.tolist() == ["anc_id", "pos_id", "neg_id", "pos_class", "neg_class", "pos_name", "neg_name"]
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert np.array_equal(read_triplets_csv(tmp_path / "t.csv", table), a.epoch_triplets(1))
    fixed = TripletSampler(table, triplets=4, triplets_per_epoch=40, csv=str(tmp_path / "t.csv"), steps_per_epoch=5)
    assert np.array_equal(np.r_[fixed.epoch_triplets(1), fixed.epoch_triplets(2)], a.epoch_triplets(1))
    frame.loc[0, "pos_name"] = "nobody"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="not in the index"):
        read_triplets_csv(tmp_path / "bad.csv", table)


def test_epoch_layout_is_anchors_positives_negatives():
    table = table_of([3, 4, 2, 5])
    s = TripletSampler(table, triplets=3, triplets_per_epoch=6, csv=None, seed=1)
    idx = s.epoch_indices(1).reshape(2, 3, 3)  # steps, (anc | pos | neg), triplets
    assert np.array_equal(idx.transpose(0, 2, 1).reshape(-1, 3), s.epoch_triplets(1))


def test_random_triplets_miner_selects_the_laid_out_triplets():
    y = np.array([0, 1, 2, 0, 1, 2, 3, 0, 0], np.int32)  # anchors 0..2, positives 3..5, negatives 6..8
    y[8] = 2  # third triplet's negative has the anchor's class: dropped
    e = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    assert mined(TripletLoss(RandomTripletsMiner(), 0.2), e, y) == {(0, 3, 6), (1, 4, 7)}


def test_class_index_needs_a_positive_pair():
    with pytest.raises(DataError, match="at least 2 classes"):
        ClassIndex(np.array([0, 1, 2]))


def test_triplets_command(tmp_path, capsys):
    """`facenet triplets` writes the draw of `draw_triplets` as the reference CSV; bad input is one error line."""
    from facenet.cli import main
    from facenet.data.index import index_folder
    from tests.conftest import write_faces

    faces, out = tmp_path / "faces", tmp_path / "t.csv"
    write_faces(faces, {"a": 3, "b": 2, "c": 1})
    assert main(["triplets", "--root", str(faces), "-n", "50", "--seed", "3", "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"50 triplets over 6 images written to {out}\n"
    table = index_folder(faces)
    rows = read_triplets_csv(out, table)
    assert rows.shape == (50, 3)
    expected = draw_triplets(ClassIndex(table["class"].to_numpy()), 50, np.random.default_rng(3))
    assert np.array_equal(rows, expected)
    for args, message in (
        (["--root", str(tmp_path / "none")], "does not exist"),
        (["--root", str(faces), "-n", "0"], "-n must be >= 1, got 0"),
    ):
        assert main(["triplets", *args, "-o", str(tmp_path / "x.csv")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and not (tmp_path / "x.csv").exists()
