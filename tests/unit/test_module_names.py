"""No file of the project shadows a package it depends on, or the standard library.

A script's own folder comes first on `sys.path` (bench/), as do the repository's root and the
test folders under pytest: a `dns.py` there is what `import dns` finds, instead of dnspython,
and the failure surfaces far away, as a circular import inside the cockpit.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = {"cockpit", "steps", "widgets", "bench", "tests"}


def _folders_first_on_the_path() -> list[Path]:
    tests = ROOT / "tests"
    return [ROOT, ROOT / "bench", tests] + sorted(p for p in tests.iterdir() if p.is_dir())


def _module_names(folder: Path) -> dict[str, Path]:
    """What `import NAME` would find in `folder`: modules, and packages with an __init__.py (a
    folder without one is a namespace portion, which never shadows a regular package)."""
    names = {}
    for entry in folder.iterdir():
        if entry.suffix == ".py" or (entry.is_dir() and (entry / "__init__.py").exists()):
            names[entry.stem if entry.suffix == ".py" else entry.name] = entry
    return names


def _taken_names() -> set[str]:
    installed = set(importlib.metadata.packages_distributions())
    return (installed | set(sys.stdlib_module_names)) - PROJECT_PACKAGES


def test_no_module_of_the_project_shadows_a_dependency_or_the_standard_library() -> None:
    taken = _taken_names()
    shadowing = [
        str(path.relative_to(ROOT))
        for folder in _folders_first_on_the_path()
        for name, path in _module_names(folder).items()
        if name in taken
    ]
    assert shadowing == []


def test_the_check_knows_the_names_that_matter() -> None:
    taken = _taken_names()
    assert {"dns", "httpx", "psycopg", "textual", "click", "json", "email"} <= taken
    assert "run_all" in _module_names(ROOT / "bench") and "conftest" in _module_names(ROOT / "tests")
