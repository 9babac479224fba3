"""Open-set identification protocol (eval=openset): trials that are disjoint the way the definition says, files
that read back as the same trials, scores assembled as a brute-force loop assembles them, refusals in one line,
and the protocol in task=eval, as a training run's own protocol and in also_eval."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from facenet.comparison.runs import ComparisonError
from facenet.data.openset import make_trials, read_protocol, write_protocol
from facenet.errors import ConfigError, DataError
from facenet.evaluation.openset import person_scores, score_trials, unit
from facenet.gallery.threshold import cosine_to_distance
from tests.conftest import ROOT, tiny_checkpoint, write_faces

COUNTS = {f"p{i:02d}": n for i, n in enumerate([1, 1, 2, 3, 4, 2, 5, 1, 3, 2, 6, 2])}


@pytest.fixture
def tree(tmp_path):
    return write_faces(tmp_path / "tree", COUNTS, size=(8, 8))


def _roles(data, trial):
    return {
        "gallery": [data.images[i] for i in trial.gallery],
        "genuine": [data.images[i] for i in trial.genuine],
        "impostor": [data.images[i] for i in trial.impostor],
    }


def test_trials_are_disjoint_as_the_definition_says(tree):
    data = make_trials(tree, trials=5, enrolled=0.5, gallery_per_person=1, seed=3)
    eligible = sorted(n for n, c in COUNTS.items() if c > 1)
    assert len(data.trials) == 5
    for trial in data.trials:
        roles = _roles(data, trial)
        person = {image: image.split("/")[0] for images in roles.values() for image in images}
        assert len(trial.enrolled) == round(0.5 * len(eligible)) and set(trial.enrolled) <= set(eligible)
        # every image of the tree in exactly one role
        everything = sorted(roles["gallery"] + roles["genuine"] + roles["impostor"])
        assert everything == sorted(f"{n}/{n}_{i + 1:04d}.png" for n, c in COUNTS.items() for i in range(c))
        assert not set(roles["gallery"]) & set(roles["genuine"] + roles["impostor"])  # no gallery image probes
        assert {person[i] for i in roles["gallery"]} == set(trial.enrolled)
        assert {person[i] for i in roles["genuine"]} <= set(trial.enrolled)  # genuine probes: enrolled people only
        assert not {person[i] for i in roles["impostor"]} & set(trial.enrolled)  # never-enrolled people only
        for k, name in enumerate(trial.enrolled):  # one gallery image each, the identity columns right
            assert [data.images[i] for i in trial.gallery[trial.gallery_ids == k]] == [
                i for i in roles["gallery"] if person[i] == name
            ]
            assert (trial.gallery_ids == k).sum() == 1
            assert all(person[data.images[i]] == name for i in trial.genuine[trial.genuine_ids == k])
    assert len({tuple(t.enrolled) for t in data.trials}) > 1  # trials differ
    again = make_trials(tree, trials=5, enrolled=0.5, gallery_per_person=1, seed=3)
    assert again.fingerprint() == data.fingerprint()
    assert make_trials(tree, trials=5, enrolled=0.5, gallery_per_person=1, seed=4).fingerprint() != data.fingerprint()


def test_gallery_per_person_and_a_count_of_enrolled_people(tree):
    data = make_trials(tree, trials=3, enrolled=3, gallery_per_person=2, seed=0)
    for trial in data.trials:
        assert len(trial.enrolled) == 3
        assert all(COUNTS[p] > 2 for p in trial.enrolled)
        assert np.bincount(trial.gallery_ids).tolist() == [2, 2, 2]


def test_the_files_read_back_as_the_same_trials(tree, tmp_path):
    data = make_trials(tree, trials=4, enrolled=0.4, gallery_per_person=1, seed=1)
    folder = write_protocol(data, tmp_path / "protocol")
    meta = json.loads((folder / "protocol.json").read_text())
    assert meta["fingerprint"] == data.fingerprint() and meta["trials"] == 4
    assert sorted(p.name for p in folder.glob("trial_*.csv")) == [f"trial_0{i}.csv" for i in range(1, 5)]
    back = read_protocol(folder, tree)
    assert back.fingerprint() == data.fingerprint()
    for a, b in zip(data.trials, back.trials, strict=True):
        assert _roles(data, a) == _roles(back, b)
    with pytest.raises(DataError, match="already holds a protocol"):
        write_protocol(data, folder)


def test_a_missing_image_fails_or_is_left_out_and_counted(tree, tmp_path):
    data = make_trials(tree, trials=3, enrolled=0.5, gallery_per_person=1, seed=0)
    folder = write_protocol(data, tmp_path / "protocol")
    gone = "p10/p10_0002.png"  # p10 has 6 images: whatever its role, its trials keep working
    (tree / gone).unlink()
    with pytest.raises(DataError, match=r"^1 images named in .* are missing under .*p10_0002.png.*eval.missing=skip$"):
        read_protocol(folder, tree)
    back = read_protocol(folder, tree, missing="skip")
    expected = {"gallery": 0, "genuine": 0, "impostor": 0}
    for trial in data.trials:
        roles = _roles(data, trial)
        for role, images in roles.items():
            expected[role] += images.count(gone)
        if gone in roles["gallery"]:  # p10's only gallery image: p10 is no longer enrolled, its probes go too
            expected["genuine"] += sum(image.startswith("p10/") for image in roles["genuine"])
    assert sum(expected.values()) >= 3 and back.skipped == expected
    assert all(gone not in _roles(back, t)[r] for t in back.trials for r in ("gallery", "genuine", "impostor"))


def test_a_tampered_trial_file_is_refused(tree, tmp_path):
    folder = write_protocol(make_trials(tree, trials=1, enrolled=0.5, gallery_per_person=1, seed=0), tmp_path / "p")
    rows = pd.read_csv(folder / "trial_01.csv")
    enrolled = rows[rows.role == "gallery"].identity.iloc[0]
    rows.loc[rows.index[rows.role == "impostor"][0], "identity"] = enrolled
    rows.to_csv(folder / "trial_01.csv", index=False)
    with pytest.raises(DataError, match=rf"impostor probes of '{enrolled}', who is enrolled"):
        read_protocol(folder, tree)


def _brute_force(emb, data, trial, fpir):
    """CMC rank 1 and DIR@FPIR of one trial by plain loops over probes and people."""
    people = trial.enrolled
    probes = [(i, k) for i, k in zip(trial.genuine, trial.genuine_ids, strict=True)]
    probes += [(i, -1) for i in trial.impostor]
    scores = []
    for i, _ in probes:
        row = []
        for k in range(len(people)):
            row.append(
                max(float(emb[i] @ emb[g]) for g, gk in zip(trial.gallery, trial.gallery_ids, strict=True) if gk == k)
            )
        scores.append(row)
    rank1 = np.mean(
        [
            all(s[k] > s[j] for j in range(len(people)) if j != k)
            for s, (_, k) in zip(scores, probes, strict=True)
            if k >= 0
        ]
    )
    impostor_best = sorted((max(s) for s, (_, k) in zip(scores, probes, strict=True) if k < 0), reverse=True)
    allowed = int(np.floor(fpir * len(impostor_best) + 1e-9))
    # the lowest threshold accepting at most `allowed` impostors, cut midway (no ties among random floats)
    t = (impostor_best[allowed] + impostor_best[allowed - 1]) / 2 if allowed else impostor_best[0] + 1e-12
    found = [
        s[k] >= t and all(s[k] > s[j] for j in range(len(people)) if j != k)
        for s, (_, k) in zip(scores, probes, strict=True)
        if k >= 0
    ]
    return rank1, float(np.mean(found))


def test_scores_match_a_brute_force_loop(tree):
    data = make_trials(tree, trials=3, enrolled=4, gallery_per_person=1, seed=2)
    emb = unit(np.random.default_rng(0).normal(size=(len(data.images), 6)))
    result = score_trials(emb, data, ranks=(1, 2), fpir_targets=(0.2,))
    for i, trial in enumerate(data.trials):
        rank1, dir_ = _brute_force(emb, data, trial, 0.2)
        assert result.rank(1)[i] == pytest.approx(rank1)
        assert result.dir(0.2)[i] == pytest.approx(dir_)
    s = result.scalars()
    assert s["rank1"] == pytest.approx(np.mean(result.rank(1))) and s["rank1_std"] == pytest.approx(
        np.std(result.rank(1))
    )


def test_a_person_scores_their_best_gallery_image():
    sim = np.array([[0.1, 0.9, 0.3, 0.2], [0.5, 0.4, 0.6, 0.7]])
    ids = np.array([1, 0, 1, 2])  # person 1 has columns 0 and 2
    assert person_scores(sim, ids, 3).tolist() == [[0.9, 0.3, 0.2], [0.4, 0.6, 0.7]]
    assert cosine_to_distance(0.5) == pytest.approx(1.0)


def test_an_fpir_the_data_cannot_measure_is_refused_before_embedding(compose_cfg, tree):
    from hydra.utils import instantiate

    cfg = compose_cfg(
        "eval=openset", f"eval.root={tree}", "eval.trials=2", "eval.ranks=[1]", "eval.fpir_targets=[0.1,0.01]"
    )
    with pytest.raises(
        ConfigError,
        match=r"^FPIR 0.01 needs at least 100 impostor probes per trial; this protocol has \d+ .*"
        r"eval.fpir_targets=\[0.1\]",
    ):
        instantiate(cfg.eval).prepare()
    cfg = compose_cfg("eval=openset", f"eval.root={tree}", "eval.ranks=[1,50]")
    with pytest.raises(ConfigError, match=r"eval.ranks asks for rank 50; a trial enrols only 4 people"):
        instantiate(cfg.eval).prepare()


def test_openset_in_task_eval_training_and_also_eval(compose_cfg, tmp_path):
    """task=eval writes the report, the per-trial table, the probes and both figures; a training run ranks its
    checkpoints by rank-1 on it; also_eval runs it beside the run's own protocol."""
    from facenet.app import run

    tree = write_faces(tmp_path / "faces", {f"q{i}": 3 for i in range(12)}, size=(16, 16))
    ckpt = tiny_checkpoint(compose_cfg, tmp_path)
    eval_args = ["eval=openset", f"eval.root={tree}", "eval.trials=3", "eval.ranks=[1,5]", "eval.fpir_targets=[0.2]"]
    eval_args.append("tracking=off")
    metrics = run(compose_cfg("task=eval", f"ckpt={ckpt}", *eval_args, f"output_dir={tmp_path / 'e'}"))
    assert {"rank1", "rank5", "dir_at_fpir_0.2", "threshold_at_fpir_0.2"} <= set(metrics)
    out = next((tmp_path / "e").rglob("eval/report.json")).parent
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "openset" and report["ranks"]["1"]["mean"] == pytest.approx(metrics["rank1"])
    assert {p.name for p in out.iterdir()} >= {
        "report.txt",
        "openset.csv",
        "openset.md",
        "probes.csv",
        "cmc.png",
        "det.png",
    }
    probes = pd.read_csv(out / "probes.csv")
    assert len(probes) == 3 * 30  # 6 enrolled x 2 genuine + 6 x 3 impostor per trial
    genuine = probes[probes.role == "genuine"]
    assert (genuine["rank"] == 1).groupby(genuine.trial).mean().mean() == pytest.approx(metrics["rank1"])

    train = run(compose_cfg("experiment=smoke", *eval_args, "epochs=1", f"output_dir={tmp_path / 't'}"))
    assert train["best_accuracy"] == pytest.approx(train["rank1"])  # best.ckpt ranked by the headline

    # facenet compare: the two runs on the same trials, side by side; other trials refused
    from facenet.comparison import compare, resolve

    trained = next((tmp_path / "t").rglob("eval/report.json")).parent.parent
    table, folder = compare(resolve([str(out.parent), str(trained)]), tmp_path / "cmp")
    assert len(table) == 2 and {"rank-1", "rank-5", "DIR@FPIR=0.2"} <= set(table.columns)
    assert {p.name for p in folder.iterdir()} >= {"comparison.md", "table.png", "cmc.png", "det.png"}
    ranked = pd.read_csv(folder / "comparison.csv")
    assert sorted(ranked["rank1"]) == sorted([metrics["rank1"], train["rank1"]])
    other = run(compose_cfg("task=eval", f"ckpt={ckpt}", *eval_args, "eval.seed=1", f"output_dir={tmp_path / 'o'}"))
    assert other["rank1"] >= 0
    with pytest.raises(ComparisonError, match="^runs were evaluated on different open-set trials"):
        compare(resolve([str(out.parent), str(next((tmp_path / "o").rglob("eval")).parent)]), tmp_path / "c2")
    also = run(
        compose_cfg(
            "experiment=smoke",
            "epochs=1",
            "tracking=off",
            f"+also_eval.openset={{_target_: facenet.evaluation.openset.OpenSet, root: {tree}, protocol: null, "
            "trials: 2, enrolled: 0.5, gallery_per_person: 1, seed: 0, ranks: [1], fpir_targets: [0.2], index: exact, "
            "batch_size: 16, flip_tta: false, center_crop: null, override_image_size: null, missing: fail}",
            f"output_dir={tmp_path / 'a'}",
        )
    )
    assert "accuracy" in also and "openset/rank1" in also and "openset/dir_at_fpir_0.2" in also
    verification = next((tmp_path / "a").rglob("eval/report.json")).parent.parent
    with pytest.raises(ComparisonError, match=r"^runs were evaluated by different kinds of protocol \(openset, "):
        compare(resolve([str(out.parent), str(verification)]), tmp_path / "c3")


def test_the_command_writes_a_protocol_eval_reads(tmp_path, tree):
    out = tmp_path / "protocol"
    cmd = [sys.executable, "-m", "facenet.cli", "openset-protocol", str(tree), "-o", str(out), "--trials", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "2 trials written" in done.stdout
    assert make_trials(tree, 2, 0.5, 1, 0).fingerprint() in done.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert (
        again.returncode != 0 and again.stderr.strip().count("\n") == 0 and "already holds a protocol" in again.stderr
    )


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_a_faiss_index_finds_what_exact_search_finds(tmp_path, kind):
    """Galleries searched through a FAISS index give the exact ranks, scores and metrics: flat always; HNSW and
    IVF (at their documented settings) on a gallery this small, where they visit every vector."""
    counts = {f"p{i:03d}": 2 + i % 3 for i in range(120)}
    tree = write_faces(tmp_path / "tree", counts, size=(4, 4))
    data = make_trials(tree, trials=3, enrolled=0.5, gallery_per_person=1, seed=0)
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(len(counts), 32))
    person = {name: i for i, name in enumerate(sorted(counts))}
    emb = unit(np.array([centres[person[n]] for n in data.names]) + 0.8 * rng.normal(size=(len(data.images), 32)))
    exact = score_trials(emb, data, (1, 5), (0.1, 0.01))
    found = score_trials(emb, data, (1, 5), (0.1, 0.01), index=kind)
    a, b = exact.probes(data), found.probes(data)
    assert (a["best_person"] == b["best_person"]).all()
    genuine = a["rank"] <= 20  # every rank the search depth covers is the exact one
    assert (a["rank"][genuine] == b["rank"][genuine]).all() and (b["rank"][~genuine] > 20).all()
    assert np.allclose(a["best_score"], b["best_score"], atol=1e-5)
    for key, value in exact.scalars().items():
        assert found.scalars()[key] == pytest.approx(value, abs=1e-5), key
