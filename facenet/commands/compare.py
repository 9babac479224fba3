"""`facenet compare`: runs side by side (ROC/DET curves, TAR at FARs, McNemar tests), logged to MLflow."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "compare"
HELP = "runs side by side: ROC/DET curves, TAR at FARs, McNemar tests; open-set: CMC/DET, DIR at FPIRs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """RUN_OR_SWEEP..., the MLflow store, the ranking metric, the benchmark set, the report folder."""
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_OR_SWEEP",
        help="run directories, sweep directories, MLflow run ids (a sweep's parent: all its children)",
    )
    parser.add_argument(
        "--tracking-uri",
        help="MLflow store of the run ids, and where the comparison is logged (default $MLFLOW_TRACKING_URI, "
        "else sqlite:///outputs/mlflow.db)",
    )
    parser.add_argument(
        "--metric",
        help="rank by this figure (default accuracy: auc, eer, val_at_far_0.001, images_per_sec, ...; open-set "
        "runs: rank1 by default, rank5, dir_at_fpir_0.01, ...)",
    )
    parser.add_argument("--benchmark", help="with eval=benchmarks runs: the set to compare (default: the primary)")
    parser.add_argument(
        "-o", "--output", help="report folder (default <sweep>/comparison, else outputs/comparisons/<time>)"
    )
    parser.add_argument("--no-mlflow", action="store_true", help="write the folder only")


def run(args: argparse.Namespace) -> int:
    """Print the table, write the report folder, log it to MLflow unless --no-mlflow."""
    import time

    from facenet.comparison import compare, log_comparison, resolve, tracking_uri

    inputs = resolve(args.runs, args.tracking_uri, args.benchmark)
    if args.output:
        out = Path(args.output)
    elif inputs.sweep_dir is not None:
        out = inputs.sweep_dir / "comparison"
    else:
        out = Path("outputs") / "comparisons" / time.strftime("%Y-%m-%d_%H-%M-%S")
    table, out = compare(inputs, out, args.metric)
    print(table.to_string(index=False))
    figures = ", ".join(p.name for p in sorted(out.glob("*.png")))
    print(f"\ncomparison: {out} (comparison.md, {figures})")
    uri = None if args.no_mlflow else tracking_uri(inputs, args.tracking_uri)
    if uri:
        run_id = log_comparison(inputs, out, uri, list(table["run"]))
        where = "the sweep's parent run, under comparison/" if inputs.parent_run_id else "experiment 'comparison'"
        print(f"logged to MLflow run {run_id} at {uri} ({where})")
    return 0
