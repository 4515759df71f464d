"""The Textual app: composes the widgets and turns engine events into messages.

Engine threads never touch a widget: `_from_engine` (called on an engine thread) only posts
messages, which are thread-safe. Log lines arrive in batches and are flushed to the `Log`
every 100 ms; progress messages replace one another; state changes never do. The screen
re-reads the engine's frozen view a few times a second. Every operator action goes through
a modal where it is dangerous (widgets/operator_keys.py), and ends in one engine call that
journals it.
"""

from __future__ import annotations

import json
import signal
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.events import Resize
from textual.message import Message
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

# Light modules only at the top: the first frame paints before the engine's modules load.
from cockpit import shutdown
from cockpit.events import (
    Alert,
    Event,
    GateOpened,
    StepLog,
    StepProgress,
    StepReport,
    StepStateChanged,
    TriggerFired,
)
from cockpit.options import RunOptions, SessionError
from widgets.dns_grid import DnsScreen, DnsStrip
from widgets.header import StatusHeader
from widgets.operator_keys import OperatorKeys
from widgets.step_panel import MAX_LOG_LINES, StepPanel
from widgets.steps_table import StepsTable
from widgets.triggers import TriggerStrip

DNS_TOPIC = "dns.propagation"  # what steps/dns_propagation.py publishes

if TYPE_CHECKING:
    from cockpit.engine import Engine
    from cockpit.runtime import RunView
    from cockpit.session import Session

MIN_WIDTH, MIN_HEIGHT = 80, 24


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


class CockpitApp(OperatorKeys):
    TITLE = "cutover cockpit"
    CSS_PATH = str(Path(__file__).resolve().parent.parent / "widgets" / "cockpit.tcss")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("a,f2", "answer", "Answer"),
        Binding("s,f5", "start_step", "Start"),
        Binding("r,f6", "retry", "Retry"),
        Binding("k,f7", "skip", "Skip"),
        Binding("d,f8", "mark_done", "Done", show=False),
        Binding("x", "cancel_step", "Cancel", show=False),
        Binding("p", "toggle_pause", "Pause"),
        Binding("b,f9", "rollback", "Rollback"),
        Binding("f", "toggle_follow", "Follow", show=False),
        Binding("l", "toggle_log", "Log", show=False),
        Binding("g,f4", "dns_grid", "DNS", show=False),
        Binding("question_mark,f1", "help", "Help"),
        Binding("ctrl+q,f10", "request_quit", "Quit", priority=True),
    ]

    def __init__(self, session: Session | None = None, *, loader: Callable[[], Session] | None = None,
                 title: str = "", autopilot_delay: float | None = None, refresh_interval: float = 0.25,
                 start_engine: bool = True) -> None:
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
        self._buffers: dict[str, deque[str]] = {}
        self._last_line: dict[str, int] = {}  # the number of the last line buffered, per step
        self._pending: list[str] = []
        self._shown: str | None = None
        self._follow = True
        self._follow_target: str | None = None
        self._rollback_modal_open = False
        self._view: RunView | None = None
        self.lines_shown = 0  # counted for bench/log_flood.py
        self.autopilot: Any = None
        self.dns_report: dict[str, Any] | None = None  # the latest dns.propagation report

    # -- composition ----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept by reference: a modal on top or a shutdown under way must not break a refresh.
        self._header = StatusHeader()
        self._table = StepsTable(id="steps")
        self._panel = StepPanel(id="panel")
        self._strip = TriggerStrip()
        self._dns_strip = DnsStrip()
        self._too_small = Static(id="too-small")
        yield self._header
        with Container(id="main"):
            yield self._table
            yield self._panel
        yield self._dns_strip
        yield self._strip
        yield Footer(compact=True)
        yield self._too_small

    def on_mount(self) -> None:
        self._check_size(self.size.width, self.size.height)
        if self.session is not None:
            self._connect_run()
        else:
            # Paint the frame at once; validate the runbook and open the run right after.
            self._header.show_loading(self._title)
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
        # Subscribe first, then read the journal: a line in both is dropped by its number.
        self.engine.subscribe(self._from_engine)
        for step in self.engine.runbook.steps:
            self._buffer(step.id)
        if self.autopilot_delay is not None:
            from cockpit.sandbox.autopilot import Autopilot

            self.autopilot = Autopilot(self.engine, self.autopilot_delay)
            self.engine.subscribe(self.autopilot)
        self._load_dns_report()
        self._refresh_view()
        self._table.focus()
        if self.start_engine:
            self._run_engine()
        self.set_interval(self.refresh_interval, self._refresh_view)
        self.set_interval(0.1, self._flush_log)

    @work(thread=True, exit_on_error=False, group="engine", description="Starting the run engine")
    def _run_engine(self) -> None:
        self.engine.start()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(f"{event.worker.description or event.worker.name} failed: {event.worker.error}",
                        severity="error", timeout=30)

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
        seen = self._last_line.get(event.step_id, 0)
        lines = event.lines[max(0, seen - event.first_line + 1):]
        if not lines:
            return
        self._last_line[event.step_id] = event.first_line + len(event.lines) - 1
        self._buffer(event.step_id).extend(lines)
        if event.step_id == self._shown:
            self._pending.extend(lines)
            if len(self._pending) > MAX_LOG_LINES:
                del self._pending[:-MAX_LOG_LINES]

    @on(ProgressReported)
    def _progress(self, message: ProgressReported) -> None:
        pass  # the next refresh shows it; the message only wakes nothing else

    @on(EngineEvent)
    def _engine_event(self, message: EngineEvent) -> None:
        event = message.event
        if isinstance(event, StepStateChanged) and event.state in ("running", "waiting") and self._follow:
            self._follow_target = event.step_id
        elif isinstance(event, Alert):
            severity = {"error": "error", "warning": "warning"}.get(event.level, "information")
            self.notify(event.message, severity=severity, timeout=10)  # type: ignore[arg-type]
        elif isinstance(event, TriggerFired):
            self.notify(f"trigger {event.trigger_id} fired: {event.reason}", title=event.action.upper(),
                        severity="error", timeout=15)
        elif isinstance(event, GateOpened) and event.gate == "rollback":
            self.call_later(self.action_rollback)
        elif isinstance(event, StepReport) and event.topic == DNS_TOPIC:
            self._show_dns(json.loads(event.data))

    def _load_dns_report(self) -> None:
        """A resumed run: the last propagation report the journal holds."""
        assert self.session is not None
        last = None
        for event in self.session.journal.events(self.engine.run_id, types=["step_report"]):
            if isinstance(event, StepReport) and event.topic == DNS_TOPIC:
                last = event
        if last is not None:
            self._show_dns(json.loads(last.data))

    def _show_dns(self, report: dict[str, Any]) -> None:
        self.dns_report = report
        self._dns_strip.show(report)
        if isinstance(self.screen, DnsScreen):
            self.screen.show(report)

    def action_dns_grid(self) -> None:
        if isinstance(self.screen, DnsScreen):
            return
        self.push_screen(DnsScreen(self.dns_report))

    def _buffer(self, step_id: str) -> deque[str]:
        buffer = self._buffers.get(step_id)
        if buffer is None:
            buffer = deque(maxlen=MAX_LOG_LINES)
            # A resumed run: the journal has the lines of earlier processes.
            assert self.session is not None
            journal = self.session.journal
            count = journal.log_count(self.engine.run_id, step_id)
            if count:
                buffer.extend(journal.log_lines(self.engine.run_id, step_id, tail=MAX_LOG_LINES))
            self._last_line[step_id] = count
            self._buffers[step_id] = buffer
        return buffer

    def _flush_log(self) -> None:
        if not self._pending:
            return
        if not self._panel.is_mounted:
            return
        lines, self._pending = self._pending, []
        self._panel.append_log(lines)
        self.lines_shown += len(lines)

    def _refresh_view(self) -> None:
        if not self._table.is_mounted or self.engine is None:
            return  # shutting down, or still opening the run
        view = self.engine.view()
        self._view = view
        self._header.show(view)
        table = self._table
        table.show(view)
        if self._follow and self._follow_target and self._follow_target in view.steps:
            table.select_step(self._follow_target)
        self._strip.show(view)
        self._show_selected(view)

    def _show_selected(self, view: RunView) -> None:
        selected = self._table.selected_step
        panel = self._panel
        if selected != self._shown:
            self._shown = selected
            self._pending = []
            panel.replace_log(self._buffer(selected) if selected else [])
        panel.show(view.steps.get(selected) if selected else None, view)

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self._table.moved_by_operator:
            self._table.moved_by_operator = False
            if self._follow and event.row_key.value != self._follow_target:
                # The operator looks elsewhere: stop following until `f`.
                self._follow = False
                self.notify("follow is off: press f to follow running steps again", timeout=4)
        if self._view is not None:
            self._show_selected(self._view)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        step = self._selected_view()
        if step is not None and step.gate is not None:
            self.action_answer()

    def on_resize(self, event: Resize) -> None:
        self._check_size(event.size.width, event.size.height)

    def _check_size(self, width: int, height: int) -> None:
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.screen.set_class(small, "-too-small")
        if small:
            self._too_small.update(
                f"Terminal too small: {width}x{height}\n\nThe cockpit needs at least {MIN_WIDTH}x{MIN_HEIGHT}.\n"
                "The run goes on; enlarge the window to see it.")


def make_app(session: Session, **kwargs: Any) -> CockpitApp:
    """The one app factory: the command line, the tests and the snapshots all build the app here."""
    return CockpitApp(session, **kwargs)


def run_screen(options: RunOptions, autopilot_delay: float | None = None) -> tuple[int, list[str]]:
    """Run the cockpit on the terminal; return the exit code and any problems that kept the run shut."""

    def open_run() -> Session:
        from cockpit.session import open_session

        return open_session(options)

    from cockpit.options import quick_title

    app = CockpitApp(loader=open_run, title=quick_title(options.runbook), autopilot_delay=autopilot_delay)
    try:
        code = int(app.run() or 0)
        if code == 0 and app.session is not None:
            # The screen exits as a headless run would when the run ended or cannot go on
            # (3 rolled back, 1 failed); quitting a run that is still going is 0.
            from cockpit.runtime import Outcome

            outcome = app.session.engine.outcome()
            if outcome in (Outcome.ROLLED_BACK, Outcome.FAILED):
                code = outcome.exit_code
    finally:
        if app.autopilot is not None:
            app.autopilot.cancel()
        if app.session is not None:
            app.session.close()
    return code, app.load_problems
