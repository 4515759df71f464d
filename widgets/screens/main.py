"""The cockpit's main screen: the header and "what now" line, the steps and the selected step,
the DNS line, the trigger strip, the latest notice and the keys.

It paints the run's frozen view that the app hands it, selects the step the run is at while
following, and offers the operator's actions through the desk (widgets/screens/operator_desk.py) only
when they apply. The log of the selected step can be enlarged (`l`), searched (`/`) and
written to a file (`w`); escape undoes the innermost of those.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from widgets.dns_grid import DnsStrip
from widgets.header import TopBars
from widgets.notice_line import NoticeLine
from widgets.screens.operator_desk import OperatorDesk
from widgets.step_panel import StepPanel
from widgets.steps_table import StepsTable
from widgets.triggers import TriggerStrip

if TYPE_CHECKING:
    from cockpit.engine import Engine
    from cockpit.engine.views import RunView
    from cockpit.events import StepStateChanged
    from widgets.log_feed import LogFeed


class CockpitHost(Protocol):
    """What the main screen needs of the app that shows it."""

    engine: Engine

    def current_view(self) -> RunView | None: ...
    def refresh_view(self) -> None: ...
    def logs_folder(self) -> Path | None: ...


MIN_WIDTH, MIN_HEIGHT = 80, 24
# The states in which following selects a step: what runs, and what needs the operator.
FOLLOWED_STATES = ("running", "waiting", "failed", "interrupted")
# Actions offered only when they apply to the run and the selected step (operator_desk.why_not).
CHECKED_ACTIONS = ("answer", "start_step", "retry", "skip", "mark_done", "cancel_step", "pause", "resume", "rollback")


class MainScreen(Screen[None]):
    # The enlarged log keeps the header, the "what now" line, the latest notice and the keys.
    ALLOW_IN_MAXIMIZED_VIEW = "TopBars, NoticeLine, Footer"
    ESCAPE_TO_MINIMIZE = False  # escape restores the log here, and gives the steps their focus back
    # An action that does not apply is hidden from the footer; its key then finds the second
    # binding, which acts if the run has moved on since, and otherwise says why not.
    BINDINGS = [
        Binding("a,f2", "answer", "Answer"),
        Binding("a,f2", "act_or_explain('answer')", show=False),
        Binding("s,f5", "start_step", "Start"),
        Binding("s,f5", "act_or_explain('start_step')", show=False),
        Binding("r,f6", "retry", "Retry"),
        Binding("r,f6", "act_or_explain('retry')", show=False),
        Binding("k,f7", "skip", "Skip"),
        Binding("k,f7", "act_or_explain('skip')", show=False),
        Binding("d,f8", "mark_done", "Done"),
        Binding("d,f8", "act_or_explain('mark_done')", show=False),
        Binding("x", "cancel_step", "Cancel", show=False),
        Binding("x", "act_or_explain('cancel_step')", show=False),
        Binding("p", "pause", "Pause"),
        Binding("p", "resume", "Resume"),
        Binding("p", "act_or_explain('pause')", show=False),
        Binding("b,f9", "rollback", "Rollback"),
        Binding("b,f9", "act_or_explain('rollback')", show=False),
        Binding("f", "toggle_follow", "Follow", show=False),
        Binding("l", "toggle_log", "Log", show=False),
        Binding("slash", "search_log", "Search", show=False),
        Binding("w", "save_log", "Write log", show=False),
        Binding("escape", "escape", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.following = True
        self.follow_target: str | None = None
        self.desk = OperatorDesk(self)
        self.feed: LogFeed | None = None
        self._applicable: tuple[bool, ...] = ()
        # Made here, not in compose: the app reaches them as soon as it mounts.
        self.bars = TopBars()
        self.header = self.bars.header
        self.table = StepsTable(id="steps")
        self.panel = StepPanel(id="panel")
        self._strip = TriggerStrip()
        self._dns_strip = DnsStrip()
        self._too_small = Static(id="too-small")

    def compose(self) -> ComposeResult:
        yield self.bars
        with Container(id="main"):
            yield self.table
            yield self.panel
        yield self._dns_strip
        yield self._strip
        yield NoticeLine()
        yield Footer(compact=True)
        yield self._too_small

    def on_mount(self) -> None:
        self._check_size(self.app.size.width, self.app.size.height)

    # -- what the desk reads of the screen -------------------------------------------------------

    @property
    def host(self) -> CockpitHost:
        return cast("CockpitHost", self.app)

    @property
    def engine(self) -> Engine:
        return self.host.engine

    def current_view(self) -> RunView | None:
        return self.host.current_view()

    def selected_step_id(self) -> str | None:
        return self.table.selected_step

    def select_step(self, step_id: str) -> None:
        self.table.select_step(step_id)

    def refresh_view(self) -> None:
        self.host.refresh_view()

    def push_screen(self, screen: Any, callback: Any = None) -> Any:
        return self.app.push_screen(screen, callback)

    # -- painting ---------------------------------------------------------------------------

    def show(self, view: RunView, dns_report: dict[str, Any] | None) -> None:
        if not self.table.is_mounted:
            return
        self.table.show(view)
        # A move of the operator's whose highlight event is still queued wins over following: its
        # handler decides whether following stops, and must not find the cursor moved back.
        pending_move = self.table.moved_by_operator
        if self.following and self.follow_target and self.follow_target in view.steps and not pending_move:
            self.select_step(self.follow_target)
        self._strip.show(view)
        self._dns_strip.show(dns_report)
        self._show_selected(view)
        self.desk.reconcile(view)
        applicable = tuple(self.desk.applies(action) for action in CHECKED_ACTIONS)
        if applicable != self._applicable:
            self._applicable = applicable
            self.refresh_bindings()

    def show_dns(self, report: dict[str, Any] | None) -> None:
        if self._dns_strip.is_mounted:
            self._dns_strip.show(report)

    def _show_selected(self, view: RunView) -> None:
        selected = self.table.selected_step
        if self.feed is not None:
            self.feed.show(selected)
        self.panel.show(view.steps.get(selected) if selected else None, view)

    def step_changed(self, event: StepStateChanged) -> None:
        if event.state in FOLLOWED_STATES and self.following:
            self.follow_target = event.step_id

    def select_what_needs_the_operator(self, view: RunView) -> None:
        """On opening: select the first interrupted step (and say so), else the first waiting one,
        else the step that started last among those running: where following would be."""
        interrupted = [s.id for s in view.steps.values() if s.state.value == "interrupted"]
        if interrupted:
            self.following = False
            self.select_step(interrupted[0])
            self.notify(
                f"the cockpit stopped while {', '.join(interrupted)} ran: "
                f"{'they are' if len(interrupted) > 1 else 'it is'} interrupted; r retry · k skip · d done",
                severity="warning",
                timeout=30,
            )
            return
        waiting = [s.id for s in view.steps.values() if s.gate is not None]
        running = [s for s in view.steps.values() if s.state.value == "running" and s.started]
        if waiting:
            self.select_step(waiting[0])
        elif running:
            self.follow_target = max(running, key=lambda s: s.started or view.now).id
            self.select_step(self.follow_target)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.table.moved_by_operator:
            self.table.moved_by_operator = False
            if self.following and event.row_key.value != self.follow_target:
                # The operator looks elsewhere: stop following until `f` (the header says so).
                self.following = False
        self.refresh_view()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        view = self.current_view()
        step_id = self.table.selected_step
        step = view.steps.get(step_id) if view is not None and step_id else None
        if step is not None and step.gate is not None:
            self.desk.answer()

    @on(StepPanel.FilterChanged)
    def _filter_changed(self, event: StepPanel.FilterChanged) -> None:
        if self.feed is not None:
            self.feed.set_filter(event.text)
        if event.done:
            self._focus_after_search()

    def on_resize(self, event: Resize) -> None:
        self._check_size(event.size.width, event.size.height)
        self.call_after_refresh(self.refresh_view)

    def _check_size(self, width: int, height: int) -> None:
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.set_class(small, "-too-small")
        if small:
            self._too_small.update(
                f"Terminal too small: {width}x{height}\n\nThe cockpit needs at least {MIN_WIDTH}x{MIN_HEIGHT}.\n"
                "The run goes on; enlarge the window to see it."
            )

    # -- keys -----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in CHECKED_ACTIONS:
            return self.current_view() is not None and self.desk.applies(action)
        return True

    def action_act_or_explain(self, action: str) -> None:
        self.desk.act_or_explain(action)

    def action_answer(self) -> None:
        self.desk.answer()

    def action_start_step(self) -> None:
        self.desk.start_step()

    def action_retry(self) -> None:
        self.desk.retry()

    def action_skip(self) -> None:
        self.desk.skip()

    def action_mark_done(self) -> None:
        self.desk.mark_done()

    def action_cancel_step(self) -> None:
        self.desk.cancel_step()

    def action_pause(self) -> None:
        self.desk.pause()

    def action_resume(self) -> None:
        self.desk.resume()

    def action_rollback(self) -> None:
        self.desk.rollback()

    def action_toggle_follow(self) -> None:
        self.following = not self.following
        view = self.current_view()
        if self.following and view is not None:
            # Catch up with what runs now: the step that started last among those running or waiting.
            active = [s for s in view.steps.values() if s.state.value in ("running", "waiting") and s.started]
            if active:
                self.follow_target = max(active, key=lambda s: s.started or view.now).id
        self.notify(
            "follow is "
            + ("on: the cockpit selects each step as it starts" if self.following else "off: f follows again"),
            timeout=3,
        )
        self.refresh_view()

    def action_toggle_log(self) -> None:
        if self.maximized is not None:
            self._restore_log()
            return
        self.maximize(self.panel, container=False)
        self.panel.set_enlarged(True)
        self.panel.query_one("#step-log").focus()

    def _restore_log(self) -> None:
        self.minimize()
        self.panel.set_enlarged(False)
        self.table.focus()  # the arrows move between steps again

    def action_search_log(self) -> None:
        if self.table.selected_step is None:
            self.notify("select a step first (↑/↓): / searches its log", severity="warning")
            return
        self.panel.start_search()

    def _focus_after_search(self) -> None:
        if self.maximized is not None:
            self.panel.query_one("#step-log").focus()
        else:
            self.table.focus()

    def action_escape(self) -> None:
        """Escape undoes the innermost thing: the search box, then the filter, then the enlarged log."""
        if self.panel.has_class("-searching"):
            self.panel.end_search()
            if self.feed is not None:
                self.feed.set_filter("")
            self._focus_after_search()
        elif self.feed is not None and self.feed.filter_text:
            self.feed.set_filter("")
        elif self.maximized is not None:
            self._restore_log()

    def action_save_log(self) -> None:
        step_id = self.table.selected_step
        folder = self.host.logs_folder()
        if step_id is None or self.feed is None or folder is None:
            self.notify("select a step first (↑/↓): w writes its whole log to a file", severity="warning")
            return
        try:
            path, count = self.feed.save(step_id, folder)
        except OSError as exc:
            self.notify(f"could not write the log of {step_id}: {exc}", severity="error")
            return
        self.notify(f"wrote {count:,} lines of {step_id}'s log to {path}", timeout=12)
