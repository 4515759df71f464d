"""The trigger strip: every rollback trigger, armed or fired, and the rollback countdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from cockpit.clock import format_duration

if TYPE_CHECKING:
    from cockpit.runtime import RunView


class TriggerStrip(Static):
    DEFAULT_CSS = """
    TriggerStrip { height: 1; background: $boost; }
    """

    def show(self, view: RunView) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        rollback = view.rollback
        if rollback is not None and not rollback.finished and not rollback.awaiting_confirmation:
            text.append(" ROLLBACK ", style="bold white on red")
            if rollback.deadline is not None:
                left = rollback.deadline - view.now
                if left.total_seconds() >= 0:
                    text.append(f" {format_duration(left)} left ", style="bold red")
                else:
                    text.append(f" deadline passed {format_duration(-left)} ago ", style="bold white on red")
            if rollback.plan:
                current = rollback.plan[min(rollback.position, len(rollback.plan) - 1)]
                text.append(f" step {min(rollback.position + 1, len(rollback.plan))}/{len(rollback.plan)} "
                            f"{current} ")
            text.append(" ")
        elif rollback is not None and rollback.finished:
            text.append(" ROLLED BACK ", style="bold red")
            text.append(" ")
        else:
            text.append(" triggers ", style="bold")
        # Fired triggers first: at 80 columns the end of the strip may be cut off.
        for trigger in sorted(view.triggers, key=lambda t: not t.fired):
            if trigger.fired:
                text.append(f"✖ {trigger.id} ", style="bold red")
            elif view.state in ("done", "rolled_back", "abandoned"):
                text.append(f"○ {trigger.id} ", style="dim")
            else:
                text.append("● ", style="green")
                text.append(f"{trigger.id} ")
        self.update(text)
