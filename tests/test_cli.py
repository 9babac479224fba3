"""`python run.py` and `facenet` as users call them: clear one-line errors, no tracebacks; one `facenet` command
per module of facenet/commands/, each registered once."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize(
    "err,limit,line",
    [
        (ValueError("  bad value\nTraceback-like detail\nmore"), None, "bad value"),
        (KeyboardInterrupt(), None, "KeyboardInterrupt"),  # no message: the type says what happened
        (RuntimeError("\n\n"), None, "RuntimeError"),
        (OSError("x" * 300), 200, "x" * 200),
        ("a message\nits second line", 3, "a m"),
        ("", None, ""),
    ],
)
def test_the_first_line_of_an_error(err, limit, line):
    from facenet.errors import first_line

    assert first_line(err, limit) == line


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


def _command_files() -> list[Path]:
    """facenet/commands/*.py but the package and its shared helpers (names starting with `_`)."""
    return sorted(p for p in (ROOT / "facenet" / "commands").glob("*.py") if not p.name.startswith("_"))


def test_every_command_module_is_registered_once_with_its_contract():
    from facenet.commands import COMMANDS

    assert sorted(c.__name__ for c in COMMANDS) == [f"facenet.commands.{p.stem}" for p in _command_files()]
    for command in COMMANDS:
        assert isinstance(command.NAME, str) and isinstance(command.HELP, str), command.__name__
        assert callable(command.add_arguments) and callable(command.run), command.__name__
    assert len({c.NAME for c in COMMANDS}) == len(COMMANDS)


def test_the_parser_is_built_from_the_registry():
    from facenet.cli import build_parser
    from facenet.commands import COMMANDS

    (sub,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == [c.NAME for c in COMMANDS]
    assert all(sub.choices[c.NAME].get_default("run") is c.run for c in COMMANDS)


def test_help_lists_every_command(monkeypatch, capsys):
    from facenet.cli import main
    from facenet.commands import COMMANDS

    monkeypatch.setenv("COLUMNS", "200")  # one line per command
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    lines = [line.split(None, 1) for line in capsys.readouterr().out.splitlines()]
    assert all([c.NAME, c.HELP] in lines for c in COMMANDS)


def test_commands_do_not_import_the_hydra_tasks():
    """A command uses the library; `facenet.app` and `facenet.tasks` are the Hydra run's entry points."""
    for path in (ROOT / "facenet" / "commands").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):  # `from facenet import app` names the module in `names`
                names += [f"facenet.{a.name}" for a in node.names] if node.module == "facenet" else [node.module or ""]
            assert not [n for n in names if n.split(".")[:2] in (["facenet", "app"], ["facenet", "tasks"])], path
