"""Operator actions on a running engine; each is journaled with the operator's identity.

Every action checks that it makes sense in the step's current state and raises
`ActionRefused` with a sentence for the operator when it does not. Answers given on the
command line (`--answer STEP=VALUE`) are applied through the same actions, as the operator
`... via --answer`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from cockpit.events import OperatorActed, RunState, StepState
from cockpit.operator import Operator

if TYPE_CHECKING:
    from cockpit.events import Event
    from cockpit.runbook import Runbook
    from cockpit.runtime import Gate, StepRuntime


# What the operator types to roll back past a point of no return.
CONFIRM_WORD = "ROLLBACK"


class ActionRefused(Exception):
    """An operator action that cannot apply now; the message says why."""


_REDOABLE = (StepState.FAILED, StepState.CANCELLED, StepState.INTERRUPTED)
_SETTLEABLE = (StepState.SCHEDULED, StepState.READY, StepState.WAITING, StepState.RUNNING, *_REDOABLE)


class OperatorActions:
    if TYPE_CHECKING:
        runbook: Runbook
        answers: dict[str, str]
        operator: Operator
        paused: bool
        run_state: RunState
        _lock: threading.RLock
        _steps: dict[str, StepRuntime]

        def _emit(
            self,
            event: Event,
            *,
            step: StepRuntime | None = None,
            run: dict[str, Any] | None = None,
            action: tuple[str, str, str | None, str] | None = None,
            trigger: tuple[str, str] | None = None,
        ) -> Event: ...
        def _set_state(self, rt: StepRuntime, state: StepState, reason: str = "") -> None: ...
        def _set_run_state(self, state: RunState, reason: str = "") -> None: ...
        def _start_attempt(self, rt: StepRuntime) -> None: ...
        def _succeed(self, rt: StepRuntime, reason: str) -> None: ...
        def _needs_met(self, step_id: str) -> bool: ...
        def _persist_run(self) -> None: ...
        def _save_ticks(self, step_id: str, ticked: set[int]) -> None: ...
        def _log(self, rt: StepRuntime, line: str) -> None: ...

    def _act(self, operator: Operator, action: str, step_id: str | None = None, detail: str = "") -> None:
        self._emit(
            OperatorActed(action=action, operator=str(operator), step_id=step_id, detail=detail),
            action=(str(operator), action, step_id, detail),
        )

    def _runtime(self, step_id: str) -> StepRuntime:
        rt = self._steps.get(step_id)
        if rt is None:
            raise ActionRefused(f"no step {step_id!r} in this runbook")
        return rt

    def _refuse_if_ended(self) -> None:
        if self.run_state.ended:
            raise ActionRefused(f"the run has ended ({self.run_state.value})")

    @staticmethod
    def _stop_attempt(rt: StepRuntime, intent: str, reason: str) -> None:
        import time

        rt.intent = intent
        rt.intent_reason = reason
        rt.stop_requested_wall = time.time()
        assert rt.cancel is not None
        rt.cancel.set()

    # -- the actions ---------------------------------------------------------------------

    def start_step(self, step_id: str, operator: Operator) -> None:
        """Start a step now: before it is due, or one that waits for an operator start."""
        with self._lock:
            self._refuse_if_ended()
            rt = self._runtime(step_id)
            step = self.runbook.step(step_id)
            if self.runbook.is_rollback_step(step_id) and self.run_state != RunState.ROLLING_BACK:
                raise ActionRefused(f"{step_id!r} is a rollback step: it runs only during a rollback")
            startable = rt.state == StepState.SCHEDULED or (
                rt.state == StepState.WAITING and rt.gate is not None and rt.gate.kind == "start"
            )
            if not startable:
                raise ActionRefused(
                    f"{step.label!r} is {rt.state.value}; only a scheduled or waiting step can be started"
                )
            unmet = [n for n in step.needs if not self._steps[n].state.satisfies_needs]
            if unmet:
                raise ActionRefused(f"{step.label!r} needs {', '.join(unmet)} to succeed first")
            self._act(operator, "start", step_id)
            rt.operator_started = True
            rt.retry_at = None
            if rt.gate is not None:
                rt.gate.answer = True
                rt.gate.answered.set()
                rt.gate = None
            self._set_state(rt, StepState.READY, f"started by {operator}")
            if self.paused and rt.cancel is None and self.run_state != RunState.ROLLING_BACK:
                self._start_attempt(rt)

    def pause(self, operator: Operator, reason: str = "") -> None:
        """No new step starts until resumed; running steps carry on."""
        with self._lock:
            self._refuse_if_ended()
            if self.paused:
                raise ActionRefused("the run is already paused")
            self._act(operator, "pause", None, reason)
            self.paused = True
            self._persist_run()
            if self.run_state == RunState.RUNNING:
                self._set_run_state(RunState.PAUSED, reason or f"paused by {operator}")

    def resume(self, operator: Operator) -> None:
        with self._lock:
            self._refuse_if_ended()
            if not self.paused:
                raise ActionRefused("the run is not paused")
            self._act(operator, "resume")
            self.paused = False
            self._persist_run()
            if self.run_state == RunState.PAUSED:
                self._set_run_state(RunState.RUNNING, f"resumed by {operator}")

    def retry(self, step_id: str, operator: Operator) -> None:
        """Run a failed, cancelled or interrupted step again (from its checkpoint)."""
        with self._lock:
            self._refuse_if_ended()
            rt = self._runtime(step_id)
            if rt.state not in _REDOABLE:
                raise ActionRefused(
                    f"{step_id!r} is {rt.state.value}; only a failed, cancelled or interrupted step can be retried"
                )
            if (self.runbook.is_rollback_step(step_id)) != (self.run_state == RunState.ROLLING_BACK):
                raise ActionRefused(
                    "during a rollback only rollback steps run"
                    if self.run_state == RunState.ROLLING_BACK
                    else f"{step_id!r} runs only during a rollback"
                )
            self._act(operator, "retry", step_id)
            rt.retries_left = self.runbook.step(step_id).retries
            rt.retry_at = None
            rt.operator_started = True
            self._set_state(rt, StepState.SCHEDULED, f"retry requested by {operator}")

    def skip(self, step_id: str, reason: str, operator: Operator) -> None:
        """Settle a step as skipped; steps that need it may go on."""
        self._settle(step_id, reason, operator, "skip")

    def mark_done(self, step_id: str, reason: str, operator: Operator) -> None:
        """Settle a step as succeeded without running it (the operator did it another way)."""
        self._settle(step_id, reason, operator, "done")

    def _settle(self, step_id: str, reason: str, operator: Operator, how: str) -> None:
        reason = reason.strip()
        verb = "skip" if how == "skip" else "mark done"
        if not reason:
            raise ActionRefused(f"a reason is required to {verb} a step")
        with self._lock:
            self._refuse_if_ended()
            rt = self._runtime(step_id)
            if rt.state not in _SETTLEABLE:
                raise ActionRefused(f"{step_id!r} is {rt.state.value}; nothing to {verb}")
            self._act(operator, "skip" if how == "skip" else "mark_done", step_id, reason)
            text = f"{'skipped' if how == 'skip' else 'marked done'} by {operator}: {reason}"
            if rt.cancel is not None:
                self._stop_attempt(rt, how, text)
                return
            rt.gate = None
            if how == "skip":
                self._set_state(rt, StepState.SKIPPED, text)
            else:
                self._succeed(rt, text)

    def cancel(self, step_id: str, operator: Operator) -> None:
        with self._lock:
            self._refuse_if_ended()
            rt = self._runtime(step_id)
            if rt.state not in (StepState.SCHEDULED, StepState.READY, StepState.WAITING, StepState.RUNNING):
                raise ActionRefused(f"{step_id!r} is {rt.state.value}; nothing to cancel")
            self._act(operator, "cancel", step_id)
            if rt.cancel is not None:
                self._stop_attempt(rt, "cancel", f"cancelled by {operator}")
            else:
                rt.gate = None
                self._set_state(rt, StepState.CANCELLED, f"cancelled by {operator}")

    def answer(self, step_id: str, yes: bool, operator: Operator, typed: str | None = None) -> None:
        """Answer a step's gate: its question, its start, or its whole checklist."""
        with self._lock:
            self._refuse_if_ended()
            rt = self._runtime(step_id)
            gate = rt.gate
            if rt.state != StepState.WAITING or gate is None:
                raise ActionRefused(f"{step_id!r} is not waiting for an answer")
            if gate.kind == "start":
                if not yes:
                    raise ActionRefused("to leave it unstarted, do nothing; to drop it, skip it with a reason")
                self.start_step(step_id, operator)
                return
            if yes and gate.kind == "ask" and gate.confirm is not None and (typed or "").strip() != gate.confirm:
                raise ActionRefused(f"type exactly {gate.confirm!r} to confirm")
            self._act(operator, "answer", step_id, "yes" if yes else "no")
            self._log(rt, f"answered {'yes' if yes else 'no'} by {operator}")
            if gate.kind == "checklist" and yes:
                gate.ticked = set(range(len(gate.items)))
            gate.answer = yes
            gate.answered.set()

    def tick(self, step_id: str, item: int, operator: Operator) -> None:
        """Tick one item of a checklist; the step succeeds when every item is ticked."""
        with self._lock:
            self._refuse_if_ended()
            rt = self._runtime(step_id)
            gate = rt.gate
            if gate is None or gate.kind != "checklist":
                raise ActionRefused(f"{step_id!r} has no open checklist")
            if not 0 <= item < len(gate.items):
                raise ActionRefused(f"{step_id!r} has no item {item + 1}")
            if item in gate.ticked:
                raise ActionRefused(f"item {item + 1} is already ticked")
            self._act(operator, "tick", step_id, gate.items[item])
            self._log(rt, f"ticked by {operator}: {gate.items[item]}")
            gate.ticked.add(item)
            self._save_ticks(step_id, gate.ticked)
            if len(gate.ticked) == len(gate.items):
                gate.answer = True
                gate.answered.set()

    # -- answers given on the command line -----------------------------------------------------

    def _apply_answer(self, rt: StepRuntime) -> None:
        value = self.answers.get(rt.id)
        if value is None:
            return
        operator = self.operator.acting_via("--answer")
        gate: Gate | None = rt.gate
        if rt.state == StepState.WAITING and gate is not None and value in ("yes", "no"):
            del self.answers[rt.id]
            self.answer(rt.id, value == "yes", operator, typed=gate.confirm)
        elif rt.state in _REDOABLE:
            if value == "retry":
                del self.answers[rt.id]
                self.retry(rt.id, operator)
            elif value.startswith(("skip:", "done:")):
                del self.answers[rt.id]
                how, _, reason = value.partition(":")
                self._settle(rt.id, reason, operator, "skip" if how == "skip" else "done")
