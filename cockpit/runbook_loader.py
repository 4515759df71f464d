"""Reading a runbook file: every problem at once, each at the line of the offending key.

`check` returns the runbook (when sound) and every problem, warnings included; `load` returns
the runbook or raises `RunbookError` listing every error. The models are in `cockpit.runbook`,
the checks in `cockpit.runbook_checks`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cockpit import runbook_checks, runbook_parse, tomlpos
from cockpit.runbook import Problem, ProblemCollector, Runbook, RunbookError, syntax_problem
from cockpit.step import Step


def load(
    path: Path | str, kinds: Mapping[str, type[Step[Any]]] | None = None, env: Mapping[str, str] | None = None
) -> Runbook:
    """Read and validate a runbook; raise `RunbookError` listing every error."""
    runbook, problems = check(path, kinds, env)
    errors = [p for p in problems if p.severity == "error"]
    if errors or runbook is None:
        raise RunbookError(errors)
    return runbook


def check(
    path: Path | str, kinds: Mapping[str, type[Step[Any]]] | None = None, env: Mapping[str, str] | None = None
) -> tuple[Runbook | None, list[Problem]]:
    """Validate a runbook; return it (when sound) and every problem, warnings included."""
    from cockpit.registry import installed_kinds

    source = Path(path)
    if kinds is None:
        kinds = installed_kinds()
    if env is None:
        env = os.environ
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Problem(source, 0, "no such file")]
    except UnicodeDecodeError as exc:
        return None, [Problem(source, 1 + line_of_byte(source, exc.start), "not valid UTF-8")]
    except OSError as exc:
        return None, [Problem(source, 0, f"cannot read: {exc.strerror}")]
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [syntax_problem(source, exc)]
    lines = tomlpos.scan(text)
    collect = ProblemCollector(source, lines)
    parsed = runbook_parse.parse_document(document, collect, kinds, env)
    if parsed is None:
        collect.problems.sort(key=lambda p: p.line)
        return None, collect.problems
    runbook = Runbook(source=source, text=text, lines=lines, kinds=kinds, **parsed)
    runbook_checks.cross_check(runbook, collect)
    collect.problems.sort(key=lambda p: p.line)
    errors = [p for p in collect.problems if p.severity == "error"]
    warnings = tuple(p for p in collect.problems if p.severity == "warning")
    if errors:
        return None, collect.problems
    return Runbook(source=source, text=text, lines=lines, kinds=kinds, warnings=warnings, **parsed), list(
        collect.problems
    )


def line_of_byte(source: Path, offset: int) -> int:
    return source.read_bytes()[:offset].count(b"\n")
