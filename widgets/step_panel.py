"""The selected step: what it is, where it stands, its question whole, its progress bars with
rate and ETA, and its log (each line timed, a rule between attempts), searchable with `/`."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from widgets.following_log import FollowingLog
from widgets.format import duration, glyph, progress_line, state_label
from widgets.log_lines import MAX_LOG_LINES

if TYPE_CHECKING:
    from cockpit.engine.views import RunView, StepView

# A question or a reason wraps onto this many lines before it is cut.
MAX_WRAPPED = 3


def describe(step: StepView) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append_text(glyph(step))
    if step.point_of_no_return:
        text.append(" ⚠", style="bold yellow")
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


def wrapped(text: Text, width: int, lines: int = MAX_WRAPPED) -> list[Text]:
    """`text` on up to `lines` lines of `width`, the last cut with an ellipsis if it must be."""
    width = max(10, width)
    out = list(text.wrap(_console(), width))
    if len(out) > lines:
        out = out[:lines]
        out[-1].truncate(width - 1)
        out[-1].append("…")
    return out


@functools.cache
def _console() -> Console:
    """Text.wrap measures with a console; one wide enough that only `width` decides."""
    return Console(width=1000)


def head_lines(step: StepView, width: int) -> list[Text]:
    parts: list[Text] = [describe(step), status_line(step)]
    gate = step.gate
    if gate is not None:
        if gate.kind == "checklist":
            line = Text(
                f"⚑ checklist: {len(gate.ticked)}/{len(gate.items)} ticked  press a to tick", style="bold yellow"
            )
            parts.append(line)
        else:
            question = Text("⚑ ", style="bold yellow")
            if step.point_of_no_return:
                question.append("⚠ point of no return: ", style="bold red")
            question.append(gate.question, style="bold yellow")
            hint = f"  type {gate.confirm}, press a" if gate.confirm else "  press a to answer"
            question.append(hint, style="yellow")
            parts += wrapped(question, width)
    elif step.reason and step.state.value not in ("running", "succeeded"):
        style = "red" if step.state.value in ("failed", "interrupted") else "dim"
        parts += wrapped(Text(step.reason, style=style), width, 2)
    # A rate and an ETA belong to an attempt that is working: a stopped bar shows where it stood.
    working = step.state.value == "running"
    for bar in step.bars(4):
        parts.append(
            progress_line(
                bar.label if bar.label != step.title else "",
                bar.done,
                bar.total,
                bar.unit,
                bar.rate if working else None,
                width,
            )
        )
    return parts


class StepPanel(Vertical):
    ALLOW_MAXIMIZE = True  # `l`: the whole step, its head and its log, takes the screen
    DEFAULT_CSS = """
    StepPanel { height: 1fr; border-top: solid $primary-darken-2; }
    StepPanel #step-head { height: 1; max-height: 12; text-wrap: nowrap; text-overflow: ellipsis; }
    StepPanel #log-hint { height: 1; display: none; background: $boost; }
    StepPanel.-enlarged #log-hint, StepPanel.-filtering #log-hint { display: block; }
    StepPanel #log-filter { display: none; height: 1; }
    StepPanel.-searching #log-filter { display: block; }
    StepPanel #log-empty { height: 1; color: $text-muted; display: none; }
    StepPanel.-empty #log-empty { display: block; }
    StepPanel Log { height: 1fr; }
    """

    class FilterChanged(Message):
        """The operator typed in the log's search box (empty: the filter is cleared)."""

        def __init__(self, text: str, done: bool) -> None:
            super().__init__()
            self.text = text
            self.done = done

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.step_title = ""
        self.filter_text = ""
        self.total_lines = 0

    def compose(self) -> ComposeResult:
        self._head = Static(id="step-head")
        self._hint = Static(id="log-hint")
        self._search = Input(
            placeholder="search this step's log (enter keeps it, escape clears)", id="log-filter", compact=True
        )
        self._empty = Static("no log lines yet", id="log-empty")
        self._log = FollowingLog(max_lines=MAX_LOG_LINES, auto_scroll=True, id="step-log")
        yield self._head
        yield self._hint
        yield self._search
        yield self._empty
        yield self._log

    def show(self, step: StepView | None, view: RunView) -> None:
        head = self._head
        if not head.is_mounted:
            return
        if step is None:
            self.step_title = ""
            head.styles.height = 1
            head.update(Text("Select a step (↑/↓) to see its progress and log.", style="dim"))
            return
        self.step_title = step.title
        parts = head_lines(step, self.content_size.width or 80)
        # One Text of several lines: it measures its height the same way in every Textual driver.
        text = Text("\n", no_wrap=True, overflow="ellipsis").join(parts)
        text.no_wrap, text.overflow = True, "ellipsis"
        # An explicit height: an auto height is not always measured again when the content grows.
        head.styles.height = len(parts)
        head.update(text)
        self._show_hint()

    def _show_hint(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.filter_text:
            text.append(f" lines with {self.filter_text!r}: {self.total_lines} ", style="bold")
            text.append(" / changes it · escape clears", style="dim")
        elif self.has_class("-enlarged"):
            text.append(" / search · w write to a file · escape back ", style="bold")
        self._hint.update(text)

    def replace_log(self, lines: Iterable[str]) -> None:
        if self._log.is_mounted:
            shown = list(lines)
            self._log.clear()
            self._log.write_lines(shown)
            self.total_lines = len(shown)
            self.set_class(not shown, "-empty")
            self._empty.update("no lines contain that text" if self.filter_text else "no log lines yet")
            self._show_hint()
            # Again once the layout settles: the head above may have changed height with the new
            # step, and the newest line must stay in sight.
            self._log.call_after_refresh(self._log.scroll_end, animate=False, x_axis=False)

    def append_log(self, lines: list[str]) -> None:
        if self._log.is_mounted and lines:
            self._log.write_lines(lines)
            self.total_lines += len(lines)
            self.set_class(False, "-empty")
            if self.filter_text:
                self._show_hint()

    def set_enlarged(self, enlarged: bool) -> None:
        self.set_class(enlarged, "-enlarged")
        self._show_hint()

    def start_search(self) -> None:
        self.set_class(True, "-searching")
        self._search.value = self.filter_text
        self._search.focus()

    def end_search(self) -> None:
        self.set_class(False, "-searching")

    @on(Input.Changed, "#log-filter")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.FilterChanged(event.value.strip(), done=False))

    @on(Input.Submitted, "#log-filter")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.end_search()
        self.post_message(self.FilterChanged(event.value.strip(), done=True))
