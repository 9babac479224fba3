"""Identification and clustering quality of a model on a labelled identity-folder tree (e.g. the AT&T faces).

    .venv/bin/python scripts/identify_cluster_check.py --model M --data ../shared/data/att_faces \
        [--gallery-per-id 5] [--align] [--threshold T]

Identification: the first --gallery-per-id images of each identity form the gallery (symlinks in a temporary
folder), every other image is a query; prints top-1 and top-5 accuracy for the "mean" and "nearest" methods, and
how many queries the threshold calls unknown. Clustering: every image, unlabelled; prints the adjusted Rand index and
purity against the true identities for both methods, at the model's threshold (or --threshold).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from facenet.data.index import IMAGE_EXTENSIONS
from facenet.inference import Embedder, cluster_embeddings
from facenet.metrics import adjusted_rand_index, purity


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="identity folders: DATA/<name>/<image>")
    parser.add_argument("--gallery-per-id", type=int, default=5)
    parser.add_argument("--align", action="store_true", help="MTCNN-align every image first")
    parser.add_argument("--threshold", type=float, help="default: the model's recorded threshold")
    args = parser.parse_args()
    model = Embedder.from_pretrained(args.model, align=args.align)
    threshold = args.threshold if args.threshold is not None else model.threshold
    people = sorted(p for p in Path(args.data).iterdir() if p.is_dir())
    files = {p.name: sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS) for p in people}
    files = {k: v for k, v in files.items() if len(v) > args.gallery_per_id}
    queries, truth = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, fs in files.items():
            (Path(tmp) / name).mkdir()
            for f in fs[: args.gallery_per_id]:
                (Path(tmp) / name / f.name).symlink_to(f.resolve())
            queries += [str(f) for f in fs[args.gallery_per_id :]]
            truth += [name] * (len(fs) - args.gallery_per_id)
        print(
            f"{len(files)} identities, gallery {args.gallery_per_id} images each, {len(queries)} queries, "
            f"threshold {threshold:.4f}{' (aligned)' if args.align else ''}"
        )
        for method in ("mean", "nearest"):
            ranked = model.identify(queries, tmp, k=6, method=method, threshold=threshold, cache_dir=None)
            known = [[m.identity for m in r if m.identity != "unknown"] for r in ranked]
            top1 = np.mean([k[0] == t for k, t in zip(known, truth, strict=True)])
            top5 = np.mean([t in k[:5] for k, t in zip(known, truth, strict=True)])
            unknown = sum(r[0].identity == "unknown" for r in ranked)
            print(
                f"identify ({method:7s}): top-1 {top1:.4f}, top-5 {top5:.4f}; beyond the threshold "
                f"('unknown'): {unknown}/{len(queries)}"
            )
    paths = [str(f) for fs in files.values() for f in fs]
    labels_true = [name for name, fs in files.items() for _ in fs]
    emb = model.embed(paths, "cluster")
    for method in ("chinese_whispers", "components"):
        labels = cluster_embeddings(emb, threshold, method)
        ari, pur = adjusted_rand_index(labels_true, labels), purity(labels_true, labels)
        print(
            f"cluster ({method}): {labels.max() + 1} clusters for {len(files)} identities, ARI {ari:.4f}, "
            f"purity {pur:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
