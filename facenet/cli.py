"""The `facenet` command line, for everything that is not a Hydra run: align photos, pack and unpack the field's data
formats (RecordIO, .bin), score pair files, compare runs, re-run a logged run, use a trained or published model
(embed / verify / identify / cluster / calibrate, pretrained), check the machine (doctor, gpu-env)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facenet.errors import UserError
from facenet.interrupts import partial_file, signal_name, signals_raise


def _align(args: argparse.Namespace) -> int:
    from facenet.align import align_folder

    margin = args.margin if args.margin is not None else (32.0 if args.style == "box" else 0.0)
    report = align_folder(args.src, args.dst, args.size, margin, args.pick, args.workers, args.min_confidence,
                          args.style)  # fmt: skip
    print(f"aligned {report.aligned} of {report.total} images into {args.dst}")
    print(f"no face found in {len(report.no_face)}, unreadable {len(report.unreadable)} "
          f"(listed in {args.dst}/align_report.txt)")  # fmt: skip
    for path in report.no_face[:10]:
        print(f"  no face: {path}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from facenet.evaluation.scores import score_file

    try:
        far = tuple(float(f) for f in args.far.split(","))
    except ValueError:
        raise UserError(f"--far {args.far}: expected comma-separated rates, e.g. 0.001,0.0001") from None
    report, json_path, roc_path = score_file(args.file, args.higher_is_closer, args.folds, far, args.out)
    print(report.table())
    print(f"report: {json_path}\nROC: {roc_path}")
    return 0


def _pack(args: argparse.Namespace) -> int:
    from facenet.data.insightface import pack_folder

    r = pack_folder(args.folder, args.output)
    print(f"packed {r.images} images of {r.identities} identities into {args.output} (train.rec "
          f"{r.bytes / 1e6:.1f} MB, train.idx, property {r.identities},{r.size[0]},{r.size[1]})")  # fmt: skip
    if r.reencoded:
        print(f"{r.reencoded} images in formats other than JPEG/PNG were stored as lossless PNG")
    return 0


def _pack_pairs(args: argparse.Namespace) -> int:
    from facenet.data.binsets import pack_pairs

    pairs, reencoded = pack_pairs(args.root, args.pairs, args.output)
    print(f"wrote {pairs} pairs ({2 * pairs} images) to {args.output}"
          + (f"; {reencoded} images stored as lossless PNG" if reencoded else ""))  # fmt: skip
    return 0


def _unpack(args: argparse.Namespace) -> int:
    from facenet.data.insightface import unpack

    n = unpack(args.path, args.output)
    print(f"unpacked {n} images into identity folders under {args.output}")
    return 0


def _runs(args: argparse.Namespace) -> int:
    import logging

    from facenet.runs import close_stale

    if not Path(args.output_dir).is_dir():
        raise UserError(f"--output-dir {args.output_dir}: no such folder")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    stale = close_stale(args.output_dir, found_by="facenet runs clean", dry_run=args.dry_run)
    if args.dry_run:
        for run in stale:
            print(f"{run.run_dir}: RUNNING, but process {run.state.get('pid')} is gone")
    verb = "would close" if args.dry_run else "closed"
    print(f"{verb} {len(stale)} run(s) FAILED under {args.output_dir}" if stale else
          f"no run under {args.output_dir} is left RUNNING by a process that is gone")  # fmt: skip
    return 0


def _pretrained(args: argparse.Namespace) -> int:
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
    ckpt = pretrained.resolve(args.name)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    name = pretrained.lookup(args.name).name
    if args.format.lower() == "ckpt":
        import shutil

        for src, dst in ((ckpt, out / f"{name}.ckpt"), (ckpt.with_suffix(".json"), out / f"{name}.json")):
            shutil.copyfile(src, dst)
        print(f"wrote {out / f'{name}.ckpt'} and its sidecar {name}.json")
        return 0
    from facenet.export import export_checkpoint

    model, card = export_checkpoint(f"{pretrained.PREFIX}{name}", args.format, out, args.batch_size)
    print(f"wrote {model} and its model card {card.name}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from facenet.calibration import calibrate_embeddings, record
    from facenet.inference import gallery_listing

    embedder = _embedder(args)
    paths, labels, names = gallery_listing(args.folder)
    emb = embedder.embed(paths, "calibration")
    result = calibrate_embeddings(emb, labels, args.far, str(args.folder))
    target = record(embedder.model_file, result)
    print(f"threshold {result.threshold:.4f} at FAR {result.far:.2e} (target {result.far_target:g}), TAR "
          f"{result.tar:.4f}: {result.genuine_pairs} genuine and {result.impostor_pairs} impostor pairs of "
          f"{result.images} images, {result.identities} identities")  # fmt: skip
    print(f"recorded in {target}: verify, identify and cluster use it with this model")
    return 0


def _compare(args: argparse.Namespace) -> int:
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
    print(f"\ncomparison: {out} (comparison.md, table.png, roc.png, det.png, distances.png)")
    uri = None if args.no_mlflow else tracking_uri(inputs, args.tracking_uri)
    if uri:
        run_id = log_comparison(inputs, out, uri, list(table["run"]))
        where = "the sweep's parent run, under comparison/" if inputs.parent_run_id else "experiment 'comparison'"
        print(f"logged to MLflow run {run_id} at {uri} ({where})")
    return 0


def _rerun(args: argparse.Namespace) -> int:
    import os
    import subprocess

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from facenet.provenance import RERUN_ENV, git_state, rerun_command
    from facenet.tracking import existing_store

    uri = existing_store(args.tracking_uri)
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


def _embedder(args: argparse.Namespace):
    from facenet.inference import Embedder

    return Embedder.from_pretrained(args.model, args.batch_size, args.workers, args.center_crop, args.align)


def _images(items: list[str]) -> list[str]:
    from facenet.inference import list_images

    out: list[str] = []
    for item in items:
        out += list_images(item) if Path(item).is_dir() else [item]
    return out


def _embed(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    paths = _images(args.images)
    emb = _embedder(args).embed(paths)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix not in (".npz", ".csv", ".parquet"):
        raise UserError(f"-o {out}: expected a .npz, .csv or .parquet file")
    with partial_file(out) as tmp:
        if out.suffix == ".npz":
            np.savez(tmp, paths=np.asarray(paths), embeddings=emb)
        else:
            table = pd.DataFrame(emb, columns=[f"e{i}" for i in range(emb.shape[1])])
            table.insert(0, "path", paths)
            table.to_csv(tmp, index=False) if out.suffix == ".csv" else table.to_parquet(tmp, index=False)
    print(f"embedded {len(paths)} images ({emb.shape[1]}-d) into {out}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    v = _embedder(args).verify(args.image1, args.image2, args.threshold)
    print(f"distance {v.distance:.4f}, threshold {v.threshold:.4f}: {'same person' if v.same else 'different people'}")
    return 0


def _identify(args: argparse.Namespace) -> int:
    embedder = _embedder(args)
    queries = _images(args.query)
    results = embedder.identify(queries, args.gallery, args.k, args.method, args.threshold,
                                None if args.no_cache else args.cache_dir)  # fmt: skip
    for query, matches in zip(queries, results, strict=True):
        ranked = ", ".join(f"{m.identity} {m.distance:.3f}" for m in matches)
        print(f"{query}: {ranked}")
    return 0


def _cluster(args: argparse.Namespace) -> int:
    import pandas as pd

    paths = _images([args.folder])
    labels = _embedder(args).cluster(paths, args.threshold, args.method)
    with partial_file(args.output) as tmp:
        pd.DataFrame({"path": paths, "cluster": labels}).to_csv(tmp, index=False)
    sizes = pd.Series(labels).value_counts()
    print(f"{len(paths)} images -> {len(sizes)} clusters ({int((sizes > 1).sum())} with 2+ images, "
          f"largest {int(sizes.max())}); written to {args.output}")  # fmt: skip
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from facenet.doctor import checks

    results = checks(args.hardware, Path(args.shim_dir))
    width = max(len(c.name) for c in results)
    for c in results:
        optional = "optional" in c.name
        print(f"{'ok ' if c.ok else ('-- ' if optional else 'NO ')} {c.name:<{width}}  {c.detail}")
    required_missing = [c for c in results if not c.ok and "optional" not in c.name]
    print(f"hardware={args.hardware}: " + ("ready" if not required_missing else f"{len(required_missing)} missing"))
    return 0 if not required_missing else 1


def _gpu_env(args: argparse.Namespace) -> int:
    from facenet.doctor import gpu_env

    for key, value in gpu_env(Path(args.shim_dir)).items():
        print(f"export {key}={value}")
    return 0


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a .ckpt (with its sidecar), .mindir or .onnx (with model card), "
                                                 "or a published model by name (facenet pretrained list)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (dynamic-batch models)")
    p.add_argument("--workers", type=int, default=2, help="image decoding workers")
    p.add_argument("--center-crop", type=int, default=None, help="crop the central box first (unaligned photos)")
    p.add_argument("--align", action="store_true", help="detect and align each face first (raw photos, MTCNN)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facenet", description="FaceNet on MindSpore: tools")
    parser.add_argument("--max-image-pixels", type=float, default=None, metavar="N",
                        help="refuse images whose header announces more pixels, before decoding (default 2e8, or "
                             "$FACENET_MAX_IMAGE_PIXELS)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    align = sub.add_parser("align", help="detect, align and crop faces of an identity-folder tree (MTCNN)")
    align.add_argument("src", help="identity folders of raw photos")
    align.add_argument("dst", help="output identity folders of aligned crops")
    align.add_argument("--size", type=int, default=112, help="crop size in pixels (default 112)")
    align.add_argument("--style", choices=("five_point", "box"), default="five_point",
                       help="five_point: landmarks onto the ArcFace template; box: the detector box plus a margin, "
                            "resized (davidsandberg's models: --style box --size 160 --margin 32)")  # fmt: skip
    align.add_argument(
        "--margin",
        type=float,
        default=None,
        help="five_point: extra context as a fraction (default 0); box: pixels (default 32)",
    )
    align.add_argument("--pick", choices=("largest", "central"), default="largest", help="face to keep per image")
    align.add_argument("--workers", type=int, default=2, help="parallel processes")
    align.add_argument("--min-confidence", type=float, default=0.9, help="detector score to accept a face")
    align.set_defaults(run=_align)
    score = sub.add_parser("score", help="any model's pair scores (CSV / NPZ) through this project's protocol")
    score.add_argument("file", help="CSV with distance|score|similarity and issame|same|label columns, or NPZ "
                                    "with distances (or scores) and issame; rows in protocol order")  # fmt: skip
    score.add_argument("--higher-is-closer", action="store_true", help="scores are similarities, not distances")
    score.add_argument("--folds", type=int, default=10, help="consecutive folds of the pair order (default 10)")
    score.add_argument("--far", default="0.001", help="FAR targets for VAL@FAR, comma-separated (default 0.001)")
    score.add_argument("--out", help="folder for report.json and roc.png (default: beside FILE)")
    score.set_defaults(run=_score)
    pack = sub.add_parser("pack", help="identity folders -> train.rec + train.idx + property (InsightFace's layout)")
    pack.add_argument("folder", help="identity folders: FOLDER/<name>/<image>")
    pack.add_argument("-o", "--output", required=True, help="the folder to write train.rec, train.idx, property into")
    pack.set_defaults(run=_pack)
    unpack = sub.add_parser("unpack", help="a RecordIO training set (train.rec + train.idx) -> identity folders")
    unpack.add_argument("path", help="folder with train.rec and train.idx, or the .rec file")
    unpack.add_argument("-o", "--output", required=True, help="a new or empty folder")
    unpack.set_defaults(run=_unpack)
    packp = sub.add_parser("pack-pairs", help="a pairs.txt over identity folders -> an InsightFace .bin set")
    packp.add_argument("root", help="identity folders: ROOT/<name>/<name>_0001.jpg")
    packp.add_argument("pairs", help="pairs.txt (LFW format, with its `10 N` fold header)")
    packp.add_argument("-o", "--output", required=True, help="the .bin file to write")
    packp.set_defaults(run=_pack_pairs)
    comp = sub.add_parser("compare", help="runs side by side: ROC/DET curves, TAR at FARs, McNemar tests")
    comp.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_OR_SWEEP",
        help="run directories, sweep directories, MLflow run ids (a sweep's parent: all its children)",
    )
    comp.add_argument(
        "--tracking-uri",
        help="MLflow store of the run ids, and where the comparison is logged (default $MLFLOW_TRACKING_URI, "
        "else sqlite:///outputs/mlflow.db)",
    )
    comp.add_argument(
        "--metric",
        default="accuracy",
        help="rank by this figure (accuracy, auc, eer, val_at_far_0.001, images_per_sec, ...)",
    )
    comp.add_argument("--benchmark", help="with eval=benchmarks runs: the set to compare (default: the primary)")
    comp.add_argument("-o", "--output", help="report folder (default <sweep>/comparison, else "
                                             "outputs/comparisons/<time>)")  # fmt: skip
    comp.add_argument("--no-mlflow", action="store_true", help="write the folder only")
    comp.set_defaults(run=_compare)
    rerun = sub.add_parser("rerun", help="run a logged MLflow run again from its recorded config and overrides")
    rerun.add_argument("run_id", help="MLflow run id (a job of a sweep is re-run alone)")
    rerun.add_argument("overrides", nargs="*", help="extra Hydra overrides, applied last")
    rerun.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else outputs/mlflow.db)")
    rerun.add_argument("--dry-run", action="store_true", help="print the command, do not run it")
    rerun.set_defaults(run=_rerun)
    embed = sub.add_parser("embed", help="embed images (files and/or folders, recursively)")
    embed.add_argument("images", nargs="+")
    embed.add_argument("-o", "--output", required=True, help="out.npz (paths, embeddings), .csv or .parquet")
    _model_args(embed)
    embed.set_defaults(run=_embed)
    verify = sub.add_parser("verify", help="same person? distance against the model's threshold")
    verify.add_argument("image1")
    verify.add_argument("image2")
    verify.add_argument("--threshold", type=float, help="default: the threshold recorded with the model")
    _model_args(verify)
    verify.set_defaults(run=_verify)
    identify = sub.add_parser("identify", help="top-k identities of an identity-folder gallery")
    identify.add_argument("query", nargs="+", help="image files and/or folders")
    identify.add_argument("--gallery", required=True, help="identity folders: GALLERY/<name>/<image>")
    identify.add_argument("-k", type=int, default=5)
    identify.add_argument("--method", choices=("mean", "nearest"), default="mean")
    identify.add_argument("--threshold", type=float, help="beyond it a query is 'unknown' (default: the model's)")
    identify.add_argument("--cache-dir", default=None, help="gallery embedding cache (default ~/.cache/facenet)")
    identify.add_argument("--no-cache", action="store_true")
    _model_args(identify)
    identify.set_defaults(run=_identify)
    cluster = sub.add_parser("cluster", help="group a folder of unlabelled faces by identity")
    cluster.add_argument("folder")
    cluster.add_argument("-o", "--output", default="clusters.csv", help="CSV of path,cluster (default clusters.csv)")
    cluster.add_argument("--threshold", type=float, help="link distance (default: the model's threshold)")
    cluster.add_argument("--method", choices=("chinese_whispers", "components"), default="chinese_whispers")
    _model_args(cluster)
    cluster.set_defaults(run=_cluster)
    calibrate = sub.add_parser("calibrate", help="choose a model's threshold on labelled faces of your domain")
    calibrate.add_argument("folder", help="identity folders of aligned faces: FOLDER/<name>/<image>")
    calibrate.add_argument("--far", type=float, default=1e-3, help="false accept rate to hold (default 0.001)")
    _model_args(calibrate)
    calibrate.set_defaults(run=_calibrate)
    pre = sub.add_parser("pretrained", help="published models: list them, or write one out")
    pre.add_argument("action", choices=("list", "export"))
    pre.add_argument("name", nargs="?", help="export: the model's name")
    pre.add_argument("-o", "--output", help="export: the folder to write into")
    pre.add_argument("--format", default="ckpt", choices=("ckpt", "MINDIR", "ONNX"), help="default: ckpt + sidecar")
    pre.add_argument("--batch-size", type=int, default=None, help="MINDIR: null = dynamic; ONNX: static, 32")
    pre.set_defaults(run=_pretrained)
    runs = sub.add_parser("runs", help="runs a kill -9 / OOM / power cut left RUNNING: close them FAILED")
    runs.add_argument("action", choices=("clean",))
    runs.add_argument("--output-dir", default="outputs", help="the runs' output_dir (default outputs)")
    runs.add_argument("--dry-run", action="store_true", help="list them, change nothing")
    runs.set_defaults(run=_runs)
    shim = str(Path.home() / ".cache" / "facenet" / "cuda-shim")
    doctor = sub.add_parser("doctor", help="what this machine lacks for a hardware option")
    doctor.add_argument("--hardware", default="cpu", choices=("cpu", "gpu", "cpu_dp", "gpu_dp", "ascend", "ascend_dp"))
    doctor.add_argument("--shim-dir", default=shim, help=argparse.SUPPRESS)
    doctor.set_defaults(run=_doctor)
    env = sub.add_parser("gpu-env", help='environment for MindSpore\'s GPU plugin: eval "$(facenet gpu-env)"')
    env.add_argument("--shim-dir", default=shim, help="where to write the nvcc shim (when no CUDA toolkit)")
    env.set_defaults(run=_gpu_env)
    args = parser.parse_args(argv)
    if getattr(args, "cache_dir", "x") is None:
        from facenet.inference import CACHE_DIR

        args.cache_dir = CACHE_DIR
    try:
        with signals_raise():  # Ctrl-C / SIGTERM: one line, and no half-written output (facenet/interrupts.py)
            if args.max_image_pixels is not None:
                from facenet.data.images import set_max_pixels

                set_max_pixels(args.max_image_pixels)
            return args.run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        print(f"interrupted by {signal_name(err)}: facenet {args.command} stopped, nothing half-written kept",
              file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    sys.exit(main())
