"""Feature drift (XBM's measure): how far the same images' embeddings move between checkpoints of one run, against
the distances a triplet miner compares. What decides whether a cross-batch memory's stored embeddings still stand
for their images (docs/memory.md).

    .venv/bin/python scripts/feature_drift.py --root /tmp/lfw_split/train CKPT_A CKPT_B [CKPT_C ...]

Embeds up to --per images of --people identities (with at least two images each, chosen with --seed) with every
checkpoint (training checkpoints with their JSON sidecars, as `facenet embed` reads them), and prints, for each
consecutive pair of checkpoints and for the first against the last: the steps apart, the mean L2 movement of an
image's embedding, the length of the mean movement (the part common to all images) and the mean of the rest; and
the first checkpoint's median positive and negative distances.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

from facenet.inference import Embedder


def images(root: Path, people: int, per: int, seed: int) -> tuple[list[str], np.ndarray]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and len([f for f in p.iterdir() if f.is_file()]) >= 2)
    if not folders:
        raise SystemExit(f"{root}: no identity folder with two images or more")
    random.Random(seed).shuffle(folders)
    paths, labels = [], []
    for i, folder in enumerate(folders[:people]):
        for f in sorted(f for f in folder.iterdir() if f.is_file())[:per]:
            paths.append(str(f))
            labels.append(i)
    return paths, np.array(labels)


def drift(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    delta = b - a
    common = delta.mean(axis=0)
    return {
        "movement": float(np.linalg.norm(delta, axis=1).mean()),
        "common": float(np.linalg.norm(common)),
        "rest": float(np.linalg.norm(delta - common, axis=1).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--root", type=Path, required=True, help="identity folders (the run's training images)")
    parser.add_argument("--people", type=int, default=150)
    parser.add_argument("--per", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if len(args.checkpoints) < 2:
        parser.error("give at least two checkpoints of one run")
    paths, labels = images(args.root, args.people, args.per, args.seed)
    embs, steps = [], []
    for ckpt in args.checkpoints:
        sidecar = ckpt.with_suffix(".json")
        if not sidecar.is_file():
            raise SystemExit(f"{ckpt}: no {sidecar.name} beside it (a training checkpoint of this framework?)")
        steps.append(int(json.loads(sidecar.read_text())["step"]))
        embs.append(Embedder.from_pretrained(ckpt, workers=1).embed(paths, desc=ckpt.name))
    d = np.linalg.norm(embs[0][:, None] - embs[0][None], axis=2)
    same, off = labels[:, None] == labels[None], ~np.eye(len(paths), dtype=bool)
    print(
        f"{len(paths)} images of {labels.max() + 1} identities; at step {steps[0]}: median positive distance "
        f"{np.median(d[same & off]):.3f}, median negative distance {np.median(d[~same]):.3f}"
    )
    pairs = [(i, i + 1) for i in range(len(steps) - 1)] + ([(0, len(steps) - 1)] if len(steps) > 2 else [])
    print("| steps | apart | mean movement | common to all (length of the mean) | the rest (mean) |")
    print("|---|---|---|---|---|")
    for i, j in pairs:
        r = drift(embs[i], embs[j])
        print(
            f"| {steps[i]} -> {steps[j]} | {steps[j] - steps[i]} | {r['movement']:.3f} | {r['common']:.3f} "
            f"| {r['rest']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
