"""The rollback sequence.

A rollback stops the forward run, waits for running forward steps to stop, then runs the
`undo` step of every completed forward step in reverse order of completion, then the
rollback-phase steps that undo nothing in particular, in `needs` order, one at a time; a step
that needs another rollback step runs after it, wherever it was in that order. The
trigger's `within` sets a deadline that is counted down and alerted on. After a step marked
`point_of_no_return` has succeeded, a rollback waits for a typed confirmation.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cockpit.clock import format_duration
from cockpit.engine.attempts import Attempts
from cockpit.engine.command_line_answers import CommandLineAnswers
from cockpit.engine.live_run import LiveRun
from cockpit.engine.operator_actions import ActionRefused
from cockpit.engine.publisher import Publisher
from cockpit.engine.rollback_state import RollbackState
from cockpit.engine.step_runtime import Gate
from cockpit.engine.transitions import Transitions
from cockpit.engine.views import Outcome
from cockpit.events import GateOpened, RollbackFinished, RollbackStarted, RunState, StepState
from cockpit.operator import Operator
from cockpit.plan import topological_order
from cockpit.runbook import Runbook

# What the operator types to roll back past a point of no return.
CONFIRM_WORD = "ROLLBACK"


class Rollback:
    def __init__(
        self,
        run: LiveRun,
        publisher: Publisher,
        transitions: Transitions,
        attempts: Attempts,
        answers: CommandLineAnswers,
    ) -> None:
        self._run = run
        self._publisher = publisher
        self._transitions = transitions
        self._attempts = attempts
        self._answers = answers

    # -- asked for by the operator ------------------------------------------------------------

    def request(self, operator: Operator, reason: str, typed: str | None = None) -> None:
        """The operator rolls back. Past a point of no return, `typed` must be ROLLBACK."""
        live = self._run
        with live.lock:
            if live.state.ended:
                raise ActionRefused(f"the run has ended ({live.state.value})")
            if live.runbook.rollback_phase is None:
                raise ActionRefused("this runbook has no rollback phase")
            rb = live.rollback
            if rb is not None and not rb.awaiting_confirmation:
                raise ActionRefused("a rollback is already under way")
            if live.ponr_passed and (typed or "").strip() != CONFIRM_WORD:
                raise ActionRefused(f"a point of no return has passed: type {CONFIRM_WORD} to roll back anyway")
            self._publisher.operator_acted(operator, "rollback", None, reason)
            if rb is not None:
                rb.awaiting_confirmation = False
                self._enter()
            else:
                self.begin(f"requested by {operator}: {reason}", None, None, confirmed=True)

    def decline(self, operator: Operator, reason: str) -> None:
        """Refuse a trigger's rollback that waits for confirmation; the run goes on."""
        live = self._run
        with live.lock:
            rb = live.rollback
            if rb is None or not rb.awaiting_confirmation:
                raise ActionRefused("no rollback waits for confirmation")
            if not reason.strip():
                raise ActionRefused("a reason is required to decline a rollback")
            self._publisher.operator_acted(operator, "decline_rollback", None, reason)
            live.rollback = None
            live.persist()

    # -- started by a trigger or the operator -------------------------------------------------

    def begin(self, reason: str, trigger_id: str | None, deadline: datetime | None, *, confirmed: bool) -> None:
        live = self._run
        if live.rollback is not None or live.state.ended:
            return
        live.rollback = RollbackState(reason, trigger_id, deadline)
        if live.ponr_passed and not confirmed:
            live.rollback.awaiting_confirmation = True
            live.persist()
            self._publisher.emit(
                GateOpened(
                    step_id="",
                    gate="rollback",
                    confirm=CONFIRM_WORD,
                    question=f"Roll back? {reason}. A point of no return has passed: "
                    f"type {CONFIRM_WORD} to roll back anyway",
                )
            )
            if self._answers.confirms_rollback():
                self.request(live.operator.acting_via("--answer"), "confirmed on the command line", CONFIRM_WORD)
            return
        self._enter()

    def _enter(self) -> None:
        live = self._run
        rb = live.rollback
        assert rb is not None
        live.paused = False
        live.persist()
        self._transitions.run(RunState.ROLLING_BACK, rb.reason)
        for step in live.runbook.forward_steps:
            rt = live.steps[step.id]
            if rt.cancel is not None:
                rt.request_stop("rollback", "cancelled by the rollback")
            elif rt.state == StepState.WAITING:
                rt.gate = None
                self._transitions.step(rt, StepState.SCHEDULED, "not started: rollback")

    # -- driven by the scheduler --------------------------------------------------------------

    def awaiting_confirmation(self) -> bool:
        rb = self._run.rollback
        return rb is not None and rb.awaiting_confirmation

    def plan(self) -> list[str]:
        """Undo steps of completed forward steps, latest first; then the other rollback steps."""
        live = self._run
        completed = sorted(
            (s for s in live.runbook.forward_steps if live.steps[s.id].state == StepState.SUCCEEDED),
            key=lambda s: live.steps[s.id].completed_seq or 0,
            reverse=True,
        )
        plan: list[str] = []
        for step in completed:
            if step.undo and step.undo not in plan:
                plan.append(step.undo)
        designated = {s.undo for s in live.runbook.forward_steps if s.undo}
        rest = [s.id for s in live.runbook.rollback_steps if s.id not in designated and s.id not in plan]
        plan.extend(topological_order(live.runbook, rest))
        return _needs_first(live.runbook, plan)

    def advance(self, now: datetime) -> None:
        """Start the next step of the rollback when the one before it has settled."""
        live = self._run
        rb = live.rollback
        if rb is None or rb.awaiting_confirmation or rb.finished:
            return
        if any(live.steps[s.id].cancel is not None for s in live.runbook.forward_steps):
            return  # forward steps are still stopping
        if rb.plan is None:
            rb.plan = self.plan()
            live.persist()
            self._publisher.emit(
                RollbackStarted(reason=rb.reason, trigger_id=rb.trigger_id, plan=tuple(rb.plan), deadline=rb.deadline)
            )
        while rb.position < len(rb.plan):
            rt = live.steps[rb.plan[rb.position]]
            step = live.runbook.step(rt.id)
            if rt.state.satisfies_needs:
                rb.position += 1
                live.persist()
                continue
            if rt.state == StepState.SCHEDULED:
                if (rt.retry_at is not None and now < rt.retry_at) or live.paused:
                    return
                if step.start == "operator" and not rt.operator_started:
                    rt.gate = Gate("start", f"Start {step.label!r}?")
                    self._transitions.step(rt, StepState.WAITING, "waits for the operator to start it")
                    self._publisher.emit(GateOpened(step_id=rt.id, gate="start", question=rt.gate.question))
                    return
                rt.retry_at = None
                self._transitions.step(rt, StepState.READY, "rollback")
            if rt.state == StepState.READY and not live.paused:
                self._attempts.start(rt)
            return
        rb.finished, rb.ok = True, True
        live.persist()
        self._publisher.emit(RollbackFinished(ok=True, reason=rb.reason))
        self._transitions.run(RunState.ROLLED_BACK, rb.reason)

    def wakeups(self) -> list[datetime]:
        """When the scheduler must look again: the deadline's alert, a rollback step's retry."""
        live = self._run
        rb = live.rollback
        if rb is None or rb.finished:
            return []
        times = []
        if rb.deadline is not None and not rb.deadline_alerted:
            times.append(rb.deadline + timedelta(milliseconds=1))
        if rb.plan is not None and rb.position < len(rb.plan):
            retry_at = live.steps[rb.plan[rb.position]].retry_at
            if retry_at is not None:
                times.append(retry_at)
        return times

    def outcome(self) -> Outcome:
        """Where a rollback under way stands, for a headless caller."""
        live = self._run
        rb = live.rollback
        if rb is None or rb.plan is None or rb.position >= len(rb.plan):
            return Outcome.RUNNING
        state = live.steps[rb.plan[rb.position]].state
        if state in (StepState.FAILED, StepState.CANCELLED):
            return Outcome.FAILED
        if state in (StepState.INTERRUPTED, StepState.WAITING):
            return Outcome.WAITING
        if live.paused:
            return Outcome.WAITING
        return Outcome.RUNNING

    def check_deadline(self, now: datetime) -> None:
        live = self._run
        rb = live.rollback
        if rb is None or rb.finished or rb.deadline is None or rb.deadline_alerted or now <= rb.deadline:
            return
        rb.deadline_alerted = True
        live.persist()
        late = format_duration(now - rb.deadline)
        self._transitions.alert("error", f"the rollback deadline passed {late} ago and the rollback is not finished")


def _needs_first(runbook: Runbook, plan: list[str]) -> list[str]:
    """The plan, each step moved after the plan's steps it needs, the order otherwise kept: an
    undo step that needs another rollback step (v1 read-write again only after its data is
    restored) waits for it."""
    out: list[str] = []
    waiting = list(plan)
    while waiting:
        ready = next((s for s in waiting if all(n in out or n not in plan for n in runbook.step(s).needs)), waiting[0])
        out.append(ready)
        waiting.remove(ready)
    return out
