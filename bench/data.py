"""Input pipeline throughput: training batches from a RecordIO file vs from an identity-folder tree, no network.

    .venv/bin/python bench/data.py [--images ../shared/data/celeb24] [--sizes 112 224] [--workers 1 2 4]
        [--steps 12] [--repeats 3] [--gpu-rate 4400] [--json out.json]

Builds, in a temporary folder, JPEG copies of --images at each size (quality 95, as InsightFace packs them) and
packs each into `train.rec` with `facenet pack`; then times `train_batches` (read, decode with OpenCV, augment: shift
+ flip + standardise, stack P x K = 16 x 4 batches) for both sources and each worker-thread count: images/s, median
of --repeats epochs of --steps batches, after a warm-up epoch (the files are then in the page cache for both).
From the best single-worker rate it states how many cores a GPU training at --gpu-rate images/s would need to be
fed (the ModelZoo recipe's ResNet-50 step runs at about 4,400 images/s on one modern GPU). Timings on a shared
2-core machine are noisy: compare the rows of one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from facenet.data.datasets import FolderDataset, RecordIODataset, TrainSet
from facenet.data.images import TrainTransform, read_image, resize
from facenet.data.index import index_folder
from facenet.data.insightface import pack_folder
from facenet.data.pipeline import train_batches
from facenet.data.sampler import PKSampler

P, K = 16, 4


def jpeg_copy(src: Path, dst: Path, size: int) -> Path:
    """`src`'s identity folders as size x size JPEGs (quality 95) under `dst`."""
    for path, name in zip(*(index_folder(src)[c] for c in ("path", "name")), strict=True):
        (dst / name).mkdir(parents=True, exist_ok=True)
        img = cv2.cvtColor(resize(read_image(path), size), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(dst / name / (Path(path).stem + ".jpg")), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return dst


def images_per_second(data: TrainSet, size: int, workers: int, steps: int, repeats: int) -> float:
    labels = data.table["class"].to_numpy()
    sampler = PKSampler(labels, P, K, singletons=0, steps_per_epoch=steps, seed=0)
    augment = TrainTransform(size, hflip=True, max_shift=0.0625, random_interpolation=False)
    images = data.images()
    rates = []
    for epoch in range(repeats + 1):  # epoch 0 warms the page cache and the threads
        start = time.perf_counter()
        for _ in train_batches(images, labels, sampler, augment, workers, 0, epoch):
            pass
        if epoch:
            rates.append(steps * P * K / (time.perf_counter() - start))
    return statistics.median(rates)


def measure(src: Path, sizes: list[int], workers: list[int], steps: int, repeats: int, tmp: Path) -> list[dict]:
    rows = []
    for size in sizes:
        folder = jpeg_copy(src, tmp / f"jpeg{size}", size)
        pack_folder(folder, tmp / f"rec{size}")
        sources = {
            "folder": FolderDataset(str(folder), cache_dir=None, index_csv=None).load(),
            "recordio": RecordIODataset(str(tmp / f"rec{size}"), None).load(),
        }
        mb = {
            "folder": sum(f.stat().st_size for f in folder.rglob("*.jpg")) / 1e6,
            "recordio": (tmp / f"rec{size}" / "train.rec").stat().st_size / 1e6,
        }
        for n in workers:
            for name, data in sources.items():
                rate = images_per_second(data, size, n, steps, repeats)
                rows.append(
                    {"size": size, "source": name, "workers": n, "img_s": rate, "images": len(data), "mb": mb[name]}
                )
                print(f"{size}x{size} {name:8s} {n} worker(s): {rate:7.1f} img/s", file=sys.stderr)
    return rows


def table(rows: list[dict], gpu_rate: float) -> str:
    lines = ["| size | workers | folder img/s | RecordIO img/s | RecordIO / folder |", "|---|---|---|---|---|"]
    by = {(r["size"], r["source"], r["workers"]): r["img_s"] for r in rows}
    for size, workers in sorted({(r["size"], r["workers"]) for r in rows}):
        f, r = by[(size, "folder", workers)], by[(size, "recordio", workers)]
        lines.append(f"| {size}x{size} | {workers} | {f:.1f} | {r:.1f} | {r / f:.2f} |")
    lines.append("")
    for size in sorted({r["size"] for r in rows}):
        per_core = max(by.get((size, s, 1), 0.0) for s in ("folder", "recordio"))
        if per_core:
            lines.append(
                f"{size}x{size}: one core decodes and augments {per_core:.0f} img/s; a GPU step at "
                f"{gpu_rate:.0f} img/s needs {gpu_rate:.0f} / {per_core:.0f} = "
                f"{math.ceil(gpu_rate / per_core)} cores feeding it"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=Path("../shared/data/celeb24"), help="identity folders")
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=12, help="batches of 16 x 4 per timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu-rate", type=float, default=4400.0, help="images/s the GPU trains at")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if not args.images.is_dir():
        print(f"error: --images {args.images}: no such folder", file=sys.stderr)
        return 1
    print(f"{os.cpu_count()} cores; worker threads above that count are capped to it by the pipeline", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args.images, args.sizes, args.workers, args.steps, args.repeats, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(table(rows, args.gpu_rate))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
