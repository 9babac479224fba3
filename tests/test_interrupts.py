"""Ctrl-C / SIGTERM anywhere: one line, a clean exit, partial outputs removed or named partial, the MLflow run
KILLED; a SIGINT is reported as SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from facenet.interrupts import Interrupted, partial_file, signals_raise, worker_pool
from facenet.runs import read_state
from tests.conftest import ROOT, SHARED_DATA, tiny_checkpoint


def test_signals_become_an_exception_naming_them_and_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    for sig in (signal.SIGTERM, signal.SIGINT):
        with pytest.raises(Interrupted) as caught, signals_raise():
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler runs at the next bytecode
        assert caught.value.signal_name == signal.Signals(sig).name
    assert signal.getsignal(signal.SIGTERM) is before


def test_partial_file_leaves_the_whole_file_or_nothing(tmp_path):
    target = tmp_path / "out.npz"
    with pytest.raises(Interrupted), partial_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise Interrupted("SIGINT")
    assert list(tmp_path.iterdir()) == []
    with partial_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".npz" and tmp.name.startswith(".out.partial-")
        tmp.write_bytes(b"whole")
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"] and target.read_bytes() == b"whole"


def _touch_after(path: str) -> str:
    time.sleep(0.2)
    Path(path).touch()
    return path


def test_an_interrupted_pool_cancels_what_has_not_started(tmp_path):
    jobs = [str(tmp_path / f"{i}") for i in range(200)]
    start = time.monotonic()
    with pytest.raises(Interrupted), worker_pool(2) as pool:
        for n, _ in enumerate(pool.map(_touch_after, jobs)):
            if n == 3:
                raise Interrupted("SIGTERM")
    assert time.monotonic() - start < 10  # not 200 x 0.2 s / 2
    assert 4 <= len(list(tmp_path.iterdir())) < 20


def test_interrupted_export_leaves_no_half_written_model(tmp_path, monkeypatch, compose_cfg):
    """task=export stopped while MindSpore writes the file: neither the model nor its card is left."""
    import mindspore as ms

    from facenet.app import run
    from facenet.errors import RunInterrupted

    def export_then_interrupt(net, *inputs, file_name, file_format):
        Path(file_name + ".mindir").write_bytes(b"half a model")
        raise Interrupted("SIGTERM")

    ckpt = tiny_checkpoint(compose_cfg, tmp_path)
    monkeypatch.setattr(ms, "export", export_then_interrupt)
    with pytest.raises(RunInterrupted, match="interrupted by SIGTERM: run .* marked KILLED"):
        run(
            compose_cfg(
                "experiment=smoke", "task=export", f"ckpt={ckpt}", f"output_dir={tmp_path / 'o'}", "tracking=off"
            )
        )
    (run_dir,) = (tmp_path / "o").glob("runs/*/*")
    assert read_state(run_dir)["status"] == "KILLED"
    export = run_dir / "export"
    assert not export.exists() or list(export.iterdir()) == []


# ---------------------------------------------------------------- real signals to real processes


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _signal_when(proc: subprocess.Popen, log: Path, text: str, sig: int, timeout: float = 240) -> str:
    """Send `sig` once `text` appears in the output, then wait; returns the whole output."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"ended before {text!r}: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"no {text!r} in {timeout} s"
        time.sleep(0.1)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return log.read_text(errors="replace")


def _one_line_exit(proc: subprocess.Popen, output: str, signal_name: str) -> None:
    assert proc.returncode == 1, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    assert f"interrupted by {signal_name}" in output, output[-3000:]


def _killed(out: Path) -> None:
    (run_dir,) = out.glob("runs/*/*")
    assert read_state(run_dir)["status"] == "KILLED"
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("facenet").experiment_id])
    assert run.info.status == "KILLED"


@pytest.mark.slow
def test_sigint_during_synthetic_generation(tmp_path):
    out, data, log = tmp_path / "out", tmp_path / "data", tmp_path / "log"
    proc = _start(
        [
            sys.executable,
            "run.py",
            "dataset.identities=4000",
            "dataset.image_size=112",
            f"output_dir={out}",
            f"data_dir={data}",
        ],
        log,
    )
    output = _signal_when(proc, log, "generating synthetic train set", signal.SIGINT)
    _one_line_exit(proc, output, "SIGINT")
    _killed(out)
    assert list(data.iterdir()) == []  # the half-made set is gone, not cached as if complete


@pytest.mark.slow
def test_sigterm_during_evaluation(tmp_path, compose_cfg):
    out, log = tmp_path / "out", tmp_path / "log"
    ckpt = tiny_checkpoint(compose_cfg, tmp_path)
    proc = _start(
        [
            sys.executable,
            "run.py",
            "experiment=smoke",
            "task=eval",
            f"ckpt={ckpt}",
            "eval.identities_per_fold=150",
            "eval.pairs_per_fold=300",
            "eval.image_size=112",
            "eval.batch_size=8",
            f"output_dir={out}",
            f"data_dir={tmp_path / 'data'}",
        ],
        log,
    )
    output = _signal_when(proc, log, "eval embeddings:", signal.SIGTERM)
    _one_line_exit(proc, output, "SIGTERM")
    _killed(out)
    (run_dir,) = out.glob("runs/*/*")
    assert not (run_dir / "eval" / "report.json").exists()


@pytest.mark.slow
def test_sigint_during_training_is_reported_as_sigint(tmp_path):
    out, log = tmp_path / "out", tmp_path / "log"
    proc = _start(
        [
            sys.executable,
            "run.py",
            "experiment=smoke",
            "train.steps_per_epoch=400",
            f"output_dir={out}",
            f"data_dir={tmp_path / 'data'}",
        ],
        log,
    )
    output = _signal_when(proc, log, "epoch 1/1:", signal.SIGINT)
    assert proc.returncode == 1 and "Traceback" not in output
    assert "stopped by SIGINT at epoch 1" in output and "SIGTERM" not in output, output[-2000:]
    _killed(out)


@pytest.mark.slow
def test_interrupted_align_names_its_output_partial(tmp_path):
    src = SHARED_DATA / "att_faces"
    if not src.is_dir():
        pytest.skip(f"real face data {src} is absent")
    dst, log = tmp_path / "aligned", tmp_path / "log"
    proc = _start([sys.executable, "-m", "facenet.cli", "align", str(src), str(dst), "--workers", "2"], log)
    output = _signal_when(proc, log, "aligning:", signal.SIGINT)
    assert proc.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert "is partial" in output and (dst / "ALIGN_INCOMPLETE").is_file()
    assert "INTERRUPTED after" in (dst / "align_report.txt").read_text()
    assert not list(dst.rglob(".*partial-*"))
    from facenet.data.index import index_folder
    from facenet.errors import DataError

    with pytest.raises(DataError, match="is a partial alignment"):
        index_folder(dst)


@pytest.mark.slow
def test_sigterm_during_embed_writes_no_output(tmp_path):
    from facenet.data.synthetic import generate_eval

    faces = generate_eval(
        str(tmp_path / "faces"),
        identities_per_fold=100,
        images_per_identity=6,
        pairs_per_fold=2,
        image_size=112,
        seed=1,
        workers=2,
    )
    out, log = tmp_path / "emb.npz", tmp_path / "log"
    proc = _start(
        [sys.executable, "-m", "facenet.cli", "embed", str(faces), "-o", str(out), "--model", "casia-webface"], log
    )
    output = _signal_when(proc, log, "embedding:", signal.SIGTERM)
    assert proc.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert "interrupted by SIGTERM: facenet embed stopped" in output
    assert list(tmp_path.glob("*.npz")) == [] and not list(tmp_path.glob(".emb*"))
