"""The phases and their steps: state glyph, planned time, budget, actual duration, lateness."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from widgets.format import duration, glyph, offset

if TYPE_CHECKING:
    from cockpit.runtime import RunView, StepView

PHASE_PREFIX = "phase:"
_TITLE_WIDTH = 34


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class StepsTable(DataTable[Text]):
    """One row per phase header and per step; the row key of a step is its id."""

    DEFAULT_CSS = """
    StepsTable { height: 1fr; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self._rendered: dict[str, tuple[str, ...]] = {}
        self._loaded = False
        # Set when the operator moves the cursor (keys, mouse), as opposed to the cockpit following a step.
        self.moved_by_operator = False

    def action_cursor_up(self) -> None:
        self._operator_moves(super().action_cursor_up)

    def action_cursor_down(self) -> None:
        self._operator_moves(super().action_cursor_down)

    def action_page_up(self) -> None:
        self._operator_moves(super().action_page_up)

    def action_page_down(self) -> None:
        self._operator_moves(super().action_page_down)

    def action_scroll_top(self) -> None:
        self._operator_moves(super().action_scroll_top)

    def action_scroll_bottom(self) -> None:
        self._operator_moves(super().action_scroll_bottom)

    async def _on_click(self, event: events.Click) -> None:
        before = self.cursor_row
        self.moved_by_operator = True
        await super()._on_click(event)
        if self.cursor_row == before:
            self.moved_by_operator = False

    def _operator_moves(self, move: Callable[[], None]) -> None:
        before = self.cursor_row
        self.moved_by_operator = True
        move()
        if self.cursor_row == before:
            self.moved_by_operator = False  # nothing moved: no highlight message will consume the flag

    def load(self, view: RunView) -> None:
        self.clear(columns=True)
        self.add_column(" ", key="glyph", width=1)
        self.add_column("step", key="title", width=_TITLE_WIDTH)
        self.add_column("at", key="at", width=8)
        self.add_column("budget", key="budget", width=6)
        self.add_column("took", key="took", width=6)
        self.add_column("late", key="late", width=6)
        for phase in view.phases:
            label = Text(_cut(phase.title, _TITLE_WIDTH), style="bold")
            at = "rollback" if phase.kind == "rollback" else offset(phase.at)
            self.add_row(Text("▸", style="bold"), label, Text(at, style="bold"), Text(""), Text(""), Text(""),
                         key=PHASE_PREFIX + phase.id)
            for step_id in phase.step_ids:
                cells = self._cells(view.steps[step_id])
                self.add_row(*cells, key=step_id)
                self._rendered[step_id] = tuple(c.plain + str(c.style) for c in cells)
        self._loaded = True

    def _cells(self, step: StepView) -> tuple[Text, ...]:
        title = Text("  " + _cut(step.title, _TITLE_WIDTH - 2))
        if step.gate is not None:
            title.stylize("bold yellow")
        elif step.state.value == "failed":
            title.stylize("red")
        elif step.point_of_no_return:
            title.append(" ⚠", style="yellow")
        at = Text("undo" if step.in_rollback and step.due is None else offset(step.planned_start), style="dim")
        late = Text("")
        if step.late_by is not None and step.late_by.total_seconds() >= 0.5:
            late = Text("+" + duration(step.late_by), style="bold red")
        elif step.state.value == "waiting":
            late = Text("asks", style="bold yellow")
        took = Text(duration(step.elapsed))
        budget = Text(duration(step.budget), style="dim")
        return (glyph(step), title, at, budget, took, late)

    def show(self, view: RunView) -> None:
        if not self._loaded:
            self.load(view)
            return
        for step_id, step in view.steps.items():
            cells = self._cells(step)
            signature = tuple(c.plain + str(c.style) for c in cells)
            if self._rendered.get(step_id) == signature:
                continue
            self._rendered[step_id] = signature
            for column, cell in zip(("glyph", "title", "at", "budget", "took", "late"), cells, strict=True):
                self.update_cell(step_id, column, cell)

    @property
    def selected_step(self) -> str | None:
        if self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        if key is None or key.startswith(PHASE_PREFIX):
            return None
        return key

    def select_step(self, step_id: str) -> None:
        try:
            index = self.get_row_index(step_id)
        except Exception:
            return
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False, scroll=True)
