"""Gallery search at scale: NumPy brute force against faiss flat, HNSW and IVF galleries (facenet.gallery, default
settings) of 1e4, 1e5 and 1e6 embeddings, 128-d and 512-d.

    .venv/bin/python bench/gallery.py [--sizes 1e4,1e5,1e6] [--dims 128,512] [--methods numpy,flat,hnsw,ivf]
        [--queries 1000] [--repeats 3] [--threads 2] [--hnsw-max 1e5] [--json out.json]

Embeddings are "real-ish": identities of 10 images each, every image a noisy sample around its identity's centre
(centres in a random subspace of a quarter of the dimensions, as trained embeddings use fewer directions than they
have; same-identity cosine about 0.5, different about 0); the probes are new samples of enrolled identities.
Per (size, dimension, method):
- build: seconds to build the index (faiss; NumPy has none), and to write the gallery folder (files, checksums);
- open: seconds to open the written gallery and read its index (checksums verified), what `identify` pays first;
- memory: the index file's size, and the process's resident memory growth while building (MB);
- queries/s at batch 1 and at batch 256, top 10 images per probe (median of --repeats); batch 1 also with one
  faiss thread (OpenMP threads wait for each other: on a busy machine one probe may go faster alone);
- recall@1: probes whose top image is the one exact search (faiss flat) finds; id@1: whose top identity is.
Then, per approximate index, recall@1 and queries/s at batch 256 over its search-time setting (ef_search, nprobe).
NumPy brute force is a matrix product and argpartition, in blocks so that no score matrix exceeds 64M entries.
HNSW builds slowly on two cores (minutes per 1e5 512-d vectors): sizes above --hnsw-max skip it unless raised.
Timings on a shared machine move: compare rows within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facenet.gallery import Gallery, create
from facenet.gallery import index as indexes

PER_IDENTITY = 10
K = 10  # images asked for per probe when timing
MAX_SCORES = 1 << 26  # entries of one NumPy score block (256 MB of float32)
SWEEP = {"hnsw": ("ef_search", (16, 32, 64, 128)), "ivf": ("nprobe", (8, 16, 32, 64, 128, 256))}
MODEL = {  # what a gallery's manifest records of its model; these vectors come from no model
    "model": {"file": "bench", "sha256": "0" * 64, "format": "none"},
    "norm": 1.0,
    "preprocess": {"source": "bench/gallery.py: clustered random unit vectors"},
}


def realish(n: int, d: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(gallery (n, d), its identity labels, probes (queries, d), their identities): unit float32 vectors."""
    rng = np.random.default_rng(seed)
    identities = max(1, n // PER_IDENTITY)
    basis = np.linalg.qr(rng.standard_normal((d, max(1, d // 4))))[0].astype(np.float32)
    centres = rng.standard_normal((identities, basis.shape[1]), dtype=np.float32) @ basis.T
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def samples(labels: np.ndarray) -> np.ndarray:
        out = np.empty((len(labels), d), np.float32)
        for i in range(0, len(labels), 100_000):  # in blocks: memory stays at the output's
            block = centres[labels[i : i + 100_000]] + rng.standard_normal(
                (len(labels[i : i + 100_000]), d), np.float32
            ) / np.sqrt(d)
            out[i : i + 100_000] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out

    labels = np.arange(n) // PER_IDENTITY % identities
    probe_labels = rng.integers(0, identities, queries)
    return samples(labels), labels, samples(probe_labels), probe_labels


def numpy_search(gallery: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products by brute force: blocks of gallery rows, a running top-k per query."""
    q = len(queries)
    best_s = np.full((q, k), -np.inf, np.float32)
    best_i = np.full((q, k), -1, np.int64)
    rows = max(k, MAX_SCORES // max(q, 1))
    for start in range(0, len(gallery), rows):
        scores = queries @ gallery[start : start + rows].T
        kk = min(k, scores.shape[1])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        s = np.concatenate([best_s, np.take_along_axis(scores, top, axis=1)], axis=1)
        i = np.concatenate([best_i, top + start], axis=1)
        keep = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s, keep, axis=1), np.take_along_axis(i, keep, axis=1)
    return best_s, best_i


def rss_mb() -> float:
    """This process's resident memory (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def queries_per_s(search, queries: np.ndarray, batch: int, repeats: int, budget: float = 1.0) -> float:
    """Median over `repeats` of queries/s, searching batches of `batch` until `budget` seconds or every query."""
    rates = []
    for _ in range(repeats):
        done, start = 0, time.perf_counter()
        while done < len(queries) and (done == 0 or time.perf_counter() - start < budget):
            search(queries[done : done + batch])
            done += len(queries[done : done + batch])
        rates.append(done / (time.perf_counter() - start))
    return statistics.median(rates)


def measure(method: str, x, labels, probes, exact, repeats: int, threads: int, work: Path) -> dict:
    """One row: build, open, memory, speed and recall of `method` on gallery `x` with `probes`."""
    row: dict = {"method": method}
    if method == "numpy":
        row.update(build_s=0.0, write_s=None, open_s=None, index_mb=x.nbytes / 2**20, rss_mb=0.0)

        def search(q):
            return numpy_search(x, q, K)

        def top1(q):
            return numpy_search(x, q, 1)[1][:, 0]
    else:
        folder = work / method
        before = rss_mb()
        start = time.perf_counter()
        names = [str(i) for i in labels]
        gallery = create(folder, x, names, [f"/bench/{i}" for i in range(len(x))], MODEL, method)
        total = time.perf_counter() - start
        build = gallery.manifest["build"]["index_seconds"]
        row.update(build_s=build, write_s=total - build, rss_mb=rss_mb() - before, settings=gallery.settings)
        row["index_mb"] = gallery.manifest["files"]["index"]["bytes"] / 2**20
        del gallery
        start = time.perf_counter()
        index = Gallery.open(folder).index
        row["open_s"] = time.perf_counter() - start

        def search(q):
            return indexes.search(index, q, K)

        def top1(q):
            return np.concatenate([indexes.search(index, q[i : i + 256], 1)[1][:, 0] for i in range(0, len(q), 256)])

    row["qps_1"] = queries_per_s(search, probes, 1, repeats)
    if method != "numpy":  # faiss's threads spin-wait for each other: one probe on a busy machine may do better alone
        indexes.set_threads(1)
        row["qps_1_one_thread"] = queries_per_s(search, probes, 1, repeats)
        indexes.set_threads(threads)
    row["qps_256"] = queries_per_s(search, probes, 256, repeats)
    found = top1(probes)
    row["recall_at_1"] = float((found == exact).mean())
    row["identity_at_1"] = float((labels[np.maximum(found, 0)] == labels[exact]).mean())
    if method in SWEEP:
        name, values = SWEEP[method]
        row["sweep"] = []
        for value in values:
            indexes.tune(index, {name: value})
            found = top1(probes)
            speed = queries_per_s(search, probes, 256, 1)
            row["sweep"].append({name: value, "recall_at_1": float((found == exact).mean()), "qps_256": speed})
        indexes.tune(index, row["settings"])
    if method != "numpy":
        del index
        shutil.rmtree(work / method)
    return row


def _cell(row: dict, key: str, fmt: str) -> str:
    return "-" if row.get(key) is None else format(row[key], fmt)


def table(results: list[dict]) -> str:
    """The rows as a markdown table."""
    columns = [
        ("build s", "build_s", ".2f"),
        ("write s", "write_s", ".2f"),
        ("open s", "open_s", ".2f"),
        ("index MB", "index_mb", ".0f"),
        ("RSS +MB", "rss_mb", ".0f"),
        ("queries/s (1)", "qps_1", ".0f"),
        ("(1, 1 thread)", "qps_1_one_thread", ".0f"),
        ("queries/s (256)", "qps_256", ".0f"),
        ("recall@1", "recall_at_1", ".4f"),
        ("id@1", "identity_at_1", ".4f"),
    ]
    lines = [
        "| gallery | method | " + " | ".join(c[0] for c in columns) + " |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for r in results:
        cells = " | ".join(_cell(r, key, fmt) for _, key, fmt in columns)
        lines.append(f"| {r['n']:.0e} x {r['d']} | {r['method']} | {cells} |")
    return "\n".join(lines)


def sweep_table(results: list[dict]) -> str:
    lines = ["| gallery | index | setting | recall@1 | queries/s (256) |", "|---|---|---|---|---|"]
    for r in results:
        for s in r.get("sweep", []):
            name = SWEEP[r["method"]][0]
            lines.append(
                f"| {r['n']:.0e} x {r['d']} | {r['method']} | {name} {s[name]} | {s['recall_at_1']:.4f} "
                f"| {s['qps_256']:.0f} |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1e4,1e5,1e6")
    parser.add_argument("--dims", default="128,512")
    parser.add_argument("--methods", default="numpy,flat,hnsw,ivf")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="faiss's OpenMP threads")
    parser.add_argument("--hnsw-max", type=float, default=1e5, help="largest gallery to build HNSW for")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    indexes.set_threads(args.threads)
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - {"numpy", *indexes.KINDS})
    if unknown:
        parser.error(f"unknown methods {unknown}")
    results = []
    started = time.perf_counter()
    for d in [int(v) for v in args.dims.split(",")]:
        for n in [int(float(v)) for v in args.sizes.split(",")]:
            start = time.perf_counter()
            x, labels, probes, _ = realish(n, d, args.queries)
            print(f"{n} x {d}: data in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
            exact = numpy_search(x, probes, 1)[1][:, 0]
            with tempfile.TemporaryDirectory(prefix="bench-gallery-") as tmp:
                for method in methods:
                    if method == "hnsw" and n > args.hnsw_max:
                        print(f"  hnsw skipped ({n} > --hnsw-max {args.hnsw_max:g})", file=sys.stderr)
                        continue
                    row = {
                        "n": n,
                        "d": d,
                        **measure(method, x, labels, probes, exact, args.repeats, args.threads, Path(tmp)),
                    }
                    results.append(row)
                    print(f"  {method}: {json.dumps({k: v for k, v in row.items() if k != 'sweep'})}", file=sys.stderr)
            del x
    print(f"faiss threads {args.threads}, {args.queries} probes, median of {args.repeats}; "
          f"{time.perf_counter() - started:.0f} s in all")  # fmt: skip
    print(table(results))
    print()
    print(sweep_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
