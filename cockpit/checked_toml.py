"""A TOML file validated by a pydantic model, every problem at its file:line.

The runbook's companions (the mapping file, a resolvers file) are read the way the runbook is:
an unreadable file, a syntax error or a field that fails its model becomes a `Problem` naming
the line, and the caller's error type carries the list.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from cockpit import tomlpos
from cockpit.runbook import Problem, ProblemCollector, syntax_problem

Model = TypeVar("Model", bound=BaseModel)


class ProblemsError(ValueError):
    """Problems found in a file, each with its line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_checked(
    path: Path, model: type[Model], what: str, error: type[ProblemsError] = ProblemsError
) -> tuple[Model, ProblemCollector]:
    """The file parsed by `model`, and a collector (with the file's key lines) for the caller's
    own checks; `error` listing every problem when the file cannot be read, parsed or validated."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error([Problem(path, 0, f"cannot read the {what}: {exc.strerror}")]) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error([syntax_problem(path, exc)]) from None
    collect = ProblemCollector(path, tomlpos.scan(text))
    try:
        return model.model_validate(document), collect
    except ValidationError as exc:
        collect.validation(exc, (), "", model)
        raise error(collect.problems) from None
