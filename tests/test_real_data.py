"""Real face sets from ../shared/data (skipped where absent): the official LFW protocol resolves completely."""

from __future__ import annotations

import numpy as np
import pytest

from facenet.data.images import read_image
from facenet.data.index import index_folder
from facenet.data.pairs import read_pairs
from tests.conftest import shared_data

pytestmark = pytest.mark.real_data


def test_lfw_pairs_resolve_all_6000():
    root = shared_data("lfw112")
    pairs = read_pairs(root / "pairs.txt", root)
    assert len(pairs) == 6000 and pairs.n_folds == 10
    assert pairs.issame.sum() == 3000
    # official View 2 order: each fold is 300 same pairs then 300 different pairs
    assert all(
        pairs.issame[k * 600 : k * 600 + 300].all() and not pairs.issame[k * 600 + 300 : (k + 1) * 600].any()
        for k in range(10)
    )
    assert len(pairs.paths) == 7701  # every image the protocol names, each once


def test_celeb24_and_att_index():
    celeb = index_folder(shared_data("celeb24"))
    assert len(celeb) == 942 and celeb["class"].nunique() == 24
    att = index_folder(shared_data("att_faces"))
    assert len(att) == 400 and att["class"].nunique() == 40
    img = read_image(att["path"].iloc[0])  # PGM, grey
    assert img.shape == (112, 92, 3) and np.array_equal(img[..., 0], img[..., 1])
