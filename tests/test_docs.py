"""The README is a front page and the docs hang together: links resolve, anchors exist, named tests exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_readme_is_a_front_page():
    assert (ROOT / "README.md").stat().st_size <= 12 * 1024


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_and_anchors_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert broken == []


def test_every_doc_is_reachable_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall((ROOT / "README.md").read_text())}
    assert [d.name for d in DOCS if d.resolve() not in linked] == []


def test_named_tests_exist():
    """`test_x.py::test_y` and bare `test_y` names in the docs (the bad-input table, the extension guide) name real
    tests."""
    source = {p.name: p.read_text() for p in (ROOT / "tests").glob("test_*.py")}
    everything = "\n".join(source.values())
    missing = []
    for page in PAGES:
        text = page.read_text()
        for file, name in re.findall(r"(test_\w+\.py)::(test_\w+)", text):
            if f"def {name}(" not in source.get(file, ""):
                missing.append(f"{page.name}: {file}::{name}")
        for name in re.findall(r"`(test_\w+)`", text):
            if f"def {name}(" not in everything:
                missing.append(f"{page.name}: {name}")
    assert missing == []
