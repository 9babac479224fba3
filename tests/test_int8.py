"""INT8 export (task=export export.format=ONNX export.quantize=int8): onnxruntime static quantisation calibrated on
a folder of faces, a fidelity gate against the float parent, the card it writes, and the refusals. The gate's
figures are recomputed here from the two models' embeddings (Embedder), not read back from the code under test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from mlflow import MlflowClient

from facenet.app import run
from facenet.errors import ConfigError, DataError, UserError
from facenet.inference import Embedder

LENIENT = ["export.gate.min_cosine=0.9", "export.gate.max_accuracy_drop=0.2"]


@pytest.fixture(scope="module")
def trained(compose_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8")
    run(compose_cfg("experiment=smoke", f"output_dir={out}", "epochs=2"))
    (ckpt,) = out.glob("runs/*/*/checkpoints/best.ckpt")
    return ckpt


@pytest.fixture(scope="module")
def calibration(tmp_path_factory) -> Path:
    """Generated faces of other people than the smoke evaluation's (another seed): 60 images."""
    from facenet.data.synthetic import generate_eval

    out = tmp_path_factory.mktemp("calib")
    return generate_eval(out, identities_per_fold=2, images_per_identity=3, pairs_per_fold=2, image_size=32, seed=99)


def export(compose_cfg, ckpt, out, *overrides):
    return run(
        compose_cfg(
            "experiment=smoke",
            "task=export",
            f"ckpt={ckpt}",
            f"output_dir={out}",
            "export.format=ONNX",
            "export.quantize=int8",
            "export.calibration.images=32",
            *overrides,
        )
    )


def test_a_passing_int8_model_is_published_with_its_gate_figures(trained, calibration, compose_cfg, tmp_path):
    cfg = compose_cfg("experiment=smoke")
    export(compose_cfg, trained, tmp_path, f"export.calibration.root={calibration}", *LENIENT)
    (run_dir,) = tmp_path.glob("runs/*/*")
    model = run_dir / "export" / "best.int8.onnx"
    card = json.loads((run_dir / "export" / "best.int8.onnx.json").read_text())
    assert sorted(p.name for p in (run_dir / "export").iterdir()) == ["best.int8.onnx", "best.int8.onnx.json"]
    q = card["quantization"]
    assert (q["weights"], q["activations"], q["calibration"]["images"]) == ("int8, per channel", "uint8", 32)
    assert len(q["calibration"]["fingerprint"]) == 40 and q["gate"]["min_cosine"] == 0.9
    measured = q["gate"]["measured"]
    # the gate's figures, recomputed from the two models' embeddings of the gate's pairs
    (pairs,) = instantiate(cfg.eval).prepare().values()
    images = [pairs.images.name(i) for i in range(len(pairs.images))]
    parent = Embedder.from_pretrained(run_dir / "quantize" / "best.onnx")
    int8 = Embedder.from_pretrained(model)
    a, b = parent.embed(images), int8.embed(images)
    cos = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert measured["cosine_mean"] == pytest.approx(cos.mean(), abs=1e-5)
    assert measured["cosine_min"] == pytest.approx(cos.min(), abs=1e-5)
    assert 0.9 <= cos.mean() < 1.0  # quantised: close, not equal
    # the recalibrated threshold keeps the parent's FAR on the gate's impostor pairs, and the card carries it
    d_float = np.linalg.norm(a[pairs.left] - a[pairs.right], axis=1)
    d_int8 = np.linalg.norm(b[pairs.left] - b[pairs.right], axis=1)
    impostor = ~pairs.issame
    far = np.mean(d_float[impostor] <= measured["threshold_float"])
    assert measured["far_float"] == pytest.approx(far)
    assert np.mean(d_int8[impostor] <= measured["threshold_int8"]) == pytest.approx(far)
    assert card["threshold"]["distance"] == measured["threshold_int8"] == int8.threshold
    assert card["threshold"]["float_distance"] == measured["threshold_float"]
    # the published model evaluates like any export (task=eval ckpt=FILE)
    run(compose_cfg("experiment=smoke", "task=eval", f"ckpt={model}", f"output_dir={tmp_path / 'eval'}"))
    (report,) = (tmp_path / "eval").glob("runs/*/*/eval/report.json")
    body = json.loads(report.read_text())
    assert body["model"]["format"] == "ONNX" and body["accuracy_mean"] == pytest.approx(measured["accuracy_int8"])


def test_an_impossible_gate_publishes_nothing_and_marks_the_run(trained, calibration, compose_cfg, tmp_path):
    with pytest.raises(UserError, match=r"failed the fidelity gate .*cosine to the float model mean 0\.\d+") as err:
        export(compose_cfg, trained, tmp_path, f"export.calibration.root={calibration}", "export.gate.min_cosine=1.0")
    message = str(err.value)
    assert "\n" not in message and "REJECTED-best.int8.onnx" in message and "nothing published" in message
    (run_dir,) = tmp_path.glob("runs/*/*")
    assert not (run_dir / "export").exists() or not any((run_dir / "export").iterdir())
    assert (run_dir / "quantize" / "REJECTED-best.int8.onnx").is_file()
    assert not list(run_dir.rglob("*.int8.onnx.json")) and not list(run_dir.rglob("candidate-*"))
    assert json.loads((run_dir / "quantize" / "gate.json").read_text())["passed"] is False
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    logged = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(run_id)
    assert logged.info.status == "FAILED" and logged.data.tags["export.gate"] == "failed"


def test_refusals_are_one_line(trained, calibration, compose_cfg, tmp_path):
    cases = [
        (["export.format=MINDIR", f"export.calibration.root={calibration}"], ConfigError, "quantises ONNX models"),
        ([], ConfigError, "export.quantize=int8 needs calibration images: export.calibration.root=DIR"),
        (
            [f"export.calibration.root={calibration}", "export.calibration.images=500"],
            DataError,
            r"holds 60 images; calibration asks for 500",
        ),
        ([f"export.calibration.root={calibration}", "export.keep_float=[nope]"], ConfigError, "has no node 'nope'"),
    ]
    for overrides, kind, says in cases:
        with pytest.raises(kind, match=says) as err:
            export(compose_cfg, trained, tmp_path, *overrides)
        assert "\n" not in str(err.value)
    # calibrating on the gate's own images is refused
    (pairs,) = instantiate(compose_cfg("experiment=smoke").eval).prepare().values()
    evaluation_root = Path(pairs.images.name(0)).parents[1]
    with pytest.raises(DataError, match=r"^refused: \d+ calibration images are evaluation images of the fidelity gate"):
        export(compose_cfg, trained, tmp_path, f"export.calibration.root={evaluation_root}")


@pytest.mark.slow  # the published Inception-ResNet-v1 quantised (about a minute on 2 cores)
def test_cli_quantises_a_published_model_and_refuses_what_it_cannot(calibration, tmp_path, capsys):
    from facenet.cli import main

    pairs = calibration / "pairs.txt"  # generated faces: the gate's pairs; calibrated on other generated faces
    from facenet.data.synthetic import generate_eval

    other = generate_eval(tmp_path / "cal", identities_per_fold=2, images_per_identity=2, pairs_per_fold=1,
                          image_size=32, seed=5)  # fmt: skip
    base = ["pretrained", "export", "casia-webface", "-o", str(tmp_path / "pub"), "--int8"]
    gate = ["--calibration", str(other), "--calibration-images", "32", "--gate-pairs", str(pairs)]
    assert main([*base, "--format", "MINDIR", *gate, "--gate-root", str(calibration)]) == 1
    assert "--int8 quantises ONNX models" in capsys.readouterr().err
    lenient = ["--min-cosine", "0.9", "--max-accuracy-drop", "1"]  # the published model is at chance on these faces
    assert main([*base, "--format", "ONNX", *gate, "--gate-root", str(calibration), *lenient]) == 0
    printed = capsys.readouterr().out
    assert "casia-webface.int8.onnx" in printed and "cosine to the float model mean" in printed
    card = json.loads((tmp_path / "pub" / "casia-webface.int8.onnx.json").read_text())
    assert card["quantization"]["calibration"]["images"] == 32 and card["pretrained"]
    assert (tmp_path / "pub.quantize" / "casia-webface.onnx").is_file()
