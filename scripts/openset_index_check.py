"""Open-set trials searched exactly and through each FAISS index kind, from one embedding of the tree.

    .venv/bin/python scripts/openset_index_check.py --ckpt pretrained:casia-webface --root ../shared/data/lfw112

Embeds every image of the trials once (the checkpoint's own preprocessing, as task=eval does), then scores the same
trials with `eval.index` = exact, flat, hnsw and ivf. Prints, for each kind: the probes whose best identity or rank
(within the search depth) differs from exact search, and the largest change of any protocol metric, in points.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cache", help="a .npy file: the embeddings are read from it if it exists, else written to it")
    args = parser.parse_args()

    from facenet.data.images import EvalTransform
    from facenet.data.openset import make_trials
    from facenet.data.sources import ImageFiles
    from facenet.evaluation.openset import CMC_RANKS, score_trials, unit
    from facenet.evaluation.verify import embed_images
    from facenet.models.load import load_model
    from facenet.runtime import ensure_runtime

    ensure_runtime()  # MindSpore on the CPU in graph mode, as task=eval runs it

    data = make_trials(args.root, args.trials, 0.5, 1, 0)
    start = time.perf_counter()
    if args.cache and Path(args.cache).exists():
        emb = np.load(args.cache)
        if len(emb) != len(data.paths):
            raise SystemExit(f"{args.cache} holds {len(emb)} embeddings; the trials name {len(data.paths)} images")
    else:
        net, spec = load_model(args.ckpt)
        transform = EvalTransform(net.image_size, None, spec["preprocess"]["normalize"])
        emb = unit(embed_images(net, ImageFiles(data.paths), transform, args.batch_size, os.cpu_count() or 1))
        if args.cache:
            np.save(args.cache, emb)
    seconds = time.perf_counter() - start
    print(f"{len(data.images)} images embedded (or read) in {seconds:.0f} s; trials' fingerprint {data.fingerprint()}")
    ranks, fpirs = (1, 5, 10), (0.1, 0.01, 0.001)
    exact = score_trials(emb, data, ranks, fpirs)
    base, reference = exact.scalars(), exact.probes(data)
    for kind in ("flat", "hnsw", "ivf"):
        start = time.perf_counter()
        found = score_trials(emb, data, ranks, fpirs, index=kind)
        seconds = time.perf_counter() - start
        probes = found.probes(data)
        covered = reference["rank"] <= CMC_RANKS
        best = int((probes["best_person"] != reference["best_person"]).sum())
        rank = int((probes["rank"][covered] != reference["rank"][covered]).sum())
        moved = {k: abs(found.scalars()[k] - v) * 100 for k, v in base.items() if not k.endswith("_std")}
        worst = max(moved, key=moved.get)
        print(
            f"{kind:5s} ({seconds:.1f} s): {len(probes)} probes over {len(data.trials)} trials; best identity differs "
            f"for {best}, rank (within {CMC_RANKS}) for {rank}; largest metric change {moved[worst]:.4f} points "
            f"({worst}); rank-1 {found.scalars()['rank1']:.4f} vs exact {base['rank1']:.4f}"
        )


if __name__ == "__main__":
    main()
