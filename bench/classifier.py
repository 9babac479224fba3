"""What a classification loss's classifier costs: the compiled step of the classifier part alone (ArcFace forward
and backward from a batch of features, Adam on the class centres) at each identity count and sample rate, each
case in a fresh process so its peak memory is its own.

    .venv/bin/python bench/classifier.py [--classes 10000,100000] [--rates 1,0.1] [--dim 512] [--batch 128]
                                         [--repeats 5] [--steps 10] [--json FILE]

Columns: ms per step (median over --repeats of --steps steps, after a compiling warm-up), images/s of the classifier
part alone, the process's peak RSS and its growth over an empty process that imported MindSpore, and the
arithmetic: class centres + Adam's two moments, 3 x C x D x 4 bytes. Timings on shared 2-core machines are noisy:
compare the rows of one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(classes: int, rate: float, dim: int, batch: int, repeats: int, steps: int) -> dict:
    """One case, in this process: the classifier's training step timed, its memory read."""
    import mindspore as ms
    import numpy as np
    from mindspore import nn

    from facenet.losses.arcface import ArcFaceLoss
    from facenet.runtime import init_runtime

    init_runtime("CPU", 0, "GRAPH", None, False)
    base = _peak_mb()
    loss = ArcFaceLoss(classes, dim, sample_rate=rate, seed=0)
    optimizer = nn.Adam(loss.trainable_params(), learning_rate=1e-3)

    class Step(nn.Cell):
        def __init__(self):
            super().__init__(auto_prefix=False)
            self.loss, self.optimizer = loss, optimizer
            self.grad = ms.value_and_grad(self.forward, 0, optimizer.parameters, has_aux=True)

        def forward(self, features, labels, *keys):
            return self.loss(features, labels, *keys)

        def construct(self, features, labels, *keys):
            (value, _), (d_features, grads) = self.grad(features, labels, *keys)
            self.optimizer(grads)
            return value, d_features

    step = Step()
    rng = np.random.default_rng(0)
    features = ms.Tensor(rng.normal(size=(batch, dim)).astype(np.float32))
    labels = ms.Tensor(rng.integers(0, classes, batch).astype(np.int32))
    step(features, labels, *loss.step_inputs(0))[0].asnumpy()  # compile
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        for s in range(steps):
            out = step(features, labels, *loss.step_inputs(1 + r * steps + s))
        out[0].asnumpy()
        times.append((time.perf_counter() - start) / steps)
    ms_per_step = 1000 * statistics.median(times)
    return {
        "classes": classes,
        "sample_rate": rate,
        "dim": dim,
        "batch": batch,
        "sampled": _sampled(loss, batch),
        "ms_per_step": ms_per_step,
        "images_per_sec": batch / (ms_per_step / 1000),
        "peak_rss_mb": _peak_mb(),
        "rss_growth_mb": _peak_mb() - base,
        "weights_and_moments_mb": 3 * classes * dim * 4 / 2**20,
    }


def _sampled(loss, batch: int) -> int:
    from facenet.losses.partial_fc import sampled_count

    return sampled_count(loss.num_classes, loss.sample_rate, batch) if loss.sample_rate < 1 else loss.num_classes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", default="10000,100000")
    parser.add_argument("--rates", default="1,0.1")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # CLASSES:RATE, in the worker process
    args = parser.parse_args()
    if args.case:
        classes, rate = args.case.split(":")
        print(json.dumps(measure(int(classes), float(rate), args.dim, args.batch, args.repeats, args.steps)))
        return 0
    rows = []
    for classes in (int(c) for c in args.classes.split(",")):
        for rate in (float(r) for r in args.rates.split(",")):
            cmd = [
                sys.executable,
                __file__,
                "--case",
                f"{classes}:{rate}",
                "--dim",
                str(args.dim),
                "--batch",
                str(args.batch),
                "--repeats",
                str(args.repeats),
                "--steps",
                str(args.steps),
            ]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{classes} x {rate}: failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        f"| identities | sample rate | centres per step | ms / step | images/s | peak RSS | RSS growth | "
        f"centres + Adam moments (3 x C x {args.dim} x 4 B) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['classes']:,} | {r['sample_rate']:g} | {r['sampled']:,} | {r['ms_per_step']:.1f} | "
            f"{r['images_per_sec']:.0f} | {r['peak_rss_mb']:.0f} MB | {r['rss_growth_mb']:.0f} MB | "
            f"{r['weights_and_moments_mb']:.0f} MB |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
