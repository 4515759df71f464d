"""The sixty days (`t`): every phase with its date and progress, what is overdue, what waits
for the operator and what the next 24 hours hold; follows the run as it moves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from widgets.screens.full_screen import FullScreen
from widgets.timeline import timeline_lines

if TYPE_CHECKING:
    from cockpit.engine.views import RunView
    from cockpit.plan import Plan
    from cockpit.runbook import Runbook


class TimelineScreen(FullScreen):
    DEFAULT_CSS = """
    TimelineScreen VerticalScroll { height: 1fr; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,t,f3", "close", "Back")]

    def __init__(self, runbook: Runbook, plan: Plan) -> None:
        super().__init__()
        self._runbook, self._plan = runbook, plan

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="timeline")

    def follow(self, view: RunView) -> None:
        width = max(40, (self.size.width or 80) - 2)
        lines = timeline_lines(view, self._runbook, self._plan, width)
        text = Text("\n", no_wrap=True, overflow="ellipsis").join(lines)
        self.query_one("#timeline", Static).update(text)

    def action_close(self) -> None:
        self.dismiss(None)
