"""The package's layers: imports only go down and never in a circle, the training loop stays short, the model I/O
stands alone, and every tracker is a `Tracker`."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

from facenet.tracking import MlflowTracker, NullTracker, Tracker
from tests.conftest import ROOT

# Lower layers never import higher ones: a module may import modules of its own rank or below. Models, data,
# mining, losses and metrics know nothing of training or evaluation; evaluation, export and inference know nothing
# of training; training calls evaluation, never the reverse; the entry points sit on top.
# (fmt: skip: one line per rank reads as the layer diagram it is; one key per line would hide it.)
RANKS = {
    "errors": 0, "runtime": 0, "config": 0, "interrupts": 0, "files": 0, "jobs": 0,
    "metrics": 1, "data": 1, "models": 1, "mining": 1, "losses": 1,
    "evaluation": 2, "tracking": 2, "provenance": 2, "align": 2, "sweep_plots": 2, "runs": 2, "gallery": 2, "study": 2,
    "export": 3, "inference": 3, "calibration": 3, "comparison": 3, "quantization": 3,
    "training": 4,
    "tasks": 5, "commands": 5, "sweeps": 5, "doctor": 5, "stores": 5, "__init__": 5,
    "app": 6, "cli": 6,
}  # fmt: skip
LOWER = ("metrics", "models", "data", "mining", "losses")
HIGHER = ("training", "evaluation", "app", "cli")


def _part(module: str) -> str:
    """facenet.training.setup -> training; facenet -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, modules: Collection[str] = ()) -> set[str]:
    """Every facenet module `path` imports, at top level or inside functions. `from facenet.x import y` names the
    submodule facenet.x.y when it is one of `modules` (always for `from facenet import y`), else facenet.x."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "facenet"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "facenet":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules or node.module == "facenet" else node.module)
    return found


def _modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> file of every module of the `facenet` package under `root`."""
    out = {}
    for path in (root / "facenet").rglob("*.py"):
        rel = path.relative_to(root).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at top level or inside functions (those close cycles too)."""
    modules = _modules(root)
    return {m: _imports(path, modules) - {m} for m, path in modules.items()}


def find_cycles(graph: Mapping[str, Collection[str]]) -> list[list[str]]:
    """Import cycles as [a, b, ..., a]: one per edge a depth-first walk finds back to a module still on its path,
    so at least one in every group of modules that import each other; [] if there is none."""
    cycles: list[list[str]] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if target in path:
                cycles.append([*path[path.index(target) :], target])
            elif target in graph and target not in done:
                visit(target)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node)
    return cycles


def test_every_module_has_a_layer():
    assert sorted({_part(m) for m in _modules()} - set(RANKS)) == []


def test_imports_only_go_down():
    wrong = []
    for module, targets in sorted(import_graph().items()):
        for target in sorted(targets):
            if RANKS[_part(target)] > RANKS[_part(module)]:
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_lower_layers_never_import_higher_ones():
    """The issue's rule, stated directly (the ranks above imply it)."""
    graph = import_graph()
    wrong = [f"{m} imports {t}" for m in graph if _part(m) in LOWER for t in graph[m] if _part(t) in HIGHER]
    assert wrong == []


def test_no_import_cycles():
    """Imports go one way within a layer too: no module imports, directly or through others, one that imports it
    back (an import inside a function counts: it only postpones the cycle)."""
    cycles = find_cycles(import_graph())
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_catches_a_planted_cycle(tmp_path):
    """The checker itself, on a package planted in tmp_path: a cycle closed by a function-level `from package
    import submodule` is found and named; the same package without it has none."""
    files = {
        "__init__.py": "",
        "models/__init__.py": "",
        "models/io.py": "import facenet.errors\n\ndef resolve():\n    from facenet.models import pretrained\n",
        "models/pretrained.py": "from facenet.models.io import save_model\n",
        "errors.py": "",
    }
    for name, text in files.items():
        (tmp_path / "facenet" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "facenet" / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["facenet.models.io"] == {"facenet.errors", "facenet.models.pretrained"}
    assert find_cycles(graph) == [["facenet.models.io", "facenet.models.pretrained", "facenet.models.io"]]
    (tmp_path / "facenet" / "models" / "io.py").write_text("import facenet.errors\n")
    assert find_cycles(import_graph(tmp_path)) == []
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


@pytest.mark.parametrize("module", ["facenet.inference", "facenet.export", "facenet.evaluation.checkpoint"])
def test_model_users_do_not_reach_into_training(module):
    assert not any(_part(t) == "training" for t in import_graph()[module])


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


@pytest.mark.parametrize("tracker", [NullTracker, MlflowTracker])
def test_trackers_satisfy_the_protocol(tracker):
    """Every member of `Tracker` is there, every method with the protocol's parameters (names, kinds, defaults)."""
    members = {n for n in vars(Tracker) if not n.startswith("_")} | set(Tracker.__annotations__)
    assert members >= {"run_id", "run_name", "start", "resume", "log_metrics", "log_artifact", "end"}
    for name in sorted(members):
        assert hasattr(tracker, name), f"{tracker.__name__} has no {name}"
        if callable(getattr(Tracker, name, None)):
            want, got = (inspect.signature(getattr(c, name)).parameters.values() for c in (Tracker, tracker))
            assert [(p.name, p.kind, p.default) for p in got] == [(p.name, p.kind, p.default) for p in want], name
