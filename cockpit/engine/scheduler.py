"""The scheduler: one thread that decides. A step starts when it is due, its needs are met and
the run is not paused; during a rollback the rollback's sequence decides instead. In a
rehearsal the clock jumps over idle gaps. `outcome()` says whether the run will still move by
itself, and if not, why."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from cockpit.engine.attempts import Attempts
from cockpit.engine.command_line_answers import CommandLineAnswers
from cockpit.engine.live_run import LiveRun
from cockpit.engine.publisher import Publisher
from cockpit.engine.rollback import Rollback
from cockpit.engine.step_runtime import Gate
from cockpit.engine.transitions import Transitions
from cockpit.engine.views import Outcome
from cockpit.events import GateOpened, RunState, StepState


class Scheduler:
    def __init__(
        self,
        run: LiveRun,
        publisher: Publisher,
        transitions: Transitions,
        attempts: Attempts,
        rollback: Rollback,
        answers: CommandLineAnswers,
    ) -> None:
        self._run = run
        self._publisher = publisher
        self._transitions = transitions
        self._attempts = attempts
        self._rollback = rollback
        self._answers = answers
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._last_clock_save = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="cockpit-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._run.lock:
            self._stopping = True
            self._run.wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        live = self._run
        while True:
            with live.lock:
                if self._stopping:
                    return
                now = live.clock.now()
                self._tick(now)
                next_due = self._next_due()
                jump = self._should_jump(next_due)
                wait = 0.25
                if next_due is not None:
                    wait = max(0.0, min(wait, live.clock.real_seconds((next_due - now).total_seconds())))
            jump_to = getattr(live.clock, "jump_to", None)
            if jump is not None and jump_to is not None:
                jump_to(jump)
                wait = 0.02
            with live.lock:
                if not self._stopping:
                    live.wake.wait(max(wait, 0.01))

    def _tick(self, now: datetime) -> None:
        live = self._run
        if live.state.ended:
            return
        self._attempts.watch(now)
        if live.state == RunState.ROLLING_BACK or self._rollback.awaiting_confirmation():
            self._rollback.advance(now)
        else:
            self._promote(now)
            self._transitions.check_done()
        if not live.state.ended:
            self._transitions.triggers_fired(live.triggers.on_time(now, live.unfinished_phases()))
            self._rollback.check_deadline(now)
        if time.monotonic() - self._last_clock_save > 1.0:
            self._last_clock_save = time.monotonic()
            live.journal.record_clock(live.run_id, now)

    def _promote(self, now: datetime) -> None:
        live = self._run
        for step in live.runbook.forward_steps:
            rt = live.steps[step.id]
            if rt.state != StepState.SCHEDULED:
                continue
            if rt.retry_at is not None and now < rt.retry_at:
                continue
            if not live.needs_met(step.id):
                continue
            due = live.runbook.due_at(step.id)
            if now < due and not rt.operator_started:
                continue
            rt.retry_at = None
            if step.start == "operator" and not rt.operator_started:
                rt.gate = Gate("start", f"Start {step.label!r}?")
                self._transitions.step(rt, StepState.WAITING, "waits for the operator to start it")
                self._publisher.emit(GateOpened(step_id=rt.id, gate="start", question=rt.gate.question))
                self._answers.apply(rt)
                continue
            self._transitions.step(rt, StepState.READY, "due" if not rt.operator_started else "started by the operator")
        for step in live.runbook.forward_steps:
            rt = live.steps[step.id]
            if rt.state == StepState.READY and (not live.paused or rt.start_requested):
                self._attempts.start(rt)

    def _next_due(self) -> datetime | None:
        """The next time something may happen by itself (a step falls due, a retry, a trigger)."""
        live = self._run
        times: list[datetime] = []
        if live.state.ended:
            return None
        if live.state != RunState.ROLLING_BACK:
            for step in live.runbook.forward_steps:
                rt = live.steps[step.id]
                if rt.state == StepState.SCHEDULED and live.needs_met(step.id):
                    due = live.runbook.due_at(step.id)
                    if rt.retry_at is not None:
                        due = max(due, rt.retry_at)
                    times.append(due)
        deadline = live.triggers.next_deadline(live.unfinished_phases())
        if deadline is not None:
            times.append(deadline)
        times.extend(self._rollback.wakeups())
        return min(times) if times else None

    def _should_jump(self, next_due: datetime | None) -> datetime | None:
        """In a rehearsal, skip an idle gap: nothing running or ready, the next thing in the future."""
        live = self._run
        if not live.options.jump_idle or next_due is None or live.paused:
            return None
        if any(rt.state in (StepState.RUNNING, StepState.READY) for rt in live.steps.values()):
            return None
        if any(
            rt.state == StepState.WAITING and rt.gate is not None and rt.gate.kind != "start"
            for rt in live.steps.values()
        ):
            return None
        if next_due <= live.clock.now():
            return None
        return next_due

    def outcome(self) -> Outcome:
        """Where the run stands: still moving, or which end it reached. Call with the run's lock held."""
        live = self._run
        if live.state == RunState.DONE:
            return Outcome.DONE
        if live.state == RunState.ROLLED_BACK:
            return Outcome.ROLLED_BACK
        if live.state == RunState.ABANDONED:
            return Outcome.ABANDONED
        states = [rt.state for rt in live.steps.values()]
        if StepState.RUNNING in states:
            return Outcome.RUNNING
        if any(rt.state == StepState.READY and (not live.paused or rt.start_requested) for rt in live.steps.values()):
            return Outcome.RUNNING
        # An answered gate: its step resumes as soon as its thread wakes.
        if any(rt.gate is not None and rt.gate.answered.is_set() for rt in live.steps.values()):
            return Outcome.RUNNING
        if self._rollback.awaiting_confirmation():
            return Outcome.WAITING
        if live.state == RunState.ROLLING_BACK:
            return self._rollback.outcome()
        if live.paused:
            return Outcome.WAITING
        # Something will still happen by itself: a step falling due, a retry.
        if any(
            rt.state == StepState.SCHEDULED and not self._blocked(rt.id)
            for rt in live.steps.values()
            if not live.runbook.is_rollback_step(rt.id)
        ):
            return Outcome.RUNNING
        if any(s in (StepState.FAILED, StepState.CANCELLED) for s in states):
            return Outcome.FAILED
        return Outcome.WAITING

    def nothing_due_now(self) -> bool:
        """True when the run would only move later by itself: nothing runs, nothing is ready, and
        the next step falls due in the future. Call with the run's lock held."""
        live = self._run
        if live.state == RunState.ROLLING_BACK:
            return False
        if any(rt.state in (StepState.RUNNING, StepState.READY) for rt in live.steps.values()):
            return False
        if any(rt.gate is not None and rt.gate.answered.is_set() for rt in live.steps.values()):
            return False
        now = live.clock.now()
        for step in live.runbook.forward_steps:
            rt = live.steps[step.id]
            if rt.state != StepState.SCHEDULED or not live.needs_met(step.id):
                continue
            due = max(live.runbook.due_at(step.id), rt.retry_at or live.runbook.due_at(step.id))
            if due <= now:
                return False  # the scheduler promotes it at its next tick
        return True

    def _blocked(self, step_id: str, seen: set[str] | None = None) -> bool:
        """True when a step can never start without the operator (a need failed, waits, or is blocked)."""
        live = self._run
        seen = seen or set()
        if step_id in seen:
            return True
        seen.add(step_id)
        for need in live.runbook.step(step_id).needs:
            state = live.steps[need].state
            if state.satisfies_needs:
                continue
            if state.needs_operator or self._blocked(need, seen):
                return True
        return False
