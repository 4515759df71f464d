"""A step's log as the screen shows it: each line with its time, a rule between attempts.

The journal holds every line with its attempt and wall time; the screen keeps the last
`MAX_LOG_LINES` of each step and turns them into text here, so that a retried step reads as
two runs, not one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

# The screen keeps this many lines per step; the journal keeps them all (`cockpit status --log`).
MAX_LOG_LINES = 2000


@dataclass(frozen=True)
class LogLine:
    attempt: int
    wall: float
    text: str


def clock_time(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall))


def attempt_rule(attempt: int, wall: float) -> str:
    return f"──────── attempt {attempt} · {clock_time(wall)} ────────"


class StepLogLines:
    """The last lines of one step, and how they read on screen."""

    def __init__(self) -> None:
        self.lines: deque[LogLine] = deque(maxlen=MAX_LOG_LINES)

    def extend(self, lines: Iterable[LogLine]) -> list[str]:
        """Keep the lines; return them as the screen appends them (with a rule where the attempt changes)."""
        shown: list[str] = []
        last = self.lines[-1].attempt if self.lines else None
        for line in lines:
            shown += render_lines([line], previous_attempt=last)
            last = line.attempt
            self.lines.append(line)
        return shown

    def render(self) -> list[str]:
        return render_lines(self.lines)

    def __len__(self) -> int:
        return len(self.lines)


def render_lines(lines: Iterable[LogLine], previous_attempt: int | None = None) -> list[str]:
    shown: list[str] = []
    last = previous_attempt
    for line in lines:
        if line.attempt != last and (last is not None or line.attempt > 1):
            shown.append(attempt_rule(line.attempt, line.wall))
        last = line.attempt
        shown.append(f"{clock_time(line.wall)} {line.text}")
    return shown
