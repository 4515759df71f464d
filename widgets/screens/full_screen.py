"""A view that takes the whole terminal (the DNS grid, help, notices) but keeps the header, the
"what now" line and the latest notice: a question asked while the operator reads the grid is
seen there, not missed. The app paints those lines on every screen of its stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from widgets.header import TopBars
from widgets.notice_line import NoticeLine

if TYPE_CHECKING:
    from cockpit.engine.views import RunView


class FullScreen(Screen[None]):
    DEFAULT_CSS = """
    FullScreen { layout: vertical; }
    FullScreen .title { height: 1; background: $boost; }
    """

    def compose(self) -> ComposeResult:
        yield TopBars()
        yield from self.compose_body()
        yield NoticeLine()
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError
        yield

    def follow(self, view: RunView) -> None:
        """A new view of the run; a screen that shows more than the header follows it here."""
