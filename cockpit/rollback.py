"""The rollback sequence, and what triggers do when they fire.

A rollback stops the forward run, waits for running forward steps to stop, then runs the
`undo` step of every completed forward step in reverse order of completion, then the
rollback-phase steps that undo nothing in particular, in `needs` order, one at a time. The
trigger's `within` sets a deadline that is counted down and alerted on. After a step marked
`point_of_no_return` has succeeded, a rollback waits for a typed confirmation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cockpit.actions import CONFIRM_WORD, ActionRefused
from cockpit.clock import Clock, format_duration
from cockpit.events import GateOpened, RollbackFinished, RollbackStarted, RunState, StepState, TriggerFired
from cockpit.operator import Operator
from cockpit.plan import topological_order
from cockpit.runtime import Gate, Outcome, StepRuntime
from cockpit.triggers import Firing

if TYPE_CHECKING:
    from cockpit.events import Event
    from cockpit.journal import Journal
    from cockpit.runbook import Runbook

__all__ = ["CONFIRM_WORD", "RollbackControl", "RollbackState"]


@dataclass
class RollbackState:
    reason: str
    trigger_id: str | None
    deadline: datetime | None
    plan: list[str] | None = None
    position: int = 0
    awaiting_confirmation: bool = False
    finished: bool = False
    ok: bool | None = None
    deadline_alerted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "trigger_id": self.trigger_id,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "plan": self.plan,
            "position": self.position,
            "awaiting_confirmation": self.awaiting_confirmation,
            "finished": self.finished,
            "ok": self.ok,
            "deadline_alerted": self.deadline_alerted,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RollbackState:
        deadline = data.get("deadline")
        return cls(
            reason=data["reason"],
            trigger_id=data.get("trigger_id"),
            deadline=datetime.fromisoformat(deadline) if deadline else None,
            plan=data.get("plan"),
            position=data.get("position", 0),
            awaiting_confirmation=data.get("awaiting_confirmation", False),
            finished=data.get("finished", False),
            ok=data.get("ok"),
            deadline_alerted=data.get("deadline_alerted", False),
        )


class RollbackControl:
    if TYPE_CHECKING:
        runbook: Runbook
        journal: Journal
        clock: Clock
        answers: dict[str, str]
        operator: Operator
        paused: bool
        run_state: RunState
        run_id: int
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
        def _alert(self, level: str, message: str, step_id: str | None = None) -> None: ...
        def _act(self, operator: Operator, action: str, step_id: str | None = None, detail: str = "") -> None: ...
        @staticmethod
        def _stop_attempt(rt: StepRuntime, intent: str, reason: str) -> None: ...

    rollback_state: RollbackState | None

    def _init_rollback(self) -> None:
        self.rollback_state = None

    def _restore_rollback(self, data: dict[str, Any] | None) -> None:
        self.rollback_state = RollbackState.from_json(data) if data else None

    def _persist_run(self) -> None:
        rb = self.rollback_state
        self.journal.update_run(self.run_id, paused=int(self.paused), rollback=rb.to_json() if rb else None)

    @property
    def ponr_passed(self) -> bool:
        return any(
            s.point_of_no_return and self._steps[s.id].state == StepState.SUCCEEDED for s in self.runbook.forward_steps
        )

    # -- triggers ------------------------------------------------------------------------

    def _fire(self, firing: Firing) -> None:
        trigger = firing.trigger
        now = self.clock.now()
        deadline = now + trigger.within if trigger.action == "rollback" and trigger.within else None
        self._emit(
            TriggerFired(trigger_id=trigger.id, action=trigger.action, reason=firing.reason, deadline=deadline),
            trigger=(trigger.id, firing.reason),
        )
        if trigger.action == "alert":
            self._alert("error", f"{trigger.label}: {firing.reason}")
        elif trigger.action == "pause":
            if not self.paused and not self.run_state.ended:
                self.paused = True
                self._persist_run()
                if self.run_state == RunState.RUNNING:
                    self._set_run_state(RunState.PAUSED, f"trigger {trigger.id!r}: {firing.reason}")
        elif trigger.action == "rollback":
            name = f"trigger {trigger.id!r}" + (f" ({trigger.title})" if trigger.title else "")
            self._begin_rollback(f"{name}: {firing.reason}", trigger.id, deadline, confirmed=False)

    # -- starting a rollback ---------------------------------------------------------------

    def rollback(self, operator: Operator, reason: str, typed: str | None = None) -> None:
        """The operator rolls back. Past a point of no return, `typed` must be ROLLBACK."""
        with self._lock:
            if self.run_state.ended:
                raise ActionRefused(f"the run has ended ({self.run_state.value})")
            if self.runbook.rollback_phase is None:
                raise ActionRefused("this runbook has no rollback phase")
            rb = self.rollback_state
            if rb is not None and not rb.awaiting_confirmation:
                raise ActionRefused("a rollback is already under way")
            if self.ponr_passed and (typed or "").strip() != CONFIRM_WORD:
                raise ActionRefused(f"a point of no return has passed: type {CONFIRM_WORD} to roll back anyway")
            self._act(operator, "rollback", None, reason)
            if rb is not None:
                rb.awaiting_confirmation = False
                self._enter_rollback()
            else:
                self._begin_rollback(f"requested by {operator}: {reason}", None, None, confirmed=True)

    def decline_rollback(self, operator: Operator, reason: str) -> None:
        """Refuse a trigger's rollback that waits for confirmation; the run goes on."""
        with self._lock:
            rb = self.rollback_state
            if rb is None or not rb.awaiting_confirmation:
                raise ActionRefused("no rollback waits for confirmation")
            if not reason.strip():
                raise ActionRefused("a reason is required to decline a rollback")
            self._act(operator, "decline_rollback", None, reason)
            self.rollback_state = None
            self._persist_run()

    def _begin_rollback(
        self, reason: str, trigger_id: str | None, deadline: datetime | None, *, confirmed: bool
    ) -> None:
        if self.rollback_state is not None or self.run_state.ended:
            return
        self.rollback_state = RollbackState(reason, trigger_id, deadline)
        if self.ponr_passed and not confirmed:
            self.rollback_state.awaiting_confirmation = True
            self._persist_run()
            self._emit(
                GateOpened(
                    step_id="",
                    gate="rollback",
                    confirm=CONFIRM_WORD,
                    question=f"Roll back? {reason}. A point of no return has passed: "
                    f"type {CONFIRM_WORD} to roll back anyway",
                )
            )
            if self.answers.pop("rollback", None) == "yes":
                self.rollback(self.operator.acting_via("--answer"), "confirmed on the command line", CONFIRM_WORD)
            return
        self._enter_rollback()

    def _enter_rollback(self) -> None:
        rb = self.rollback_state
        assert rb is not None
        self.paused = False
        self._persist_run()
        self._set_run_state(RunState.ROLLING_BACK, rb.reason)
        for step in self.runbook.forward_steps:
            rt = self._steps[step.id]
            if rt.cancel is not None:
                self._stop_attempt(rt, "rollback", "cancelled by the rollback")
            elif rt.state == StepState.WAITING:
                rt.gate = None
                self._set_state(rt, StepState.SCHEDULED, "not started: rollback")

    # -- driving it ------------------------------------------------------------------------

    def _rollback_pending(self) -> bool:
        return self.rollback_state is not None and self.rollback_state.awaiting_confirmation

    def _rollback_gate_open(self) -> bool:
        return self._rollback_pending()

    def rollback_plan(self) -> list[str]:
        """Undo steps of completed forward steps, latest first; then the other rollback steps."""
        completed = sorted(
            (s for s in self.runbook.forward_steps if self._steps[s.id].state == StepState.SUCCEEDED),
            key=lambda s: self._steps[s.id].completed_seq or 0,
            reverse=True,
        )
        plan: list[str] = []
        for step in completed:
            if step.undo and step.undo not in plan:
                plan.append(step.undo)
        designated = {s.undo for s in self.runbook.forward_steps if s.undo}
        rest = [s.id for s in self.runbook.rollback_steps if s.id not in designated and s.id not in plan]
        plan.extend(topological_order(self.runbook, rest))
        return plan

    def _advance_rollback(self, now: datetime) -> None:
        rb = self.rollback_state
        if rb is None or rb.awaiting_confirmation or rb.finished:
            return
        if any(self._steps[s.id].cancel is not None for s in self.runbook.forward_steps):
            return  # forward steps are still stopping
        if rb.plan is None:
            rb.plan = self.rollback_plan()
            self._persist_run()
            self._emit(
                RollbackStarted(reason=rb.reason, trigger_id=rb.trigger_id, plan=tuple(rb.plan), deadline=rb.deadline)
            )
        while rb.position < len(rb.plan):
            rt = self._steps[rb.plan[rb.position]]
            step = self.runbook.step(rt.id)
            if rt.state.satisfies_needs:
                rb.position += 1
                self._persist_run()
                continue
            if rt.state == StepState.SCHEDULED:
                if (rt.retry_at is not None and now < rt.retry_at) or self.paused:
                    return
                if step.start == "operator" and not rt.operator_started:
                    rt.gate = Gate("start", f"Start {step.label!r}?")
                    self._set_state(rt, StepState.WAITING, "waits for the operator to start it")
                    self._emit(GateOpened(step_id=rt.id, gate="start", question=rt.gate.question))
                    return
                rt.retry_at = None
                self._set_state(rt, StepState.READY, "rollback")
            if rt.state == StepState.READY and not self.paused:
                self._start_attempt(rt)
            return
        rb.finished, rb.ok = True, True
        self._persist_run()
        self._emit(RollbackFinished(ok=True, reason=rb.reason))
        self._set_run_state(RunState.ROLLED_BACK, rb.reason)

    def _rollback_wakeups(self) -> list[datetime]:
        """When the scheduler must look again: the deadline's alert, a rollback step's retry."""
        rb = self.rollback_state
        if rb is None or rb.finished:
            return []
        times = []
        if rb.deadline is not None and not rb.deadline_alerted:
            times.append(rb.deadline + timedelta(milliseconds=1))
        if rb.plan is not None and rb.position < len(rb.plan):
            retry_at = self._steps[rb.plan[rb.position]].retry_at
            if retry_at is not None:
                times.append(retry_at)
        return times

    def _rollback_outcome(self) -> Outcome:
        rb = self.rollback_state
        if rb is None or rb.plan is None or rb.position >= len(rb.plan):
            return Outcome.RUNNING
        state = self._steps[rb.plan[rb.position]].state
        if state in (StepState.FAILED, StepState.CANCELLED):
            return Outcome.FAILED
        if state in (StepState.INTERRUPTED, StepState.WAITING):
            return Outcome.WAITING
        if self.paused:
            return Outcome.WAITING
        return Outcome.RUNNING

    def _check_rollback_deadline(self, now: datetime) -> None:
        rb = self.rollback_state
        if rb is None or rb.finished or rb.deadline is None or rb.deadline_alerted or now <= rb.deadline:
            return
        rb.deadline_alerted = True
        self._persist_run()
        late = format_duration(now - rb.deadline)
        self._alert("error", f"the rollback deadline passed {late} ago and the rollback is not finished")
