"""Built galleries (facenet.gallery, `facenet gallery`, `facenet identify --gallery`): the flat index ranks
identities exactly as a NumPy brute force does; HNSW and IVF recall against exact search; build -> add -> remove ->
search; a gallery of another model, preprocessing or embedding size, and a damaged file, refused in one line; the
open-set threshold from a protocol report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facenet.errors import ConfigError, DataError
from facenet.gallery import Gallery, cosine_to_distance, create, distance_to_cosine, from_report, is_gallery
from facenet.gallery.manifest import check_model
from tests.conftest import ROOT, tiny_checkpoint, write_faces

MODEL = {
    "model": {"file": "m.ckpt", "sha256": "a" * 64, "format": "ckpt"},
    "embedding_size": 32,
    "norm": 1.0,
    "preprocess": {"image_size": 32, "normalize": "unit", "center_crop": None, "align": None, "flip_tta": False},
}


def clustered(identities: int, per: list[int] | int, d: int, seed: int = 0, noise: float = 0.8):
    """Unit vectors around random identity centres: (embeddings, identity name per row, queries, their identity)."""
    rng = np.random.default_rng(seed)
    counts = per if isinstance(per, list) else [per] * identities
    centres = rng.standard_normal((identities, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(identities), counts)

    def sample(lab):
        x = centres[lab] + rng.standard_normal((len(lab), d)) * noise / np.sqrt(d)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    q_labels = rng.integers(0, identities, 40)
    return sample(labels), [f"id{i:03d}" for i in labels], sample(q_labels), q_labels


def brute_force(emb: np.ndarray, names: list[str], queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
    """The oracle: every cosine (float64), each identity's best image, identities sorted by it."""
    cos = queries.astype(np.float64) @ emb.astype(np.float64).T
    ids = sorted(set(names))
    column = np.array([ids.index(n) for n in names])
    best = np.full((len(queries), len(ids)), -np.inf)
    for j in range(len(names)):
        best[:, column[j]] = np.maximum(best[:, column[j]], cos[:, j])
    out = []
    for row in best:
        order = sorted(range(len(ids)), key=lambda i: -row[i])[:k]
        out.append([(ids[i], float(row[i])) for i in order])
    return out


def paths_for(names: list[str]) -> list[str]:
    return [f"/faces/{n}/{i}.png" for i, n in enumerate(names)]


def test_flat_index_ranks_identities_as_numpy_brute_force(tmp_path):
    # identity sizes from 1 to 70 images: a probe's top images may all be one identity's, so the search must ask
    # the index again for more (search.top_identities) to find k identities
    sizes = [1, 2, 3, 70, 5, 1, 40, 2, 8, 1, 3, 4, 6, 2, 1, 9, 2, 3, 30, 1]
    emb, names, queries, _ = clustered(len(sizes), sizes, 32, seed=1)
    gallery = create(tmp_path / "g", emb, names, paths_for(names), MODEL, "flat")
    reopened = Gallery.open(tmp_path / "g")
    for k in (1, 3, 5, len(sizes), len(sizes) + 5):
        oracle = brute_force(emb, names, queries, k)
        for got in (gallery.search(queries, k), reopened.search(queries, k)):
            assert [[n for n, _ in row] for row in got] == [[n for n, _ in row] for row in oracle], k
            for row, want in zip(got, oracle, strict=True):
                assert [s for _, s in row] == pytest.approx([s for _, s in want], abs=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_recall_against_exact_search(tmp_path, kind):
    emb, names, queries, _ = clustered(600, 5, 64, seed=2)
    exact = create(tmp_path / "flat", emb, names, paths_for(names), MODEL, "flat")
    approx = create(tmp_path / kind, emb, names, paths_for(names), MODEL, kind)
    truth = [row[0][0] for row in exact.search(queries, 1)]
    found = [row[0][0] for row in approx.search(queries, 1)]
    recall = np.mean([a == b for a, b in zip(truth, found, strict=True)])
    assert recall >= 0.97, recall
    assert approx.manifest["index"]["kind"] == kind
    if kind == "ivf":  # 2 sqrt(3000) = 110 lists would hold fewer than 39 vectors each: 3000 // 39 lists
        assert approx.settings == {"nlist": 76, "nprobe": 16, "trained_on": len(emb)}  # 16: an eighth (10) is too few
    # a deliberately starved search loses recall: the setting is applied, not ignored
    starved = create(
        tmp_path / f"{kind}-starved",
        emb,
        names,
        paths_for(names),
        MODEL,
        kind,
        {"ef_search": 1, "M": 2} if kind == "hnsw" else {"nprobe": 1},
    )
    found = [row[0][0] for row in starved.search(queries, 1)]
    assert np.mean([a == b for a, b in zip(truth, found, strict=True)]) < recall


def test_ivf_refuses_too_few_vectors_to_train_and_settings_of_another_kind(tmp_path):
    emb, names, _, _ = clustered(5, 4, 32)
    with pytest.raises(DataError, match="IVF index of 2 lists needs at least 78 vectors to train"):
        create(tmp_path / "g", emb, names, paths_for(names), MODEL, "ivf", {"nlist": 2})
    with pytest.raises(ConfigError, match="index flat has no parameter 'nprobe'"):
        create(tmp_path / "g", emb, names, paths_for(names), MODEL, "flat", {"nprobe": 2})
    assert not (tmp_path / "g" / "manifest.json").exists()


def test_a_failed_build_leaves_no_half_built_gallery(tmp_path, monkeypatch):
    emb, names, _, _ = clustered(5, 4, 32)

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    from facenet.gallery import index as indexes

    monkeypatch.setattr(indexes, "write", full_disk)  # the last data file of the build cannot be written
    with pytest.raises(OSError):
        create(tmp_path / "g", emb, names, paths_for(names), MODEL, "flat")
    assert not (tmp_path / "g").exists()  # nothing half-built left: the folder can be built into again


def test_distance_and_cosine_thresholds_are_one_decision():
    assert distance_to_cosine(0.0) == 1.0 and distance_to_cosine(np.sqrt(2)) == pytest.approx(0.0)
    assert distance_to_cosine(2.0) == pytest.approx(-1.0) and distance_to_cosine(2.0, norm=2.0) == pytest.approx(0.5)
    assert cosine_to_distance(0.5) == pytest.approx(1.0) and cosine_to_distance(0.5, norm=3.0) == pytest.approx(3.0)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 500, 16)) * 1.7  # embeddings of norm 1.7
    a *= 1.7 / np.linalg.norm(a, axis=1, keepdims=True)
    b *= 1.7 / np.linalg.norm(b, axis=1, keepdims=True)
    d, cos = np.linalg.norm(a - b, axis=1), (a * b).sum(axis=1) / 1.7**2
    for t in (0.5, 1.0, 1.9):
        assert ((d <= t) == (cos >= distance_to_cosine(t, 1.7))).all()


def openset_report(path: Path, **extra) -> Path:
    body = {
        "kind": "openset",
        "similarity": "cosine",
        "fpir": {
            "0.01": {"dir_mean": 0.8, "dir_std": 0.02, "threshold_mean": 0.42, "threshold_std": 0.01},
            "0.1": {"dir_mean": 0.9, "dir_std": 0.02, "threshold_mean": 0.31, "threshold_std": 0.02},
        },
        **extra,
    }
    path.write_text(json.dumps(body))
    return path


def test_threshold_from_an_openset_protocol_report(tmp_path):
    report = openset_report(tmp_path / "report.json", preprocess={"image_size": 32, "flip_tta": False})
    got = from_report(report, 0.01)
    assert (got.cosine, got.fpir, got.dir, got.std) == (0.42, 0.01, 0.8, 0.01)
    assert from_report(report, 0.1, MODEL["preprocess"]).cosine == 0.31
    with pytest.raises(ConfigError, match="has no FPIR target 0.001; it has 0.01, 0.1"):
        from_report(report, 0.001)
    with pytest.raises(ConfigError, match=r"flip_tta False \(report\) vs True \(queries\)"):
        from_report(report, 0.01, {**MODEL["preprocess"], "flip_tta": True})
    (tmp_path / "verification.json").write_text(json.dumps({"accuracy_mean": 0.9}))
    with pytest.raises(DataError, match="is not an open-set protocol report"):
        from_report(tmp_path / "verification.json", 0.01)
    with pytest.raises(DataError, match="expected cosine"):
        from_report(openset_report(tmp_path / "l2.json", similarity="l2"), 0.01)
    with pytest.raises(DataError, match="does not exist"):
        from_report(tmp_path / "none.json", 0.01)


def test_another_model_preprocessing_or_embedding_size_is_refused_naming_both_sides(tmp_path):
    check_model(MODEL, MODEL, tmp_path)
    other = {**MODEL, "model": {"file": "n.onnx", "sha256": "b" * 64, "format": "onnx"}}
    with pytest.raises(
        ConfigError, match=r"model m.ckpt sha256 aaaaaaaaaaaa \(gallery\) vs n.onnx sha256 bbbbbbbbbbbb"
    ):
        check_model(MODEL, other, tmp_path)
    with pytest.raises(ConfigError, match=r"image_size 32 \(gallery\) vs 64 \(model\)"):
        check_model(MODEL, {**MODEL, "preprocess": {**MODEL["preprocess"], "image_size": 64}}, tmp_path)
    with pytest.raises(ConfigError, match=r"align None \(gallery\) vs \{style=five_point, margin=0.0\} \(model\)"):
        check_model(
            MODEL,
            {**MODEL, "preprocess": {**MODEL["preprocess"], "align": {"style": "five_point", "margin": 0.0}}},
            tmp_path,
        )
    with pytest.raises(ConfigError, match=r"embedding size 32 \(gallery\) vs 512 \(model\)") as refused:
        check_model(MODEL, {**MODEL, "embedding_size": 512}, tmp_path)
    assert "\n" not in str(refused.value)


def test_truncated_or_corrupt_files_are_one_clear_line(tmp_path):
    emb, names, queries, _ = clustered(30, 4, 32)
    create(tmp_path / "g", emb, names, paths_for(names), MODEL, "hnsw")
    files = Gallery.open(tmp_path / "g").manifest["files"]
    for name in ("index", "embeddings"):
        damaged = tmp_path / f"{name}-truncated"
        shutil.copytree(tmp_path / "g", damaged)
        path = damaged / files[name]["file"]
        path.write_bytes(path.read_bytes()[: files[name]["bytes"] // 2])
        with pytest.raises(DataError, match=rf"{path.name} is \d+ bytes but the manifest records \d+ \(truncated"):
            Gallery.open(damaged)
        flipped = tmp_path / f"{name}-flipped"
        shutil.copytree(tmp_path / "g", flipped)
        raw = bytearray((flipped / files[name]["file"]).read_bytes())
        raw[-9] ^= 0xFF  # same size, one byte changed
        (flipped / files[name]["file"]).write_bytes(bytes(raw))
        gallery = Gallery.open(flipped)  # sizes agree: found when the file is read
        with pytest.raises(DataError, match="does not match its checksum in the manifest"):
            gallery.search(queries, 1) if name == "index" else gallery.embeddings()
    (tmp_path / "g" / "manifest.json").write_text("{not json")
    assert is_gallery(tmp_path / "g")  # identify reports the damaged manifest, not missing identity folders
    with pytest.raises(DataError, match="is not a gallery manifest"):
        Gallery.open(tmp_path / "g")
    write_faces(tmp_path / "faces", {"a": 1})
    (tmp_path / "faces" / "manifest.json").write_text('{"kind": "synthetic"}')  # a generated set's own manifest
    assert not is_gallery(tmp_path / "faces")
    # the command line: one line on stderr, exit 1, no traceback
    proc = subprocess.run(
        [sys.executable, "-m", "facenet.cli", "gallery", "info", str(tmp_path / "index-truncated")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: gallery ")
    assert "(truncated or replaced); rebuild the gallery" in proc.stderr


# ---------------------------------------------------------------------------------- with a model, end to end
@pytest.fixture(scope="module")
def ckpt(compose_cfg, tmp_path_factory):
    return tiny_checkpoint(compose_cfg, tmp_path_factory.mktemp("gallery-model"))


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    root = tmp_path_factory.mktemp("people")
    enrol = write_faces(root / "enrol", {"alice": 3, "bob": 2, "carol": 4, "dave": 1})
    more = root / "more"
    rng = np.random.default_rng(1)  # write_faces always draws from seed 0: erin's images would be alice's
    (more / "erin").mkdir(parents=True)
    for i in (1, 2):
        cv2.imwrite(str(more / "erin" / f"erin_{i:04d}.png"), rng.integers(0, 255, (20, 18, 3), dtype=np.uint8))
    (more / "alice").mkdir()
    shutil.copy(enrol / "carol" / "carol_0001.png", more / "alice" / "alice_0100.png")  # a carol image named alice
    return enrol, more


def other_weights(ckpt: Path, folder: Path) -> Path:
    """The same network with one weight changed: another model to a gallery."""
    import mindspore as ms

    params = ms.load_checkpoint(str(ckpt))
    name = next(n for n, p in params.items() if p.ndim > 1)
    params[name].set_data(params[name] * 1.01)
    out = folder / "other.ckpt"
    ms.save_checkpoint([{"name": n, "data": p} for n, p in params.items()], str(out))
    shutil.copy(ckpt.with_suffix(".json"), out.with_suffix(".json"))
    return out


def test_build_add_remove_identify_round_trip(ckpt, people, tmp_path, capsys):
    from facenet.cli import main
    from facenet.inference import Embedder

    enrol, more = people
    g = tmp_path / "gallery"
    assert main(["gallery", "build", str(enrol), "-o", str(g), "--model", str(ckpt)]) == 0
    assert f"built {g}: 10 images of 4 identities, flat index" in capsys.readouterr().out
    manifest = json.loads((g / "manifest.json").read_text())
    assert manifest["counts"] == {"images": 10, "identities": 4} and manifest["index"]["kind"] == "flat"
    assert manifest["embedding_size"] == 128 and manifest["preprocess"]["image_size"] == 32
    assert manifest["build"]["images_per_s"] > 0 and manifest["metric"] == "inner_product"
    model = Embedder.from_pretrained(ckpt)
    assert manifest["model"]["sha256"] == model.describe()["model"]["sha256"]

    # the built flat gallery ranks as identity folders searched by the nearest image (the existing oracle path)
    queries = [str(p) for p in sorted(enrol.rglob("*.png"))]
    built = model.identify(queries, g, k=4, threshold=10.0)
    folders = model.identify(queries, enrol, k=4, method="nearest", threshold=10.0, cache_dir=None)
    for a, b in zip(built, folders, strict=True):
        assert [m.identity for m in a] == [m.identity for m in b]
        assert [m.similarity for m in a] == pytest.approx([m.similarity for m in b], abs=1e-5)
        # a distance from a float32 cosine near 1 is sqrt(2 - 2 cos): about 3e-4 for 1 ulp (6e-8) below 1
        assert [m.distance for m in a] == pytest.approx([m.distance for m in b], abs=1e-3)
        assert a[0].similarity == pytest.approx(1.0, abs=1e-5)  # each query is in the gallery
    with pytest.raises(ConfigError, match="method 'nearest'"):
        model.identify(queries[:1], g, method="mean", threshold=10.0)

    assert main(["gallery", "build", str(enrol), "-o", str(g), "--model", str(ckpt)]) == 1
    assert "is already a gallery: add images to it (facenet gallery add)" in capsys.readouterr().err
    assert main(["gallery", "build", str(enrol), "-o", str(enrol), "--model", str(ckpt)]) == 1
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert main(["gallery", "add", str(g), str(more), "--model", str(ckpt)]) == 0
    assert "added 3 images" in capsys.readouterr().out
    assert main(["gallery", "add", str(g), str(more), "--model", str(ckpt)]) == 1
    assert "nothing to add" in capsys.readouterr().err
    erin = str(more / "erin" / "erin_0002.png")
    (row,) = model.identify([erin], g, k=2, threshold=10.0)
    assert row[0].identity == "erin" and row[0].similarity == pytest.approx(1.0, abs=1e-5)
    (row,) = model.identify([str(enrol / "carol" / "carol_0001.png")], g, k=2, threshold=10.0)
    assert {m.identity for m in row} == {"carol", "alice"}  # the same image, enrolled under both names
    assert [m.similarity for m in row] == pytest.approx([1.0, 1.0], abs=1e-5)

    assert main(["gallery", "remove", str(g), "carol", "erin"]) == 0
    assert "removed 2 identities (6 images)" in capsys.readouterr().out
    gallery = Gallery.open(g)
    assert sorted(gallery.names) == ["alice", "bob", "dave"] and gallery.size == 7
    (row,) = model.identify([str(enrol / "carol" / "carol_0001.png")], g, k=3, threshold=10.0)
    assert row[0].identity == "alice" and "carol" not in [m.identity for m in row]
    assert main(["gallery", "remove", str(g), "zed"]) == 1
    assert "not in gallery" in capsys.readouterr().err
    assert main(["gallery", "info", str(g), "--identities"]) == 0
    out = capsys.readouterr().out
    assert "7 images of 3 identities" in out and "alice\t4" in out and "add " in out and "remove " in out

    # the command line prints distance and cosine per identity
    assert main(["identify", erin, "--gallery", str(g), "--model", str(ckpt), "-k", "2", "--threshold", "10"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{erin}: ") and "(cos " in line


def test_hnsw_and_ivf_galleries_from_images(ckpt, tmp_path, capsys):
    from facenet.cli import main

    faces = write_faces(tmp_path / "faces", {f"p{i:02d}": 2 for i in range(40)})
    assert main(["gallery", "build", str(faces), "-o", str(tmp_path / "h"), "--model", str(ckpt), "--index", "hnsw",
                 "--ef-search", "32"]) == 0  # fmt: skip
    assert Gallery.open(tmp_path / "h").settings == {"M": 32, "ef_construction": 40, "ef_search": 32}
    ivf = ["gallery", "build", str(faces), "-o", str(tmp_path / "i"), "--model", str(ckpt), "--index", "ivf"]
    assert main([*ivf, "--nlist", "3"]) == 1
    assert "needs at least 117 vectors to train" in capsys.readouterr().err
    assert not (tmp_path / "i").exists()  # refused before anything was embedded or written
    assert main([*ivf, "--ef-search", "3"]) == 1
    assert "--ef-search do not apply to --index ivf" in capsys.readouterr().err
    assert main([*ivf, "--nlist", "2"]) == 0
    assert "80 images of 40 identities, ivf index (nlist 2, nprobe 2, trained_on 80)" in capsys.readouterr().out
    assert Gallery.open(tmp_path / "i").settings == {"nlist": 2, "nprobe": 2, "trained_on": 80}
    assert main(["identify", str(faces / "p07"), "--gallery", str(tmp_path / "i"), "--model", str(ckpt), "-k", "1",
                 "--threshold", "10"]) == 0  # fmt: skip
    assert [line.split(": ")[1].split()[0] for line in capsys.readouterr().out.splitlines()] == ["p07", "p07"]


def test_a_gallery_is_refused_with_another_model_or_preprocessing(ckpt, people, compose_cfg, tmp_path, capsys):
    from facenet.cli import main
    from facenet.inference import Embedder
    from facenet.models.io import model_spec, save_model
    from facenet.training.setup import build_model

    enrol, more = people
    g = tmp_path / "gallery"
    Embedder.from_pretrained(ckpt).build_gallery(enrol, g)
    query = str(enrol / "bob" / "bob_0001.png")
    other = other_weights(ckpt, tmp_path)
    with pytest.raises(ConfigError, match=rf"model {ckpt.name} sha256 \w+ \(gallery\) vs other.ckpt sha256 \w+"):
        Embedder.from_pretrained(other).identify([query], g, threshold=10.0)
    with pytest.raises(ConfigError, match=r"flip_tta False \(gallery\) vs True \(model\)"):
        Embedder.from_pretrained(ckpt, flip_tta=True).identify([query], g, threshold=10.0)
    with pytest.raises(ConfigError, match=r"center_crop None \(gallery\) vs 16 \(model\)"):
        Embedder.from_pretrained(ckpt, center_crop=16).add_to_gallery(g, more)
    cfg = compose_cfg("experiment=smoke", "embedding_size=64")
    small = tmp_path / "small.ckpt"
    save_model(build_model(cfg), small, model_spec(cfg))
    with pytest.raises(ConfigError, match=r"embedding size 128 \(gallery\) vs 64 \(model\)"):
        Embedder.from_pretrained(small).identify([query], g, threshold=10.0)
    capsys.readouterr()  # the progress bars so far
    assert main(["identify", query, "--gallery", str(g), "--model", str(other), "--threshold", "10"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: gallery {g} was built otherwise: model ") and err.count("\n") == 1
    assert main(["gallery", "add", str(g), str(more), "--model", str(small)]) == 1
    assert "embedding size 128 (gallery) vs 64 (model)" in capsys.readouterr().err
    assert Gallery.open(g).size == 10  # nothing added


def test_open_set_threshold_from_a_report_or_the_model(ckpt, people, tmp_path, capsys):
    from facenet.cli import main
    from facenet.inference import Embedder

    enrol, more = people
    g = tmp_path / "gallery"
    model = Embedder.from_pretrained(ckpt)
    model.build_gallery(enrol, g)
    probe = str(more / "erin" / "erin_0001.png")  # not enrolled
    (best,) = model.identify([probe], g, k=1, threshold=10.0)
    s = best[0].similarity
    below, above = openset_report(tmp_path / "below.json"), tmp_path / "above.json"
    body = json.loads(below.read_text())
    assert s < 1 - 1e-5  # an unenrolled face (this random network puts every face within cos 0.998 of the others)
    body["fpir"]["0.01"]["threshold_mean"] = (s + 1) / 2
    body["fpir"]["0.1"]["threshold_mean"] = s - 1e-5
    above.write_text(json.dumps(body))
    (row,) = model.identify([probe], g, k=2, min_similarity=from_report(above, 0.01).cosine)
    assert row[0].identity == "unknown" and row[0].similarity == pytest.approx((s + 1) / 2)
    assert row[1].identity == best[0].identity and row[1].similarity == pytest.approx(s, abs=1e-6)
    (row,) = model.identify([probe], g, k=2, min_similarity=from_report(above, 0.1).cosine)
    assert row[0].identity == best[0].identity
    # the model's distance threshold and the equivalent cosine make the same decision, in both kinds of gallery
    for t in (best[0].distance * 0.99, best[0].distance * 1.01):
        for where in (g, enrol):
            by_distance = model.identify([probe], where, k=1, method="nearest", threshold=t, cache_dir=None)
            by_cosine = model.identify(
                [probe], where, k=1, method="nearest", min_similarity=distance_to_cosine(t), cache_dir=None
            )
            assert by_distance[0][0].identity == by_cosine[0][0].identity
            assert (by_distance[0][0].identity == "unknown") == (t < best[0].distance)
    cli = ["identify", probe, "--gallery", str(g), "--model", str(ckpt), "-k", "1", "--protocol-report", str(above)]
    assert main([*cli, "--fpir", "0.01"]) == 0
    assert capsys.readouterr().out.split(": ")[1].startswith("unknown ")
    assert main([*cli, "--fpir", "0.1"]) == 0
    assert capsys.readouterr().out.split(": ")[1].startswith(best[0].identity)
    assert main([*cli, "--fpir", "0.5"]) == 1
    assert "has no FPIR target 0.5; it has 0.01, 0.1" in capsys.readouterr().err
    assert main(["identify", probe, "--gallery", str(g), "--model", str(ckpt), "--fpir", "0.1"]) == 1
    assert "--fpir and --protocol-report go together" in capsys.readouterr().err
    assert main([*cli, "--fpir", "0.1", "--threshold", "1.0"]) == 1
    assert "not both" in capsys.readouterr().err


def test_an_interrupted_or_concurrent_change_leaves_the_previous_gallery_whole(tmp_path, monkeypatch):
    import fcntl

    from facenet.gallery import index as indexes

    emb, names, queries, _ = clustered(20, 3, 32)
    create(tmp_path / "g", emb[:30], names[:30], paths_for(names)[:30], MODEL, "hnsw")
    before = Gallery.open(tmp_path / "g").search(queries, 3)
    write = indexes.write
    monkeypatch.setattr(indexes, "write", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while the new generation is written
        Gallery.open(tmp_path / "g").add(emb[30:], names[30:], paths_for(names)[30:], 0.0)
    monkeypatch.setattr(indexes, "write", write)
    again = Gallery.open(tmp_path / "g")
    assert again.size == 30 and again.search(queries, 3) == before
    assert sorted(p.name for p in (tmp_path / "g").glob("*-*.*")) == sorted(
        f"{n}-0.{s}" for n, s in [("embeddings", "npy"), ("labels", "npy"), ("names", "json"), ("paths", "json"),
                                  ("index", "faiss")]
    )  # fmt: skip

    first, second = Gallery.open(tmp_path / "g"), Gallery.open(tmp_path / "g")
    first.remove([names[0]])
    with pytest.raises(DataError, match="changed since it was opened"):
        second.add(emb[30:], names[30:], paths_for(names)[30:], 0.0)
    with (tmp_path / "g" / ".lock").open("a") as lock:  # another process in the middle of a change
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(DataError, match="is being changed by another process"):
            Gallery.open(tmp_path / "g").remove([names[3]])
    assert Gallery.open(tmp_path / "g").size == 27


@pytest.mark.slow
@pytest.mark.real_data
def test_real_faces_published_model_built_gallery_ranks_as_identity_folders(tmp_path):
    """celeb24 (real aligned faces) through the published casia-webface model: the built flat and HNSW galleries
    give each probe the identities the identity-folder search by nearest image gives, and name most probes right."""
    from facenet.inference import Embedder
    from tests.conftest import shared_data

    celeb = shared_data("celeb24")
    enrol, queries, truth = tmp_path / "enrol", [], []
    for person in sorted(p for p in celeb.iterdir() if p.is_dir()):
        images = sorted(person.glob("*.png"))
        (enrol / person.name).mkdir(parents=True)
        for image in images[:4]:
            (enrol / person.name / image.name).symlink_to(image)
        queries += [str(i) for i in images[4:6]]
        truth += [person.name] * 2
    model = Embedder.from_pretrained("casia-webface", batch_size=16)
    folders = model.identify(queries, enrol, k=3, method="nearest", threshold=10.0, cache_dir=None)
    for kind in ("flat", "hnsw"):
        model.build_gallery(enrol, tmp_path / kind, index=kind)
        built = model.identify(queries, tmp_path / kind, k=3, threshold=10.0)
        assert [[m.identity for m in r] for r in built] == [[m.identity for m in r] for r in folders], kind
    top1 = np.mean([r[0].identity == t for r, t in zip(folders, truth, strict=True)])
    assert top1 >= 0.8, top1
