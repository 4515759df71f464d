"""The Textual app: opens the run, turns engine events into messages, and repaints.

Engine threads never touch a widget: `_from_engine` (called on an engine thread) only posts
messages, which are thread-safe. Log lines arrive in batches and are flushed to the panel
every 100 ms (widgets/log_feed.py); progress messages replace one another; state changes never
do. The app re-reads the engine's frozen view a few times a second and paints it on every
screen of the stack, so the header and the "what now" line are current wherever the operator
is. The main screen and the operator's actions are in widgets/screens/main.py and
widgets/screens/operator_desk.py. Notices go to their own line and history (widgets/notice_line.py),
never over the screen.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState

# Light modules only at the top: the first frame paints before the engine's modules load.
from cockpit import shutdown
from cockpit.events import (
    Alert,
    Event,
    GateOpened,
    OperatorActed,
    StepLog,
    StepProgress,
    StepReport,
    StepStateChanged,
    TriggerFired,
)
from cockpit.options import RunOptions, SessionError
from widgets.header import StatusHeader
from widgets.notice_line import Notice, NoticeLine
from widgets.screens.dns import DnsScreen
from widgets.screens.full_screen import FullScreen
from widgets.screens.main import MainScreen
from widgets.what_now import WhatNow

DNS_TOPIC = "dns.propagation"  # what steps/dns/watch.py publishes

if TYPE_CHECKING:
    from cockpit.engine import Engine
    from cockpit.engine.views import RunView
    from cockpit.session import Session


class EngineEvent(Message):
    """An engine event, carried to the UI thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class ProgressReported(EngineEvent):
    """Progress of one bar: a newer report replaces an older one still in the queue."""

    def can_replace(self, message: Message) -> bool:
        if not isinstance(message, ProgressReported):
            return False
        a, b = self.event, message.event
        assert isinstance(a, StepProgress) and isinstance(b, StepProgress)
        return a.step_id == b.step_id and a.label == b.label


class LogArrived(EngineEvent):
    """A batch of log lines: never replaced, never dropped."""


class SessionReady(Message):
    """The runbook is validated and the run is open: the screen can fill in."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session


class CockpitApp(App[int]):
    TITLE = "cutover cockpit"
    CSS_PATH = str(Path(__file__).resolve().parent.parent / "widgets" / "cockpit.tcss")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    ENABLE_COMMAND_PALETTE = True
    # Views the operator opens from any screen; the step actions are the main screen's.
    BINDINGS = [
        Binding("g,f4", "dns_grid", "DNS", show=False),
        Binding("t,f3", "timeline", "Timeline", show=False),
        Binding("n", "notices", "Notices", show=False),
        Binding("question_mark,f1", "help", "Help"),
        Binding("ctrl+q,f10", "request_quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        session: Session | None = None,
        *,
        loader: Callable[[], Session] | None = None,
        title: str = "",
        autopilot_delay: float | None = None,
        refresh_interval: float = 0.25,
        start_engine: bool = True,
    ) -> None:
        super().__init__()
        if session is None and loader is None:
            raise ValueError("give a session, or a loader that opens one")
        self.session: Session | None = session
        self.engine: Engine = session.engine if session is not None else None  # type: ignore[assignment]
        self._loader = loader
        self._title = title
        self.load_problems: list[str] = []
        self.autopilot_delay = autopilot_delay
        self.refresh_interval = refresh_interval
        self.start_engine = start_engine
        self._view: RunView | None = None
        self.autopilot: Any = None
        self.dns_report: dict[str, Any] | None = None  # the latest dns.propagation report
        self.notices: list[Notice] = []
        self.main = MainScreen()

    @property
    def lines_shown(self) -> int:
        """Log lines written to the panel (bench/log_flood.py)."""
        return self.main.feed.lines_shown if self.main.feed is not None else 0

    def get_default_screen(self) -> Screen[Any]:
        return self.main

    def on_mount(self) -> None:
        if self.session is not None:
            self.call_after_refresh(self._connect_run)  # once the main screen is mounted
        else:
            # Paint the frame at once; validate the runbook and open the run right after.
            self.main.header.show_loading(self._title)
            self.call_after_refresh(self._open_session)
        try:
            import asyncio

            loop = asyncio.get_running_loop()
            # The terminal is gone: a graceful Textual exit would block writing to it.
            loop.add_signal_handler(signal.SIGHUP, lambda: shutdown.emergency_exit(128 + signal.SIGHUP))
            loop.add_signal_handler(signal.SIGTERM, lambda: self.exit(130))  # as Ctrl+C headless
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    @work(thread=True, exit_on_error=False, group="engine", description="Opening the run")
    def _open_session(self) -> None:
        assert self._loader is not None
        try:
            session = self._loader()
        except SessionError as exc:
            self.call_from_thread(self._cannot_open, exc.lines, 2)
            return
        except Exception as exc:  # reported on the terminal after the screen closes
            self.call_from_thread(self._cannot_open, [f"cockpit: cannot open the run: {type(exc).__name__}: {exc}"], 1)
            return
        self.post_message(SessionReady(session))

    def _cannot_open(self, lines: list[str], code: int) -> None:
        self.load_problems = lines
        self.exit(code)

    @on(SessionReady)
    def _session_ready(self, message: SessionReady) -> None:
        self.session = message.session
        self.engine = message.session.engine
        self._connect_run()

    def _connect_run(self) -> None:
        """Connect the screen to the run: subscribe, load the journal's log tails, start the engine."""
        from widgets.log_feed import LogFeed

        assert self.session is not None
        feed = self.main.feed = LogFeed(self.session.journal, self.engine.run_id, self.main.panel)
        # Subscribe first, then read the journal: a line in both is dropped by its number.
        self.engine.subscribe(self._from_engine)
        for step in self.engine.runbook.steps:
            feed.buffer(step.id)
        if self.autopilot_delay is not None:
            from cockpit.autopilot import Autopilot

            self.autopilot = Autopilot(self.engine, self.autopilot_delay)
            self.engine.subscribe(self.autopilot)
            self.autopilot.retry_interrupted()
        self._load_dns_report()
        self.refresh_view()
        if self._view is not None:
            self.main.select_what_needs_the_operator(self._view)
        self.main.table.focus()
        if self.start_engine:
            self._run_engine()
        self.set_interval(self.refresh_interval, self.refresh_view)
        self.set_interval(0.1, feed.flush)

    @work(thread=True, exit_on_error=False, group="engine", description="Starting the run engine")
    def _run_engine(self) -> None:
        self.engine.start()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(
                f"{event.worker.description or event.worker.name} failed: {event.worker.error}",
                severity="error",
                timeout=30,
            )

    # -- notices ------------------------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notice goes to the notice line and the history (`n`); none floats over the screen."""
        self.notices.append(Notice(time.time(), str(severity), title, message))
        for screen in self.screen_stack:
            for line in screen.query(NoticeLine):
                line.show(self.notices)
        from widgets.screens.notices import NoticesScreen

        if isinstance(self.screen, NoticesScreen):
            self.screen.show_notices(self.notices)

    # -- engine -> screen ---------------------------------------------------------------------

    def _from_engine(self, event: Event) -> None:
        """Called on engine threads: post, never touch widgets."""
        if isinstance(event, StepLog):
            self.post_message(LogArrived(event))
        elif isinstance(event, StepProgress):
            self.post_message(ProgressReported(event))
        else:
            self.post_message(EngineEvent(event))

    @on(LogArrived)
    def _log_arrived(self, message: LogArrived) -> None:
        event = message.event
        assert isinstance(event, StepLog)
        if self.main.feed is not None:
            self.main.feed.arrived(event)

    @on(ProgressReported)
    def _progress(self, message: ProgressReported) -> None:
        pass  # the next refresh shows it; the message only wakes nothing else

    @on(EngineEvent)
    def _engine_event(self, message: EngineEvent) -> None:
        event = message.event
        if isinstance(event, StepStateChanged):
            self.main.step_changed(event)
        elif isinstance(event, Alert):
            severity = {"error": "error", "warning": "warning"}.get(event.level, "information")
            self.notify(event.message, severity=severity, timeout=10)
        elif isinstance(event, TriggerFired):
            self.notify(
                f"trigger {event.trigger_id} fired: {event.reason}",
                title=event.action.upper(),
                severity="error",
                timeout=15,
            )
        elif isinstance(event, OperatorActed):
            self.main.desk.heard(event)
        elif isinstance(event, GateOpened) and event.gate == "rollback":
            self.call_later(self.main.desk.rollback)
        elif isinstance(event, StepReport) and event.topic == DNS_TOPIC:
            self.show_dns_report(json.loads(event.data))
        if isinstance(event, StepStateChanged | OperatorActed) and self._view is not None:
            self.refresh_view()  # a dialog this settled closes now, not at the next tick

    def _load_dns_report(self) -> None:
        """A resumed run: the last propagation report the journal holds."""
        assert self.session is not None
        last = None
        for event in self.session.journal.events(self.engine.run_id, types=["step_report"]):
            if isinstance(event, StepReport) and event.topic == DNS_TOPIC:
                last = event
        if last is not None:
            self.show_dns_report(json.loads(last.data))

    def show_dns_report(self, report: dict[str, Any]) -> None:
        self.dns_report = report
        self.main.show_dns(report)
        if isinstance(self.screen, DnsScreen):
            self.screen.show(report)

    # -- the views ----------------------------------------------------------------------------

    def current_view(self) -> RunView | None:
        return self._view

    def logs_folder(self) -> Path | None:
        return self.session.runbook.base_dir / "logs" if self.session is not None else None

    def refresh_view(self) -> None:
        """Read the engine's view and paint it on every screen of the stack."""
        if self.engine is None:
            return  # still opening the run
        view = self.engine.view()
        self._view = view
        if not self.main.is_mounted:
            return  # shutting down
        for screen in self.screen_stack:
            for header in screen.query(StatusHeader):
                header.show(view, following=self.main.following)
            for line in screen.query(WhatNow):
                line.show(view)
            for notices in screen.query(NoticeLine):
                notices.show(self.notices)
            if isinstance(screen, FullScreen):
                screen.follow(view)
        self.main.show(view, self.dns_report)

    async def action_notices(self) -> None:
        from widgets.screens.notices import NoticesScreen

        if not isinstance(self.screen, NoticesScreen):
            await self._open_full_screen(NoticesScreen(self.notices))

    async def action_dns_grid(self) -> None:
        if not isinstance(self.screen, DnsScreen):
            await self._open_full_screen(DnsScreen(self.dns_report))

    async def action_timeline(self) -> None:
        from widgets.screens.timeline import TimelineScreen

        if self.engine is not None and not isinstance(self.screen, TimelineScreen):
            await self._open_full_screen(TimelineScreen(self.engine.runbook, self.engine.plan))

    async def action_help(self) -> None:
        from widgets.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            await self._open_full_screen(HelpScreen())

    async def _open_full_screen(self, screen: Screen[Any]) -> None:
        await self.push_screen(screen)
        self.refresh_view()  # its header and "what now" line, painted before its first frame shows

    def action_request_quit(self) -> None:
        from widgets.screens.dialogs import QuitModal

        running = self.engine.running_steps() if self.engine is not None else []
        if not running:
            self.exit(0)
            return
        self.push_screen(
            QuitModal(
                "Quit?",
                f"Still running: {', '.join(running)}. They stop now and are "
                "journaled as interrupted; starting the cockpit again (or `make demo`) "
                "continues the run.",
                "Quit",
                danger=True,
            ),
            lambda answer: self.exit(0) if answer is True else None,
        )

    def get_system_commands(self, screen: Screen[Any]) -> Any:
        main = self.main
        yield SystemCommand("Answer", "Answer the waiting gate (question, start, checklist)", main.action_answer)
        yield SystemCommand("DNS grid", "Every resolver's answer, TTL, state and history", self.action_dns_grid)
        yield SystemCommand("Timeline", "The sixty days: phases, overdue, what waits, next 24h", self.action_timeline)
        yield SystemCommand("Start step", "Start the selected step now", main.action_start_step)
        yield SystemCommand("Retry step", "Run the selected step again", main.action_retry)
        yield SystemCommand("Skip step", "Skip the selected step, with a reason", main.action_skip)
        yield SystemCommand("Mark done", "Mark the selected step done, with a reason", main.action_mark_done)
        yield SystemCommand("Cancel step", "Cancel the selected step", main.action_cancel_step)
        yield SystemCommand("Pause", "No new step starts while paused", main.action_pause)
        yield SystemCommand("Resume", "Steps start again when due", main.action_resume)
        yield SystemCommand("Roll back", "Roll the go-live back (asks first)", main.action_rollback)
        yield SystemCommand("Follow", "Select each step as it starts", main.action_toggle_follow)
        yield SystemCommand("Enlarge log", "Show the selected step's log on the whole screen", main.action_toggle_log)
        yield SystemCommand("Search log", "Only the selected step's lines that contain a text", main.action_search_log)
        yield SystemCommand("Write log", "The selected step's whole log to a file", main.action_save_log)
        yield SystemCommand("Notices", "Every notice of this session", self.action_notices)
        yield SystemCommand("Help", "Keys and glyphs", self.action_help)
        yield SystemCommand("Quit", "Quit the cockpit (the run resumes later)", self.action_request_quit)
        for step in self.engine.runbook.steps if self.engine is not None else ():
            yield SystemCommand(f"Go to {step.id}", step.label, lambda s=step.id: main.select_step(s), discover=False)


def make_app(session: Session, **kwargs: Any) -> CockpitApp:
    """The one app factory: the command line, the tests and the snapshots all build the app here."""
    return CockpitApp(session, **kwargs)


def run_screen(options: RunOptions, autopilot_delay: float | None = None) -> tuple[int, list[str], str]:
    """Run the cockpit on the terminal; return the exit code, any problems that kept the run shut,
    and the one-line summary of the run as the screen left it (empty when no run opened)."""

    def open_run() -> Session:
        from cockpit.session import open_session

        return open_session(options)

    from cockpit.options import quick_title

    app = CockpitApp(loader=open_run, title=quick_title(options.runbook), autopilot_delay=autopilot_delay)
    summary = ""
    try:
        code = int(app.run() or 0)
        if app.session is not None:
            from cockpit.engine.views import Outcome
            from cockpit.headless import summary_line

            outcome = app.session.engine.outcome()
            # The screen exits as a headless run would when the run ended or cannot go on
            # (3 rolled back, 1 failed); quitting a run that is still going is 0.
            if code == 0 and outcome in (Outcome.ROLLED_BACK, Outcome.FAILED):
                code = outcome.exit_code
            summary = summary_line(app.session.engine.view(), code)
    finally:
        if app.autopilot is not None:
            app.autopilot.cancel()
        if app.session is not None:
            app.session.close()
    return code, app.load_problems, summary
