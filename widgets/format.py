"""Glyphs, colours and short texts shared by the widgets."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rich.text import Text

from cockpit.clock import format_duration, format_offset, format_t_clock
from cockpit.events import StepState

if TYPE_CHECKING:
    from cockpit.engine.views import RunView, StepView

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


def fit(variants: Iterable[Text], width: int) -> Text:
    """The first variant that fits `width` cells; the last, cut with an ellipsis, if none does."""
    last = Text("")
    for last in variants:
        if last.cell_len <= width:
            return last
    last = last.copy()
    last.truncate(max(1, width), overflow="ellipsis")
    return last


def squeeze(head: Text, middle: Text, tail: Text, width: int) -> Text:
    """`head` and `tail` whole, `middle` cut with an ellipsis to make the line fit `width`.

    What an operator must act on (a step's name, the keys that answer it) sits in the head and
    the tail; a long question in the middle gives way first.
    """
    room = width - head.cell_len - tail.cell_len
    text = head.copy()
    if room >= middle.cell_len:
        text.append_text(middle)
    elif room > 1:
        cut = middle.copy()
        cut.truncate(room, overflow="ellipsis")
        text.append_text(cut)
    text.append_text(tail)
    if text.cell_len > width:
        text.truncate(max(1, width), overflow="ellipsis")
    return text


def progress_line(label: str, done: float, total: float | None, unit: str, rate: float | None, width: int = 80) -> Text:
    """`rows ███████░░░ 45% 45,000/100,000 rows  12,300 rows/s  ETA 4s`, made to fit `width`.

    The bar narrows first, then the counts shorten (45k/100k) and the units leave the rate, then
    the bar goes, then the label is cut: the percentage, the rate and the ETA always show.
    """
    eta = None
    if total and rate and rate > 0 and total > done:
        eta = format_duration((total - done) / rate)

    def variant(bar: int, short: bool, label_room: int | None, with_counts: bool = True) -> Text:
        text = Text(no_wrap=True)
        shown = label if label_room is None else _cut(label, label_room)
        if shown:
            text.append(f"{shown} ", style="bold")
        counts = _short_count if short else _count
        if total:
            fraction = max(0.0, min(1.0, done / total))
            if bar:
                filled = int(round(fraction * bar))
                text.append("█" * filled, style="cyan")
                text.append("░" * (bar - filled), style="dim")
                text.append(" ")
            text.append(f"{fraction * 100:3.0f}%" if bar else f"{fraction * 100:.0f}%")
            if with_counts:
                text.append(f" {counts(done)}/{counts(total)}" + ("" if short else f" {unit}".rstrip()))
        else:
            text.append(f"{counts(done)} {unit}".rstrip())
        if rate:
            per = f" {unit}/s" if unit and not short else "/s"
            text.append(f"  {counts(round(rate))}{per}", style="dim")
        if eta:
            text.append(f"  ETA {eta}", style="bold")
        return text

    variants = [variant(20, False, None), variant(10, False, None), variant(10, True, None), variant(0, True, None)]
    bare = variant(0, True, 0)
    room = width - bare.cell_len - 1
    if label and room >= 4:
        variants.append(variant(0, True, room))
    variants += [bare, variant(0, True, 0, with_counts=False)]
    return fit(variants, width)


def _cut(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_count(value: float) -> str:
    """`8.4k`, `1.2M`: four characters or so, for a narrow line."""
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            scaled = value / limit
            if abs(scaled) >= 100 or scaled == int(scaled):
                return f"{scaled:.0f}{suffix}"
            return f"{scaled:.1f}{suffix}"
    return _count(value)


def _count(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:,.1f}"
