"""`facenet pretrained`: the published models: list them, or write one out (checkpoint, MindIR or ONNX)."""

from __future__ import annotations

import argparse

from facenet.errors import UserError

NAME = "pretrained"
HELP = "published models: list them, or write one out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """list | export NAME -o DIR [--format] [--batch-size]."""
    parser.add_argument("action", choices=("list", "export"))
    parser.add_argument("name", nargs="?", help="export: the model's name")
    parser.add_argument("-o", "--output", help="export: the folder to write into")
    parser.add_argument("--format", default="ckpt", choices=("ckpt", "MINDIR", "ONNX"), help="default: ckpt + sidecar")
    parser.add_argument("--batch-size", type=int, default=None, help="MINDIR: null = dynamic; ONNX: static, 32")
    int8 = parser.add_argument_group("INT8 (--format ONNX --int8; docs/int8.md)")
    int8.add_argument("--int8", action="store_true", help="quantise to INT8 and publish it only past the gate")
    int8.add_argument("--calibration", metavar="DIR", help="calibration faces (never the gate's images)")
    int8.add_argument("--calibration-images", type=int, default=256, metavar="N", help="drawn from DIR (256)")
    int8.add_argument("--seed", type=int, default=0, help="of the calibration draw (0)")
    int8.add_argument("--method", default="minmax", choices=("minmax", "entropy", "percentile"))
    int8.add_argument("--keep-float", nargs="*", default=[], metavar="NODE", help="first_conv, projection, names")
    int8.add_argument("--reduce-range", choices=("auto", "yes", "no"), default="auto", help="auto: yes without VNNI")
    int8.add_argument("--gate-pairs", metavar="PAIRS", help="the gate's LFW-format pairs.txt")
    int8.add_argument("--gate-root", metavar="DIR", help="the identity folders the pairs name")
    int8.add_argument("--min-cosine", type=float, default=0.99, help="gate: least mean cosine to float (0.99)")
    int8.add_argument("--max-accuracy-drop", type=float, default=0.005, help="gate: most accuracy lost (0.005)")


def run(args: argparse.Namespace) -> int:
    """list: each model's description, provenance, input and how to use it. export: `facenet.export.export_model`."""
    from facenet.models import pretrained

    if args.action == "list":
        for name in pretrained.names():
            entry = pretrained.REGISTRY[name]
            published = ", ".join(f"{k} {v}" for k, v in entry.published.items())
            print(
                f"{name}\n  {entry.description}\n  published: {published}\n  licence: {entry.licence}\n"
                f"  input: {entry.preprocess['image_size']}x{entry.preprocess['image_size']} RGB, "
                f"{entry.preprocess['normalize']} standardisation, {entry.preprocess['align']['style']} alignment "
                f"(margin {entry.preprocess['align']['margin']:g})\n  use: ckpt=pretrained:{name} | --model {name}"
            )
        return 0
    if not args.name or not args.output:
        raise UserError("usage: facenet pretrained export NAME -o DIR [--format ckpt|MINDIR|ONNX]")
    from facenet.export import export_model

    name = pretrained.lookup(args.name).name
    if args.int8:
        return _int8(args, name)
    model, card = export_model(f"{pretrained.PREFIX}{name}", args.format, args.output, args.batch_size)
    kind = "sidecar" if args.format == "ckpt" else "model card"
    print(f"wrote {model} and its {kind} {card.name}")
    return 0


def _int8(args: argparse.Namespace, name: str) -> int:
    """The published model as float ONNX (in `<output>.quantize/`, the work folder), quantised and gated on
    `--gate-pairs` over `--gate-root`; the INT8 model and its card land in `--output` only if it passes."""
    from pathlib import Path

    from facenet.data.pairs import read_pairs
    from facenet.errors import ConfigError
    from facenet.export import export_model
    from facenet.models import pretrained
    from facenet.quantization import Settings, export_int8

    if args.format != "ONNX":
        raise ConfigError(f"--int8 quantises ONNX models (onnxruntime): add --format ONNX (not {args.format})")
    if not (args.calibration and args.gate_pairs and args.gate_root):
        raise ConfigError("--int8 needs --calibration DIR and the gate's pairs: --gate-pairs PAIRS --gate-root DIR")
    settings = Settings(
        Path(args.calibration).expanduser(),
        args.calibration_images,
        args.seed,
        args.method,
        tuple(args.keep_float),
        {"auto": None, "yes": True, "no": False}[args.reduce_range],
        args.min_cosine,
        args.max_accuracy_drop,
    )
    pairs = read_pairs(args.gate_pairs, args.gate_root)
    out = Path(args.output)
    work = out.with_name(out.name + ".quantize")
    parent, _ = export_model(f"{pretrained.PREFIX}{name}", "ONNX", work, args.batch_size)
    model, card, fid = export_int8(parent, out, work, settings, pairs, (1e-3,), 64, 2)
    print(f"wrote {model} and its model card {card.name}: {fid.line()}")
    return 0
