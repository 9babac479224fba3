"""The performance suite: one command, one table, one JSON file.

    .venv/bin/python bench/run.py [--cases default,resnet18_112,resnet50_224,finetune_irv1_160] [--repeats 5] [--quick]
                                  [--set hardware.cpu_threads=1 ...] [--json bench/results.json]

For each case (a config: the default run, ResNet-18 at 112x112, ResNet-50 at 224x224, the fine-tuning step of
experiment=finetune on Inception-ResNet-v1 at 160x160) a fresh process measures,
with the settings `python run.py` applies:
- train img/s, compute only: the compiled training step (forward, mining + loss, backward, Adam) on in-memory batches;
- train img/s, end to end: the same step fed by the training pipeline (JPEG decoding, augmentation, P x K batches)
  from a generated JPEG folder; compute-only and end-to-end repeats alternate, so both see the same machine load;
- eval img/s: the embedding network's forward pass on in-memory batches of `eval.batch_size`;
- mining + loss share: one compiled mining + loss forward and backward on the step's embeddings, over the step time
  (every miner; the table shows the configured one and the most expensive);
- first step: wall time of the first step (graph compilation + one step) over a steady step;
- peak RSS of the process.
If PyTorch is installed (`pip install -e .[bench]`, CPU build 2.13.0), a second process runs the same ResNets in
PyTorch eager (channels_last, all cores) for the train and eval columns, and one 3x3 convolution (ResNet-18's first
stage at 112x112, batch 64) is timed pass by pass in both frameworks: the measured limit behind the ratios.

Medians over `--repeats`. Timings on shared machines are noisy: compare ratios from one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> (description, config overrides, steps per repeat (full, --quick))
CASES: dict[str, tuple[str, list[str], tuple[int, int]]] = {
    "default": ("default config (resnet_tiny @64, 16x4)", [], (20, 8)),
    "memory_4096": (  # the same step with a cross-batch memory of 4096 embeddings, mined from the first step
        "default + miner.memory.size=4096",
        ["miner.memory.size=4096", "miner.memory.start_step=0"],
        (20, 8),
    ),
    "resnet18_112": (
        "resnet18 @112, 32x4",
        ["backbone=resnet18", "preprocess.image_size=112", "batch.identities=32", "batch.images_per_identity=4"],
        (4, 2),
    ),
    "resnet50_224": (
        "resnet50 @224, 8x4",
        ["backbone=resnet50", "preprocess.image_size=224", "batch.identities=8", "batch.images_per_identity=4"],
        (2, 1),
    ),
    "finetune_irv1_160": (  # experiment=finetune's step (stages frozen, batch norm frozen), random weights
        "finetune: inception_resnet_v1 @160, 10x4",
        ["experiment=finetune", "ckpt=null", "eval=synthetic", "~also_eval.lfw"],
        (4, 2),
    ),
}
TORCH_TWINS = {"default", "resnet18_112", "resnet50_224"}  # cases bench/torch_reference.py can build
CONV = {"batch": 64, "channels": 64, "size": 28, "kernel": 3}  # ResNet-18 stage 1 at 112x112 input
MINERS = ("batch_all", "batch_hard", "semi_hard")


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


# ---------------------------------------------------------------- MindSpore worker


def _config(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from facenet.config.schema import register

    register()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def jpeg_folder(cache: Path, size: int, identities: int, per_identity: int) -> Path:
    """A folder of generated identities saved as JPEG at `size` (made once, reused): the end-to-end input."""
    root = cache / f"bench-jpeg-{size}-{identities}x{per_identity}"
    if (root / ".done").exists():
        return root
    import cv2
    import numpy as np

    from facenet.data.synthetic import identity_params, render

    for i in range(identities):
        rng = np.random.default_rng([7, i])
        params = identity_params(rng)
        (root / f"id_{i:04d}").mkdir(parents=True, exist_ok=True)
        for j in range(per_identity):
            img = render(params, rng, size)
            cv2.imwrite(str(root / f"id_{i:04d}" / f"{j:03d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    (root / ".done").touch()
    return root


def _miner_targets() -> dict[str, str]:
    """Miner config name -> its class (`_target_`), read from conf/miner (the P x K miners of MINERS)."""
    from omegaconf import OmegaConf

    return {m: OmegaConf.load(ROOT / "conf" / "miner" / f"{m}.yaml")["_target_"] for m in MINERS}


def _time_loss(cfg, target: str, repeats: int, calls: int = 20) -> float:
    """Median ms of one compiled mining + loss forward and backward on a P x K batch of unit embeddings, with the
    miner class `target` and the configured `miner.memory`. A memory is first filled with unit embeddings of other
    identities (mined once `miner.memory.start_step` is passed: 0 in the memory case), and each call also stores the
    batch, as a training step does."""
    import mindspore as ms
    import numpy as np
    from hydra.utils import instantiate
    from mindspore import nn, ops

    from facenet.training.setup import build_loss

    p, k = cfg.batch.identities, cfg.batch.images_per_identity
    loss = build_loss(cfg, miner=instantiate({"_target_": target, "memory": cfg.miner.memory}))
    grad = ms.value_and_grad(loss, 0, None, has_aux=True)
    rng = np.random.default_rng(0)

    def unit(n: int) -> ms.Tensor:
        e = rng.normal(size=(n, cfg.embedding_size)).astype(np.float32)
        return ms.Tensor(e / np.linalg.norm(e, axis=1, keepdims=True))

    class Step(nn.Cell):
        def construct(self, e, y):
            out = grad(e, y)
            if loss.memory is not None:
                loss.memory.enqueue(ops.depend(e, out[1]), y)
            return out

    step = Step()
    e, y = unit(p * k), ms.Tensor(np.repeat(np.arange(p), k).astype(np.int32))
    for i in range(-(-loss.memory.size // (p * k)) if loss.memory is not None else 1):
        step(unit(p * k), ms.Tensor(np.repeat(np.arange(p), k).astype(np.int32) + p * (i + 1)))[1].asnumpy()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            out = step(e, y)
        out[1].asnumpy()
        times.append(1000 * (time.perf_counter() - t) / calls)
    return _median(times)


def mindspore_case(name: str, overrides: list[str], steps: int, repeats: int, cache: Path) -> dict:
    import mindspore as ms
    import numpy as np

    from facenet.runtime import init_runtime
    from facenet.training.setup import build_training

    base = _config([f"data_dir={cache}", *overrides])
    hw = base.hardware
    init_runtime(hw.device, hw.device_id, hw.mode, hw.cpu_threads)
    p, k, size = base.batch.identities, base.batch.images_per_identity, base.preprocess.image_size
    n = p * k
    # end-to-end input: a generated JPEG folder, read through the training pipeline with the config's augmentation
    root = jpeg_folder(cache, size, max(2 * p, 16), max(2 * k, 8))
    cfg = _config(
        [
            f"data_dir={cache}",
            *overrides,
            "dataset=folder",
            f"dataset.root={root}",
            f"preprocess.image_size={size}",
            f"train.steps_per_epoch={steps * repeats + 2}",
        ]
    )
    t = build_training(cfg)
    net, step = t.net, t.step
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.uniform(-1, 1, (n, 3, size, size)).astype(np.float32))
    y = ms.Tensor(np.repeat(np.arange(p), k).astype(np.int32))

    t0 = time.perf_counter()
    step(x, y)[0].asnumpy()
    first = time.perf_counter() - t0

    batches = t.batches(epoch=1)
    step(*next(batches))[0].asnumpy()  # starts the pipeline (its threads, first batches)

    compute, e2e = [], []
    for _ in range(repeats):  # alternate, so both see the same machine load
        t0 = time.perf_counter()
        for _ in range(steps):
            out = step(x, y)
        out[0].asnumpy()
        compute.append(steps * n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for _ in range(steps):
            out = step(*next(batches))
        out[0].asnumpy()
        e2e.append(steps * n / (time.perf_counter() - t0))
    batches.close()
    step_ms = 1000 * n / _median(compute)

    net.set_train(False)
    eb = cfg.eval.batch_size if size <= 112 else 32
    xe = ms.Tensor(rng.uniform(-1, 1, (eb, 3, size, size)).astype(np.float32))
    net(xe).asnumpy()
    calls = max(1, steps // 2)
    evals = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            emb = net(xe)
        emb.asnumpy()
        evals.append(calls * eb / (time.perf_counter() - t0))

    targets = _miner_targets()
    loss_ms = {m: _time_loss(cfg, target, repeats) for m, target in targets.items()}
    miner = cfg.miner._target_
    configured = next((m for m, target in targets.items() if target == miner), miner.rsplit(".", 1)[1])
    return {
        "case": name,
        "framework": "mindspore",
        "overrides": overrides,
        "batch": n,
        "image_size": size,
        "data_workers": hw.data_workers,
        "cpu_threads": hw.cpu_threads,
        "train_compute_img_s": _median(compute),
        "train_e2e_img_s": _median(e2e),
        "train_compute_runs": compute,
        "train_e2e_runs": e2e,
        "eval_img_s": _median(evals),
        "eval_batch": eb,
        "step_ms": step_ms,
        "loss_ms": loss_ms,
        "loss_share": {m: v / step_ms for m, v in loss_ms.items()},
        "miner": configured,
        "first_step_s": first,
        "compile_s": first - step_ms / 1000,
        "peak_rss_gb": _peak_rss_gb(),
    }


def mindspore_conv(repeats: int) -> dict:
    """One convolution, forward / input gradient / weight gradient, each its own compiled graph."""
    import mindspore as ms
    import numpy as np
    from mindspore import ops
    from mindspore.ops.operations import _grad_ops

    from facenet.runtime import init_runtime

    init_runtime("CPU", 0, "GRAPH")
    b, c, s, kk = CONV["batch"], CONV["channels"], CONV["size"], CONV["kernel"]
    conv = ops.Conv2D(c, kk, pad_mode="pad", pad=kk // 2)
    dx = ops.Conv2DBackpropInput(c, kk, pad_mode="pad", pad=(kk // 2,) * 4)
    dw = _grad_ops.Conv2DBackpropFilter(c, kk, pad_mode="pad", pad=(kk // 2,) * 4, pad_list=(kk // 2,) * 4)
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.normal(size=(b, c, s, s)).astype(np.float32))
    w = ms.Tensor(0.05 * rng.normal(size=(c, c, kk, kk)).astype(np.float32))
    g = ms.Tensor(rng.normal(size=(b, c, s, s)).astype(np.float32))

    @ms.jit
    def forward(x, w):
        return conv(x, w)

    @ms.jit
    def input_grad(g, w):
        return dx(g, w, (b, c, s, s))

    @ms.jit
    def weight_grad(g, x):
        return dw(g, x, (c, c, kk, kk))

    out = {}
    for name, fn, args in (
        ("forward", forward, (x, w)),
        ("input_grad", input_grad, (g, w)),
        ("weight_grad", weight_grad, (g, x)),
    ):
        fn(*args).asnumpy()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn(*args).asnumpy()
            times.append(1000 * (time.perf_counter() - t))
        out[f"{name}_ms"] = _median(times)
    return out


# ---------------------------------------------------------------- PyTorch worker


def torch_case(name: str, overrides: list[str], steps: int, repeats: int) -> dict:
    import numpy as np
    import torch

    from bench.torch_reference import EmbeddingResNet, train_step

    cfg = _config(overrides)
    torch.set_num_threads(os.cpu_count() or 1)
    p, k, size = cfg.batch.identities, cfg.batch.images_per_identity, cfg.preprocess.image_size
    n = p * k
    net = EmbeddingResNet(cfg.backbone, cfg.embedding_size).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-1, 1, (n, 3, size, size)).astype(np.float32))
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(np.repeat(np.arange(p), k))
    net.train()
    train_step(net, opt, x, y, cfg.margin)
    train = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            train_step(net, opt, x, y, cfg.margin)
        train.append(steps * n / (time.perf_counter() - t))
    net.eval()
    eb = cfg.eval.batch_size if size <= 112 else 32
    xe = torch.from_numpy(rng.uniform(-1, 1, (eb, 3, size, size)).astype(np.float32))
    xe = xe.contiguous(memory_format=torch.channels_last)
    calls, evals = max(1, steps // 2), []
    with torch.inference_mode():
        net(xe)
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(calls):
                net(xe)
            evals.append(calls * eb / (time.perf_counter() - t))
    return {
        "case": name,
        "framework": "pytorch",
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "train_compute_img_s": _median(train),
        "train_compute_runs": train,
        "eval_img_s": _median(evals),
        "peak_rss_gb": _peak_rss_gb(),
    }


def torch_conv(repeats: int) -> dict:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    b, c, s, kk = CONV["batch"], CONV["channels"], CONV["size"], CONV["kernel"]
    out = {}
    for layout in ("nchw", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        x = torch.randn(b, c, s, s).contiguous(memory_format=fmt)
        w = (0.05 * torch.randn(c, c, kk, kk)).contiguous(memory_format=fmt)
        g = torch.randn(b, c, s, s).contiguous(memory_format=fmt)
        args = ([1, 1], [kk // 2] * 2, [1, 1], False, [0, 0], 1)  # stride, padding, dilation, ...

        def backward(mask, x=x, w=w, g=g, args=args):
            return torch.ops.aten.convolution_backward(g, x, w, None, *args, mask)

        passes = {
            "forward": lambda x=x, w=w: torch.nn.functional.conv2d(x, w, padding=kk // 2),
            "input_grad": lambda: backward([True, False, False]),
            "weight_grad": lambda: backward([False, True, False]),
        }
        with torch.no_grad():
            for name, fn in passes.items():
                fn()
                times = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    fn()
                    times.append(1000 * (time.perf_counter() - t))
                out[f"{layout}_{name}_ms"] = _median(times)
    return out


# ---------------------------------------------------------------- driver


def _worker(args) -> None:
    """One measurement in this (fresh) process; the result goes to --out as JSON."""
    desc, overrides, steps = CASES.get(args.case, ("", [], (0, 0)))
    steps = steps[1] if args.quick else steps[0]
    overrides = overrides + list(args.set)
    cache = Path(args.cache)
    if args.worker == "mindspore":
        result = mindspore_case(args.case, overrides, steps, args.repeats, cache)
    elif args.worker == "torch":
        result = torch_case(args.case, overrides, steps, args.repeats)
    elif args.worker == "mindspore_conv":
        result = mindspore_conv(args.repeats)
    else:
        result = torch_conv(args.repeats)
    Path(args.out).write_text(json.dumps(result))


def _run_worker(kind: str, case: str, args, env: dict | None = None) -> tuple[dict | None, str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            "-m",
            "bench.run",  # from ROOT: the worker imports bench.torch_reference
            "--worker",
            kind,
            "--case",
            case,
            "--out",
            str(out),
            "--repeats",
            str(args.repeats),
            "--cache",
            args.cache,
        ] + (["--quick"] if args.quick else [])
        for s in args.set:
            cmd += ["--set", s]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            print(f"  {kind} {case}: failed (exit {proc.returncode}): {' | '.join(tail)}", file=sys.stderr)
            return None, proc.stdout
        return json.loads(out.read_text()), proc.stdout


def _onednn_implementations(verbose: str) -> dict[str, str]:
    """prop kind -> oneDNN implementation, from ONEDNN_VERBOSE=1 lines of convolution executions."""
    impl = {}
    for line in verbose.splitlines():
        f = line.split(",")  # onednn_verbose,v1,primitive,exec,cpu,convolution,<impl>,<prop kind>,<formats>,...
        if len(f) > 8 and f[0] == "onednn_verbose" and f[3] == "exec" and f[5] == "convolution":
            src = f[8].split()[0].split(":")  # src:f32::blocked:abcd::f0
            layout = src[4] if len(src) > 4 else ""
            impl[f[7]] = f"{f[6]} ({layout or 'plain'})"
    return impl


def _table(results: list[dict], conv: dict) -> str:
    def fmt(v, spec):
        return format(v, spec) if isinstance(v, int | float) else "-"

    rows = [
        (
            "case",
            "train img/s",
            "e2e img/s",
            "e2e/comp",
            "eval img/s",
            "mine+loss",
            "worst",
            "1st step s",
            "peak RSS GB",
            "PT train",
            "MS/PT train",
            "PT eval",
            "MS/PT eval",
        )
    ]
    for r in results:
        ms_, pt = r.get("mindspore") or {}, r.get("pytorch") or {}
        share = ms_.get("loss_share", {})
        worst = max(share, key=share.get) if share else None
        rows.append(
            (
                CASES[r["case"]][0],
                fmt(ms_.get("train_compute_img_s"), ".1f"),
                fmt(ms_.get("train_e2e_img_s"), ".1f"),
                fmt(ms_["train_e2e_img_s"] / ms_["train_compute_img_s"], ".2f") if ms_ else "-",
                fmt(ms_.get("eval_img_s"), ".1f"),
                fmt(100 * share[ms_["miner"]], ".1f") + "%" if share else "-",
                f"{100 * share[worst]:.1f}% {worst}" if worst else "-",
                fmt(ms_.get("first_step_s"), ".1f"),
                fmt(ms_.get("peak_rss_gb"), ".2f"),
                fmt(pt.get("train_compute_img_s"), ".1f"),
                fmt(ms_["train_compute_img_s"] / pt["train_compute_img_s"], ".2f") if ms_ and pt else "-",
                fmt(pt.get("eval_img_s"), ".1f"),
                fmt(ms_["eval_img_s"] / pt["eval_img_s"], ".2f") if ms_ and pt else "-",
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    if conv:
        b, c, s, k = CONV["batch"], CONV["channels"], CONV["size"], CONV["kernel"]
        lines += [
            "",
            f"one {k}x{k} convolution, {c}->{c} channels, {s}x{s}, batch {b} (ms, median):",
            f"{'':<30s} {'forward':>8s} {'input grad':>11s} {'weight grad':>12s}  oneDNN kernel (MindSpore)",
        ]
        ms_conv, impl = conv.get("mindspore") or {}, conv.get("onednn") or {}
        if ms_conv:
            lines.append(
                f"{'MindSpore (NCHW: the only CPU layout)':<30s} {ms_conv['forward_ms']:8.1f} "
                f"{ms_conv['input_grad_ms']:11.1f} {ms_conv['weight_grad_ms']:12.1f}  "
                + ", ".join(f"{k}: {v}" for k, v in sorted(impl.items()))
            )
        pt = conv.get("pytorch") or {}
        for layout in ("nchw", "channels_last"):
            if pt:
                lines.append(
                    f"{'PyTorch ' + layout:<30s} {pt[layout + '_forward_ms']:8.1f} "
                    f"{pt[layout + '_input_grad_ms']:11.1f} {pt[layout + '_weight_grad_ms']:12.1f}"
                )
    return "\n".join(lines)


def _machine() -> dict:
    model = ""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    import mindspore

    info = {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "mindspore": mindspore.__version__,
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "AVX2"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (median reported)")
    parser.add_argument("--quick", action="store_true", help="fewer steps per repeat (a rough table in ~2 min)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override applied to every MindSpore case, e.g. hardware.data_workers=2",
    )
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch columns even if torch is installed")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results.json"), help="where the results go")
    parser.add_argument("--cache", default=str(ROOT / "data"), help="generated JPEG inputs are cached here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return 0
    import facenet  # noqa: F401  (sets ONEDNN_MAX_CPU_ISA for this process and the workers it starts)

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    try:
        import torch  # noqa: F401

        with_torch = not args.no_torch
    except ImportError:
        with_torch = False
        print("PyTorch not installed: no comparison columns (pip install -e .[bench] for them)", file=sys.stderr)
    t0 = time.perf_counter()
    results, failed = [], 0
    for case in cases:
        print(f"measuring {CASES[case][0]} ...", file=sys.stderr, flush=True)
        row = {"case": case, "mindspore": _run_worker("mindspore", case, args)[0]}
        twin = with_torch and case in TORCH_TWINS
        row["pytorch"] = _run_worker("torch", case, args)[0] if twin else None
        failed += row["mindspore"] is None or (twin and row["pytorch"] is None)
        results.append(row)
    print("measuring one convolution ...", file=sys.stderr, flush=True)
    ms_conv, verbose = _run_worker("mindspore_conv", "", args, env={"ONEDNN_VERBOSE": "1"})
    conv = {"mindspore": ms_conv, "onednn": _onednn_implementations(verbose)}
    if with_torch:
        conv["pytorch"] = _run_worker("torch_conv", "", args)[0]
    report = {
        "machine": _machine(),
        "repeats": args.repeats,
        "quick": args.quick,
        "overrides": args.set,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "seconds": round(time.perf_counter() - t0, 1),
        "cases": results,
        "convolution": conv,
    }
    Path(args.json).write_text(json.dumps(report, indent=1))
    m = report["machine"]
    print(
        f"\n{m['cpu']}, {m['cores']} cores; MindSpore {m['mindspore']}"
        + (f", PyTorch {m['torch']}" if "torch" in m else "")
        + f"; median of {args.repeats}; {report['seconds']:.0f} s\n"
    )
    print(_table(results, conv))
    print(f"\nJSON: {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
