"""Export (MindIR, ONNX, AIR refusal) and the inference API/CLI: exported models match the checkpoint; verify,
identify and cluster against brute-force oracles; clustering metrics against hand values."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from facenet.app import run
from facenet.errors import ConfigError, DataError, UserError
from facenet.inference import Embedder, cluster_embeddings
from facenet.metrics import adjusted_rand_index, purity


@pytest.fixture(scope="module")
def trained_ckpt(compose_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("inf")
    run(compose_cfg("experiment=smoke", f"output_dir={out}", "epochs=2"))
    (ckpt,) = out.glob("runs/*/*/checkpoints/best.ckpt")
    return ckpt, out


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """A small identity-folder tree of generated faces (6 identities x 4 images, 32x32)."""
    from facenet.data.synthetic import generate_eval

    root = generate_eval(
        str(tmp_path_factory.mktemp("faces")),
        identities_per_fold=3,
        images_per_identity=4,
        pairs_per_fold=2,
        image_size=32,
        seed=7,
        workers=1,
    )
    return root


@pytest.fixture(scope="module")
def exported(trained_ckpt, compose_cfg):
    ckpt, out = trained_ckpt
    files = {}
    for fmt, extra in (("MINDIR", []), ("ONNX", ["export.batch_size=4"])):
        run(
            compose_cfg(
                "experiment=smoke",
                f"output_dir={out / fmt}",
                "task=export",
                f"ckpt={ckpt}",
                f"export.format={fmt}",
                *extra,
            )
        )
        (files[fmt],) = (out / fmt).glob(f"runs/*/*/export/best.{fmt.lower()}")
    return files


def test_exported_models_match_the_checkpoint(trained_ckpt, exported, faces):
    ckpt, _ = trained_ckpt
    paths = sorted(str(p) for p in faces.rglob("*.png"))[:10]  # 10 images: ONNX (batch 4) pads its last batch
    reference = Embedder.from_pretrained(ckpt).embed(paths)
    for fmt, file in exported.items():
        got = Embedder.from_pretrained(file).embed(paths)
        diff = float(np.abs(got - reference).max())
        # float32 kernels of another runtime reorder sums: differences of a few ULPs of values of norm 1
        assert diff < 1e-5, (fmt, diff)
    card = json.loads(exported["ONNX"].with_name("best.onnx.json").read_text())
    sidecar = json.loads(ckpt.with_suffix(".json").read_text())
    assert card["preprocess"] == sidecar["preprocess"] and card["input"]["batch_size"] == 4
    assert card["threshold"]["distance"] == sidecar["metrics"]["threshold"]
    assert card["threshold"]["far"] == sidecar["metrics"]["far_at_threshold"]
    assert card["training_run_id"] == sidecar["run_id"] and len(card["training_run_id"]) == 32
    assert json.loads(exported["MINDIR"].with_name("best.mindir.json").read_text())["input"]["batch_size"] == "dynamic"


def test_task_eval_scores_a_checkpoint_and_its_exports_alike(trained_ckpt, exported, compose_cfg, tmp_path):
    """task=eval ckpt=<.ckpt | .mindir | .onnx>: the same protocol, the same accuracy; each report and MLflow run
    names the file (sha256) and runtime; facenet compare puts the three side by side."""
    from mlflow import MlflowClient

    from facenet.comparison import compare, resolve
    from facenet.files import sha256

    ckpt, _ = trained_ckpt
    runs, reports = [], {}
    for name, file in (("CKPT", ckpt), *exported.items()):
        out = tmp_path / name
        run(compose_cfg("experiment=smoke", "task=eval", f"ckpt={file}", f"output_dir={out}"))
        (run_dir,) = out.glob("runs/*/*")
        runs.append(run_dir)
        reports[name] = json.loads((run_dir / "eval" / "report.json").read_text())
        model = reports[name]["model"]
        assert (model["file"], model["format"], model["sha256"]) == (str(file), name, sha256(file))
        assert model["runtime"].startswith("onnxruntime " if name == "ONNX" else "mindspore ")
        run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
        tags = MlflowClient(f"sqlite:///{out / 'mlflow.db'}").get_run(run_id).data.tags
        assert (tags["model.format"], tags["model.runtime"], tags["model.sha256"]) == (
            name,
            model["runtime"],
            model["sha256"],
        )
    for name in exported:
        assert reports[name]["accuracy_mean"] == pytest.approx(reports["CKPT"]["accuracy_mean"], abs=5e-5)
        assert reports[name]["threshold_mean"] == pytest.approx(reports["CKPT"]["threshold_mean"], abs=1e-4)
    table, _ = compare(resolve([str(r) for r in runs]), tmp_path / "cmp")
    labels = " ".join(table["run"])
    assert len(table) == 3 and all(f in labels for f in ("best.ckpt", "best.mindir", "best.onnx")), labels


def test_an_export_runs_the_identification_protocols_as_its_checkpoint(trained_ckpt, exported, faces, compose_cfg,
                                                                      tmp_path):  # fmt: skip
    ckpt, _ = trained_ckpt
    results = {}
    for name, file in (("CKPT", ckpt), ("ONNX", exported["ONNX"])):
        out = tmp_path / name
        run(
            compose_cfg(
                "experiment=smoke", "task=eval", f"ckpt={file}", f"output_dir={out}", "eval=openset",
                f"eval.root={faces}", "eval.trials=3", "eval.ranks=[1,2]", "eval.fpir_targets=[0.1]",
            )
        )  # fmt: skip
        (report,) = out.glob("runs/*/*/eval/report.json")
        results[name] = json.loads(report.read_text())
    assert results["ONNX"]["model"]["format"] == "ONNX" and results["ONNX"]["kind"] == "openset"
    assert results["ONNX"]["fingerprint"] == results["CKPT"]["fingerprint"]
    assert results["ONNX"]["cmc"]["mean"] == pytest.approx(results["CKPT"]["cmc"]["mean"], abs=1e-9)


def test_an_exported_file_without_its_card_or_at_another_size_is_one_line(exported, compose_cfg, tmp_path):
    from facenet.models.exported import ModelFile

    lone = tmp_path / "lone.onnx"
    lone.write_bytes(exported["ONNX"].read_bytes())
    with pytest.raises(ConfigError, match=r"lone.onnx has no model card lone.onnx.json .* cannot be fed") as refused:
        run(compose_cfg("experiment=smoke", "task=eval", f"ckpt={lone}", f"output_dir={tmp_path}"))
    assert "\n" not in str(refused.value)
    with pytest.raises(ConfigError, match=r"exported for 32x32 inputs: .* cannot be evaluated at 48x48"):
        ModelFile.open(exported["MINDIR"]).check_input_size(48)


def test_mindir_loads_back_as_a_graph_cell(trained_ckpt, exported):
    import mindspore as ms

    from facenet.models.build import build_network
    from facenet.models.io import load_network_weights, read_spec

    ckpt, _ = trained_ckpt
    spec = read_spec(ckpt)
    net = build_network(spec["model"]["backbone"], spec["model"]["head"], 32)
    load_network_weights(net, ckpt)
    net.set_train(False)
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32)
    graph = ms.nn.GraphCell(ms.load(str(exported["MINDIR"])))
    assert np.abs(graph(ms.Tensor(x)).asnumpy() - net(ms.Tensor(x)).asnumpy()).max() < 1e-6


def test_export_refuses_what_it_cannot_do(trained_ckpt, compose_cfg, tmp_path):
    ckpt, _ = trained_ckpt
    with pytest.raises(UserError, match="AIR needs an Ascend device"):
        run(
            compose_cfg(
                "experiment=smoke", f"output_dir={tmp_path}", "task=export", f"ckpt={ckpt}", "export.format=AIR"
            )
        )
    with pytest.raises(UserError, match="needs a checkpoint"):
        run(compose_cfg("experiment=smoke", f"output_dir={tmp_path}", "task=export"))
    (tmp_path / "bare.ckpt").write_bytes(ckpt.read_bytes())
    with pytest.raises(UserError, match="has no sidecar"):
        run(compose_cfg("experiment=smoke", f"output_dir={tmp_path}", "task=export", f"ckpt={tmp_path / 'bare.ckpt'}"))


def test_verify_identify_cluster_against_brute_force(trained_ckpt, faces, tmp_path):
    ckpt, _ = trained_ckpt
    model = Embedder.from_pretrained(ckpt)
    ids = sorted(p for p in faces.iterdir() if p.is_dir())[:6]
    files = {p.name: sorted(str(f) for f in p.glob("*.png")) for p in ids}
    a, b = files[ids[0].name][0], files[ids[1].name][0]
    emb = {p: model.embed([p])[0] for p in (a, b)}
    v = model.verify(a, b)
    assert v.distance == pytest.approx(float(np.linalg.norm(emb[a] - emb[b])), abs=1e-5)
    assert v.threshold == json.loads(ckpt.with_suffix(".json").read_text())["metrics"]["threshold"]
    assert v.same == (v.distance <= v.threshold) and model.verify(a, b, threshold=10.0).same

    # gallery: first 3 images of each identity; queries: the 4th
    gallery = tmp_path / "gallery"
    for name, fs in files.items():
        (gallery / name).mkdir(parents=True)
        for f in fs[:3]:
            (gallery / name / f.rsplit("/", 1)[1]).symlink_to(f)
    queries = [fs[3] for fs in files.values()]
    cache = tmp_path / "cache"
    got = model.identify(queries, gallery, k=3, method="nearest", threshold=10.0, cache_dir=cache)
    gallery_files = [f for fs in files.values() for f in fs[:3]]
    g_emb = dict(zip(gallery_files, model.embed(gallery_files), strict=True))
    for qe, matches in zip(model.embed(queries), got, strict=True):
        brute = sorted((min(np.linalg.norm(qe - g_emb[f]) for f in fs[:3]), n) for n, fs in files.items())[:3]
        assert [m.identity for m in matches] == [n for _, n in brute]
        assert [m.distance for m in matches] == pytest.approx([d for d, _ in brute], abs=1e-5)
    assert len(list(cache.glob("gallery-*.npz"))) == 1
    again = model.identify(queries, gallery, k=3, method="nearest", threshold=10.0, cache_dir=cache)
    assert [[m.identity for m in r] for r in again] == [[m.identity for m in r] for r in got]
    unknown = model.identify(queries[:1], gallery, k=2, threshold=1e-9, cache_dir=None)
    assert unknown[0][0].identity == "unknown" and len(unknown[0]) == 2

    labels = model.cluster(queries, threshold=10.0, method="components")
    assert labels.tolist() == [0] * len(queries)  # everything linked: one cluster
    assert model.cluster(queries, threshold=0.0, method="components").tolist() == list(range(len(queries)))


def test_clustering_recovers_separated_groups_and_matches_components_oracle():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 5
    truth = np.repeat(np.arange(4), 6)
    emb = centres[truth] + rng.normal(scale=0.1, size=(24, 16))
    for method in ("components", "chinese_whispers"):
        labels = cluster_embeddings(emb, threshold=2.0, method=method)
        assert adjusted_rand_index(truth, labels) == 1.0
    # components vs a brute-force union-find on random points
    pts = rng.normal(size=(40, 2))
    labels = cluster_embeddings(pts, threshold=0.35, method="components")
    parent = list(range(40))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in itertools.combinations(range(40), 2):
        if np.linalg.norm(pts[i] - pts[j]) <= 0.35:
            parent[find(i)] = find(j)
    roots = [find(i) for i in range(40)]
    assert all((labels[i] == labels[j]) == (roots[i] == roots[j]) for i, j in itertools.combinations(range(40), 2))
    sizes = np.bincount(labels)
    assert (np.diff(sizes) <= 0).all()  # cluster 0 is the largest


def test_adjusted_rand_index_and_purity_hand_values():
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 7, 7]) == 1.0  # same partition, other names
    # contingency [[2,1],[0,2]] (n=5): index 1, rows 1+1=2? -> by hand: sum C(nij,2)=1+0+0+1=2,
    # a = C(3,2)+C(2,2)=4, b = C(2,2)+C(3,2)=4, E = 4*4/10 = 1.6, max = 4 -> (2-1.6)/(4-1.6) = 1/6
    assert adjusted_rand_index([0, 0, 0, 1, 1], [0, 0, 1, 1, 1]) == pytest.approx(1 / 6)
    assert adjusted_rand_index([0, 1, 2, 3], [0, 0, 0, 0]) == 0.0
    assert purity([0, 0, 0, 1, 1], [0, 0, 1, 1, 1]) == pytest.approx(4 / 5)
    with pytest.raises(ValueError):
        adjusted_rand_index([0, 1], [0, 1, 2])


def test_clear_errors_for_bad_models_and_images(trained_ckpt, tmp_path):
    ckpt, _ = trained_ckpt
    with pytest.raises(ConfigError, match="does not exist"):
        Embedder.from_pretrained(tmp_path / "none.ckpt")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ConfigError, match="no model card"):
        Embedder.from_pretrained(tmp_path / "m.onnx")
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="expected a .ckpt, .mindir or .onnx"):
        Embedder.from_pretrained(tmp_path / "m.pt")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    model = Embedder.from_pretrained(ckpt)
    with pytest.raises(DataError, match="cannot decode image"):
        model.embed([str(tmp_path / "broken.png")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no identity folders with images"):
        model.identify([str(tmp_path / "broken.png")], tmp_path / "empty")
    with pytest.raises(DataError, match="is not a folder"):
        model.identify([str(tmp_path / "broken.png")], tmp_path / "missing")


def test_cli_embed_verify_identify_cluster(trained_ckpt, exported, faces, tmp_path, capsys):
    import pandas as pd

    from facenet.cli import main

    ckpt, _ = trained_ckpt
    ids = sorted(p for p in faces.iterdir() if p.is_dir())[:3]
    images = [str(f) for p in ids for f in sorted(p.glob("*.png"))]
    assert main(["embed", *map(str, ids), "--model", str(ckpt), "-o", str(tmp_path / "e.npz")]) == 0
    saved = np.load(tmp_path / "e.npz")
    assert saved["paths"].tolist() == images
    assert np.allclose(saved["embeddings"], Embedder.from_pretrained(ckpt).embed(images), atol=1e-6)
    assert main(["embed", str(ids[0]), "--model", str(exported["ONNX"]), "-o", str(tmp_path / "e.csv")]) == 0
    table = pd.read_csv(tmp_path / "e.csv")
    assert table["path"].tolist() == images[:4] and table.shape[1] == 1 + 128
    assert main(["embed", str(ids[0]), "--model", str(ckpt), "-o", str(tmp_path / "e.txt")]) == 1
    capsys.readouterr()
    assert main(["verify", images[0], images[1], "--model", str(exported["MINDIR"]), "--threshold", "10"]) == 0
    assert "same person" in capsys.readouterr().out
    assert (
        main(
            [
                "identify",
                images[0],
                "--gallery",
                str(faces),
                "--model",
                str(ckpt),
                "-k",
                "2",
                "--no-cache",
                "--threshold",
                "10",
                "--method",
                "nearest",
            ]
        )
        == 0
    )
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{images[0]}: {ids[0].name} 0.000")  # the query itself is in the gallery
    out_csv = tmp_path / "clusters.csv"
    assert main(["cluster", str(ids[0]), "--model", str(ckpt), "-o", str(out_csv), "--threshold", "10"]) == 0
    assert pd.read_csv(out_csv)["cluster"].tolist() == [0, 0, 0, 0]
    assert "4 images -> 1 clusters" in capsys.readouterr().out
    assert main(["verify", images[0], "/nonexistent.png", "--model", str(ckpt)]) == 1
    assert "cannot decode image '/nonexistent.png'" in capsys.readouterr().err


def test_mismatched_model_card_and_faceless_photos_are_refused(exported, faces, tmp_path):
    import shutil

    onnx = tmp_path / "m.onnx"
    shutil.copy(exported["ONNX"], onnx)
    card = json.loads(exported["ONNX"].with_name("best.onnx.json").read_text())
    card["preprocess"]["image_size"] = 64
    onnx.with_name("m.onnx.json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match=r"takes inputs of shape \[4, 3, 32, 32\] .* says \[4, 3, 64, 64\]"):
        Embedder.from_pretrained(onnx)
    model = Embedder.from_pretrained(exported["MINDIR"], align=True)
    noise = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    with pytest.raises(DataError, match="no face found in an array"):
        model.embed([noise])


def test_cli_calibrate_records_the_threshold_verify_then_uses(trained_ckpt, faces, tmp_path, capsys):
    import shutil

    from facenet.calibration import calibrate_embeddings
    from facenet.cli import main
    from facenet.inference import gallery_listing

    ckpt, _ = trained_ckpt
    model = tmp_path / "m.ckpt"
    shutil.copy(ckpt, model)
    shutil.copy(ckpt.with_suffix(".json"), model.with_suffix(".json"))
    assert main(["calibrate", str(faces), "--model", str(model), "--far", "0.05"]) == 0
    assert "recorded in" in capsys.readouterr().out
    paths, labels, _ = gallery_listing(faces)
    expected = calibrate_embeddings(Embedder.from_pretrained(model).embed(paths), labels, 0.05)
    recorded = json.loads(model.with_suffix(".json").read_text())["calibration"]
    assert recorded["threshold"] == pytest.approx(expected.threshold) and recorded["far"] <= 0.05
    reloaded = Embedder.from_pretrained(model)
    assert reloaded.threshold == pytest.approx(expected.threshold)
    assert reloaded.threshold != json.loads(ckpt.with_suffix(".json").read_text())["metrics"]["threshold"]
