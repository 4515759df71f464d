"""How a run is to be started, as the command line says it; light enough to import before the screen."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.operator import Operator


class SessionError(Exception):
    """A run that cannot start; `lines` say why, each naming the file, line or option."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


@dataclass
class RunOptions:
    runbook: Path
    dry_run: bool = False
    rehearsal: bool = False
    speed: float = 60.0
    start_from: str | None = None
    answers: list[str] = field(default_factory=list)
    new_run: bool = False
    glide: float = 0.0
    env: Mapping[str, str] | None = None
    operator: Operator | None = None
    command: str = ""


# Said after the unset variables a run (or `check`) found: where a newcomer gets them.
UNSET_HINT = (
    "set them in the environment before the run (export NAME=...); `cockpit demo` sets them itself, "
    "against its local sandbox"
)


def precheck(path: Path, env: Mapping[str, str]) -> list[str]:
    """What keeps the runbook from opening that is cheap to see before the screen starts: the
    file, its TOML, its unset variables. The screen then never flashes up only to close again
    for these; the full validation runs once the first frame is painted."""
    import re

    from cockpit import secrets, tomlpos

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [f"{path}: no such file"]
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{path}: cannot read: {exc}"]
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        return [f"{path}:{where.group(1) if where else 1}: TOML syntax error: {message}"]
    if all(name in env for name in secrets.references(document)):
        return []
    lines = tomlpos.scan(text)  # only now: finding lines costs more than the check
    problems = []

    def walk(value: Any, key: tuple[str | int, ...]) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, (*key, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, (*key, i))
        else:
            for name in secrets.references(value):
                if name not in env:
                    problems.append(f"{path}:{lines.line_of(key)}: ${{{name}}} is not set in the environment")

    walk(document, ())
    return [*problems, UNSET_HINT] if problems else []


def quick_title(path: Path) -> str:
    """The runbook's name for the first frame, read without validating anything (that comes next)."""
    try:
        document: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        name = document.get("runbook", {}).get("name")
        return name if isinstance(name, str) else path.name
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return path.name
