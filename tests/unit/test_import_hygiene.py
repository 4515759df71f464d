"""The core never imports the screen: every module but cockpit.app and cockpit.cli runs without textual."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREEN_MODULES = {"cockpit.app", "cockpit.cli", "cockpit.__main__"}


def _modules() -> list[str]:
    names = ["cockpit", "steps"]
    for package in ("cockpit", "steps"):
        for info in pkgutil.walk_packages([str(ROOT / package)], f"{package}."):
            names.append(info.name)
    return sorted(n for n in names if n not in SCREEN_MODULES)


@pytest.mark.parametrize("module", _modules())
def test_core_module_does_not_pull_in_textual(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'widgets')));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, f"{module} imports {result.stdout.strip()} {result.stderr[-500:]}"


def test_the_list_of_core_modules_is_not_empty() -> None:
    modules = _modules()
    assert "cockpit.engine" in modules and "cockpit.journal" in modules and "steps.postgres.sql" in modules


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:]
    for contract in (
        "The core and the step kinds run without the screen",
        "Step kinds reach the cockpit only through its plugin API",
        "The core finds step kinds by entry point, never by name",
        "Nothing in the product depends on the sandbox",
        "No import cycles among the project's modules",
    ):
        assert f"{contract} KEPT" in result.stdout
