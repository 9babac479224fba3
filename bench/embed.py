"""`facenet embed` throughput: the same images through a checkpoint, its MindIR export and its ONNX export (and,
for a published model, OpenCV's dnn running the original frozen graph).

    .venv/bin/python bench/embed.py --model outputs/runs/<date>/<time>/checkpoints/best.ckpt \
        --images ../shared/data/lfw112 [--n 512] [--repeats 3] [--batch-size 64]
    .venv/bin/python bench/embed.py --model casia-webface --images ../shared/data/lfw112 --n 128 --batch-size 32

Exports the checkpoint (MindIR with a dynamic batch, ONNX at --batch-size) into a temporary folder, then times
`Embedder.embed` over the first --n images for each (median of --repeats, after one warm-up pass that also compiles),
end to end: decoding, preprocessing, inference. Also reports the largest difference of each export's embeddings
from the checkpoint's. Timings on shared 2-core machines are noisy: compare the rows within one run.

`--int8-calibration DIR` adds an INT8 row: the ONNX export quantised as `export.quantize=int8` does it (static QDQ,
per-channel int8 weights, calibrated on --int8-images images of DIR; no gate here), with its mean cosine to the
checkpoint's embeddings and its speed as ratios to float ONNX and to the checkpoint. The processor's 8-bit
features (VNNI, AMX) are printed: INT8 speed depends on them.
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--int8-calibration", metavar="DIR", help="add an INT8 ONNX row, calibrated on DIR's faces")
    parser.add_argument("--int8-images", type=int, default=128)
    parser.add_argument("--keep-float", nargs="*", default=[], help="INT8: nodes kept in float (first_conv, ...)")
    args = parser.parse_args()
    paths = list_images(args.images)[: args.n]
    published = args.model.removeprefix(pretrained.PREFIX) in pretrained.REGISTRY
    model_ref = pretrained.PREFIX + args.model.removeprefix(pretrained.PREFIX) if published else args.model
    with tempfile.TemporaryDirectory() as tmp:
        mindir, _ = export_checkpoint(model_ref, "MINDIR", tmp)
        onnx, _ = export_checkpoint(model_ref, "ONNX", tmp, batch_size=args.batch_size)
        rows, reference = [], None
        runs = [("checkpoint (MindSpore)", model_ref), ("MindIR (GraphCell)", mindir), ("ONNX (onnxruntime)", onnx)]
        if args.int8_calibration:
            runs.append(("ONNX INT8 (onnxruntime)", int8_model(onnx, args, tmp)))
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
            cos = np.sum(emb * reference, 1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(reference, axis=1))
            rows.append((name, len(paths) / statistics.median(times), float(np.abs(emb - reference).max()), cos))
    print(f"{len(paths)} images from {args.images}, batch {args.batch_size}, median of {args.repeats}; {cpu()}")
    speed = {name: s for name, s, _, _ in rows}
    print(f"{'model':<24} {'images/s':>9} {'x ONNX':>7} {'x ckpt':>7} {'max |diff| vs ckpt':>19} {'cos mean/min':>14}")
    for name, s, diff, cos in rows:
        vs_onnx, vs_ckpt = s / speed["ONNX (onnxruntime)"], s / speed["checkpoint (MindSpore)"]
        print(f"{name:<24} {s:>9.1f} {vs_onnx:>7.2f} {vs_ckpt:>7.2f} {diff:>19.2e} {cos.mean():>7.4f}/{cos.min():.4f}")
    return 0


def cpu() -> str:
    """The processor and its features that INT8 speed depends on."""
    from pathlib import Path

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = set(info.split())
    found = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"processor {model}, {os.cpu_count()} cores, features: {', '.join(found) or 'none of avx2/avx512/vnni/amx'}"


def int8_model(onnx_path, args, tmp: str):
    """The float ONNX export quantised as `export.quantize=int8` does (facenet.quantization), without the gate."""
    from pathlib import Path

    from facenet.data.images import normalization
    from facenet.models.exported import ModelFile, card_path
    from facenet.quantization import (
        CalibrationReader,
        calibration_batches,
        calibration_images,
        float_nodes,
        has_vnni,
        prepared,
        quantize_int8,
    )

    parent = ModelFile.open(onnx_path)
    images = [read_image(str(p)) for p in calibration_images(Path(args.int8_calibration), args.int8_images, 0)]
    transform = EvalTransform(parent.image_size, None, normalization(parent.preprocess["normalize"]))
    ready = prepared(Path(onnx_path), Path(tmp))
    out = Path(tmp) / "int8.onnx"
    reader = CalibrationReader(calibration_batches(images, transform, parent.batch_size), parent.card["input"]["name"])
    quantize_int8(ready, out, reader, float_nodes(ready, args.keep_float), not has_vnni(), "minmax")
    card_path(out).write_text(card_path(Path(onnx_path)).read_text())
    return out


if __name__ == "__main__":
    sys.exit(main())
