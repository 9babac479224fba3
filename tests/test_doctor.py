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


def _doctor(capsys, tmp_path, *args: str) -> tuple[int, dict[str, str]]:
    """Run `facenet doctor ARGS`; its exit code and {check name: its line}."""
    code = main(["doctor", "--shim-dir", str(tmp_path / "shim"), *args])
    lines = capsys.readouterr().out.splitlines()
    return code, {line[4:].split("  ")[0].strip(): line for line in lines[:-1]}


@pytest.mark.slow
def test_doctor_checks_stores_and_says_in_one_line_what_is_wrong(capsys, tmp_path):
    """A real MLflow store and a real Optuna storage (SQLite files) pass; each given where the other belongs fails on
    its schema; a server that does not answer fails on reachability; nothing is left behind in either."""
    import optuna
    from mlflow.tracking import MlflowClient

    from facenet.study import compatible_storage

    mlflow_uri, optuna_url = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'optuna.db'}"
    MlflowClient(mlflow_uri).search_experiments()  # creates the store
    compatible_storage()
    optuna.create_study(study_name="s", storage=optuna_url)
    code, lines = _doctor(capsys, tmp_path, "--tracking-uri", mlflow_uri, "--storage", optuna_url)
    assert code == 0, lines
    assert all(
        lines[f"{kind} {check}"].startswith("ok ")
        for kind in ("tracking", "storage")
        for check in ("reachable", "schema", "writable")
    )
    assert "Optuna schema" in lines["storage schema"] and "1 study" in lines["storage schema"]

    code, lines = _doctor(capsys, tmp_path, "--tracking-uri", optuna_url, "--storage", mlflow_uri)
    assert code == 1
    assert lines["tracking schema"].startswith("NO ") and "give MLflow its own database" in lines["tracking schema"]
    assert lines["storage schema"].startswith("NO ") and "give Optuna a database of its own" in lines["storage schema"]

    from tests.conftest import free_port

    code, lines = _doctor(capsys, tmp_path, "--tracking-uri", f"http://127.0.0.1:{free_port()}")
    assert (
        code == 1
        and lines["tracking reachable"].startswith("NO ")
        and "does not answer /health" in lines["tracking reachable"]
    )
    # the probe table was rolled back
    import sqlite3

    for db in ("mlflow.db", "optuna.db"):
        tables = {r[0] for r in sqlite3.connect(tmp_path / db).execute("SELECT name FROM sqlite_master")}
        assert "facenet_doctor_probe" not in tables
