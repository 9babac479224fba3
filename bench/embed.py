"""`facenet embed` throughput: the same images through a checkpoint, its MindIR export and its ONNX export (and,
for a published model, OpenCV's dnn running the original frozen graph).

    .venv/bin/python bench/embed.py --model outputs/runs/<date>/<time>/checkpoints/best.ckpt \
        --images ../shared/data/lfw112 [--n 512] [--repeats 3] [--batch-size 64]
    .venv/bin/python bench/embed.py --model casia-webface --images ../shared/data/lfw112 --n 128 --batch-size 32

Exports the checkpoint (MindIR with a dynamic batch, ONNX at --batch-size) into a temporary folder, then times
`Embedder.embed` over the first --n images for each (median of --repeats, after one warm-up pass that also compiles),
end to end: decoding, preprocessing, inference. Also reports the largest difference of each export's embeddings
from the checkpoint's. Timings on shared 2-core machines are noisy: compare the rows within one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np

from facenet.data.images import EvalTransform, read_image
from facenet.export import export_checkpoint
from facenet.inference import Embedder, list_images
from facenet.models import pretrained


class OpenCVReference:
    """The published frozen graph on OpenCV's dnn, fed exactly as the checkpoint (one image per forward: OpenCV
    refuses a larger batch for this graph)."""

    def __init__(self, name: str):
        import cv2

        entry = pretrained.lookup(name)
        self.net = cv2.dnn.readNetFromTensorflow(str(entry.source_file()))
        size = entry.preprocess["image_size"]
        self.transform = EvalTransform(size, None, entry.preprocess["normalize"])

    def embed(self, paths: list[str]) -> np.ndarray:
        out = []
        for path in paths:
            self.net.setInput(self.transform(read_image(path))[None])
            out.append(self.net.forward().ravel())
        return np.array(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        required=True,
        help="a facenet checkpoint (.ckpt with its sidecar) or a published model's name (facenet pretrained list)",
    )
    parser.add_argument("--images", required=True, help="folder of images (recursively)")
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    paths = list_images(args.images)[: args.n]
    published = args.model.removeprefix(pretrained.PREFIX) in pretrained.REGISTRY
    model_ref = pretrained.PREFIX + args.model.removeprefix(pretrained.PREFIX) if published else args.model
    with tempfile.TemporaryDirectory() as tmp:
        mindir, _ = export_checkpoint(model_ref, "MINDIR", tmp)
        onnx, _ = export_checkpoint(model_ref, "ONNX", tmp, batch_size=args.batch_size)
        rows, reference = [], None
        runs = [("checkpoint (MindSpore)", model_ref), ("MindIR (GraphCell)", mindir), ("ONNX (onnxruntime)", onnx)]
        if published:
            runs.append(("OpenCV dnn (frozen .pb)", None))
        for name, path in runs:
            model = Embedder.from_pretrained(path, batch_size=args.batch_size) if path else OpenCVReference(args.model)
            emb = model.embed(paths)  # warm-up: compiles, fills the page cache
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                model.embed(paths)
                times.append(time.perf_counter() - start)
            reference = emb if reference is None else reference
            rows.append((name, len(paths) / statistics.median(times), float(np.abs(emb - reference).max())))
    print(f"{len(paths)} images from {args.images}, batch {args.batch_size}, median of {args.repeats}")
    print(f"{'model':<24} {'images/s':>9} {'max |diff| vs checkpoint':>26}")
    for name, speed, diff in rows:
        print(f"{name:<24} {speed:>9.1f} {diff:>26.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
