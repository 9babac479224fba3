"""A run from the repository root leaves `git status` clean: what runs and MindSpore write there is ignored."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _git(*args: str, cwd) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.mark.slow
def test_smoke_run_in_the_repository_root_leaves_git_status_clean(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    repo = tmp_path / "repo"
    # the working tree as it would be committed: tracked files plus new ones that are not ignored
    for name in _git("ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=ROOT).split("\0"):
        if name and (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    _git("init", "-q", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "snapshot", cwd=repo)
    proc = subprocess.run(
        [sys.executable, "run.py", "experiment=smoke"], cwd=repo, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (repo / "outputs" / "mlflow.db").exists()  # the run did write into the root
    assert _git("status", "--porcelain", cwd=repo) == ""
