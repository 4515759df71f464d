"""The operator's actions on the screen: what applies to the selected step now, the dialogs that
ask before anything dangerous, and dialogs that follow the journal.

Each action ends in one engine call that journals it; a refusal is shown, never raised. An
action that cannot apply is not offered (the footer hides its key) and, if its key is pressed
anyway, says why instead of opening a dialog. A dialog whose question is settled elsewhere (the
demo's autopilot, `--answer`, a second operator) closes with a notice saying who settled it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from textual.screen import Screen

from cockpit.clock import format_offset
from cockpit.engine import CONFIRM_WORD, ActionRefused
from cockpit.events import OperatorActed, StepState

if TYPE_CHECKING:
    from cockpit.engine import Engine
    from cockpit.engine.views import RunView, StepView

ENDED = ("done", "rolled_back", "abandoned")
_REDOABLE = (StepState.FAILED, StepState.CANCELLED, StepState.INTERRUPTED)
_SETTLEABLE = (StepState.SCHEDULED, StepState.READY, StepState.WAITING, StepState.RUNNING, *_REDOABLE)
_CANCELLABLE = (StepState.SCHEDULED, StepState.READY, StepState.WAITING, StepState.RUNNING)
STEP_ACTIONS = ("start_step", "retry", "skip", "mark_done", "cancel_step")


class DeskHost(Protocol):
    """What the desk needs of the screen: the engine, the selection, dialogs and notices."""

    @property
    def engine(self) -> Engine: ...

    def current_view(self) -> RunView | None: ...
    def selected_step_id(self) -> str | None: ...
    def select_step(self, step_id: str) -> None: ...
    def refresh_view(self) -> None: ...
    def push_screen(self, screen: Any, callback: Any = None) -> Any: ...
    def run_worker(self, work: Callable[[], None], *, group: str = ..., thread: bool = ...) -> Any: ...
    @property
    def app(self) -> Any: ...
    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None: ...


def why_not(action: str, view: RunView, step: StepView | None) -> str | None:
    """None when `action` applies now; otherwise the sentence that says why it does not."""
    ended = view.state in ENDED
    if action == "answer":
        waiting = any(s.gate is not None for s in view.steps.values())
        confirming = view.rollback is not None and view.rollback.awaiting_confirmation
        return None if waiting or confirming else "no step is waiting for an answer"
    if action in ("pause", "resume", "rollback") and ended:
        return f"the run has ended ({view.state.replace('_', ' ')})"
    if action == "pause":
        return "the run is already paused" if view.paused else None
    if action == "resume":
        return None if view.paused else "the run is not paused"
    if action == "rollback":
        rollback = view.rollback
        if rollback is not None and not rollback.awaiting_confirmation:
            return "a rollback is already under way"
        return None
    if action not in STEP_ACTIONS:
        return None
    if step is None:
        return "select a step first (↑/↓)"
    if ended:
        return f"the run has ended ({view.state.replace('_', ' ')})"
    state = step.state
    rolling_back = view.state == "rolling_back"
    if action == "start_step":
        if step.in_rollback and not rolling_back and step.due is None:
            return f"{step.id!r} is a rollback step: it runs only during a rollback"
        startable = state == StepState.SCHEDULED or (
            state == StepState.WAITING and step.gate is not None and step.gate.kind == "start"
        )
        if not startable:
            return f"{step.id!r} is {state.value}: only a scheduled or waiting step can be started"
        unmet = [n for n in step.needs if not view.steps[n].state.satisfies_needs]
        return f"{step.id!r} needs {', '.join(unmet)} to succeed first" if unmet else None
    if action == "retry":
        if state not in _REDOABLE:
            return f"nothing to retry: {step.id!r} is {state.value}"
        if rolling_back and not step.in_rollback:
            return "during a rollback only rollback steps run"
        return None
    if action in ("skip", "mark_done"):
        return None if state in _SETTLEABLE else f"{step.id!r} is {state.value}: nothing to settle"
    if action == "cancel_step":
        return None if state in _CANCELLABLE else f"{step.id!r} is {state.value}: nothing to cancel"
    return None


@dataclass
class OpenDialog:
    """A dialog the desk opened, and what it is about, so the journal can close it."""

    action: str
    step_id: str | None
    screen: Screen[Any]


class OperatorDesk:
    def __init__(self, host: DeskHost) -> None:
        self.host = host
        self.dialog: OpenDialog | None = None
        self.last_actor: dict[str | None, OperatorActed] = {}  # who last acted on each step (None: the run)

    # -- what applies --------------------------------------------------------------------

    def applies(self, action: str) -> bool:
        """Whether to offer `action`, as the screen was last painted."""
        view = self.host.current_view()
        if view is None:
            return False
        return why_not(action, view, self._selected(view)) is None

    def act_or_explain(self, action: str) -> None:
        """The key of an action not offered was pressed. The run may have moved since the screen
        was painted (a gate opened a moment ago): act if it applies now, else say why not."""
        view = self._fresh_view()
        if view is None:
            return
        if action == "pause" and view.paused:
            action = "resume"  # one key does both
        reason = why_not(action, view, self._selected(view))
        if reason:
            self.host.notify(reason, severity="warning", timeout=6)
        else:
            getattr(self, action)()

    def _fresh_view(self) -> RunView | None:
        """The engine's view now: an action asks about the run as it is, not as last painted."""
        return self.host.engine.view() if self.host.current_view() is not None else None

    def _selected(self, view: RunView) -> StepView | None:
        step_id = self.host.selected_step_id()
        return view.steps.get(step_id) if step_id else None

    # -- the actions ----------------------------------------------------------------------

    @property
    def operator(self) -> Any:
        return self.host.engine.operator

    def _do(self, action: Callable[[], None], done: str | None = None) -> None:
        try:
            action()
        except ActionRefused as exc:
            self.host.notify(str(exc), severity="error", timeout=8)
            return
        if done:
            self.host.notify(done, timeout=4)
        self.host.refresh_view()

    def _do_on_a_thread(self, action: Callable[[], None], done: str) -> None:
        """`_do` off the screen's thread: a skip or mark done first stops what an interrupted
        attempt left running, which may take the grace period of a process that ignores SIGTERM."""

        def work() -> None:
            try:
                action()
            except ActionRefused as exc:
                self.host.app.call_from_thread(self.host.notify, str(exc), severity="error", timeout=8)
                return
            self.host.app.call_from_thread(self.host.notify, done, timeout=4)
            self.host.app.call_from_thread(self.host.refresh_view)

        self.host.run_worker(work, thread=True, group="operator-actions")

    def _open(self, action: str, step_id: str | None, modal: Screen[Any], decided: Callable[[object], None]) -> None:
        def closed(answer: object) -> None:
            if self.dialog is not None and self.dialog.screen is modal:
                self.dialog = None
            decided(answer)

        self.dialog = OpenDialog(action, step_id, modal)
        self.host.push_screen(modal, closed)

    def _confirm_then(
        self, action: str, step_id: str | None, modal: Screen[Any], run: Callable[[], None], done: str | None = None
    ) -> None:
        self._open(action, step_id, modal, lambda answer: self._do(run, done) if answer is True else None)

    def _reason_then(
        self, action: str, step_id: str, modal: Screen[Any], run: Callable[[str], None], done: str
    ) -> None:
        def decided(reason: object) -> None:
            if isinstance(reason, str) and reason:
                self._do_on_a_thread(lambda: run(reason), done)

        self._open(action, step_id, modal, decided)

    def answer(self) -> None:
        from widgets.screens.dialogs import ChecklistAnswer, ChecklistModal, ConfirmModal, GateAnswer, GateModal

        view = self._fresh_view()
        if view is None:
            return
        if view.rollback is not None and view.rollback.awaiting_confirmation:
            self.rollback()
            return
        step = self._selected(view)
        if step is None or step.gate is None:
            from widgets.what_now import operator_calls

            waiting = [c.step_id for c in operator_calls(view) if c.step_id and view.steps[c.step_id].gate]
            step = view.steps[waiting[0]] if waiting else None
        if step is None or step.gate is None:
            self.host.notify("no step is waiting for an answer", severity="warning")
            return
        self.host.select_step(step.id)
        gate, step_id = step.gate, step.id
        if gate.kind == "start":
            self._confirm_then(
                "answer",
                step_id,
                ConfirmModal("Start step", f"Start {step.title!r} now?", "Start"),
                lambda: self.host.engine.start_step(step_id, self.operator),
                f"started {step_id}",
            )
        elif gate.kind == "checklist":

            def ticked(picked: object) -> None:
                if isinstance(picked, ChecklistAnswer) and picked.recheck:
                    self._do(lambda: self.host.engine.recheck(step_id, self.operator), f"checks run again: {step_id}")
                elif isinstance(picked, ChecklistAnswer):
                    self._tick(step_id, picked.ticked, picked.note)

            modal = ChecklistModal(step.title, gate.items, gate.ticked, gate.notes)
            self._open("answer", step_id, modal, ticked)
        else:

            def answered(answer: object) -> None:
                if isinstance(answer, GateAnswer):
                    self._do(
                        lambda: self.host.engine.answer(step_id, answer.yes, self.operator, answer.typed),
                        f"answered {'yes' if answer.yes else 'no'}: {step_id}",
                    )

            self._open(
                "answer",
                step_id,
                GateModal(step.title, gate.question, gate.confirm, point_of_no_return=step.point_of_no_return),
                answered,
            )

    def _tick(self, step_id: str, picked: Iterable[int], note: str) -> None:
        view = self._fresh_view()
        step = view.steps.get(step_id) if view else None
        already = step.gate.ticked if step is not None and step.gate is not None else frozenset()
        for index in picked:
            if index not in already:  # ticked meanwhile by someone else: nothing to record twice
                self._do(lambda i=index: self.host.engine.tick(step_id, i, self.operator, note))  # type: ignore[misc]

    def start_step(self) -> None:
        from widgets.screens.dialogs import ConfirmModal

        view, step = self._applicable("start_step")
        if view is None or step is None:
            return
        when = ""
        if step.due is not None and step.due > view.now:
            when = f" It is due at {format_offset(step.due - view.t0)}."
        step_id = step.id
        self._confirm_then(
            "start_step",
            step_id,
            ConfirmModal("Start step", f"Start {step.title!r} now?{when}", "Start"),
            lambda: self.host.engine.start_step(step_id, self.operator),
            f"started {step_id}",
        )

    def retry(self) -> None:
        from widgets.screens.dialogs import ConfirmModal

        view, step = self._applicable("retry")
        if view is None or step is None:
            return
        step_id = step.id
        how = "It continues from its checkpoint." if step.resumes else "It starts over: this kind keeps no checkpoint."
        self._confirm_then(
            "retry",
            step_id,
            ConfirmModal("Retry step", f"Run {step.title!r} again (attempt {step.attempt + 1})? {how}", "Retry"),
            lambda: self.host.engine.retry(step_id, self.operator),
            f"retrying {step_id}",
        )

    def skip(self) -> None:
        from widgets.screens.dialogs import ReasonModal

        view, step = self._applicable("skip")
        if view is None or step is None:
            return
        step_id = step.id
        self._reason_then(
            "skip",
            step_id,
            ReasonModal("Skip step", f"Skip {step.title!r}? Steps that need it will go on.{_stops_first(step)}"),
            lambda reason: self.host.engine.skip(step_id, reason, self.operator),
            f"skipped {step_id}",
        )

    def mark_done(self) -> None:
        from widgets.screens.dialogs import ReasonModal

        view, step = self._applicable("mark_done")
        if view is None or step is None:
            return
        step_id = step.id
        self._reason_then(
            "mark_done",
            step_id,
            ReasonModal("Mark done", f"Mark {step.title!r} done without running it?{_stops_first(step)}"),
            lambda reason: self.host.engine.mark_done(step_id, reason, self.operator),
            f"marked done: {step_id}",
        )

    def cancel_step(self) -> None:
        from widgets.screens.dialogs import ConfirmModal

        view, step = self._applicable("cancel_step")
        if view is None or step is None:
            return
        step_id = step.id
        self._confirm_then(
            "cancel_step",
            step_id,
            ConfirmModal("Cancel step", f"Cancel {step.title!r}?", "Cancel step", danger=True),
            lambda: self.host.engine.cancel(step_id, self.operator),
            f"cancelling {step_id}",
        )

    def _applicable(self, action: str) -> tuple[RunView | None, StepView | None]:
        view = self._fresh_view()
        if view is None:
            return None, None
        step = self._selected(view)
        reason = why_not(action, view, step)
        if reason:
            self.host.notify(reason, severity="warning", timeout=6)
            return None, None
        return view, step

    def pause(self) -> None:
        self._do(lambda: self.host.engine.pause(self.operator), "paused: no new step starts")

    def resume(self) -> None:
        self._do(lambda: self.host.engine.resume(self.operator), "resumed")

    def rollback(self) -> None:
        from widgets.screens.dialogs import RollbackModal, RollbackRequest

        if self.dialog is not None and self.dialog.action == "rollback":
            return
        view = self._fresh_view()
        if view is None:
            return
        reason = why_not("rollback", view, None)
        if reason:
            self.host.notify(reason, severity="warning", timeout=6)
            return
        pending = view.rollback.reason if view.rollback and view.rollback.awaiting_confirmation else None

        def decided(request: object) -> None:
            if isinstance(request, RollbackRequest):
                self._do(
                    lambda: self.host.engine.rollback(self.operator, request.reason, request.typed), "rollback started"
                )

        self._open(
            "rollback",
            None,
            RollbackModal(self.host.engine.rollback_plan(), view.ponr_passed, CONFIRM_WORD, pending),
            decided,
        )

    # -- dialogs follow the journal ------------------------------------------------------------

    def heard(self, event: OperatorActed) -> None:
        self.last_actor[event.step_id] = event

    def reconcile(self, view: RunView) -> None:
        """Close a dialog whose question was settled elsewhere; keep a checklist's ticks current."""
        from widgets.screens.dialogs import ChecklistModal

        dialog = self.dialog
        if dialog is None:
            return
        if dialog.action == "rollback":
            rollback = view.rollback
            if view.state in ENDED or (rollback is not None and not rollback.awaiting_confirmation):
                self._close(
                    dialog,
                    "a rollback is already under way"
                    if view.state == "rolling_back"
                    else f"the run has ended ({view.state.replace('_', ' ')})",
                    None,
                )
            return
        step = view.steps.get(dialog.step_id) if dialog.step_id else None
        if step is None:
            return
        if dialog.action == "answer":
            if step.gate is None:
                self._close(dialog, f"{step.id} was settled: it is {step.state.value}", step.id)
            elif isinstance(dialog.screen, ChecklistModal):
                dialog.screen.sync(step.gate.ticked)
            return
        reason = why_not(dialog.action, view, step)
        if reason:
            self._close(dialog, f"{step.id} is now {step.state.value}", step.id)

    def _close(self, dialog: OpenDialog, what: str, step_id: str | None) -> None:
        actor = self.last_actor.get(step_id)
        who = f" by {actor.operator} ({actor.action}{': ' + actor.detail if actor.detail else ''})" if actor else ""
        self.dialog = None
        dialog.screen.dismiss(None)
        self.host.notify(f"the dialog closed: {what}{who}", severity="warning", timeout=12)


def _stops_first(step: StepView) -> str:
    """What the answer stops first: an interrupted attempt's processes still alive."""
    return f" Stopped first: {step.left_running}." if step.left_running else ""
