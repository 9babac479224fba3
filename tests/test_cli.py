"""`python run.py` as users call it: clear one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


def run_cli(*args: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run.py", f"output_dir={tmp_path}", f"data_dir={tmp_path / 'data'}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,message",
    [
        (["lrr=0.1"], "Key 'lrr' not in 'Config'"),
        (["epochs=ten"], "Value 'ten' of type 'str' could not be converted to Integer"),
        (["hardware=gpu", "experiment=smoke"], "cannot use hardware.device=GPU"),
        (
            ["dataset=folder", "dataset.root=/no/such/dir", "eval.pairs_per_fold=1", "eval.identities_per_fold=2"],
            "does not exist",
        ),
    ],
)
def test_cli_errors_are_clear(tmp_path, args, message):
    proc = run_cli(*args, tmp_path=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("preset,expected", [(None, "AVX2"), ("AVX512_CORE", "AVX512_CORE")])
def test_onednn_isa_set_before_mindspore_unless_user_set_it(preset, expected):
    import os

    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    if preset:
        env["ONEDNN_MAX_CPU_ISA"] = preset
    code = "import os, facenet.runtime; print(os.environ['ONEDNN_MAX_CPU_ISA'])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == expected
