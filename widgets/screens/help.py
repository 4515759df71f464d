"""The help screen (`?`): every key, and what the glyphs mean."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from widgets.format import GLYPHS, NOT_RUN
from widgets.screens.full_screen import FullScreen

KEYS = [
    ("↑ ↓  enter", "select a step; enter answers its gate"),
    ("a  F2", "answer the selected (or first) waiting gate: question, start, checklist"),
    ("s  F5", "start the selected step now (asks first; needs must have succeeded)"),
    (
        "r  F6",
        "retry a failed, cancelled or interrupted step (offered only then; some kinds resume from "
        "their checkpoint, the others start over)",
    ),
    ("k  F7", "skip a step (asks a reason)"),
    ("d  F8", "mark a step done without running it (asks a reason)"),
    ("x", "cancel the selected step (asks first)"),
    ("p", "pause / resume the run: no new step starts while paused"),
    ("b  F9", "roll back (asks first; past a point of no return, type ROLLBACK)"),
    ("f", "follow: select each step as it starts (on by default)"),
    ("l", "enlarge the selected step's log / restore (escape restores too)"),
    ("/", "search the selected step's log: only the lines that contain the text (escape clears)"),
    ("w", "write the selected step's whole log to a file (logs/ beside the runbook)"),
    ("n", "every notice of this session, newest first"),
    ("g  F4", "the DNS propagation grid: every resolver's answer, TTL, state and history"),
    ("t  F3", "the sixty days: each phase's date and progress, overdue, the operator's, the next 24h"),
    ("ctrl+p", "the palette of every action"),
    ("?  F1", "this help"),
    ("ctrl+q  F10", "quit (asks while steps run; they resume as interrupted)"),
]


def help_text() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, what in KEYS:
        table.add_row(key, what)
    table.add_row("", "")
    for state, (char, style) in GLYPHS.items():
        table.add_row(Text(char, style=style), state.value)
    table.add_row(Text(NOT_RUN[0], style=NOT_RUN[1]), "not run (a dry run only describes mutate and notify steps)")
    table.add_row(Text("⚠", style="yellow"), "point of no return: a rollback after it asks you to type ROLLBACK")
    table.add_row("", "")
    table.add_row(
        Text("⚑", style="bold yellow"), "the line under the header: what waits for you, and the keys that answer it"
    )
    return table


class HelpScreen(FullScreen):
    DEFAULT_CSS = """
    HelpScreen > VerticalScroll { height: 1fr; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def compose_body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("Cutover cockpit: keys", style="bold"))
            yield Static(help_text())
            yield Static(Text("Everything you do is journaled with your name; `cockpit status` shows it.", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
