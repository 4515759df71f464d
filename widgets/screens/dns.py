"""The DNS propagation grid on its own screen (`g`): every resolver and authoritative server
with its answer, TTL left, state, when it was last checked and the history of its states."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from widgets.dns_grid import grid_row, summary_text
from widgets.screens.full_screen import FullScreen


class DnsScreen(FullScreen):
    """The propagation grid, updated live by the app with each report."""

    DEFAULT_CSS = """
    DnsScreen #dns-title { height: auto; background: $boost; padding: 0 1; }
    DnsScreen #dns-summary { height: 1; }
    DnsScreen DataTable { height: 1fr; }
    """
    BINDINGS = [Binding("escape,q,g,f4", "close", "Back")]
    COLUMNS = ("resolver", "address", "answer", "TTL", "state", "ago", "history")

    def __init__(self, report: dict[str, Any] | None) -> None:
        super().__init__()
        self.report = report

    def compose_body(self) -> ComposeResult:
        yield Static(id="dns-title")
        yield Static(id="dns-summary")
        table: DataTable[Any] = DataTable(id="dns-grid", zebra_stripes=True, cursor_type="row")
        yield table

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in self.COLUMNS:
            table.add_column(column, key=column)
        self.show(self.report)
        table.focus()
        self.set_interval(1.0, lambda: self.show(self.report))  # the "ago" column counts up

    def show(self, report: dict[str, Any] | None) -> None:
        self.report = report
        title = self.query_one("#dns-title", Static)
        table = self.query_one(DataTable)
        if report is None:
            title.update(Text("No propagation check has run yet.", style="dim"))
            table.clear()
            return
        expect = ", ".join(report.get("expect") or [])
        old = ", ".join(report.get("old") or []) or "?"
        require = report.get("require") or {}
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"{report.get('name')} {report.get('type')}", style="bold")
        line.append(f"  new = {expect} (expected)  old = {old}  round {report.get('round', '?')}")
        if require:
            line.append(
                f"  require auth {require.get('authoritative')}, {float(require.get('resolvers', 0)):.0%} of resolvers",
                style="dim",
            )
        title.update(line)
        summary = report.get("summary") or {}
        status = summary_text(report, with_hint=False, width=self.size.width or 80)
        if summary.get("reason"):
            status.append(f" · {summary['reason']}", style="dim")
        self.query_one("#dns-summary", Static).update(status)
        keep = table.cursor_row
        table.clear()
        now = time.time()
        # What the screen has beyond 80 columns goes to the names, then to the answers.
        extra = max(0, (self.size.width or 80) - 80)
        name_width = 11 + min(extra, 13)
        answer_width = 16 + extra - (name_width - 11)
        for server in report.get("resolvers") or []:
            table.add_row(*grid_row(server, now, answer_width, name_width))
        authoritative = report.get("authoritative") or []
        if authoritative:
            table.add_row(Text("authorit.", style="bold"), Text("recursion off", style="dim"), "", "", "", "", "")
            for server in authoritative:
                table.add_row(*grid_row(server, now, answer_width, name_width))
        if table.row_count:
            table.move_cursor(row=min(keep, table.row_count - 1))

    def action_close(self) -> None:
        self.dismiss(None)
