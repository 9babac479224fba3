"""`facenet score`: any model's pair scores (CSV / NPZ) through this project's verification protocol."""

from __future__ import annotations

import argparse

from facenet.errors import UserError

NAME = "score"
HELP = "any model's pair scores (CSV / NPZ) through this project's protocol"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE, the score direction, folds, FAR targets, report folder."""
    parser.add_argument(
        "file",
        help="CSV with distance|score|similarity and issame|same|label columns, or NPZ "
        "with distances (or scores) and issame; rows in protocol order",
    )
    parser.add_argument("--higher-is-closer", action="store_true", help="scores are similarities, not distances")
    parser.add_argument("--folds", type=int, default=10, help="consecutive folds of the pair order (default 10)")
    parser.add_argument("--far", default="0.001", help="FAR targets for VAL@FAR, comma-separated (default 0.001)")
    parser.add_argument("--out", help="folder for report.json and roc.png (default: beside FILE)")


def run(args: argparse.Namespace) -> int:
    """Print the report's table; write report.json and roc.png."""
    from facenet.evaluation.scores import score_file

    try:
        far = tuple(float(f) for f in args.far.split(","))
    except ValueError:
        raise UserError(f"--far {args.far}: expected comma-separated rates, e.g. 0.001,0.0001") from None
    report, json_path, roc_path = score_file(args.file, args.higher_is_closer, args.folds, far, args.out)
    print(report.table())
    print(f"report: {json_path}\nROC: {roc_path}")
    return 0
