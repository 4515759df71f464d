"""The history of the session's notices (`n`), newest first."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from widgets.notice_line import SEVERITY_STYLE, Notice
from widgets.screens.full_screen import FullScreen


class NoticesScreen(FullScreen):
    """Every notice of this session, newest first."""

    DEFAULT_CSS = """
    NoticesScreen DataTable { height: 1fr; }
    """
    BINDINGS = [Binding("escape,q,n", "close", "Back")]

    def __init__(self, notices: list[Notice]) -> None:
        super().__init__()
        self.notices = notices

    def compose_body(self) -> ComposeResult:
        yield Static(Text(" Notices of this session, newest first", style="bold"), classes="title")
        yield DataTable(id="notices", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("time", key="time", width=8)
        table.add_column("", key="severity", width=7)
        table.add_column("notice", key="notice")
        self.show_notices(self.notices)
        table.focus()

    def show_notices(self, notices: list[Notice]) -> None:
        self.notices = notices
        table = self.query_one(DataTable)
        table.clear()
        for notice in reversed(notices):
            style = SEVERITY_STYLE.get(notice.severity, "")
            table.add_row(
                time.strftime("%H:%M:%S", time.localtime(notice.wall)),
                Text(notice.severity[:7], style=style),
                notice.text,
            )
        if not notices:
            table.add_row("", "", Text("no notices yet", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
