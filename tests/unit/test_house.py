"""The rules of the house that no linter checks: files stay short, and no module reads another
class's private attribute."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("cockpit", "steps", "widgets", "bench")
MAX_LINES = 520  # "about 500": split a file before it grows past this
# Underscored names that are documented API: the exit that runs no cleanup, after a fork.
DOCUMENTED = {"os._exit"}


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_every_file_stays_under_about_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _sources(*PRODUCT, "tests")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these files: {long}"


def private_reads(source: str) -> list[str]:
    """`x._name` where x is neither self nor cls: a reach into another object's insides."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__"):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
            continue  # the class's own, inherited: an override calling its base
        if ast.unparse(node) in DOCUMENTED:
            continue
        found.append(f"{ast.unparse(node)} (line {node.lineno})")
    return found


def test_no_module_reads_another_objects_private_attribute() -> None:
    reads = {str(p.relative_to(ROOT)): found for p in _sources(*PRODUCT) if (found := private_reads(p.read_text()))}
    assert not reads, reads


def test_the_private_read_check_sees_one() -> None:
    assert private_reads("def f(engine):\n    return engine._steps\n") == ["engine._steps (line 2)"]
    assert private_reads("class A:\n    def f(self):\n        return self._x\n") == []
