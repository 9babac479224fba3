"""Real trees have holes: `eval.missing=skip` leaves out the pairs whose images are gone (counted, each remaining pair
in the fold its line gives), `eval.missing=fail` refuses in one line; folds carried per pair through the metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facenet.data.pairs import PairSet, read_pairs
from facenet.data.synthetic import generate_eval
from facenet.errors import DataError
from facenet.metrics import verification_report
from facenet.tracking import NullTracker
from tests.conftest import write_faces

KEYS_OF_SKIP = ("missing", "skipped_pairs", "missing_images")


def write_pairs(path: Path, lines: list[str], header: str | None) -> Path:
    path.write_text("\n".join(([header] if header else []) + lines) + "\n")
    return path


def parse(pairs_file: Path) -> list[dict]:
    """The test's own reading of a View 2 pairs.txt: each line's images, flag and fold (line k*2N .. k*2N+2N-1)."""
    rows = [ln.split() for ln in pairs_file.read_text().splitlines() if ln.strip()]
    per_fold = 2 * int(rows[0][1])
    out = []
    for i, t in enumerate(rows[1:]):
        a, b = (t[0], int(t[1])), (t[0] if len(t) == 3 else t[2], int(t[-1]))
        names = [f"{n}/{n}_{k:04d}" for n, k in (a, b)]
        out.append({"line": "\t".join(t), "fold": i // per_fold, "same": len(t) == 3, "names": names})
    return out


def short(path: str) -> str:
    """`<identity>/<file stem>`, as pairs.txt names an image."""
    p = Path(path)
    return f"{p.parent.name}/{p.stem}"


# --- reading: which pairs remain, in which folds ---------------------------------------------------------------


@pytest.fixture
def three_folds(tmp_path):
    """3 folds x (2 same + 2 different) over 6 identities of 3 images; B_0001 is used in folds 0 and 2."""
    root = write_faces(tmp_path / "tree", {n: 3 for n in "ABCDEF"}, ext="jpg")
    folds = [
        ["A\t1\t2", "B\t1\t3", "A\t1\tB\t1", "A\t3\tC\t1"],
        ["C\t1\t2", "D\t2\t3", "C\t3\tD\t1", "D\t1\tE\t2"],
        ["E\t1\t3", "F\t1\t2", "E\t2\tB\t1", "F\t3\tA\t2"],
    ]
    pairs = write_pairs(tmp_path / "pairs.txt", [ln for f in folds for ln in f], "3\t2")
    return root, pairs


def test_missing_images_refuse_in_one_line_naming_them_and_the_setting(three_folds):
    root, pairs_file = three_folds
    (root / "B" / "B_0001.jpg").unlink()
    (root / "D" / "D_0003.jpg").unlink()
    with pytest.raises(DataError) as refused:
        read_pairs(pairs_file, root, "fail", "eval.missing")
    msg = str(refused.value)
    assert "\n" not in msg and "2 images" in msg and "B/B_0001" in msg and "D/D_0003" in msg
    assert "leave out the 4 pairs that need them with eval.missing=skip" in msg


def test_skip_keeps_every_other_pair_in_the_fold_of_its_line(three_folds, caplog):
    root, pairs_file = three_folds
    full = read_pairs(pairs_file, root)
    (root / "B" / "B_0001.jpg").unlink()
    with caplog.at_level("WARNING"):
        pairs = read_pairs(pairs_file, root, "skip", "eval.missing")
    lines = parse(pairs_file)
    kept = [r for r in lines if "B/B_0001" not in r["names"]]
    assert pairs.skipped == len(lines) - len(kept) == 3 and pairs.missing_images == ("B/B_0001",)
    assert "3 of its 12 pairs that need them are left out" in caplog.text
    # the pairs that remain, in file order, each in the fold its line is in (fold 0 keeps 2 of its 4 pairs)
    got = [[short(pairs.paths[a]), short(pairs.paths[b])] for a, b in zip(pairs.left, pairs.right, strict=True)]
    assert got == [r["names"] for r in kept]
    assert pairs.folds().tolist() == [r["fold"] for r in kept] == [0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert pairs.issame.tolist() == [r["same"] for r in kept]
    assert full.folds().tolist() == [r["fold"] for r in lines]  # nothing missing: the same rule, consecutive
    assert "B_0001" not in " ".join(pairs.paths)  # nothing left that needs embedding the gone image


def test_a_fold_left_without_same_or_different_pairs_is_refused(three_folds):
    root, pairs_file = three_folds
    for name in ("A/A_0001", "B/B_0003"):  # both same pairs of fold 0
        (root / f"{name}.jpg").unlink()
    with pytest.raises(DataError) as refused:
        read_pairs(pairs_file, root, "skip", "eval.missing")
    msg = str(refused.value)
    assert "\n" not in msg and "fold 0" in msg and "keeps 0 same and 1 different pairs" in msg
    assert msg.startswith("eval.missing=skip: 3 of the 12 pairs") and "A/A_0001, B/B_0003" in msg
    for name in ("C/C_0002", "D/D_0001", "D/D_0002"):  # every pair of fold 1 needs one of them, no other pair does
        (root / f"{name}.jpg").unlink()
    with pytest.raises(DataError, match="fold 0 .* keeps 0 same"):
        read_pairs(pairs_file, root, "skip", "eval.missing")
    (root / "A" / "A_0001.jpg").write_bytes((root / "A" / "A_0002.jpg").read_bytes())
    (root / "B" / "B_0003.jpg").write_bytes((root / "B" / "B_0002.jpg").read_bytes())
    with pytest.raises(DataError, match=r"fold 1 \(of 0-2, as scores.csv numbers them\) keeps no pair"):
        read_pairs(pairs_file, root, "skip", "eval.missing")


def test_max_pairs_after_skipping_takes_the_first_pairs_of_each_true_fold(three_folds):
    root, pairs_file = three_folds
    (root / "B" / "B_0001.jpg").unlink()
    small = read_pairs(pairs_file, root, "skip").limit(6)  # 1 same + 1 different from each of the 3 folds
    kept = [r for r in parse(pairs_file) if "B/B_0001" not in r["names"]]
    want = []
    for fold in range(3):
        rows = [r for r in kept if r["fold"] == fold]
        want += [next(r for r in rows if r["same"]), next(r for r in rows if not r["same"])]
    got = [[short(small.paths[a]), short(small.paths[b])] for a, b in zip(small.left, small.right, strict=True)]
    assert got == [r["names"] for r in want]
    assert small.folds().tolist() == [0, 0, 1, 1, 2, 2] and small.skipped == 3


def test_without_fold_header_skipping_equals_the_hand_filtered_file(tmp_path):
    """A file that defines no folds: the stratified folds are dealt over the pairs that remain, exactly as for a
    file that never named the missing image."""
    root = write_faces(tmp_path / "tree", {"A": 4, "B": 4, "C": 4}, ext="jpg")
    same = [f"{n}\t{i}\t{j}" for n in "ABC" for i in (1, 2, 3) for j in (2, 3, 4) if i < j]  # 18
    diff = [f"A\t{i}\tB\t{j}" for i in (1, 2, 3, 4) for j in (1, 2, 3, 4)]  # 16
    write_pairs(tmp_path / "all.txt", same + diff, None)
    (root / "A" / "A_0004.jpg").unlink()

    def needs_a4(line: str) -> bool:
        t = line.split("\t")
        if len(t) == 3:
            return t[0] == "A" and "4" in t[1:]
        return ("A", "4") in ((t[0], t[1]), (t[2], t[3]))

    kept = [ln for ln in same + diff if not needs_a4(ln)]
    write_pairs(tmp_path / "hand.txt", kept, None)
    skipped = read_pairs(tmp_path / "all.txt", root, "skip")
    hand = read_pairs(tmp_path / "hand.txt", root)
    assert skipped.skipped == len(same + diff) - len(kept) == 3 + 4
    assert skipped.paths == hand.paths and np.array_equal(skipped.left, hand.left)
    assert np.array_equal(skipped.right, hand.right) and np.array_equal(skipped.folds(10), hand.folds(10))


def test_a_file_of_one_fold_is_dealt_into_stratified_folds_after_skipping(tmp_path):
    """`1 N` (LFW's fold 10 held out, scripts/lfw_fold_split.py): the file's one fold is cut into 10 stratified
    sub-folds, dealt over the pairs that remain."""
    root = write_faces(tmp_path / "tree", {n: 3 for n in "ABCDEFGHIJKL"}, ext="jpg")
    names = "ABCDEFGHIJKL"
    same = [f"{n}\t1\t2" for n in names]
    diff = [f"{a}\t3\t{b}\t3" for a, b in zip(names, names[1:] + names[0], strict=True)]
    write_pairs(tmp_path / "fold10.txt", same + diff, "1\t12")
    (root / "L" / "L_0002.jpg").unlink()
    pairs = read_pairs(tmp_path / "fold10.txt", root, "skip")
    assert pairs.n_folds == 1 and pairs.fold is None and pairs.skipped == 1 and len(pairs) == 23
    folds = pairs.folds(10)
    for k in range(10):
        assert pairs.issame[folds == k].any() and not pairs.issame[folds == k].all()


def test_bin_sets_keep_ten_consecutive_folds(tmp_path):
    from facenet.data.binsets import pack_pairs, read_bin

    root = generate_eval(tmp_path, identities_per_fold=2, images_per_identity=3, pairs_per_fold=2, image_size=24)
    pack_pairs(root, root / "pairs.txt", tmp_path / "lfw.bin")
    from_bin, from_txt = read_bin(tmp_path / "lfw.bin"), read_pairs(root / "pairs.txt", root)
    assert from_bin.folds().tolist() == from_txt.folds().tolist() == [i // 4 for i in range(40)]


# --- the metrics: each pair scored in its own fold -----------------------------------------------------------


def test_explicit_folds_are_what_consecutive_blocks_give_and_survive_shuffling():
    rng = np.random.default_rng(4)
    d, same = rng.random(60), rng.random(60) < 0.5
    blocks = np.repeat(np.arange(5), 12)
    plain = verification_report(d, same, 5, (0.1,))
    assert verification_report(d, same, 5, (0.1,), folds=blocks).to_dict() == plain.to_dict()
    perm = rng.permutation(60)
    shuffled = verification_report(d[perm], same[perm], 5, (0.1,), folds=blocks[perm])
    assert shuffled.fold_accuracies == plain.fold_accuracies and shuffled.fold_thresholds == plain.fold_thresholds
    with pytest.raises(ValueError, match="each fold holding a pair"):
        verification_report(d, same, 6, folds=blocks)


def test_uneven_folds_against_brute_force():
    """Folds of 3 to 17 pairs: each fold's threshold is one the other folds score best at (checked against every
    candidate), and its accuracy is that threshold's on the fold itself."""
    rng = np.random.default_rng(7)
    folds = np.repeat(np.arange(4), [17, 3, 11, 9])
    rng.shuffle(folds)
    d = np.round(rng.random(len(folds)), 2)  # ties included
    same = rng.random(len(folds)) < 0.4
    r = verification_report(d, same, 4, folds=folds)
    candidates = np.r_[d.min() - 1, np.unique(d)]
    for k in range(4):
        train, test = folds != k, folds == k
        best = max(((d[train] <= t) == same[train]).mean() for t in candidates)
        t = r.fold_thresholds[k]
        assert ((d[train] <= t) == same[train]).mean() == best
        assert r.fold_accuracies[k] == ((d[test] <= t) == same[test]).mean()
    assert r.accuracy_mean == pytest.approx(np.mean(r.fold_accuracies))


# --- the evaluation: report, scores, tracker --------------------------------------------------------------------


class Recorder(NullTracker):
    def __init__(self):
        self.metrics: dict[str, float] = {}

    def log_metrics(self, metrics, step):
        self.metrics.update(metrics)


@pytest.fixture(scope="module")
def tiny(compose_cfg, tmp_path_factory):
    """A randomly initialised smoke network, and a generated LFW-style tree: 10 folds of 2 same + 2 different."""
    import mindspore as ms

    from facenet.models.build import build_network

    cfg = compose_cfg("experiment=smoke")
    ms.set_seed(0)
    net = build_network(cfg.backbone, cfg.head, cfg.preprocess.image_size)
    base = tmp_path_factory.mktemp("gappy")
    root = generate_eval(base, identities_per_fold=2, images_per_identity=3, pairs_per_fold=2, image_size=32)
    return net, root


def evaluate(net, root: Path, pairs_file: Path, out: Path, missing: str, pairs: PairSet | None = None):
    from facenet.data.images import EvalTransform
    from facenet.evaluation.protocols import LfwPairs
    from facenet.evaluation.report import evaluate_and_log

    protocol = LfwPairs(
        str(root),
        str(pairs_file),
        far_targets=[0.1],
        max_pairs=None,
        batch_size=16,
        flip_tta=False,
        center_crop=None,
        override_image_size=None,
        missing=missing,
    )
    tracker = Recorder()
    data = {"": pairs} if pairs is not None else protocol.prepare(1)
    transform = EvalTransform(net.image_size)
    if pairs is None:
        metrics = protocol.evaluate(net, data, transform, 1, tracker, 0, out)
    else:
        metrics = evaluate_and_log(net, pairs, protocol, transform, 1, tracker, 0, out)
    return metrics, tracker.metrics, json.loads((out / "report.json").read_text()), pd.read_csv(out / "scores.csv")


def gappy_tree(root: Path, into: Path, lines: list[dict]) -> tuple[Path, list[str]]:
    """A copy of `root` without two images: one of fold 0 and one of fold 6, each chosen so that its fold still
    keeps a same and a different pair."""
    gone = []
    for fold in (0, 6):
        rows = [r for r in lines if r["fold"] == fold]
        for name in sorted({n for r in rows for n in r["names"]}):
            left = [r for r in rows if name not in r["names"]]
            if any(r["same"] for r in left) and not all(r["same"] for r in left):
                gone.append(name)
                break
    shutil.copytree(root, into)
    for name in gone:
        (into / f"{name}.png").unlink()
    return into, gone


def test_skipping_gives_the_report_of_the_hand_filtered_pairs_in_their_own_folds(tiny, tmp_path, caplog):
    net, root = tiny
    lines = parse(root / "pairs.txt")
    gap, gone = gappy_tree(root, tmp_path / "gap", lines)
    assert len(gone) == 2
    kept = [r for r in lines if not set(r["names"]) & set(gone)]
    with pytest.raises(DataError) as refused:
        evaluate(net, gap, root / "pairs.txt", tmp_path / "fail", "fail")
    msg = str(refused.value)
    assert "\n" not in msg and all(g in msg for g in gone) and "eval.missing=skip" in msg

    with caplog.at_level("INFO"):
        metrics, logged, report, scores = evaluate(net, gap, root / "pairs.txt", tmp_path / "skip", "skip")
    n_skipped = len(lines) - len(kept)
    assert report["skipped_pairs"] == metrics["skipped_pairs"] == logged["eval/skipped_pairs"] == n_skipped > 0
    assert report["missing_images"] == sorted(gone) and report["missing"] == "skip"
    assert f"({n_skipped} pairs skipped: images missing, eval.missing=skip)" in caplog.text
    assert f"skipped      {n_skipped} pairs" in (tmp_path / "skip" / "report.txt").read_text()
    # scores.csv: the remaining pairs, each with the fold of its line in the original file
    assert scores["fold"].tolist() == [r["fold"] for r in kept]
    assert [[short(a), short(b)] for a, b in zip(scores["left"], scores["right"], strict=True)] == [
        r["names"] for r in kept
    ]

    # the oracle: the hand-filtered pairs.txt (no header, so read as it is), scored in the folds of its lines
    hand_file = write_pairs(tmp_path / "hand.txt", [r["line"] for r in kept], None)
    hand = read_pairs(hand_file, gap)
    hand = PairSet(hand.images, hand.left, hand.right, hand.issame, 10, np.array([r["fold"] for r in kept]))
    _, _, hand_report, hand_scores = evaluate(net, gap, hand_file, tmp_path / "hand", "fail", hand)
    assert {k: v for k, v in report.items() if k not in KEYS_OF_SKIP} == hand_report
    pd.testing.assert_frame_equal(scores, hand_scores)
    assert hand_report["n_pairs"] == len(kept) and len(hand_report["fold_accuracies"]) == 10

    # nothing missing: skip changes nothing but saying so
    _, _, whole, _ = evaluate(net, root, root / "pairs.txt", tmp_path / "whole", "skip")
    assert whole["skipped_pairs"] == 0 and whole["n_pairs"] == len(lines)


def test_compare_refuses_runs_that_skipped_other_pairs(tiny, tmp_path):
    from facenet.comparison.report import check_same_pairs
    from facenet.comparison.runs import ComparisonError, RunResult

    net, root = tiny
    lines = parse(root / "pairs.txt")
    gap, _ = gappy_tree(root, tmp_path / "gap", lines)
    _, _, skipped, skipped_scores = evaluate(net, gap, root / "pairs.txt", tmp_path / "a", "skip")
    _, _, whole, whole_scores = evaluate(net, root, root / "pairs.txt", tmp_path / "b", "fail")
    runs = [RunResult("gap", "a", skipped, skipped_scores), RunResult("whole", "b", whole, whole_scores)]
    with pytest.raises(ComparisonError) as refused:
        check_same_pairs(runs, ["gap", "whole"])
    msg = str(refused.value)
    assert "\n" not in msg and "different pair sets" in msg
    assert f"gap left out {skipped['skipped_pairs']} pairs for missing images" in msg
    relabelled = whole_scores.assign(fold=np.roll(whole_scores["fold"].to_numpy(), 1))
    with pytest.raises(ComparisonError, match="cut into other folds"):
        check_same_pairs([runs[1], RunResult("other", "c", whole, relabelled)], ["whole", "other"])


def test_task_eval_with_missing_skip_end_to_end(tiny, compose_cfg, tmp_path):
    from mlflow.tracking import MlflowClient

    from facenet.app import run
    from tests.conftest import tiny_checkpoint

    _, root = tiny
    lines = parse(root / "pairs.txt")
    gap, gone = gappy_tree(root, tmp_path / "gap", lines)
    ckpt = tiny_checkpoint(compose_cfg, tmp_path)
    base = ("task=eval", f"ckpt={ckpt}", "eval=lfw", f"eval.root={gap}", f"eval.pairs={root / 'pairs.txt'}")
    with pytest.raises(DataError, match="eval.missing=skip"):
        run(compose_cfg(*base, f"output_dir={tmp_path / 'refused'}", "tracking=off"))
    metrics = run(compose_cfg(*base, f"output_dir={tmp_path}", "eval.missing=skip"))
    n_skipped = sum(bool(set(r["names"]) & set(gone)) for r in lines)
    assert metrics["skipped_pairs"] == n_skipped and metrics["pairs"] == len(lines) - n_skipped
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (r,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    assert r.data.metrics["eval/skipped_pairs"] == n_skipped
    run_dir = next((tmp_path / "runs").glob("*/*"))
    assert json.loads((run_dir / "eval" / "report.json").read_text())["missing_images"] == sorted(gone)
