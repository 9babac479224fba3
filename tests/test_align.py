"""`facenet align`: 5-point similarity alignment, face choice, and real photos turned into training crops."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

from facenet.align import TEMPLATE_112, align_face, box_crop, centre_crop, check_style, pick_face
from facenet.errors import ConfigError, DataError
from tests.conftest import ROOT, shared_data


def test_landmarks_on_the_template_give_the_identity_warp():
    img = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    out = align_face(img, TEMPLATE_112, size=112)
    assert np.abs(out.astype(int) - img.astype(int)).mean() < 1.0


def test_alignment_undoes_a_known_similarity_transform():
    """Rotate, scale and shift an image whose landmarks we know; alignment must recover the template layout."""
    img = np.zeros((112, 112, 3), np.uint8)
    for x, y in TEMPLATE_112:
        cv2.circle(img, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1)
    m = cv2.getRotationMatrix2D((56, 56), 25, 1.3)
    m[:, 2] += (30, 20)
    moved = cv2.warpAffine(img, m, (200, 200))
    landmarks = cv2.transform(TEMPLATE_112[None], m)[0]
    back = align_face(moved, landmarks, size=112)
    for x, y in TEMPLATE_112:  # every landmark dot is back where the template puts it
        assert back[int(round(y)), int(round(x))].max() > 200
    wider = align_face(moved, landmarks, size=112, margin=0.5)  # margin: the same face, smaller in the crop
    eye_gap = TEMPLATE_112[1, 0] - TEMPLATE_112[0, 0]
    cols = np.flatnonzero(wider[52].max(axis=1) > 200)
    assert cols.max() - cols.min() == pytest.approx(eye_gap / 1.5, abs=4)


def test_box_crop_grows_the_box_by_the_margin_and_clips_at_the_border():
    """davidsandberg's crop: margin/2 added on every side, clipped to the image, then resized."""
    img = np.zeros((100, 120, 3), np.uint8)
    img[:, :, 0] = np.arange(120, dtype=np.uint8)[None, :]  # red = column index
    img[:, :, 1] = np.arange(100, dtype=np.uint8)[:, None]  # green = row index
    crop = box_crop(img, (30, 20, 40, 50), size=56, margin=16)  # box x 30..70, y 20..70 -> 22..78, 12..78
    assert crop.shape == (56, 56, 3)
    assert np.array_equal(crop, cv2.resize(img[12:78, 22:78], (56, 56), interpolation=cv2.INTER_LINEAR))
    edge = box_crop(img, (5, 90, 30, 30), size=20, margin=32)  # x 5-16 < 0 -> 0; y to 136 > 100 -> 100
    assert np.array_equal(edge, cv2.resize(img[74:100, 0:51], (20, 20), interpolation=cv2.INTER_LINEAR))
    with pytest.raises(DataError, match="outside"):
        box_crop(img, (200, 200, 10, 10))
    with pytest.raises(ConfigError, match="five_point takes a fraction"):
        check_style("five_point", 32)
    with pytest.raises(ConfigError, match="style must be one of"):
        check_style("tight", 0)


def test_pick_face():
    faces = [{"box": [0, 0, 50, 50]}, {"box": [60, 60, 20, 20]}]
    assert pick_face(faces, (140, 140), "largest") is faces[0]
    assert pick_face(faces, (140, 140), "central") is faces[1]


@pytest.mark.real_data
def test_align_att_faces_then_train_on_the_crops(tmp_path, compose_cfg):
    from facenet.app import run

    att = shared_data("att_faces")
    (tmp_path / "raw").mkdir()
    for s in ("s1", "s2", "s3"):  # 3 identities x 10 photos, linked, not copied
        (tmp_path / "raw" / s).symlink_to(att / s, target_is_directory=True)
    (tmp_path / "raw" / "blank").mkdir()
    cv2.imwrite(str(tmp_path / "raw" / "blank" / "wall.png"), np.full((120, 100, 3), 128, np.uint8))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "facenet.cli",
            "align",
            str(tmp_path / "raw"),
            str(tmp_path / "crops"),
            "--workers",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "aligned 30 of 31 images" in proc.stdout and "no face found in 1" in proc.stdout
    assert "wall.png" in (tmp_path / "crops" / "align_report.txt").read_text()
    crops = sorted((tmp_path / "crops").glob("s*/*.png"))
    assert len(crops) == 30 and cv2.imread(str(crops[0])).shape == (112, 112, 3)
    small = [
        "batch.identities=3",
        "batch.images_per_identity=2",
        "epochs=1",
        "train.steps_per_epoch=2",
        "eval.identities_per_fold=2",
        "eval.images_per_identity=2",
        "eval.pairs_per_fold=1",
        "eval.image_size=32",
    ]
    crops_root = f"dataset.root={tmp_path / 'crops'}"
    metrics = run(compose_cfg(f"output_dir={tmp_path / 'out'}", "dataset=folder", crops_root, "tracking=off", *small))
    assert 0 <= metrics["accuracy"] <= 1


def _gradient(height: int, width: int) -> np.ndarray:
    """A smooth colour ramp (no face in it), each pixel telling where it came from."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:, :, 0] = (np.arange(width) * 255 // (width - 1)).astype(np.uint8)[None, :]
    img[:, :, 1] = (np.arange(height) * 255 // (height - 1)).astype(np.uint8)[:, None]
    img[:, :, 2] = 90
    return img


def test_centre_crop_is_insightfaces_lfw_fallback():
    """InsightFace's `face_preprocess.preprocess` without box or landmarks: the box inset by 1/16 of each side,
    grown by 22 px on each side, clipped, resized. 640x480: x 40-22 .. 600+22, y 30-22 .. 450+22."""
    img = _gradient(480, 640)
    want = cv2.resize(img[8:472, 18:622], (112, 112), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(centre_crop(img, 112), want)
    lfw = _gradient(250, 250)  # LFW's photos: the inset (15 px) is smaller than the margin, so the whole photo
    assert np.array_equal(centre_crop(lfw, 112), cv2.resize(lfw, (112, 112), interpolation=cv2.INTER_LINEAR))


@pytest.mark.real_data
def test_on_miss_centre_writes_the_centre_crop_skip_writes_nothing_both_list_it(tmp_path):
    face = shared_data("att_faces") / "s1" / "1.pgm"
    raw = tmp_path / "raw"
    (raw / "s1").mkdir(parents=True)
    (raw / "s1" / "face.pgm").write_bytes(face.read_bytes())
    (raw / "wall").mkdir()
    cv2.imwrite(str(raw / "wall" / "ramp.png"), _gradient(480, 640))
    out = tmp_path / "crops"

    def align(*extra: str) -> str:
        cmd = [sys.executable, "-m", "facenet.cli", "align", str(raw), str(out), "--workers", "1", *extra]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    printed = align("--on-miss", "centre")
    assert "aligned 1 of 2 images" in printed and "(2 written)" in printed
    assert "no face found in 1 (centre crops written, --on-miss centre)" in printed and "align_misses.csv" in printed
    ramp = cv2.imread(str(raw / "wall" / "ramp.png"))  # BGR on disk, as the crop is written
    want = cv2.resize(ramp[8:472, 18:622], (112, 112), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(cv2.imread(str(out / "wall" / "ramp.png")), want)
    assert cv2.imread(str(out / "s1" / "face.png")).shape == (112, 112, 3)
    misses = pd.read_csv(out / "align_misses.csv", keep_default_na=False)
    assert misses.to_dict("records") == [
        {
            "path": str(raw / "wall" / "ramp.png"),
            "problem": "no_face",
            "action": "centre_crop",
            "output": str(out / "wall" / "ramp.png"),
            "detail": "",
        }
    ]
    assert f"no face (centre crop written): {raw / 'wall' / 'ramp.png'}" in (out / "align_report.txt").read_text()

    printed = align()  # the default, --on-miss skip, into the same folder: the earlier centre crop goes
    assert "aligned 1 of 2 images" in printed and "(1 written)" in printed
    assert "no face found in 1 (not written, --on-miss skip)" in printed
    assert not (out / "wall" / "ramp.png").exists() and (out / "s1" / "face.png").is_file()
    misses = pd.read_csv(out / "align_misses.csv", keep_default_na=False)
    assert misses[["problem", "action", "output"]].values.tolist() == [["no_face", "skipped", ""]]
