"""The selected step: what it is, where it stands, its progress bars and the tail of its log."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Log, Static

from widgets.format import duration, glyph, progress_line, state_label

if TYPE_CHECKING:
    from cockpit.runtime import RunView, StepView

# The screen keeps this many lines per step; the journal keeps them all (`cockpit status --log`).
MAX_LOG_LINES = 2000


def describe(step: StepView) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append_text(glyph(step))
    text.append(f" {step.title}", style="bold")
    text.append(f"  {step.id} · {step.kind} · {step.effect}", style="dim")
    return text


def status_line(step: StepView) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append_text(state_label(step))
    if step.attempt:
        text.append(f"  attempt {step.attempt}", style="dim")
    if step.elapsed is not None:
        text.append(f"  took {duration(step.elapsed)}")
        if step.budget is not None:
            text.append(f" of {duration(step.budget)}", style="dim")
    elif step.budget is not None:
        text.append(f"  budget {duration(step.budget)}", style="dim")
    if step.late_by is not None and step.late_by.total_seconds() >= 0.5:
        text.append(f"  {duration(step.late_by)} late", style="bold red")
    if step.needs:
        text.append(f"  needs {', '.join(step.needs)}", style="dim")
    return text


class StepPanel(Vertical):
    DEFAULT_CSS = """
    StepPanel { height: 1fr; border-top: solid $primary-darken-2; }
    StepPanel #step-head { height: 1; max-height: 8; text-wrap: nowrap; text-overflow: ellipsis; }
    StepPanel Log { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        self._head = Static(id="step-head")
        self._log = Log(max_lines=MAX_LOG_LINES, auto_scroll=True, id="step-log")
        yield self._head
        yield self._log

    def show(self, step: StepView | None, view: RunView) -> None:
        head = self._head
        if not head.is_mounted:
            return
        if step is None:
            head.styles.height = 1
            head.update(Text("Select a step (↑/↓) to see its progress and log.", style="dim"))
            return
        parts: list[Text] = [describe(step), status_line(step)]
        if step.gate is not None:
            gate = step.gate
            line = Text(f"⚑ {gate.question}", style="bold yellow")
            if gate.kind == "checklist":
                line = Text(f"⚑ checklist: {len(gate.ticked)}/{len(gate.items)} ticked", style="bold yellow")
            line.append("  press a to answer", style="yellow")
            parts.append(line)
        elif step.reason and step.state.value not in ("running", "succeeded"):
            style = "red" if step.state.value in ("failed", "interrupted") else "dim"
            parts.append(Text(step.reason, style=style, no_wrap=True, overflow="ellipsis"))
        for bar in step.progress[:4]:
            parts.append(progress_line(bar.label if bar.label != step.title else "", bar.done, bar.total,
                                       bar.unit, bar.rate))
        # One Text of several lines: it measures its height the same way in every Textual driver.
        text = Text("\n", no_wrap=True, overflow="ellipsis").join(parts)
        text.no_wrap, text.overflow = True, "ellipsis"
        # An explicit height: an auto height is not always measured again when the content grows.
        head.styles.height = len(parts)
        head.update(text)

    def replace_log(self, lines: Iterable[str]) -> None:
        if self._log.is_mounted:
            self._log.clear()
            self._log.write_lines(list(lines))
            # Again once the layout settles: the head above may have changed height with the new
            # step, and the newest line must stay in sight.
            self._log.call_after_refresh(self._log.scroll_end, animate=False, x_axis=False)

    def append_log(self, lines: list[str]) -> None:
        if self._log.is_mounted:
            self._log.write_lines(lines)
