"""Published weights: the converted MindSpore network equals OpenCV dnn's forward of the same frozen graph, the
conversion is cached by the source's hash, and one name works everywhere a model is accepted."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from facenet.data.images import EvalTransform, read_image
from facenet.errors import ConfigError, UserError
from facenet.models import pretrained
from tests.conftest import SHARED_DATA


@pytest.fixture(scope="module")
def converted():
    return pretrained.resolve("pretrained:casia-webface")


def _images(kind: str, tmp_path_factory) -> list[str]:
    """32 face images: LFW's (real faces, when ../shared/data is there) or generated ones (always)."""
    if kind == "lfw":
        root = SHARED_DATA / "lfw112"
        if not root.is_dir():
            pytest.skip(f"real face data {root} is absent")
        return sorted(str(p) for p in root.glob("*/*.jpg"))[:32]
    from facenet.data.synthetic import generate_eval

    root = generate_eval(
        str(tmp_path_factory.mktemp("gen")),
        identities_per_fold=2,
        images_per_identity=4,
        pairs_per_fold=2,
        image_size=112,
        seed=3,
        workers=1,
    )
    return sorted(str(p) for p in root.rglob("*.png"))[:32]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["generated", "lfw"])
def test_embeddings_equal_opencv_dnn_on_the_same_graph(converted, kind, tmp_path_factory):
    import cv2
    import mindspore as ms

    from facenet.models.load import load_model

    paths = _images(kind, tmp_path_factory)
    x = np.stack([EvalTransform(160, None, "fixed")(read_image(p)) for p in paths])
    net, spec = load_model(converted)
    ours = np.concatenate([net(ms.Tensor(x[i : i + 8])).asnumpy() for i in range(0, len(x), 8)])
    reference = cv2.dnn.readNetFromTensorflow(str(pretrained.lookup("casia-webface").source_file()))
    theirs = []
    for image in x:  # OpenCV's dnn refuses a batch > 1 for this graph
        reference.setInput(image[None])
        theirs.append(reference.forward().ravel())
    assert len(paths) == 32 and ours.shape == (32, 512)
    diff = float(np.abs(ours - np.array(theirs)).max())
    print(f"{kind}: max |ours - OpenCV dnn| over 32 x 512 = {diff:.2e}")
    assert diff <= 1e-4
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_conversion_is_cached_by_source_hash_and_records_where_it_came_from(converted):
    entry = pretrained.lookup("casia-webface")
    sha = hashlib.sha256(entry.source_file().read_bytes()).hexdigest()
    assert converted.name.startswith(f"casia-webface-{sha[:16]}-") and converted.suffix == ".ckpt"
    stamp = converted.stat().st_mtime_ns
    assert pretrained.resolve("casia-webface") == converted and converted.stat().st_mtime_ns == stamp  # no rework
    spec = json.loads(converted.with_suffix(".json").read_text())
    assert spec["pretrained"]["source_sha256"] == sha and spec["pretrained"]["published"]["lfw_accuracy"] == 0.9905
    assert "MIT" in spec["pretrained"]["licence"] and "20180408-102900" in spec["pretrained"]["source"]
    assert spec["metrics"]["threshold"] == pytest.approx(1.0638, abs=1e-3)  # from its LFW evaluation (test below)
    assert spec["preprocess"] == {
        "image_size": 160,
        "channel_order": "RGB",
        "normalize": "fixed",
        "layout": "NCHW",
        "align": {"style": "box", "margin": 32.0},
    }


@pytest.mark.slow
def test_one_name_everywhere(converted, compose_cfg, tmp_path, tmp_path_factory, capsys):
    from facenet.app import run
    from facenet.cli import main
    from facenet.inference import Embedder

    paths = _images("generated", tmp_path_factory)[:4]
    by_name = Embedder.from_pretrained("casia-webface").embed(paths)
    by_ref = Embedder.from_pretrained("pretrained:casia-webface").embed(paths)
    by_file = Embedder.from_pretrained(converted).embed(paths)
    assert np.array_equal(by_name, by_file) and np.array_equal(by_ref, by_file)
    assert main(["pretrained", "list"]) == 0 and "casia-webface" in capsys.readouterr().out
    assert main(["pretrained", "export", "casia-webface", "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "casia-webface.ckpt").read_bytes() == converted.read_bytes()
    assert json.loads((tmp_path / "out" / "casia-webface.json").read_text())["pretrained"]["name"] == "casia-webface"
    metrics = run(
        compose_cfg(
            "task=eval",
            "ckpt=pretrained:casia-webface",
            f"output_dir={tmp_path}",
            "tracking=off",
            "eval.identities_per_fold=2",
            "eval.images_per_identity=3",
            "eval.pairs_per_fold=4",
            "eval.image_size=48",
        )
    )
    assert 0.5 <= metrics["accuracy"] <= 1.0
    (report,) = tmp_path.glob("runs/*/*/eval/report.json")
    applied = json.loads(report.read_text())["preprocess"]
    assert applied["image_size"] == 160 and applied["normalize"] == "fixed"


def test_unknown_names_list_the_known_ones(compose_cfg, tmp_path, capsys):
    from facenet.app import run
    from facenet.cli import main

    with pytest.raises(ConfigError, match="unknown pretrained model 'vggface2'; known: casia-webface"):
        pretrained.lookup("pretrained:vggface2")
    with pytest.raises(UserError, match="known: casia-webface"):
        run(compose_cfg("task=eval", "ckpt=pretrained:vggface2", f"output_dir={tmp_path}", "tracking=off"))
    assert main(["verify", "a.jpg", "b.jpg", "--model", "pretrained:vggface2"]) == 1
    assert "known: casia-webface" in capsys.readouterr().err
    assert main(["verify", "a.jpg", "b.jpg", "--model", "nosuch.ckpt"]) == 1
    assert "published model: casia-webface" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.real_data
def test_recorded_lfw_evaluation_is_what_this_pipeline_gives(converted, compose_cfg, tmp_path):
    """The metrics the registry records (the model's default threshold) against a fresh run over all 6000 LFW
    pairs: 7 minutes, so opt-in (FACENET_TEST_FULL_LFW=1)."""
    import os

    from facenet.app import run

    if os.environ.get("FACENET_TEST_FULL_LFW") != "1":
        pytest.skip("evaluates all of LFW (about 7 minutes): run with FACENET_TEST_FULL_LFW=1")
    root = SHARED_DATA / "lfw112"
    if not root.is_dir():
        pytest.skip(f"real face data {root} is absent")
    got = run(
        compose_cfg(
            "task=eval",
            "ckpt=pretrained:casia-webface",
            "eval=lfw",
            f"eval.root={root}",
            f"eval.pairs={root / 'pairs.txt'}",
            f"output_dir={tmp_path}",
            "tracking=off",
        )
    )
    recorded = pretrained.lookup("casia-webface").metrics
    for key in ("accuracy", "threshold", "auc", "eer", "val_at_far_0.001"):
        assert got[key] == pytest.approx(recorded[key], abs=2e-3), key  # a few pairs, on another CPU
