"""eval=ijb: template pooling against a hand-computed case, TAR at FAR and TPIR at FPIR against brute-force loops,
the IJB folder layout read back from generated samples (synthetic faces; LFW's where ../shared/data is there), every
bad input one clear line, and `task=eval eval=ijb` / training runs reporting what an independent computation gives."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from facenet.data.ijb import TEMPLATE_112, meta_files, read_ijb, write_sample
from facenet.errors import ConfigError, DataError
from facenet.evaluation.ijb import IjbProtocol, score_ijb
from facenet.metrics.templates import far_threshold, pool_templates, search_gallery, verify_templates
from tests.conftest import ROOT, shared_data, tiny_checkpoint

SMALL_TARGETS = "eval.far_targets=[1e-4,1e-3,1e-2,1e-1]"  # a generated sample has about 33000 impostor pairs


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """The default generated sample: 40 enrolled subjects (20 per gallery), 4 distractors, 5 probes each."""
    return write_sample(tmp_path_factory.mktemp("ijb") / "IJBC")


@pytest.fixture(scope="module")
def ckpt(compose_cfg, tmp_path_factory) -> Path:
    return tiny_checkpoint(compose_cfg, tmp_path_factory.mktemp("ckpt"))


def copy(sample: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sample, tmp_path / "IJBC"))


def protocol(root: Path, **kw) -> IjbProtocol:
    settings = dict(
        name=None,
        aligned=False,
        identification=True,
        detector_weights=False,
        far_targets=[1e-4, 1e-3, 1e-2, 1e-1],
        fpir_targets=[0.01, 0.1],
        batch_size=64,
        flip_tta=False,
        center_crop=None,
        override_image_size=None,
        missing="fail",
    )
    return IjbProtocol(root=str(root), **{**settings, **kw})


# ---------------------------------------------------------------- pooling and metrics
def test_template_pooling_matches_a_hand_computed_example():
    # template 7: media 1 holds two frames, media 2 one; template 3 reuses media id 1 (another template's media)
    features = np.array([[2.0, 0.0], [0.0, -3.0], [1.0, 0.0], [0.0, 1.0]])
    templates = np.array([7, 3, 7, 7])
    medias = np.array([2, 1, 1, 1])
    ids, pooled = pool_templates(features, templates, medias)
    assert ids.tolist() == [3, 7]
    # media 1 of template 7: mean((1, 0), (0, 1)) = (0.5, 0.5); media 2: (2, 0); their mean (1.25, 0.25), then L2
    np.testing.assert_allclose(pooled[1], np.array([1.25, 0.25]) / np.sqrt(1.25**2 + 0.25**2), atol=1e-12)
    np.testing.assert_allclose(pooled[0], [0.0, -1.0], atol=1e-12)
    # the mean over faces, (1, 1/3), points elsewhere: the media level matters
    assert not np.allclose(pooled[1], np.array([1.0, 1 / 3]) / np.linalg.norm([1.0, 1 / 3]), atol=1e-3)
    # detector weights multiply each face first: media 1 (1*(1, 0) + 3*(0, 1)) / 2 = (0.5, 1.5), media 2 0.5*(2, 0)
    _, weighted = pool_templates(features, templates, medias, weights=np.array([0.5, 1.0, 1.0, 3.0]))
    np.testing.assert_allclose(weighted[1], np.array([0.75, 0.75]) / np.sqrt(2 * 0.75**2), atol=1e-12)


def brute_tar(genuine: np.ndarray, impostor: np.ndarray, far: float) -> float:
    """The highest TAR over every threshold (each distinct score, and above all) whose FAR is <= far."""
    best = 0.0
    for t in [*sorted(set(np.r_[genuine, impostor].tolist())), np.inf]:
        if sum(s >= t for s in impostor) / len(impostor) <= far + 1e-12:
            best = max(best, sum(s >= t for s in genuine) / len(genuine))
    return best


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_tar_at_far_equals_brute_force(seed, ties):
    rng = np.random.default_rng(seed)
    genuine, impostor = rng.normal(1.0, 1.0, 40), rng.normal(0.0, 1.0, 300)
    if ties:
        genuine, impostor = np.round(genuine, 1), np.round(impostor, 1)
    scores = np.r_[genuine, impostor]
    labels = np.r_[np.ones(40), np.zeros(300)]
    order = rng.permutation(len(scores))
    targets = [1 / 300, 0.01, 0.05, 0.2]
    got = verify_templates(scores[order], labels[order], targets)
    assert (got.genuine, got.impostor) == (40, 300)
    for f in targets:
        tar, threshold = got.tar_at_far[f]
        assert tar == pytest.approx(brute_tar(genuine, impostor, f), abs=1e-12)
        assert (impostor >= threshold).mean() <= f + 1e-12 and (genuine >= threshold).mean() == tar
    pairs = [(g > i) + 0.5 * (g == i) for g in genuine for i in impostor]
    assert got.auc == pytest.approx(np.mean(pairs), abs=1e-12)


def test_a_far_target_the_pairs_cannot_measure_is_refused():
    scores, labels = np.r_[np.ones(5), np.zeros(50)], np.r_[np.ones(5), np.zeros(50)]
    with pytest.raises(ConfigError, match=r"^FAR 0.01 needs at least 100 impostor pairs; this protocol has 50: drop"):
        verify_templates(scores, labels, [0.1, 0.01])
    with pytest.raises(ConfigError, match="needs at least 1000 impostor pairs"):
        far_threshold(np.zeros(999), 1e-3)
    assert 998 < far_threshold(np.arange(1000.0), 1e-3) < 999  # exactly enough: one false accept allowed


def brute_search(probes, probe_subjects, gallery, gallery_subjects, fpir, rank):
    """(TPIR, rank-`rank` rate) by loops, with `facenet.metrics.identification`'s stated threshold: of the cuts
    midway between distinct non-mated best scores (and above them all), the lowest whose FPIR is <= fpir."""
    rows = [[float(np.dot(p, g)) for g in gallery] for p in probes]
    own = [list(gallery_subjects).index(s) if s in list(gallery_subjects) else -1 for s in probe_subjects]
    mated = [i for i, c in enumerate(own) if c >= 0]
    best = [max(rows[i]) for i, c in enumerate(own) if c < 0]
    values = sorted(set(best))
    cuts = [values[-1] + 1.0] + [(values[i] + values[i + 1]) / 2 for i in range(len(values) - 1)]
    t = min(c for c in cuts if sum(b >= c for b in best) / len(best) <= fpir + 1e-12)
    rank_of = {i: sum(1 for v in rows[i] if v >= rows[i][own[i]]) for i in mated}
    tpir = sum(rank_of[i] <= rank and rows[i][own[i]] >= t for i in mated) / len(mated)
    return tpir, sum(rank_of[i] <= rank for i in mated) / len(mated)


@pytest.mark.parametrize("seed", range(3))
def test_tpir_at_fpir_and_cmc_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (30, 8))
    gallery_subjects = rng.permutation(30)[:12] + 100  # 12 of 30 subjects enrolled, in shuffled columns
    probe_subjects = rng.integers(0, 30, 90) + 100
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    gallery = unit(centres[gallery_subjects - 100] + rng.normal(0, 0.8, (12, 8)))
    probes = unit(centres[probe_subjects - 100] + rng.normal(0, 0.8, (90, 8)))
    targets = [1 / int((~np.isin(probe_subjects, gallery_subjects)).sum()), 0.1, 0.3]
    got = search_gallery(probes, probe_subjects, gallery, gallery_subjects, targets, ranks=(1, 5), depth=10)
    assert got.mated == int(np.isin(probe_subjects, gallery_subjects).sum()) and got.mated + got.nonmated == 90
    for k in (1, 5):
        for f in targets:
            tpir, rate = brute_search(probes, probe_subjects, gallery, gallery_subjects, f, k)
            assert got.tpir[(f, k)][0] == pytest.approx(tpir, abs=1e-12)
        assert got.cmc[k - 1] == pytest.approx(rate, abs=1e-12)
    with pytest.raises(ValueError, match="more than one template"):
        search_gallery(probes, probe_subjects, gallery, np.r_[gallery_subjects[:11], gallery_subjects[0]], targets)


# ---------------------------------------------------------------- the folder layout
def test_a_generated_sample_reads_back_as_written(sample):
    spec = json.loads((sample / "sample.json").read_text())
    data = read_ijb(sample)
    c = data.counts()
    people = spec["subjects"] + spec["distractors"]
    assert data.name == "ijbc" and c["templates"] == spec["templates"] == spec["subjects"] + 5 * people
    assert c["faces"] == spec["faces"] == len(list((sample / "loose_crop").iterdir()))
    assert c["genuine_pairs"] + c["impostor_pairs"] == c["templates"] * (c["templates"] - 1) // 2
    subject = {}
    for gallery in ("G1", "G2"):
        templates, subjects = data.galleries[gallery]
        assert len(templates) == spec["subjects"] // 2
        subject.update(zip(templates.tolist(), subjects.tolist(), strict=True))
        for t in templates:  # a gallery template: 2 media of 2 frames
            assert np.unique(data.medias[data.templates == t], return_counts=True)[1].tolist() == [2, 2]
        nonmated = ~np.isin(data.probes[1], subjects)
        assert nonmated.sum() == 5 * (people - spec["subjects"] // 2)  # the other gallery's and the distractors'
    subject.update(zip(*(p.tolist() for p in data.probes), strict=True))
    assert all(label == (subject[a] == subject[b]) for a, b, label in data.pairs.tolist())
    assert read_ijb(sample).fingerprint() == data.fingerprint()
    assert data.landmarks.shape == (c["faces"], 5, 2) and ((data.scores >= 0.6) & (data.scores <= 1)).all()


def test_ijbb_galleries_s1_s2_are_read_as_g1_g2(tmp_path):
    root = write_sample(tmp_path / "IJBB", name="ijbb", subjects=10, distractors=0, probes_per_subject=1)
    assert sorted(p.name for p in (root / "meta").glob("*.csv")) == [
        "ijbb_1N_gallery_S1.csv",
        "ijbb_1N_gallery_S2.csv",
        "ijbb_1N_probe_mixed.csv",
    ]
    data = read_ijb(root)
    assert data.name == "ijbb" and {g: len(t) for g, (t, _) in data.galleries.items()} == {"G1": 5, "G2": 5}


def test_the_landmarks_align_each_loose_crop_back_onto_its_face(tmp_path):
    from facenet.align import TEMPLATE_112 as ALIGN_TEMPLATE
    from facenet.align import align_face

    np.testing.assert_array_equal(TEMPLATE_112, ALIGN_TEMPLATE)  # the generator's copy of the template
    spec = dict(subjects=10, distractors=0, probes_per_subject=1, image_size=112)
    crops = read_ijb(write_sample(tmp_path / "crops", aligned=True, **spec)).faces()
    loose = read_ijb(write_sample(tmp_path / "loose", **spec)).faces(align_face)
    diff = lambda i, j: np.abs(crops.read(i).astype(float) - loose.read(j)).mean()  # noqa: E731
    same = [diff(i, i) for i in range(len(crops))]
    other = [diff(i, (i + 7) % len(crops)) for i in range(len(crops))]
    assert max(same) < 20 < 30 < min(other)  # brightness jitter and JPEG only, against another face


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("role", ["faces", "landmarks", "pairs", "G1", "G2", "probes"])
def test_a_missing_meta_file_is_one_line_naming_it(sample, tmp_path, role):
    root = copy(sample, tmp_path)
    (root / meta_files("ijbc")[role]).unlink()
    with pytest.raises(DataError) as err:
        protocol(root, name="ijbc").prepare()
    message = str(err.value)
    assert message.startswith(f"{root / meta_files('ijbc')[role]} is missing") and "\n" not in message
    if role in ("G1", "G2", "probes"):  # 1:1 alone needs none of the 1:N files
        assert "eval.identification=false" in message
        assert protocol(root, identification=False).prepare().probes is None


def test_run_py_names_a_missing_meta_file_in_one_line(sample, ckpt, tmp_path):
    """The acceptance point: `python run.py task=eval eval=ijb` on a folder without one meta file."""
    root = copy(sample, tmp_path)
    (root / "meta" / "ijbc_template_pair_label.txt").unlink()
    args = ["task=eval", f"ckpt={ckpt}", "eval=ijb", f"eval.root={root}", "tracking=off", f"output_dir={tmp_path}"]
    proc = subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in log
    (line,) = [ln for ln in log.splitlines() if "ijbc_template_pair_label.txt" in ln]
    assert line.endswith(
        f"{root}/meta/ijbc_template_pair_label.txt is missing: an IJB-C folder holds "
        + ", ".join(meta_files("ijbc").values())
    )


def _edit(path: Path, lineno: int, text: str | None) -> None:
    lines = path.read_text().splitlines()
    if text is None:
        del lines[lineno - 1]
    else:
        lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")


BAD_LINES = [  # (file role, line, its new text, what the message says)
    ("faces", 3, "3.jpg 1", r"line 3: '3.jpg 1': expected <image> <template id> <media id>$"),
    ("faces", 5, "5.jpg x 2", r"line 5: '5.jpg x 2': expected <image> <template id> <media id>$"),
    ("faces", 4, "4.jpg 1 2 9", r"line 4: '4.jpg 1 2 9': expected <image> <template id> <media id>$"),
    ("faces", 1, "../../etc/passwd 1 1", r"line 1: '../../etc/passwd 1 1': an image name is a path inside loose_crop"),
    ("landmarks", 2, "2.jpg 1 2 3 4 5 6 7 8 9 0.5", r"line 2: .*expected <image> <10 landmark coordinates> <detector"),
    ("landmarks", 6, "7.jpg 1 2 3 4 5 6 7 8 9 10 0.9", r"and .*ijbc_face_tid_mid.txt differ at line 6 \('7.jpg' vs"),
    ("pairs", 7, "1 8 2", r"line 7: '1 8 2': the label is 1 \(same subject\) or 0$"),
    ("pairs", 9, "1 10", r"line 9: '1 10': expected <template id> <template id> <label>$"),
    ("pairs", 2, "1 99999 0", r"names 1 templates without a face in .*ijbc_face_tid_mid.txt: 99999$"),
    ("G1", 1, "TEMPLATE_ID,SUBJECT,FILENAME", r"line 1 'TEMPLATE_ID,SUBJECT,FILENAME': expected a header naming"),
    ("G1", 3, "1,x,loose_crop/2.jpg,1", r"line 3: '1,x,loose_crop/2.jpg,1': TEMPLATE_ID and SUBJECT_ID are integers"),
    ("probes", 2, "41,2,loose_crop/161.jpg,81", r"template 41 is listed with more than one SUBJECT_ID$"),
]


@pytest.mark.parametrize(("role", "lineno", "text", "says"), BAD_LINES)
def test_a_malformed_line_is_one_line_naming_the_file(sample, tmp_path, role, lineno, text, says):
    root = copy(sample, tmp_path)
    path = root / meta_files("ijbc")[role]
    _edit(path, lineno, text)
    with pytest.raises(DataError) as err:
        read_ijb(root)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert __import__("re").search(says, message), message


def test_an_empty_meta_file_and_a_folder_that_is_none_are_one_line(sample, tmp_path):
    root = copy(sample, tmp_path)
    (root / meta_files("ijbc")["pairs"]).write_text("")
    with pytest.raises(DataError, match=r"ijbc_template_pair_label.txt is empty: expected lines <template id>"):
        read_ijb(root)
    with pytest.raises(DataError, match=r"is no IJB-B / IJB-C folder: .* \(it holds IJBC: set eval.root to one"):
        read_ijb(tmp_path)
    with pytest.raises(DataError, match="does not exist or is not a folder"):
        read_ijb(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="eval.name must be one of ijbb, ijbc or null"):
        read_ijb(root, name="ijba")


def test_missing_images_are_refused_or_left_out_and_counted(sample, tmp_path):
    root = copy(sample, tmp_path)
    data = read_ijb(root)
    probe = int(data.probes[0][0])  # every face of one probe template, and one face of a gallery template
    gone = [name for name, t in zip(data.images, data.templates, strict=True) if t == probe] + [data.images[0]]
    for name in gone:
        (root / "loose_crop" / name).unlink()
    with pytest.raises(DataError, match=rf"^{len(gone)} images listed in .* are missing from .*eval.missing=skip$"):
        protocol(root).prepare()
    left = protocol(root, missing="skip").prepare()
    t = data.counts()["templates"]
    assert left.skipped == {
        "faces": len(gone),
        "templates": 1,
        "pairs": t - 1,
        "G1_templates": 0,
        "G2_templates": 0,
        "probe_templates": 1,
    }
    assert len(left.images) == len(data.images) - len(gone) and probe not in left.pairs[:, :2]
    result = score_ijb(np.random.default_rng(0).normal(size=(len(left.images), 8)), left, [1e-4], [0.01])
    assert result.verification.genuine + result.verification.impostor == len(data.pairs) - (t - 1)
    assert sum(s.mated + s.nonmated for s in result.searches.values()) == 2 * (len(data.probes[0]) - 1)


def test_targets_the_data_cannot_measure_are_refused_before_anything_is_embedded(
    sample, ckpt, compose_cfg, tmp_path, monkeypatch
):
    from facenet.app import run

    def never(*args, **kw):
        raise AssertionError("embedded before the targets were checked")

    monkeypatch.setattr("facenet.evaluation.ijb.embed_images", never)
    base = ("task=eval", f"ckpt={ckpt}", "eval=ijb", f"eval.root={sample}", "tracking=off", f"output_dir={tmp_path}")
    with pytest.raises(ConfigError, match=r"^FAR 1e-06, 1e-05 needs at least 1000000 impostor pairs; this protocol "):
        run(compose_cfg(*base))  # the default targets reach 1e-6: real IJB-C has 15.6 million pairs
    with pytest.raises(ConfigError, match=r"^FPIR 0.001 needs at least 1000 non-mated probes in gallery G1; this "):
        run(compose_cfg(*base, SMALL_TARGETS, "eval.fpir_targets=[0.001,0.01]"))
    with pytest.raises(ConfigError, match="eval.far_targets must include 0.0001"):
        protocol(sample, far_targets=[1e-3, 1e-2])


# ---------------------------------------------------------------- runs
def independent_metrics(net, transform, data, far: float) -> dict[str, float]:
    """TAR at `far` and each gallery's rank-1 from the faces' embeddings, by dictionaries and loops."""
    from facenet.align import align_face
    from facenet.evaluation.verify import embed_images

    emb = embed_images(net, data.faces(align_face), transform, 64, 1, None)
    media = defaultdict(lambda: defaultdict(list))
    for e, t, m in zip(emb, data.templates, data.medias, strict=True):
        media[int(t)][int(m)].append(e)
    pooled = {}
    for t, by_media in media.items():
        v = np.mean([np.mean(frames, axis=0) for frames in by_media.values()], axis=0)
        pooled[t] = v / np.linalg.norm(v)
    scores = np.array([pooled[a] @ pooled[b] for a, b, _ in data.pairs])
    same = data.pairs[:, 2] == 1
    # the best TAR with at most floor(far * n) impostors accepted: above the (floor(far * n) + 1)-th highest impostor
    refused = np.sort(scores[~same])[::-1][int(np.floor(far * (~same).sum() + 1e-9))]
    out = {"tar": float((scores[same] > refused).mean())}
    for gallery, (templates, subjects) in data.galleries.items():
        hits = 0
        for p, s in zip(*data.probes, strict=True):
            if s in subjects:
                best = max(range(len(templates)), key=lambda j: pooled[int(p)] @ pooled[int(templates[j])])
                hits += subjects[best] == s
        out[gallery] = hits / np.isin(data.probes[1], subjects).sum()
    return out


def test_task_eval_reports_what_an_independent_computation_gives(sample, ckpt, compose_cfg, tmp_path):
    from facenet.app import run
    from facenet.data.images import EvalTransform
    from facenet.models.load import load_model

    args = ("task=eval", f"ckpt={ckpt}", "eval=ijb", f"eval.root={sample}", SMALL_TARGETS, "tracking=off")
    got = run(compose_cfg(*args, f"output_dir={tmp_path}"))
    net, spec = load_model(ckpt)
    want = independent_metrics(net, EvalTransform(spec["preprocess"]["image_size"]), read_ijb(sample), 1e-4)
    assert got["tar_at_far_0.0001"] == pytest.approx(want["tar"], abs=1e-9)
    assert got["G1/rank1"] == pytest.approx(want["G1"]) and got["G2/rank1"] == pytest.approx(want["G2"])
    assert got["mean/rank1"] == pytest.approx((want["G1"] + want["G2"]) / 2)
    assert "rank1" not in got and "accuracy" not in got  # the headline a run returns is this protocol's
    for f in ("0.01", "0.1"):
        for k in (1, 5):
            key = f"tpir_at_fpir_{f}_rank{k}"
            assert got[f"mean/{key}"] == pytest.approx((got[f"G1/{key}"] + got[f"G2/{key}"]) / 2)
    (out,) = tmp_path.glob("runs/*/*/eval")
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "ijb" and report["fingerprint"] == read_ijb(sample).fingerprint()
    assert set(report["meta_sha1"]) == set(meta_files("ijbc").values())
    assert report["verification"]["tar_at_far"]["0.0001"]["tar"] == got["tar_at_far_0.0001"]
    assert {p.name for p in out.iterdir()} == {"report.json", "report.txt", "roc.png", "cmc.png"}
    assert "TAR@FAR=0.0001" in (out / "report.txt").read_text()


def test_ijb_as_the_runs_own_protocol_and_in_also_eval(sample, compose_cfg, tmp_path):
    from facenet.app import run

    got = run(
        compose_cfg(
            "experiment=smoke",
            "eval=ijb",
            f"eval.root={sample}",
            SMALL_TARGETS,
            "+eval@also_eval.ijbc=ijb",
            f"also_eval.ijbc.root={sample}",
            "also_eval.ijbc.far_targets=[1e-4]",
            "also_eval.ijbc.identification=false",
            "tracking=off",
            f"output_dir={tmp_path}",
        )
    )
    (run_dir,) = tmp_path.glob("runs/*/*")
    assert got["best_accuracy"] == got["tar_at_far_0.0001"]  # best.ckpt picked by the protocol's headline
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert got["ijbc/tar_at_far_0.0001"] == got["tar_at_far_0.0001"]  # the same folder, the same weights
    assert "ijbc/G1/rank1" not in got and "G1/rank1" in got
    assert json.loads((run_dir / "ijbc" / "report.json").read_text())["identification"] == {}


# ---------------------------------------------------------------- real faces
@pytest.mark.real_data
def test_a_sample_from_lfw112_aligns_back_onto_its_faces(tmp_path):
    from facenet.align import align_face

    lfw = shared_data("lfw112")
    spec = dict(source=lfw, subjects=10, distractors=0, probes_per_subject=1)
    crops = read_ijb(write_sample(tmp_path / "crops", aligned=True, **spec)).faces()
    loose = read_ijb(write_sample(tmp_path / "loose", **spec)).faces(align_face)
    diff = lambda i, j: np.abs(crops.read(i).astype(float) - loose.read(j)).mean()  # noqa: E731
    assert max(diff(i, i) for i in range(len(crops))) < 20 < 30 < min(diff(i, i - 9) for i in range(len(crops)))


@pytest.mark.slow
@pytest.mark.real_data
def test_a_published_model_on_an_lfw112_sample(compose_cfg, tmp_path):
    """LFW's most photographed people as IJB templates, scored by the published FaceNet (casia-webface)."""
    from facenet.app import run

    root = write_sample(tmp_path / "IJBC", source=shared_data("lfw112"), probes_per_subject=4)
    got = run(
        compose_cfg(
            "task=eval",
            "ckpt=pretrained:casia-webface",
            "eval=ijb",
            f"eval.root={root}",
            SMALL_TARGETS,
            "eval.fpir_targets=[0.1]",
            "tracking=off",
            f"output_dir={tmp_path}",
        )
    )
    # measured here: TAR@FAR=1e-4 0.83, 1e-3 0.92, 1e-2 0.98; rank-1 1.0 in both galleries
    assert got["tar_at_far_0.01"] > 0.9 and got["mean/rank1"] > 0.9, got
