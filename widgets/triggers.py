"""The trigger strip: the rollback countdown and position first, then every trigger, fired ones
first; the triggers that do not fit are counted (`+2`), never silently dropped."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from cockpit.clock import format_duration

if TYPE_CHECKING:
    from cockpit.engine.views import RunView, TriggerView

ENDED = ("done", "rolled_back", "abandoned")


def rollback_text(view: RunView) -> Text:
    """` ROLLBACK  9m54s left  step 3/5 dns-back `: the part of the strip nothing may cut."""
    text = Text(no_wrap=True)
    rollback = view.rollback
    if rollback is None or rollback.awaiting_confirmation:
        return text
    if rollback.finished:
        text.append(" ROLLED BACK ", style="bold red")
        return text
    text.append(" ROLLBACK ", style="bold white on red")
    if rollback.deadline is not None:
        left = rollback.deadline - view.now
        if left.total_seconds() >= 0:
            text.append(f" {format_duration(left)} left ", style="bold red")
        else:
            text.append(f" deadline passed {format_duration(-left)} ago ", style="bold white on red")
    if rollback.plan:
        position = min(rollback.position, len(rollback.plan) - 1)
        text.append(f" step {position + 1}/{len(rollback.plan)} {rollback.plan[position]} ", style="bold")
    return text


def _trigger_text(trigger: TriggerView, ended: bool) -> Text:
    if trigger.fired:
        return Text(f"✖ {trigger.id} ", style="bold red")
    if ended:
        return Text(f"○ {trigger.id} ", style="dim")
    text = Text("● ", style="green")
    text.append(f"{trigger.id} ")
    return text


def strip_text(view: RunView, width: int) -> Text:
    text = rollback_text(view)
    if not text:
        text.append(" triggers ", style="bold")
    text.append(" ")
    ended = view.state in ENDED
    ordered = sorted(view.triggers, key=lambda t: not t.fired)  # fired first, then in runbook order
    for index, trigger in enumerate(ordered):
        item = _trigger_text(trigger, ended)
        left = len(ordered) - index - 1
        more = f"+{left}" if left else ""
        if text.cell_len + item.cell_len + len(more) <= width:
            text.append_text(item)
            continue
        text.append(
            f"+{len(ordered) - index}", style="bold yellow" if any(t.fired for t in ordered[index:]) else "bold"
        )
        break
    return text


class TriggerStrip(Static):
    DEFAULT_CSS = """
    TriggerStrip { height: 1; background: $boost; }
    """

    def show(self, view: RunView) -> None:
        self.update(strip_text(view, self.size.width or 80))
