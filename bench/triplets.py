"""Offline triplet generation at VGGFace2 scale, and folder-index building rate.

    .venv/bin/python bench/triplets.py [--images 3310000] [--identities 9131] [--triplets 3000000] [--files 100000]

Prints (1) time and peak traced memory to draw `--triplets` random triplets over an index of `--images` images of
`--identities` identities (targets: <= 10 s, <= 2 GB), plus the time to write them in the reference CSV layout;
(2) the rate of indexing an identity-folder tree of `--files` empty files, cold and from the cache, extrapolated
to the full image count.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from facenet.data.index import index_folder
from facenet.data.triplets import ClassIndex, draw_triplets, triplets_frame


def vggface2_like_counts(images: int, identities: int, rng: np.random.Generator) -> np.ndarray:
    """Images per identity like VGGFace2's (87 to 843, mean about 362), summing exactly to `images`."""
    counts = rng.integers(87, 844, identities).astype(np.float64)
    counts = np.maximum(2, np.round(counts * images / counts.sum())).astype(np.int64)
    counts[-1] += images - counts.sum()
    return counts


def bench_triplets(images: int, identities: int, n: int) -> None:
    rng = np.random.default_rng(0)
    classes = np.repeat(np.arange(identities), vggface2_like_counts(images, identities, rng))
    rng.shuffle(classes)  # index rows need not be grouped by class
    tracemalloc.start()
    t = time.perf_counter()
    triplets = draw_triplets(ClassIndex(classes), n, np.random.default_rng(1))
    seconds = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"triplets: {n:,} over {images:,} images / {identities:,} identities in {seconds:.2f} s, "
        f"peak traced memory {peak / 2**20:.0f} MiB (the class array itself {classes.nbytes / 2**20:.0f} MiB)"
    )
    c = classes[triplets]
    assert (c[:, 0] == c[:, 1]).all() and (c[:, 0] != c[:, 2]).all() and (triplets[:, 0] != triplets[:, 1]).all()
    names = np.char.add("n", np.arange(identities).astype(str))
    table = pd.DataFrame({"id": np.arange(images).astype(str), "name": names[classes], "class": classes})
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        triplets_frame(table, triplets).to_csv(Path(tmp) / "triplets.csv", index=False)
        print(f"  writing them as the reference CSV: {time.perf_counter() - t:.1f} s")


def bench_index(files: int, per_folder: int, full: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tree"
        for f in range(files // per_folder):
            folder = root / f"n{f:06d}"
            folder.mkdir(parents=True)
            for i in range(per_folder):
                (folder / f"{i:04d}_01.jpg").touch()
        cache = Path(tmp) / "cache"
        t = time.perf_counter()
        cold = index_folder(root, cache)
        t_cold = time.perf_counter() - t
        t = time.perf_counter()
        warm = index_folder(root, cache)
        t_warm = time.perf_counter() - t
        assert len(cold) == len(warm) == files
        print(
            f"index: {files:,} files in {files // per_folder:,} folders: scan {t_cold:.2f} s "
            f"({files / t_cold:,.0f} files/s), cached {t_warm:.2f} s ({files / t_warm:,.0f} rows/s)"
        )
        print(
            f"  linear in files (one scandir per identity, no per-file stat): {full:,} images would take about "
            f"{full / files * t_cold:.0f} s to scan and {full / files * t_warm:.0f} s from the cache"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3_310_000)
    parser.add_argument("--identities", type=int, default=9_131)
    parser.add_argument("--triplets", type=int, default=3_000_000)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--per-folder", type=int, default=100)
    args = parser.parse_args()
    bench_triplets(args.images, args.identities, args.triplets)
    bench_index(args.files, args.per_folder, args.images)


if __name__ == "__main__":
    main()
