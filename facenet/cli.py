"""The `facenet` command line: `facenet align SRC DST [...]`, `facenet rerun RUN_ID [...]`."""

from __future__ import annotations

import argparse
import sys

from facenet.errors import UserError


def _align(args: argparse.Namespace) -> int:
    from facenet.align import align_folder

    report = align_folder(args.src, args.dst, args.size, args.margin, args.pick, args.workers, args.min_confidence)
    print(f"aligned {report.aligned} of {report.total} images into {args.dst}")
    print(f"no face found in {len(report.no_face)}, unreadable {len(report.unreadable)} "
          f"(listed in {args.dst}/align_report.txt)")  # fmt: skip
    for path in report.no_face[:10]:
        print(f"  no face: {path}")
    return 0


def _rerun(args: argparse.Namespace) -> int:
    import os
    import subprocess

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from facenet.provenance import RERUN_ENV, git_state, rerun_command

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///outputs/mlflow.db"
    if uri.startswith("sqlite:///") and not os.path.isfile(uri[len("sqlite:///") :]):
        raise UserError(f"no MLflow store at {uri}: pass --tracking-uri (e.g. sqlite:///OUTPUT_DIR/mlflow.db)")
    try:
        run = MlflowClient(uri).get_run(args.run_id)
    except MlflowException as err:
        raise UserError(f"cannot read run {args.run_id} from {uri}: {str(err).splitlines()[0]}") from None
    tags = run.data.tags
    cmd = rerun_command(tags, args.overrides)
    now = git_state()
    if tags.get("git_commit") and now.get("git_commit") != tags["git_commit"]:
        print(f"warning: run {args.run_id} was logged at commit {tags['git_commit'][:12]}, the code here is at "
              f"{now.get('git_commit', 'an unknown commit')[:12]}: results may differ", file=sys.stderr)  # fmt: skip
    if tags.get("git_dirty") == "true":
        print("warning: that run's working tree had uncommitted changes (git_dirty=true)", file=sys.stderr)
    print(" ".join(cmd))
    if args.dry_run:
        return 0
    return subprocess.run(cmd, env={**os.environ, RERUN_ENV: args.run_id}).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facenet", description="FaceNet on MindSpore: tools")
    sub = parser.add_subparsers(dest="command", required=True)
    align = sub.add_parser("align", help="detect, align and crop faces of an identity-folder tree (MTCNN)")
    align.add_argument("src", help="identity folders of raw photos")
    align.add_argument("dst", help="output identity folders of aligned crops")
    align.add_argument("--size", type=int, default=112, help="crop size in pixels (default 112)")
    align.add_argument("--margin", type=float, default=0.0, help="extra context around the face, e.g. 0.2")
    align.add_argument("--pick", choices=("largest", "central"), default="largest", help="face to keep per image")
    align.add_argument("--workers", type=int, default=2, help="parallel processes")
    align.add_argument("--min-confidence", type=float, default=0.9, help="detector score to accept a face")
    align.set_defaults(run=_align)
    rerun = sub.add_parser("rerun", help="run a logged MLflow run again from its recorded config and overrides")
    rerun.add_argument("run_id", help="MLflow run id (a job of a sweep is re-run alone)")
    rerun.add_argument("overrides", nargs="*", help="extra Hydra overrides, applied last")
    rerun.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else outputs/mlflow.db)")
    rerun.add_argument("--dry-run", action="store_true", help="print the command, do not run it")
    rerun.set_defaults(run=_rerun)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
