"""Glyphs, colours and short texts shared by the widgets."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rich.text import Text

from cockpit.clock import format_duration, format_offset, format_t_clock
from cockpit.events import StepState

if TYPE_CHECKING:
    from cockpit.runtime import RunView, StepView

GLYPHS = {
    StepState.SCHEDULED: ("·", "dim"),
    StepState.READY: ("○", "cyan"),
    StepState.RUNNING: ("▶", "bold cyan"),
    StepState.SUCCEEDED: ("✔", "green"),
    StepState.FAILED: ("✘", "bold red"),
    StepState.SKIPPED: ("↷", "dim"),
    StepState.CANCELLED: ("⊘", "yellow"),
    StepState.WAITING: ("?", "bold yellow"),
    StepState.INTERRUPTED: ("!", "bold magenta"),
}
NOT_RUN = ("◌", "dim italic")

RUN_STATE_STYLE = {
    "running": "bold green",
    "paused": "bold yellow",
    "rolling_back": "bold white on red",
    "rolled_back": "bold red",
    "done": "bold green",
    "abandoned": "dim",
}


def glyph(step: StepView) -> Text:
    if step.not_run:
        return Text(NOT_RUN[0], style=NOT_RUN[1])
    char, style = GLYPHS[step.state]
    return Text(char, style=style)


def state_label(step: StepView) -> Text:
    if step.not_run:
        return Text("not run (dry run)", style="dim italic")
    char, style = GLYPHS[step.state]
    return Text(step.state.value, style=style)


def duration(value: timedelta | None) -> str:
    return "" if value is None else format_duration(value, precise=True)


def offset(value: timedelta | None) -> str:
    return "" if value is None else format_offset(value)


def t_clock(now: datetime, t0: datetime) -> str:
    return format_t_clock(now, t0)


def mode_label(view: RunView) -> Text:
    if view.dry_run:
        return Text(" DRY RUN ", style="bold black on cyan")
    if view.mode == "rehearsal":
        return Text(f" REHEARSAL {view.speed:g}× ", style="bold black on yellow")
    return Text(" LIVE ", style="bold white on red")


def run_state_label(view: RunView) -> Text:
    state = "paused" if view.paused and view.state == "running" else view.state
    return Text(f" {state.replace('_', ' ').upper()} ", style=RUN_STATE_STYLE.get(state, "bold"))


def progress_line(label: str, done: float, total: float | None, unit: str, rate: float | None,
                  width: int = 20) -> Text:
    """`rows ███████░░░ 45% 45,000/100,000 12,300/s ETA 4s` as one line."""
    text = Text()
    if label:
        text.append(f"{label} ", style="bold")
    if total:
        fraction = max(0.0, min(1.0, done / total))
        filled = int(round(fraction * width))
        text.append("█" * filled, style="cyan")
        text.append("░" * (width - filled), style="dim")
        text.append(f" {fraction * 100:3.0f}% ")
        text.append(f"{_count(done)}/{_count(total)} {unit}".rstrip())
    else:
        text.append(f"{_count(done)} {unit}".rstrip())
    if rate:
        text.append(f"  {_count(round(rate))} {unit}/s".rstrip(), style="dim")
        if total and rate > 0 and total > done:
            text.append(f"  ETA {format_duration((total - done) / rate)}", style="dim")
    return text


def _count(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:,.1f}"
