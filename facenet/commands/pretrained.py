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
    model, card = export_model(f"{pretrained.PREFIX}{name}", args.format, args.output, args.batch_size)
    kind = "sidecar" if args.format == "ckpt" else "model card"
    print(f"wrote {model} and its {kind} {card.name}")
    return 0
