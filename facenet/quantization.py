"""INT8 export: a float ONNX model quantised with onnxruntime's static QDQ quantisation (per-channel int8 weights,
uint8 activations calibrated on a seeded sample of a folder of faces), then checked against its float parent by a
fidelity gate on a verification protocol before anything is published.

The gate embeds the protocol's images with both models and measures the mean and minimum cosine between the two
embeddings of each image (the gate holds the mean to `min_cosine`; the minimum is recorded), the change in
accuracy and in VAL@FAR, and the INT8 threshold that keeps the parent's FAR (recalibrated: quantisation moves
distances, so the parent's threshold would silently change the FAR). A model past the gate (`export.gate.*`) is not
published: the candidate is left as `REJECTED-<name>.int8.onnx` in the work folder, beside `gate.json`, and the
export fails in one line with the figures. A passing model gets a card recording the quantisation, the
calibration set's fingerprint, the gate's figures and the recalibrated threshold (which `verify`, `identify` and
`cluster` then use).

Layers can be kept in float (`export.keep_float`): node names of the ONNX graph, or `first_conv` (the first
convolution) and `projection` (the last MatMul / Gemm: the embedding projection), the usual suspects.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facenet.data.images import EvalTransform, normalization, read_image
from facenet.data.pairs import PairSet
from facenet.errors import ConfigError, DataError, UserError
from facenet.evaluation.verify import check_pairs, embed_images, finite, pairs_report
from facenet.inference import list_images
from facenet.interrupts import partial_file
from facenet.metrics.verification import threshold_at_far
from facenet.models.exported import ModelFile, card_path

log = logging.getLogger(__name__)

ALIASES = ("first_conv", "projection")
CALIBRATION_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}


class GateFailed(UserError):
    """The INT8 model strays too far from its float parent: nothing is published."""


@dataclass(frozen=True)
class Settings:
    """`export.calibration.*`, `export.keep_float`, `export.reduce_range` and `export.gate.*`, checked."""

    root: Path
    images: int
    seed: int
    method: str
    keep_float: tuple[str, ...]
    reduce_range: bool | None  # None: True on a processor without VNNI (8-bit products saturate without it)
    min_cosine: float
    max_accuracy_drop: float

    def __post_init__(self):
        if self.images < 1:
            raise ConfigError(f"export.calibration.images must be >= 1, got {self.images}")
        if self.method not in CALIBRATION_METHODS:
            raise ConfigError(
                f"export.calibration.method must be one of {', '.join(CALIBRATION_METHODS)}, got {self.method!r}"
            )
        if not -1.0 <= self.min_cosine <= 1.0:
            raise ConfigError(f"export.gate.min_cosine must be in [-1, 1], got {self.min_cosine}")
        if self.max_accuracy_drop < 0:
            raise ConfigError(f"export.gate.max_accuracy_drop must be >= 0, got {self.max_accuracy_drop}")

    @classmethod
    def from_config(cls, export) -> Settings:
        calibration = export.calibration
        if not calibration.root:
            raise ConfigError(
                "export.quantize=int8 needs calibration images: export.calibration.root=DIR (faces of the kind the "
                "model will see, never the evaluation images)"
            )
        return cls(
            Path(str(calibration.root)).expanduser(),
            int(calibration.images),
            int(calibration.seed),
            str(calibration.method),
            tuple(str(k) for k in export.keep_float),
            None if export.reduce_range is None else bool(export.reduce_range),
            float(export.gate.min_cosine),
            float(export.gate.max_accuracy_drop),
        )


def has_vnni() -> bool:
    """This processor has an 8-bit dot product instruction (AVX512-VNNI, AVX-VNNI or AMX), by /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


# ---------------------------------------------------------------- calibration set
def calibration_images(root: Path, count: int, seed: int) -> list[Path]:
    """`count` images drawn (seeded) from every image under `root`; too few refused in one line."""
    if not root.is_dir():
        raise DataError(f"export.calibration.root={root} is not a folder")
    found = [Path(p) for p in list_images(root)]
    if len(found) < count:
        raise DataError(
            f"export.calibration.root={root} holds {len(found)} images; calibration asks for {count} "
            f"(export.calibration.images): give a larger folder or ask for fewer"
        )
    picked = np.random.default_rng(seed).choice(len(found), size=count, replace=False)
    return [found[i] for i in sorted(picked)]


def pixel_hash(img: np.ndarray) -> str:
    """The identity of an image's decoded pixels (the same face copied elsewhere, or re-encoded losslessly)."""
    return hashlib.sha1(np.ascontiguousarray(img).tobytes() + str(img.shape).encode()).hexdigest()


def fingerprint(hashes: Sequence[str]) -> str:
    """The calibration set's fingerprint: sha1 of its images' pixel hashes, sorted."""
    return hashlib.sha1("\n".join(sorted(hashes)).encode()).hexdigest()


def refuse_overlap(calibration: dict[str, Path], evaluation: PairSet) -> None:
    """Refuse a calibration set sharing any image (by decoded pixels) with the gate's evaluation pairs."""
    shared = []
    for i in range(len(evaluation.images)):
        h = pixel_hash(evaluation.images.read(i))
        if h in calibration:
            shared.append((calibration[h], evaluation.images.name(i)))
    if shared:
        first = ", ".join(f"{c.name} = {e}" for c, e in shared[:3])
        raise DataError(
            f"refused: {len(shared)} calibration images are evaluation images of the fidelity gate ({first}"
            f"{', ...' if len(shared) > 3 else ''}): a model calibrated on the images that judge it is not "
            "measured; calibrate on another folder (export.calibration.root)"
        )


class CalibrationReader:
    """onnxruntime's CalibrationDataReader protocol: the calibration images, preprocessed as the model's card
    says, in batches of the model's static batch size (the last one filled from the start)."""

    def __init__(self, batches: list[np.ndarray], name: str):
        self.batches, self.name, self.i = batches, name, 0

    def get_next(self) -> dict | None:
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {self.name: self.batches[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


def calibration_batches(images: list[np.ndarray], transform: EvalTransform, batch: int | None) -> list[np.ndarray]:
    x = np.stack([transform(img) for img in images]).astype(np.float32)
    b = batch or min(32, len(x))
    n = -(-len(x) // b) * b
    x = np.concatenate([x, x[: n - len(x)]]) if n > len(x) else x
    return [np.ascontiguousarray(x[i : i + b]) for i in range(0, n, b)]


# ---------------------------------------------------------------- quantising
def float_nodes(model_path: Path, keep: Sequence[str]) -> list[str]:
    """Node names to keep in float: `keep`'s names, with `first_conv` / `projection` resolved; unknown refused."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    names = [n.name for n in graph.node]
    out = []
    for k in keep:
        if k == "first_conv":
            convs = [n.name for n in graph.node if n.op_type == "Conv"]
            if not convs:
                raise ConfigError(f"export.keep_float: {model_path.name} has no Conv node (first_conv)")
            out.append(convs[0])
        elif k == "projection":
            dense = [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm")]
            if not dense:
                raise ConfigError(f"export.keep_float: {model_path.name} has no MatMul or Gemm node (projection)")
            out.append(dense[-1])
        elif k in names:
            out.append(k)
        else:
            raise ConfigError(
                f"export.keep_float: {model_path.name} has no node {k!r}; give {' or '.join(ALIASES)} or node names "
                f"(e.g. {', '.join(names[:4])}, ...: `facenet.quantization.list_nodes`)"
            )
    return out


def list_nodes(model_path: Path) -> list[tuple[str, str]]:
    """(name, op type) of every node of an ONNX model, in graph order: what `export.keep_float` can name."""
    import onnx

    return [(n.name, n.op_type) for n in onnx.load(str(model_path), load_external_data=False).graph.node]


QDQ_OPSET = 13  # per-channel QuantizeLinear / DequantizeLinear (their `axis`) need opset 13; MindSpore writes 11


def prepared(float_path: Path, work_dir: Path) -> Path:
    """The float model as onnxruntime's quantiser wants it: opset 13, shapes inferred, batch norm folded into the
    convolutions (`quant_pre_process`). Node names are this graph's (what `export.keep_float` names)."""
    try:
        import onnx
        from onnx import version_converter
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise ConfigError("INT8 export needs onnxruntime and onnx: pip install -e .[onnx]") from None
    model = onnx.load(str(float_path))
    if model.opset_import[0].version < QDQ_OPSET:
        model = version_converter.convert_version(model, QDQ_OPSET)
    out = work_dir / f"prepared-{float_path.name}"
    quant_pre_process(model, str(out), skip_symbolic_shape=True)  # static shapes: ONNX shape inference suffices
    return out


def quantize_int8(
    float_path: Path, out_path: Path, reader: CalibrationReader, keep: list[str], reduce_range: bool, method: str
) -> None:
    """onnxruntime static quantisation: QDQ, per-channel int8 weights, uint8 activations."""
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise ConfigError("INT8 export needs onnxruntime and onnx: pip install -e .[onnx]") from None
    quantize_static(
        str(float_path),
        str(out_path),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=reduce_range,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=keep or None,
        calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHODS[method]),
    )


# ---------------------------------------------------------------- the gate
@dataclass(frozen=True)
class Fidelity:
    images: int
    pairs: int
    cosine_mean: float
    cosine_min: float
    accuracy_float: float
    accuracy_int8: float
    accuracy_change: float
    val_at_far: dict[str, dict[str, float]]  # far -> {float, int8, change}
    threshold_float: float  # the parent's threshold (its card's, else the protocol's mean)
    far_float: float  # the FAR it gives on the gate's pairs
    threshold_int8: float  # the INT8 threshold giving the same FAR (recalibrated)
    far_int8: float

    def line(self) -> str:
        return (
            f"cosine to the float model mean {self.cosine_mean:.4f}, min {self.cosine_min:.4f}; accuracy "
            f"{self.accuracy_float:.4f} -> {self.accuracy_int8:.4f} ({self.accuracy_change:+.4f}) on {self.pairs} "
            f"pairs; threshold {self.threshold_float:.4f} -> {self.threshold_int8:.4f} at FAR {self.far_float:.5f}"
        )


def fidelity(
    parent: ModelFile,
    int8: ModelFile,
    pairs: PairSet,
    transform: EvalTransform,
    far_targets: Sequence[float],
    batch_size: int,
    workers: int,
) -> Fidelity:
    """Both models on the gate's pairs: embedding cosines, accuracy, VAL@FAR, and the recalibrated threshold."""
    check_pairs(pairs)
    a = finite(embed_images(parent, pairs.images, transform, batch_size, workers, "gate: float"))
    b = finite(embed_images(int8, pairs.images, transform, batch_size, workers, "gate: int8"))
    cos = np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    ra, da = pairs_report(a, pairs, far_targets)
    rb, db = pairs_report(b, pairs, far_targets)
    t_float = (parent.card.get("threshold") or {}).get("distance") or ra.threshold_mean
    different = ~pairs.issame
    far = float(np.mean(da[different] <= t_float))
    t_int8 = threshold_at_far(db, pairs.issame, far)
    vals = {
        f"{f:g}": {
            "float": ra.val_at_far[f]["val_mean"],
            "int8": rb.val_at_far[f]["val_mean"],
            "change": rb.val_at_far[f]["val_mean"] - ra.val_at_far[f]["val_mean"],
        }
        for f in ra.val_at_far
    }
    return Fidelity(
        images=len(a),
        pairs=len(pairs),
        cosine_mean=float(cos.mean()),
        cosine_min=float(cos.min()),
        accuracy_float=ra.accuracy_mean,
        accuracy_int8=rb.accuracy_mean,
        accuracy_change=rb.accuracy_mean - ra.accuracy_mean,
        val_at_far=vals,
        threshold_float=float(t_float),
        far_float=far,
        threshold_int8=float(t_int8),
        far_int8=float(np.mean(db[different] <= t_int8)),
    )


# ---------------------------------------------------------------- the whole export
def export_int8(
    float_path: Path,
    out_dir: Path,
    work_dir: Path,
    settings: Settings,
    pairs: PairSet,
    far_targets: Sequence[float],
    batch_size: int,
    workers: int,
) -> tuple[Path, Path, Fidelity]:
    """Quantise the float ONNX `float_path` (with its card), gate it on `pairs`, and publish `<name>.int8.onnx`
    and its card in `out_dir` if it passes; returns (model, card, fidelity). Refused: a calibration set that is
    too small or shares images with `pairs`. Failed gate: GateFailed, nothing in `out_dir`."""
    parent = ModelFile.open(float_path)
    if parent.card.get("format") != "ONNX" or float_path.suffix.lower() != ".onnx":
        raise ConfigError("export.quantize=int8 is for ONNX models (onnxruntime's quantisation): export.format=ONNX")
    paths = calibration_images(settings.root, settings.images, settings.seed)
    decoded = [read_image(str(p)) for p in paths]
    hashes = {pixel_hash(img): p for img, p in zip(decoded, paths, strict=True)}
    refuse_overlap(hashes, pairs)
    normalize = normalization(parent.preprocess.get("normalize", "unit"))
    transform = EvalTransform(parent.image_size, None, normalize)
    reader = CalibrationReader(calibration_batches(decoded, transform, parent.batch_size), parent.card["input"]["name"])
    reduce_range = (not has_vnni()) if settings.reduce_range is None else settings.reduce_range
    work_dir.mkdir(parents=True, exist_ok=True)
    ready = prepared(float_path, work_dir)
    keep = float_nodes(ready, settings.keep_float)
    name = float_path.stem
    candidate = work_dir / f"candidate-{name}.int8.onnx"
    log.info(
        "quantising %s: %d calibration images from %s (seed %d, %s), per-channel int8 weights, reduce_range %s%s",
        float_path.name,
        len(paths),
        settings.root,
        settings.seed,
        settings.method,
        reduce_range,
        f", kept in float: {', '.join(keep)}" if keep else "",
    )
    quantize_int8(ready, candidate, reader, keep, reduce_range, settings.method)
    shutil.copyfile(card_path(float_path), card_path(candidate))  # the parent's card feeds the candidate
    int8 = ModelFile.open(candidate)
    fid = fidelity(parent, int8, pairs, transform, far_targets, batch_size, workers)
    quantization = {
        "method": "onnxruntime quantize_static, QDQ",
        "weights": "int8, per channel",
        "activations": "uint8",
        "reduce_range": reduce_range,
        "calibration": {
            "root": str(settings.root),
            "images": len(paths),
            "seed": settings.seed,
            "method": settings.method,
            "fingerprint": fingerprint(list(hashes)),
        },
        "kept_in_float": keep,
        "float_parent": {"file": float_path.name, "sha256": parent.sha256()},
        "gate": {
            "min_cosine": settings.min_cosine,
            "max_accuracy_drop": settings.max_accuracy_drop,
            "measured": asdict(fid),
        },
    }
    card_path(candidate).unlink()
    passed = fid.cosine_mean >= settings.min_cosine and -fid.accuracy_change <= settings.max_accuracy_drop
    (work_dir / "gate.json").write_text(json.dumps({"passed": passed, **quantization}, indent=1))
    if not passed:
        rejected = candidate.with_name(f"REJECTED-{name}.int8.onnx")
        candidate.replace(rejected)
        raise GateFailed(
            f"INT8 model failed the fidelity gate (mean cosine >= {settings.min_cosine}, accuracy drop <= "
            f"{settings.max_accuracy_drop}): {fid.line()}; nothing published; inspect {rejected} and "
            f"{work_dir / 'gate.json'} (keep layers in float with export.keep_float)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    model = out_dir / f"{name}.int8.onnx"
    card = card_path(model)
    body = dict(parent.card)
    body.update(
        file=model.name,
        quantization=quantization,
        threshold={
            **(parent.card.get("threshold") or {}),
            "distance": fid.threshold_int8,
            "chosen_by": "recalibrated at INT8: the distance that keeps the float parent's FAR on the gate's pairs",
            "float_distance": fid.threshold_float,
            "far": fid.far_float,
        },
    )
    body.pop("calibration", None)  # a facenet calibrate threshold of the float model does not hold at INT8
    with partial_file(model) as tmp, partial_file(card) as tmp_card:  # both in place, or neither
        shutil.move(candidate, tmp)
        tmp_card.write_text(json.dumps(body, indent=2))
    log.info("INT8 model %s passed the gate: %s", model, fid.line())
    return model, card, fid
