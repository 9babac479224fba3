"""The package's layers: imports only go down, the training loop stays short, the model I/O stands alone."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "facenet"
# Lower layers never import higher ones: a module may import modules of its own rank or below. Models, data,
# mining, losses and metrics know nothing of training or evaluation; evaluation, export and inference know nothing
# of training; training calls evaluation, never the reverse; the entry points sit on top.
RANKS = {
    "errors": 0, "runtime": 0, "config": 0, "interrupts": 0,
    "metrics": 1, "data": 1, "models": 1, "mining": 1, "losses": 1,
    "evaluation": 2, "tracking": 2, "provenance": 2, "align": 2, "sweep_plots": 2, "runs": 2,
    "export": 3, "inference": 3, "calibration": 3, "comparison": 3,
    "training": 4,
    "app": 5, "sweeps": 5, "two_stage": 5, "cli": 5, "evaluate": 5, "doctor": 5, "__init__": 5,
}  # fmt: skip
LOWER = ("metrics", "models", "data", "mining", "losses")
HIGHER = ("training", "evaluation", "app", "cli")


def _part(module: str) -> str:
    """facenet.training.setup -> training; facenet -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    """Every facenet module `path` imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "facenet"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "facenet":
            if node.module == "facenet":  # `from facenet import sweeps`: the submodules named
                found |= {f"facenet.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return found


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def test_every_module_has_a_layer():
    assert sorted({_part(m) for m in _modules()} - set(RANKS)) == []


def test_imports_only_go_down():
    wrong = []
    for module, path in sorted(_modules().items()):
        for target in sorted(_imports(path)):
            if RANKS[_part(target)] > RANKS[_part(module)]:
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_lower_layers_never_import_higher_ones():
    """The issue's rule, stated directly (the ranks above imply it)."""
    wrong = [f"{m} imports {t}" for m, p in _modules().items() if _part(m) in LOWER
             for t in _imports(p) if _part(t) in HIGHER]  # fmt: skip
    assert wrong == []


@pytest.mark.parametrize("module", ["facenet.inference", "facenet.export", "facenet.evaluation.checkpoint"])
def test_model_users_do_not_reach_into_training(module):
    assert not any(_part(t) == "training" for t in _imports(_modules()[module]))


def test_the_layer_check_catches_an_upward_import(tmp_path):
    """The checker itself: a models module importing training is reported."""
    bad = tmp_path / "io.py"
    bad.write_text("def f():\n    from facenet.training.checkpoints import CheckpointManager\n")
    assert _imports(bad) == {"facenet.training.checkpoints"}
    assert RANKS[_part("facenet.training.checkpoints")] > RANKS[_part("facenet.models.io")]


def test_training_loop_reads_in_one_screen():
    from facenet.training.trainer import fit, train

    for fn in (fit, train):
        lines = inspect.getsource(fn).splitlines()
        assert len(lines) <= 80, f"{fn.__name__} has {len(lines)} lines: move a concern into a named function"
