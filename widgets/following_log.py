"""A Log that keeps its newest line in sight when it is made smaller.

Textual's Log scrolls to a new line only when it showed the last one already. When the head
above it grows (a progress bar appears, a gate line), the log gets shorter while its scroll
position stays: the last line falls out of sight and every later line is written out of sight
too. This one remembers whether the operator was at the end, and goes back there on a resize.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Log


class FollowingLog(Log):
    def __init__(self, *, max_lines: int, auto_scroll: bool, id: str) -> None:  # noqa: A002 - Textual's name
        super().__init__(max_lines=max_lines, auto_scroll=auto_scroll, id=id)
        self.at_end = True

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        # Moved by the operator or by a write: either way, where the view now is.
        self.at_end = new_value >= self.max_scroll_y

    def on_resize(self, event: events.Resize) -> None:
        if self.at_end:
            self.call_after_refresh(self.scroll_end, animate=False, x_axis=False)
