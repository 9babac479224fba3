"""Split an identity-folder tree by identity into a training tree and a verification protocol on the others.

    .venv/bin/python scripts/identity_split.py --src ALIGNED --out SPLIT [--test-identities 20] [--folds 10]
        [--pairs-per-fold 30 | --all-pairs] [--seed 0]

Writes into --out, without copying an image: `train/<identity>` symlinks to the training identities' folders,
`test/<identity>/<identity>_0001.<ext>` symlinks to the test identities' images (the LFW naming `pairs.txt` uses),
and `test_pairs.txt`: header `folds pairs_per_fold`, then per fold `pairs_per_fold` same-identity pairs and as many
different-identity pairs, drawn at random (seeded) among the test identities; or, with --all-pairs, every pair of
test images and no header (facenet deals them into 10 stratified folds), which gives enough different pairs to
measure VAL at FAR 1e-3. Train and test share no identity.
Then: `python run.py dataset=folder dataset.root=SPLIT/train eval=lfw eval.root=SPLIT/test
eval.pairs=SPLIT/test_pairs.txt`.
"""

from __future__ import annotations

import argparse
import random
import sys
from itertools import combinations
from pathlib import Path

from facenet.data.index import IMAGE_EXTENSIONS


def split(
    src: Path, out: Path, test_identities: int, folds: int, per_fold: int, seed: int, all_pairs: bool = False
) -> tuple[int, int, int]:
    """(training identities, test identities, test pairs)."""
    identities = {
        d.name: sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        for d in sorted(src.iterdir())
        if d.is_dir()
    }
    identities = {k: v for k, v in identities.items() if v}
    rng = random.Random(seed)
    names = sorted(identities)
    rng.shuffle(names)
    test, train = sorted(names[:test_identities]), sorted(names[test_identities:])
    if len(test) < 2 or not train:
        raise SystemExit(f"{src} has {len(names)} identities with images: too few for {test_identities} test ones")
    for sub in ("train", "test"):
        if (out / sub).exists():
            for stale in (out / sub).rglob("*"):
                if stale.is_symlink():
                    stale.unlink()
    (out / "train").mkdir(parents=True, exist_ok=True)
    for name in train:
        (out / "train" / name).symlink_to(identities[name][0].parent.resolve(), target_is_directory=True)
    for name in test:
        (out / "test" / name).mkdir(parents=True, exist_ok=True)
        for k, image in enumerate(identities[name], start=1):
            (out / "test" / name / f"{name}_{k:04d}{image.suffix.lower()}").symlink_to(image.resolve())
    same = [(n, i, j) for n in test for i, j in combinations(range(1, len(identities[n]) + 1), 2)]
    if all_pairs:
        images = [(n, k) for n in test for k in range(1, len(identities[n]) + 1)]
        different = [(*a, *b) for a, b in combinations(images, 2) if a[0] != b[0]]
        lines = ["\t".join(map(str, p)) for p in [*same, *different]]
        (out / "test_pairs.txt").write_text("\n".join(lines) + "\n")
        return len(train), len(test), len(lines)
    needed = folds * per_fold
    if len(same) < needed:
        raise SystemExit(f"the test identities give {len(same)} same-identity pairs; {needed} are needed")
    same = rng.sample(same, needed)
    different = set()
    while len(different) < needed:
        a, b = rng.sample(test, 2)
        different.add((a, rng.randint(1, len(identities[a])), b, rng.randint(1, len(identities[b]))))
    different = sorted(different, key=lambda _: rng.random())
    lines = [f"{folds}\t{per_fold}"]
    for f in range(folds):
        lines += ["\t".join(map(str, p)) for p in same[f * per_fold : (f + 1) * per_fold]]
        lines += ["\t".join(map(str, p)) for p in different[f * per_fold : (f + 1) * per_fold]]
    (out / "test_pairs.txt").write_text("\n".join(lines) + "\n")
    return len(train), len(test), 2 * needed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True, help="identity folders: SRC/<identity>/<image>")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--test-identities", type=int, default=20)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--pairs-per-fold", type=int, default=30, help="same pairs per fold (as many different)")
    parser.add_argument("--all-pairs", action="store_true", help="every test pair, no header (stratified folds)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.src.is_dir():
        sys.exit(f"{args.src} is not a folder")
    n_train, n_test, n_pairs = split(
        args.src, args.out, args.test_identities, args.folds, args.pairs_per_fold, args.seed, args.all_pairs
    )
    print(
        f"{n_train} training identities under {args.out / 'train'}; {n_test} test identities under "
        f"{args.out / 'test'}; {n_pairs} pairs in {args.out / 'test_pairs.txt'}"
    )


if __name__ == "__main__":
    main()
