"""The operator's keys and palette commands of the cockpit's app, split out of `cockpit/app.py`.

Each action reads the selected step, asks through a modal where it is dangerous, and ends in
one engine call that journals it; a refusal is shown, never raised. `CockpitApp` inherits
this class; the screen's composition and the engine's events stay in `cockpit/app.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from textual.app import App, SystemCommand
from textual.screen import Screen

from cockpit.actions import CONFIRM_WORD, ActionRefused
from cockpit.clock import format_offset

if TYPE_CHECKING:
    from cockpit.engine import Engine
    from cockpit.runtime import RunView, StepView
    from cockpit.session import Session
    from widgets.steps_table import StepsTable


class OperatorKeys(App[int]):
    if TYPE_CHECKING:
        session: Session | None
        engine: Engine
        _view: RunView | None
        _table: StepsTable
        _follow: bool
        _follow_target: str | None
        _rollback_modal_open: bool

        def _refresh_view(self) -> None: ...

    # -- operator actions ---------------------------------------------------------------------------

    @property
    def operator(self) -> Any:
        return self.engine.operator

    def _selected_view(self) -> StepView | None:
        step_id = self._table.selected_step
        if step_id is None or self._view is None:
            return None
        return self._view.steps.get(step_id)

    @property
    def attached(self) -> bool:
        return self.engine is not None

    def _do(self, action: Callable[[], None], done: str | None = None) -> None:
        try:
            action()
        except ActionRefused as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        if done:
            self.notify(done, timeout=4)
        self._refresh_view()

    def _confirm_then(self, modal: Any, action: Callable[[], None], done: str | None = None) -> None:
        """Push a yes/no modal; run the action only on an explicit yes."""

        def decided(answer: object) -> None:
            if answer is True:
                self._do(action, done)

        self.push_screen(modal, decided)

    def _reason_then(self, modal: Any, action: Callable[[str], None], done: str) -> None:
        def decided(reason: object) -> None:
            if isinstance(reason, str) and reason:
                self._do(lambda: action(reason), done)

        self.push_screen(modal, decided)

    def _need_step(self) -> StepView | None:
        step = self._selected_view()
        if step is None:
            self.notify("select a step first (↑/↓)", severity="warning")
        return step

    def action_answer(self) -> None:
        if not self.attached:
            return
        from widgets.modals import ChecklistModal, ConfirmModal, GateAnswer, GateModal
        view = self.engine.view()
        if view.rollback is not None and view.rollback.awaiting_confirmation:
            self.action_rollback()
            return
        step = self._selected_view()
        if step is None or step.gate is None:
            step = next((s for s in view.steps.values() if s.gate is not None), None)
        if step is None or step.gate is None:
            self.notify("no step is waiting for an answer", severity="warning")
            return
        self._table.select_step(step.id)
        gate, step_id = step.gate, step.id
        if gate.kind == "start":
            self._confirm_then(ConfirmModal("Start step", f"Start {step.title!r} now?", "Start"),
                               lambda: self.engine.start_step(step_id, self.operator), f"started {step_id}")
        elif gate.kind == "checklist":
            def ticked(picked: object) -> None:
                if isinstance(picked, list):
                    self._tick(step_id, picked)

            self.push_screen(ChecklistModal(step.title, gate.items, gate.ticked), ticked)
        else:
            def answered(answer: object) -> None:
                if isinstance(answer, GateAnswer):
                    self._do(lambda: self.engine.answer(step_id, answer.yes, self.operator, answer.typed),
                             f"answered {'yes' if answer.yes else 'no'}: {step_id}")

            self.push_screen(GateModal(step.title, gate.question, gate.confirm), answered)

    def _tick(self, step_id: str, picked: Iterable[int]) -> None:
        for index in picked:
            self._do(lambda i=index: self.engine.tick(step_id, i, self.operator))  # type: ignore[misc]

    def action_start_step(self) -> None:
        from widgets.modals import ConfirmModal

        step = self._need_step()
        if step is None:
            return
        when = ""
        if step.due is not None and self._view is not None and step.due > self._view.now:
            when = f" It is due at {format_offset(step.due - self._view.t0)}."
        step_id = step.id
        self._confirm_then(ConfirmModal("Start step", f"Start {step.title!r} now?{when}", "Start"),
                           lambda: self.engine.start_step(step_id, self.operator), f"started {step_id}")

    def action_retry(self) -> None:
        from widgets.modals import ConfirmModal

        step = self._need_step()
        if step is None:
            return
        step_id = step.id
        self._confirm_then(ConfirmModal("Retry step", f"Run {step.title!r} again (attempt {step.attempt + 1})? "
                                        "It resumes from its checkpoint.", "Retry"),
                           lambda: self.engine.retry(step_id, self.operator), f"retrying {step_id}")

    def action_skip(self) -> None:
        from widgets.modals import ReasonModal

        step = self._need_step()
        if step is None:
            return
        step_id = step.id
        self._reason_then(ReasonModal("Skip step", f"Skip {step.title!r}? Steps that need it will go on."),
                          lambda reason: self.engine.skip(step_id, reason, self.operator), f"skipped {step_id}")

    def action_mark_done(self) -> None:
        from widgets.modals import ReasonModal

        step = self._need_step()
        if step is None:
            return
        step_id = step.id
        self._reason_then(ReasonModal("Mark done", f"Mark {step.title!r} done without running it?"),
                          lambda reason: self.engine.mark_done(step_id, reason, self.operator),
                          f"marked done: {step_id}")

    def action_cancel_step(self) -> None:
        from widgets.modals import ConfirmModal

        step = self._need_step()
        if step is None:
            return
        step_id = step.id
        self._confirm_then(ConfirmModal("Cancel step", f"Cancel {step.title!r}?", "Cancel step", danger=True),
                           lambda: self.engine.cancel(step_id, self.operator), f"cancelling {step_id}")

    def action_toggle_pause(self) -> None:
        if not self.attached:
            return
        if self.engine.paused:
            self._do(lambda: self.engine.resume(self.operator), "resumed")
        else:
            self._do(lambda: self.engine.pause(self.operator), "paused: no new step starts")

    def action_rollback(self) -> None:
        if not self.attached:
            return
        from widgets.modals import RollbackModal, RollbackRequest

        if self._rollback_modal_open:
            return
        view = self.engine.view()
        pending = view.rollback.reason if view.rollback and view.rollback.awaiting_confirmation else None
        self._rollback_modal_open = True

        def decided(request: object) -> None:
            self._rollback_modal_open = False
            if isinstance(request, RollbackRequest):
                self._do(lambda: self.engine.rollback(self.operator, request.reason, request.typed),
                         "rollback started")

        self.push_screen(RollbackModal(self.engine.rollback_plan(), view.ponr_passed, CONFIRM_WORD, pending),
                         decided)

    def action_toggle_follow(self) -> None:
        self._follow = not self._follow
        if self._follow and self._view is not None:
            # Catch up with what runs now: the step that started last among those running or waiting.
            active = [s for s in self._view.steps.values() if s.state.value in ("running", "waiting") and s.started]
            if active:
                self._follow_target = max(active, key=lambda s: s.started or self._view.now).id  # type: ignore[union-attr]
                self._refresh_view()
        self.notify("follow is " + ("on" if self._follow else "off"), timeout=3)

    def action_toggle_log(self) -> None:
        if self.screen.maximized is not None:
            self.screen.minimize()
        else:
            self.screen.maximize(self.query_one("#step-log"))

    def action_help(self) -> None:
        from widgets.help import HelpScreen

        self.push_screen(HelpScreen())

    def action_request_quit(self) -> None:
        from widgets.modals import QuitModal

        running = self.engine.running_steps() if self.attached else []
        if not running:
            self.exit(0)
            return
        self._confirm_then(QuitModal("Quit?", f"Still running: {', '.join(running)}. They stop now and are "
                                     "journaled as interrupted; `cockpit run` continues the run.", "Quit",
                                     danger=True),
                           lambda: self.exit(0))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield SystemCommand("Answer", "Answer the waiting gate (question, start, checklist)", self.action_answer)
        yield SystemCommand("DNS grid", "Every resolver's answer, TTL, state and history",
                            self.action_dns_grid)  # type: ignore[attr-defined]
        yield SystemCommand("Start step", "Start the selected step now", self.action_start_step)
        yield SystemCommand("Retry step", "Run the selected step again", self.action_retry)
        yield SystemCommand("Skip step", "Skip the selected step, with a reason", self.action_skip)
        yield SystemCommand("Mark done", "Mark the selected step done, with a reason", self.action_mark_done)
        yield SystemCommand("Cancel step", "Cancel the selected step", self.action_cancel_step)
        yield SystemCommand("Pause / resume", "No new step starts while paused", self.action_toggle_pause)
        yield SystemCommand("Roll back", "Roll the go-live back (asks first)", self.action_rollback)
        yield SystemCommand("Follow", "Select each step as it starts", self.action_toggle_follow)
        yield SystemCommand("Enlarge log", "Show the selected step's log on the whole screen", self.action_toggle_log)
        yield SystemCommand("Help", "Keys and glyphs", self.action_help)
        yield SystemCommand("Quit", "Quit the cockpit (the run resumes later)", self.action_request_quit)
        for step in self.engine.runbook.steps if self.attached else ():
            yield SystemCommand(f"Go to {step.id}", step.label,
                                lambda s=step.id: self._table.select_step(s), discover=False)
