"""The performance suite's plumbing: its table arithmetic, its reading of oneDNN's log, the PyTorch twin of the
networks it compares against, and one quick run of the real command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import run as bench
from tests.conftest import ROOT

VERBOSE = """\
onednn_verbose,v1,info,oneDNN v3.10.1 (commit N/A)
onednn_verbose,v1,primitive,exec,cpu,convolution,x64:gemm:jit,forward_training,src:f32::blocked:abcd::f0 wei:f32::blocked:abcd::f0 bia:undef::undef::: dst:f32::blocked:abcd::f0,,alg:convolution_direct,mb64_ic64oc64_ih28oh28kh3sh1dh0ph1_iw28ow28kw3sw1dw0pw1,34.8
onednn_verbose,v1,primitive,exec,cpu,convolution,x64:gemm:jit,backward_weights,src:f32::blocked:abcd::f0 wei:f32::blocked:abcd::f0 bia:undef::undef::: dst:f32::blocked:abcd::f0,,alg:convolution_direct,mb64_ic64oc64_ih28oh28kh3sh1dh0ph1_iw28ow28kw3sw1dw0pw1,141.8
onednn_verbose,v1,primitive,exec,cpu,pooling,simple_nchw:any,forward_training,src:f32::blocked:abcd::f0,,alg:pooling_max,mb64ic64_ih56oh28kh3sh2ph0,20.1
"""  # noqa: E501


def test_onednn_log_gives_the_convolution_kernels_and_their_layout():
    assert bench._onednn_implementations(VERBOSE) == {
        "forward_training": "x64:gemm:jit (abcd)",
        "backward_weights": "x64:gemm:jit (abcd)",
    }


def test_table_ratios_are_computed_from_the_medians():
    ms = {
        "train_compute_img_s": 100.0,
        "train_e2e_img_s": 90.0,
        "eval_img_s": 300.0,
        "first_step_s": 2.5,
        "peak_rss_gb": 1.25,
        "miner": "semi_hard",
        "loss_share": {"batch_all": 0.01, "batch_hard": 0.02, "semi_hard": 0.04},
    }
    pt = {"train_compute_img_s": 80.0, "eval_img_s": 600.0}
    conv = {"mindspore": {"forward_ms": 10.0, "input_grad_ms": 20.0, "weight_grad_ms": 30.0}, "onednn": {}}
    lines = bench._table([{"case": "resnet18_112", "mindspore": ms, "pytorch": pt}], conv).splitlines()
    row = lines[2].split("  ")
    cells = [c.strip() for c in row if c.strip()]
    assert cells[0] == bench.CASES["resnet18_112"][0]
    # train, e2e, e2e/compute, eval, configured miner share, worst share, first step, RSS, PT train, MS/PT, ...
    assert cells[1:] == [
        "100.0",
        "90.0",
        "0.90",
        "300.0",
        "4.0%",
        "4.0% semi_hard",
        "2.5",
        "1.25",
        "80.0",
        "1.25",
        "600.0",
        "0.50",
    ]
    assert any(line.startswith("MindSpore") and "10.0" in line and "30.0" in line for line in lines)


def test_a_failed_framework_leaves_its_columns_empty():
    lines = bench._table([{"case": "default", "mindspore": None, "pytorch": None}], {}).splitlines()
    assert [c.strip() for c in lines[2].split("  ") if c.strip()][1:] == ["-"] * 12


def test_pytorch_twin_has_the_mindspore_networks_parameter_count():
    """The comparison is fair only if both frameworks train the same network: count trainable parameters of the
    MindSpore ResNet-18 / ResNet-50 embedding nets and of their PyTorch twins."""
    torch = pytest.importorskip("torch", reason="PyTorch is a bench-only extra (pip install -e .[bench])")
    from hydra import compose, initialize_config_dir

    from bench.torch_reference import EmbeddingResNet
    from facenet.config.schema import register
    from facenet.models.build import build_network
    from facenet.models.embedding import count_parameters

    register()
    for backbone in ("resnet18", "resnet50", "resnet_tiny"):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"backbone={backbone}"])
        ms_count = count_parameters(build_network(cfg.backbone, cfg.head, 64))
        pt_net = EmbeddingResNet(cfg.backbone, cfg.embedding_size)
        pt_count = sum(p.numel() for p in pt_net.parameters() if p.requires_grad)
        assert ms_count == pt_count, backbone
        assert pt_net(torch.zeros(2, 3, 64, 64)).shape == (2, cfg.embedding_size)


@pytest.mark.slow
def test_bench_command_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            "--quick",
            "--repeats",
            "1",
            "--cases",
            "default",
            "--no-torch",
            "--json",
            str(out),
            "--cache",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "default config (resnet_tiny @64, 16x4)" in proc.stdout
    report = json.loads(out.read_text())
    ms = report["cases"][0]["mindspore"]
    assert ms["train_compute_img_s"] > 0 and ms["train_e2e_img_s"] > 0 and ms["eval_img_s"] > 0
    assert set(ms["loss_share"]) == set(bench.MINERS) and 0 < ms["loss_share"]["semi_hard"] < 1
    assert ms["miner"] == "semi_hard"  # the default config's miner, named as in conf/miner
    assert ms["peak_rss_gb"] > 0.1 and ms["first_step_s"] > 0
    conv = report["convolution"]
    assert conv["mindspore"]["weight_grad_ms"] > 0 and set(conv["onednn"]) >= {"forward_training"}


@pytest.mark.slow
def test_classifier_bench_measures_each_case_in_its_own_process(tmp_path):
    out = tmp_path / "classifier.json"
    proc = subprocess.run(
        [
            sys.executable,
            "bench/classifier.py",
            "--classes",
            "400",
            "--rates",
            "1,0.25",
            "--dim",
            "16",
            "--batch",
            "8",
            "--repeats",
            "1",
            "--steps",
            "2",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    full, sampled = json.loads(out.read_text())
    assert (full["sampled"], sampled["sampled"]) == (400, 100)  # ceil(0.25 x 400) centres a step
    assert full["weights_and_moments_mb"] == pytest.approx(3 * 400 * 16 * 4 / 2**20)
    assert full["ms_per_step"] > 0 and full["peak_rss_mb"] > full["rss_growth_mb"] >= 0
    assert "| 400 | 0.25 | 100 |" in proc.stdout


def test_gallery_bench_numpy_search_is_exact_across_blocks(monkeypatch):
    """bench/gallery.py's brute force (blocks of gallery rows, a running top-k) against a full argsort."""
    import numpy as np

    from bench import gallery

    monkeypatch.setattr(gallery, "MAX_SCORES", 7 * 13)  # blocks of 13 rows for 7 probes: many merges
    rng = np.random.default_rng(0)
    x, q = rng.standard_normal((200, 8)).astype(np.float32), rng.standard_normal((7, 8)).astype(np.float32)
    scores, ids = gallery.numpy_search(x, q, 5)
    full = q @ x.T
    assert (ids == np.argsort(-full, axis=1)[:, :5]).all()
    assert np.allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :5])


def test_gallery_bench_runs_at_tiny_sizes(tmp_path):
    out = tmp_path / "gallery.json"
    proc = subprocess.run(
        [
            sys.executable,
            "bench/gallery.py",
            "--sizes",
            "800",
            "--dims",
            "8",
            "--queries",
            "30",
            "--repeats",
            "1",
            "--json",
            str(out),
        ],  # fmt: skip
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["method"]: r for r in json.loads(out.read_text())}
    assert list(rows) == ["numpy", "flat", "hnsw", "ivf"]
    assert rows["numpy"]["recall_at_1"] == 1.0 and rows["flat"]["recall_at_1"] == 1.0  # both exact
    assert all(r["qps_1"] > 0 and r["qps_256"] > 0 and 0 <= r["recall_at_1"] <= 1 for r in rows.values())
    assert rows["ivf"]["settings"]["nlist"] == 20 and rows["flat"]["index_mb"] > 0  # 800 // 39 lists
    assert [s["nprobe"] for s in rows["ivf"]["sweep"]] == [8, 16, 32, 64, 128, 256]
    assert "| 8e+02 x 8 | hnsw |" in proc.stdout
