"""`facenet doctor` and `facenet gpu-env`: checklists per hardware option, the nvcc shim, and (opt-in, slow: a
1.7 GB download) the GPU extra making every library of MindSpore's GPU plugin resolve except the driver's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from facenet.cli import main
from facenet.doctor import DRIVER, GPU_EXTRA, PLUGIN, gpu_env, mindspore_dir, unresolved_libraries


def test_doctor_cpu_is_ready_here(capsys, tmp_path):
    assert main(["doctor", "--shim-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ok  mindspore installed" in out and "hardware=cpu: ready" in out


def test_doctor_gpu_lists_what_is_missing(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_HOME", raising=False)
    code = main(["doctor", "--hardware", "gpu", "--shim-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "ok  MindSpore GPU plugin" in out
    if code == 1:  # the usual case on a machine without the extra and a driver: each gap says how to close it
        assert "pip install .[gpu]" in out or "install the NVIDIA driver" in out
        assert 'eval "$(facenet gpu-env)"' in out


def test_gpu_env_writes_an_nvcc_shim_and_orders_library_paths(tmp_path):
    site = tmp_path / "site"
    for component in ("cublas", "cudnn"):
        (site / "nvidia" / component / "lib").mkdir(parents=True)
    env = gpu_env(tmp_path / "shim", site=site, environ={"LD_LIBRARY_PATH": "/opt/x"})
    assert env["CUDA_HOME"] == str(tmp_path / "shim")
    version = subprocess.run([f"{env['CUDA_HOME']}/bin/nvcc", "--version"], capture_output=True, text=True).stdout
    assert "release 11.6" in version  # what MindSpore parses to pick libmindspore_gpu.so.11.6
    paths = env["LD_LIBRARY_PATH"].split(os.pathsep)
    plugin = mindspore_dir() / "lib" / "plugin"
    assert paths == [
        str(site / "nvidia/cublas/lib"),
        str(site / "nvidia/cudnn/lib"),
        str(plugin / "gpu11.6"),
        str(plugin),
        "/opt/x",
    ]
    toolkit = tmp_path / "cuda"
    (toolkit / "bin").mkdir(parents=True)
    (toolkit / "bin" / "nvcc").write_text("#!/bin/sh\n")
    assert gpu_env(tmp_path / "shim2", site=site, environ={"CUDA_HOME": str(toolkit)})["CUDA_HOME"] == str(toolkit)


def test_without_the_extra_the_plugin_misses_the_cuda_libraries():
    missing = unresolved_libraries(mindspore_dir() / "lib" / "plugin" / PLUGIN, "")
    assert {"libcudart.so.11.0", "libcudnn.so.8", "libcublas.so.11"} <= set(missing)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("FACENET_TEST_GPU_EXTRA"),
    reason="downloads about 1.7 GB of CUDA libraries: run with FACENET_TEST_GPU_EXTRA=1",
)
def test_gpu_extra_resolves_every_plugin_library_but_the_driver(tmp_path):
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), *GPU_EXTRA],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    env = gpu_env(tmp_path / "shim", site=site, environ={})
    assert unresolved_libraries(mindspore_dir() / "lib" / "plugin" / PLUGIN, env["LD_LIBRARY_PATH"]) == [DRIVER]
