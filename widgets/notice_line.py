"""Notices: one line above the keys for the latest (the history of all of them is `n`).

A toast floats over whatever is beneath it, and at 80x24 that is the rollback countdown or the
trigger strip; a notice here takes a line of its own and covers nothing. Every notice of the
session is kept, with its time, for the history screen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

# How long the latest notice stays on the line before it gives way to the count.
SHOWN_FOR = 20.0
SEVERITY_STYLE = {"error": "bold white on red", "warning": "bold black on yellow", "information": "bold"}


@dataclass(frozen=True)
class Notice:
    wall: float
    severity: str  # information | warning | error
    title: str
    message: str

    @property
    def text(self) -> str:
        return f"{self.title}: {self.message}" if self.title else self.message


class NoticeLine(Static):
    """The latest notice for a while, then how many there are and the key that lists them."""

    DEFAULT_CSS = """
    NoticeLine { height: 1; }
    """

    def show(self, notices: list[Notice], now: float | None = None) -> None:
        now = time.time() if now is None else now
        text = Text(no_wrap=True, overflow="ellipsis")
        if notices and now - notices[-1].wall < SHOWN_FOR:
            latest = notices[-1]
            text.append(f" {time.strftime('%H:%M:%S', time.localtime(latest.wall))} ", style="dim")
            text.append(f" {latest.text} ", style=SEVERITY_STYLE.get(latest.severity, "bold"))
        elif notices:
            text.append(f" {len(notices)} notice{'s' if len(notices) != 1 else ''} · n lists them", style="dim")
        self.update(text)
