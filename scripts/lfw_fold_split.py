"""Real-data protocol: train on the identities of LFW View-2 folds 1-9, evaluate on fold 10's 600 pairs.

    .venv/bin/python scripts/lfw_fold_split.py --lfw ../shared/data/lfw112 --out /tmp/lfw_split [--test-fold 10]

Writes into --out (no image is copied): `train/<Name>` symlinks to the identity folders of the training folds
and `test_pairs.txt` (header `1 300`: one fold of 300 same + 300 different pairs, which facenet scores with ten
stratified sub-folds). Folds of LFW's pairs.txt are identity-disjoint, so no test identity is trained on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def split(lfw: Path, out: Path, test_fold: int) -> tuple[int, int]:
    lines = [ln.split() for ln in (lfw / "pairs.txt").read_text().splitlines() if ln.strip()]
    n_folds, per = (int(t) for t in lines[0])
    if not 1 <= test_fold <= n_folds:
        raise SystemExit(f"--test-fold must be within 1..{n_folds}")
    folds = [lines[1 + k * 2 * per : 1 + (k + 1) * 2 * per] for k in range(n_folds)]
    names = [{t for ln in fold for t in (ln[0], ln[2] if len(ln) == 4 else ln[0])} for fold in folds]
    test_names = names[test_fold - 1]
    train_names = set().union(*(n for k, n in enumerate(names) if k != test_fold - 1)) - test_names
    (out / "train").mkdir(parents=True, exist_ok=True)
    for stale in (out / "train").iterdir():  # an earlier split (another test fold) must not leak into this one
        if stale.name not in train_names:
            stale.unlink()
    for name in sorted(train_names):
        link = out / "train" / name
        if not link.exists():
            link.symlink_to((lfw / name).resolve(), target_is_directory=True)
    body = ["\t".join(ln) for ln in folds[test_fold - 1]]
    (out / "test_pairs.txt").write_text("\n".join([f"1\t{per}", *body]) + "\n")
    return len(train_names), len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, required=True, help="LFW folder with pairs.txt (e.g. lfw112)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--test-fold", type=int, default=10)
    args = parser.parse_args()
    if not (args.lfw / "pairs.txt").is_file():
        sys.exit(f"{args.lfw}/pairs.txt not found")
    identities, pairs = split(args.lfw, args.out, args.test_fold)
    print(
        f"{identities} training identities linked under {args.out / 'train'}; {pairs} test pairs in "
        f"{args.out / 'test_pairs.txt'}"
    )


if __name__ == "__main__":
    main()
