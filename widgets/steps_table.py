"""The phases and their steps: state glyph, planned time, budget, actual duration, lateness."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from widgets.format import duration, glyph, offset

if TYPE_CHECKING:
    from cockpit.engine.views import RunView, StepView

PHASE_PREFIX = "phase:"
# Each column is padded by one cell on either side.
_FIXED = {"glyph": 1, "at": 8, "budget": 6, "took": 6, "late": 6}
# Narrower than these, the budget and then the lateness are left to the step's pane (a late
# step's time then shows in red in the "took" column).
_BUDGET_FROM = 72
_LATE_FROM = 64


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
        self._layout: tuple[int, tuple[str, ...]] = (0, ())  # the width and the row order loaded
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

    def _columns(self) -> list[str]:
        width = self.size.width or 80
        names = ["glyph", "title", "at", "budget", "took", "late"]
        if width < _BUDGET_FROM:
            names.remove("budget")
        if width < _LATE_FROM:
            names.remove("late")
        return names

    def _title_width(self) -> int:
        """The title takes what the other columns leave (a vertical scrollbar included)."""
        fixed = sum(_FIXED[c] + 2 for c in self._columns() if c != "title")
        return max(16, (self.size.width or 80) - fixed - 2 - self.styles.scrollbar_size_vertical)

    @staticmethod
    def row_order(view: RunView) -> tuple[str, ...]:
        """Phases and steps in runbook order, but a running rollback's steps in the order it runs them."""
        plan = view.rollback.plan if view.rollback is not None else ()
        order: list[str] = []
        for phase in view.phases:
            order.append(PHASE_PREFIX + phase.id)
            steps = list(phase.step_ids)
            if phase.kind == "rollback" and plan:
                steps.sort(key=lambda s: plan.index(s) if s in plan else len(plan))
            order += steps
        return tuple(order)

    def load(self, view: RunView) -> None:
        keep = self.selected_step
        self.clear(columns=True)
        columns = self._columns()
        title_width = self._title_width()
        for column in columns:
            self.add_column(
                " " if column == "glyph" else "step" if column == "title" else column,
                key=column,
                width=title_width if column == "title" else _FIXED[column],
            )
        phases = {PHASE_PREFIX + p.id: p for p in view.phases}
        order = self.row_order(view)
        for key in order:
            phase = phases.get(key)
            if phase is not None:
                at = "rollback" if phase.kind == "rollback" else offset(phase.at)
                cells = {
                    "glyph": Text("▸", style="bold"),
                    "title": Text(_cut(phase.title, title_width), style="bold"),
                    "at": Text(at, style="bold"),
                }
                self.add_row(*[cells.get(c, Text("")) for c in columns], key=key)
                continue
            cells = self._cells(view.steps[key], title_width)
            self.add_row(*[cells[c] for c in columns], key=key)
            self._rendered[key] = tuple(cells[c].plain + str(cells[c].style) for c in columns)
        self._layout = (self.size.width, order)
        self._loaded = True
        if keep is not None:
            self.select_step(keep)

    def _cells(self, step: StepView, title_width: int) -> dict[str, Text]:
        # The point-of-no-return mark leads the title: it is never cut, waiting or not.
        mark = "⚠ " if step.point_of_no_return else ""
        title = Text("  ")
        if mark:
            title.append(mark, style="bold yellow")
        title.append(_cut(step.title, title_width - 2 - len(mark)))
        if step.gate is not None:
            title.stylize("bold yellow", 2 + len(mark))
        elif step.state.value == "failed":
            title.stylize("red", 2 + len(mark))
        at = Text("undo" if step.in_rollback and step.due is None else offset(step.planned_start), style="dim")
        late = Text("")
        if step.late_by is not None and step.late_by.total_seconds() >= 0.5:
            late = Text("+" + duration(step.late_by), style="bold red")
        elif step.state.value == "waiting":
            late = Text("asks", style="bold yellow")
        took = Text(duration(step.elapsed), style="bold red" if late.plain.startswith("+") else "")
        return {
            "glyph": glyph(step),
            "title": title,
            "at": at,
            "budget": Text(duration(step.budget), style="dim"),
            "took": took,
            "late": late,
        }

    def show(self, view: RunView) -> None:
        if self.size.width == 0:
            return  # hidden behind an enlarged log: laid out again when it shows
        if not self._loaded or self._layout != (self.size.width, self.row_order(view)):
            self.load(view)
            return
        columns = self._columns()
        title_width = self._title_width()
        for step_id, step in view.steps.items():
            cells = self._cells(step, title_width)
            signature = tuple(cells[c].plain + str(cells[c].style) for c in columns)
            if self._rendered.get(step_id) == signature:
                continue
            self._rendered[step_id] = signature
            for column in columns:
                self.update_cell(step_id, column, cells[column])

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
