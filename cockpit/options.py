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


def quick_title(path: Path) -> str:
    """The runbook's name for the first frame, read without validating anything (that comes next)."""
    try:
        document: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        name = document.get("runbook", {}).get("name")
        return name if isinstance(name, str) else path.name
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return path.name
