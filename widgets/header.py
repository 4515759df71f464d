"""The top line: LIVE / REHEARSAL / DRY RUN, the T-clock, the window, the run's state, follow."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from cockpit.clock import format_duration
from widgets.format import mode_label, run_state_label, t_clock

if TYPE_CHECKING:
    from cockpit.engine.views import RunView


def window_text(view: RunView) -> Text:
    """`window opens in 2h05m`, `window 18m02s left`, `window OVER by 3m`, `window closed`."""
    if view.window_start is None or view.window_end is None:
        return Text("")
    window_phase = next((p for p in view.phases if p.window), None)
    finished = window_phase is not None and all(view.steps[s].state.terminal for s in window_phase.step_ids)
    if finished or view.state in ("done", "rolled_back", "abandoned"):  # nothing more runs in it
        return Text("window closed", style="green")
    if view.now < view.window_start:
        return Text(f"window opens in {format_duration(view.window_start - view.now)}", style="dim")
    left = view.window_end - view.now
    if left.total_seconds() >= 0:
        style = "bold yellow" if left.total_seconds() < 300 else "bold"
        return Text(f"window {format_duration(left)} left", style=style)
    return Text(f"window OVER by {format_duration(-left)}", style="bold white on red")


class StatusHeader(Static):
    DEFAULT_CSS = """
    StatusHeader { height: 1; background: $panel; color: $foreground; }
    """

    def show_loading(self, title: str) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {title}", style="bold")
        text.append("  validating the runbook and opening its run…", style="dim")
        self.update(text)

    def show(self, view: RunView, *, following: bool = True) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" ")
        text.append_text(mode_label(view))
        text.append(" ")
        text.append(t_clock(view.now, view.t0), style="bold")
        text.append("  ")
        text.append_text(window_text(view))
        text.append("  ")
        text.append_text(run_state_label(view))
        if not following:
            text.append("  follow off: f", style="bold cyan")
        text.append(f"  {view.name}", style="dim")
        self.update(text)


class TopBars(Vertical):
    """The header and the "what now" line, docked at the top of every screen: an enlarged log
    (a maximized widget is laid out first) leaves them on top too."""

    DEFAULT_CSS = """
    TopBars { dock: top; height: 2; }
    """

    def __init__(self) -> None:
        super().__init__()
        from widgets.what_now import WhatNow

        self.header = StatusHeader()
        self.what_now = WhatNow()

    def compose(self) -> ComposeResult:
        yield self.header
        yield self.what_now
