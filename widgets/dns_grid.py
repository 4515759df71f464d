"""DNS propagation on screen: the one-line summary of the main screen, and the rows of the full
grid that its own screen shows (`g`, widgets/screens/dns.py). Both draw the `dns.propagation`
reports that the step publishes; they never query anything themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.widgets import Static

from widgets.format import fit

# One glyph and style per state: the history column is a row of them, oldest first.
STATE_STYLE: dict[str, tuple[str, str]] = {
    "new": ("●", "bold green"),
    "old": ("○", "yellow"),
    "other": ("◆", "magenta"),
    "nxdomain": ("∅", "red"),
    "servfail": ("!", "bold red"),
    "refused": ("⊘", "red"),
    "timeout": ("…", "dim"),
    "error": ("✖", "red"),
}
HISTORY_WIDTH = 8


def _local_time(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return "-"


def summary_text(report: dict[str, Any], *, with_hint: bool = True, width: int = 1000) -> Text:
    """`DNS app.example.com A 4/6 → 198.51.100.20 · 2 silent · auth 1/1 #2 · ETA 23:41:05`.

    The count is of resolvers answering the value the check expects, named: in a rollback that
    is v1's address again, and "new" would read as the opposite. #2 is the SOA serial. Made to
    fit `width`: the hint goes first, then the name (the grid has it), then the silent count.
    """
    summary = report.get("summary") or {}
    held = summary.get("held")
    expect = ", ".join(report.get("expect") or [])

    def variant(hint: bool, name: bool, silent_count: bool) -> Text:
        text = Text(no_wrap=True)
        text.append(" DNS ", style="bold white on green" if held else "bold black on yellow")
        text.append(f" {report.get('name', '?')} {report.get('type', '')} " if name else f" {report.get('type', '')} ")
        new, counted = summary.get("new", 0), summary.get("counted", 0)
        text.append(f"{new}/{counted} → {expect or '?'}", style="bold green" if held else "bold")
        silent = summary.get("eligible", 0) - counted
        if silent and silent_count:
            text.append(f" · {silent} silent", style="dim")
        if summary.get("authoritative"):
            serials = sorted({s for s in summary.get("serials") or [] if s is not None})
            text.append(f" · auth {summary.get('authoritative_new', 0)}/{summary['authoritative']}")
            text.append(
                " #" + ("/".join(map(str, serials)) if serials else "?"),
                style="" if summary.get("serials_agree") else "bold red",
            )
        if held:
            text.append(" · holds", style="green")
        elif summary.get("eta"):
            text.append(f" · ETA {_local_time(summary['eta'])}")
        if hint:
            text.append("  g grid", style="dim")
        return text

    variants = [variant(True, True, True)] if with_hint else []
    variants += [variant(False, True, True), variant(False, False, True), variant(False, False, False)]
    return fit(variants, width)


class DnsStrip(Static):
    """The main screen's line for the latest propagation check; hidden until there is one."""

    DEFAULT_CSS = """
    DnsStrip { height: 1; background: $boost; display: none; }
    DnsStrip.-shown { display: block; }
    """

    def show(self, report: dict[str, Any] | None) -> None:
        self.set_class(report is not None, "-shown")
        if report is not None:
            self.update(summary_text(report, width=self.size.width or 80))


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _ago(iso: str | None, now: float) -> str:
    if not iso:
        return "-"
    try:
        seconds = max(0, int(now - datetime.fromisoformat(iso).timestamp()))
    except ValueError:
        return "-"
    return f"{seconds}s" if seconds < 100 else f"{seconds // 60}m" if seconds < 6000 else f"{seconds // 3600}h"


def grid_row(server: dict[str, Any], now: float, answer_width: int = 16, name_width: int = 11) -> list[Text | str]:
    """One server; at 80 columns the seven columns fit with an answer of 16 characters."""
    state = server.get("state") or "-"
    style = STATE_STYLE.get(state, ("?", ""))[1]
    shown_state = Text(state, style=style)
    if server.get("filtering"):
        shown_state.append("*", style="dim")
    answer = ", ".join(server.get("answer") or []) or server.get("detail") or ""
    if server.get("serial") is not None:
        answer = f"#{server['serial']} {answer}"
    history = Text(no_wrap=True)
    for change in (server.get("history") or [])[-HISTORY_WIDTH:]:
        glyph, glyph_style = STATE_STYLE.get(change.get("state", ""), ("?", ""))
        history.append(glyph, style=glyph_style)
    ttl = server.get("ttl")
    port = server.get("port", 53)
    address = server.get("address", "") + ("" if port == 53 else f":{port}")
    return [
        _fit(server.get("name", ""), name_width),
        _fit(address, 16),
        _fit(answer, answer_width),
        "" if ttl is None else str(ttl),
        shown_state,
        _ago(server.get("checked"), now),
        history,
    ]
