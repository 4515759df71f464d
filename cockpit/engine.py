"""Schedules and runs a runbook's steps on worker threads.

One scheduler thread decides; one worker thread per running attempt works. A step starts
when it is due, its needs are met and the run is not paused. Every change goes through
`_emit`, which commits it to the journal before any subscriber sees it. Operator actions are
in `cockpit.actions`, the rollback sequence in `cockpit.rollback`, journaling and publishing
and what a running step calls in `cockpit.engine_host`, opening and resuming a run in
`cockpit.run_opening`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import traceback
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cockpit import secrets
from cockpit.actions import OperatorActions
from cockpit.clock import Clock, format_duration
from cockpit.engine_host import EventJournal, StepHost, Subscriber
from cockpit.events import (
    Alert,
    GateOpened,
    RunState,
    RunStateChanged,
    StepState,
    StepStateChanged,
)
from cockpit.journal import Journal, private_dir
from cockpit.logpump import LogPump
from cockpit.operator import Operator
from cockpit.plan import compute_plan
from cockpit.rollback import RollbackControl
from cockpit.run_opening import RunOpening
from cockpit.runbook import Runbook
from cockpit.runtime import Gate, Outcome, StepRuntime
from cockpit.step import Effect, StepCancelled, StepContext, StepFailed, StepParams
from cockpit.triggers import TriggerWatch
from cockpit.views import build_view

# How long a stopped attempt may take to notice its cancellation before it is abandoned.
DEFAULT_GRACE = 5.0


class Engine(RunOpening, EventJournal, StepHost, OperatorActions, RollbackControl):
    def __init__(
        self,
        runbook: Runbook,
        journal: Journal,
        *,
        clock: Clock,
        operator: Operator,
        rehearsal: bool = False,
        dry_run: bool = False,
        answers: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        new_run: bool = False,
        jump_idle: bool | None = None,
        grace: float = DEFAULT_GRACE,
        command: str = "",
    ) -> None:
        self.runbook = runbook
        self.journal = journal
        self.clock = clock
        self.operator = operator
        self.rehearsal = rehearsal
        self.dry_run = dry_run
        self.answers: dict[str, str] = dict(answers or {})
        self.env = os.environ if env is None else env
        self.new_run = new_run
        self.jump_idle = rehearsal if jump_idle is None else jump_idle
        self.grace = grace
        self.command = command
        self.plan = compute_plan(runbook)
        self.redact = secrets.Redactor()
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        # Re-entrant: a subscriber may act on the engine (the autopilot answers a gate it is told of).
        self._publish_lock = threading.RLock()
        self._subscribers: list[Subscriber] = []
        self._steps: dict[str, StepRuntime] = {}
        self._params: dict[str, StepParams] = {}
        self._connections: dict[str, Any] = {}
        self.run_id = 0
        self.run_state = RunState.RUNNING
        self.paused = False
        self._stopping = False
        self._scheduler: threading.Thread | None = None
        self._completion = 0
        self._metrics: dict[str, float] = {}
        self._last_clock_save = 0.0
        self.resumed = False
        self._triggers: TriggerWatch
        self._pump = LogPump(self._write_logs, self._write_progress, redact=self.redact)
        self._init_rollback()

    # -- state changes ----------------------------------------------------------------

    def _set_state(self, rt: StepRuntime, state: StepState, reason: str = "") -> None:
        previous = rt.state
        rt.state = state
        rt.reason = self.redact(reason)
        self._emit(
            StepStateChanged(
                step_id=rt.id, state=state.value, previous=previous.value, attempt=rt.attempt, reason=rt.reason
            ),
            step=rt,
            run={"clock": self.clock.now().isoformat()},
        )
        self._on_triggers(self._triggers.on_step_state(rt.id, state.value, self.clock.now()))
        if state.satisfies_needs:
            # The last step's success and the run's end are one transition: no reader sees between.
            self._check_done()
        self._wake.notify_all()

    def _set_run_state(self, state: RunState, reason: str = "") -> None:
        if state == self.run_state:
            return
        self.run_state = state
        run: dict[str, Any] = {"state": state.value}
        if state.ended:
            run["ended_wall"] = time.time()
        self._emit(RunStateChanged(state=state.value, reason=reason), run=run)
        self._wake.notify_all()

    def _alert(self, level: str, message: str, step_id: str | None = None) -> None:
        self._emit(Alert(level=level, message=message, step_id=step_id))

    # -- the scheduler ------------------------------------------------------------------

    def start(self) -> None:
        self._pump.start()
        self._scheduler = threading.Thread(target=self._loop, name="cockpit-scheduler", daemon=True)
        self._scheduler.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                now = self.clock.now()
                self._tick(now)
                next_due = self._next_due()
                jump = self._should_jump(next_due)
                wait = 0.25
                if next_due is not None:
                    wait = max(0.0, min(wait, self.clock.real_seconds((next_due - now).total_seconds())))
            jump_to = getattr(self.clock, "jump_to", None)
            if jump is not None and jump_to is not None:
                jump_to(jump)
                wait = 0.02
            with self._lock:
                if not self._stopping:
                    self._wake.wait(max(wait, 0.01))

    def _tick(self, now: datetime) -> None:
        if self.run_state.ended:
            return
        self._check_running(now)
        if self.run_state == RunState.ROLLING_BACK or self._rollback_pending():
            self._advance_rollback(now)
        else:
            self._promote(now)
            self._check_done()
        if not self.run_state.ended:
            self._on_triggers(self._triggers.on_time(now, self._unfinished_phases()))
            self._check_rollback_deadline(now)
        if time.monotonic() - self._last_clock_save > 1.0:
            self._last_clock_save = time.monotonic()
            self.journal.record_clock(self.run_id, now)

    def _check_running(self, now: datetime) -> None:
        # Work runs at real speed even in a compressed rehearsal, so budgets and timeouts are
        # measured in wall seconds: a rehearsal then predicts how long the window's work takes.
        wall = time.time()
        for rt in self._steps.values():
            if rt.state not in (StepState.RUNNING, StepState.WAITING) or rt.cancel is None:
                continue
            step = self.runbook.step(rt.id)
            elapsed = wall - (rt.started_wall or wall)
            if step.timeout is not None and elapsed >= step.timeout.total_seconds() and not rt.timed_out:
                rt.timed_out = True
                rt.stop_requested_wall = wall
                rt.cancel.set()
                self._log(rt, f"timeout: {format_duration(step.timeout, precise=True)} passed; cancelling")
            budget = step.budget
            if budget is not None and not rt.over_budget_reported and elapsed > budget.total_seconds():
                rt.over_budget_reported = True
                self._alert("warning", f"step {rt.id!r} is over its budget of {format_duration(budget)}", rt.id)
            if rt.stop_requested_wall is not None and wall - rt.stop_requested_wall > self.grace:
                self._log(rt, f"the attempt did not stop within {self.grace:g}s; abandoned")
                self._attempt_finished(
                    rt.id, rt.attempt, "failed", "did not stop when cancelled; its thread was abandoned"
                )

    def _needs_met(self, step_id: str) -> bool:
        return all(self._steps[n].state.satisfies_needs for n in self.runbook.step(step_id).needs if n in self._steps)

    def _promote(self, now: datetime) -> None:
        for step in self.runbook.forward_steps:
            rt = self._steps[step.id]
            if rt.state != StepState.SCHEDULED:
                continue
            if rt.retry_at is not None and now < rt.retry_at:
                continue
            if not self._needs_met(step.id):
                continue
            due = self.runbook.due_at(step.id)
            if now < due and not rt.operator_started:
                continue
            rt.retry_at = None
            if step.start == "operator" and not rt.operator_started:
                rt.gate = Gate("start", f"Start {step.label!r}?")
                self._set_state(rt, StepState.WAITING, "waits for the operator to start it")
                self._emit(GateOpened(step_id=rt.id, gate="start", question=rt.gate.question))
                self._apply_answer(rt)
                continue
            self._set_state(rt, StepState.READY, "due" if not rt.operator_started else "started by the operator")
        if self.paused:
            return
        for step in self.runbook.forward_steps:
            rt = self._steps[step.id]
            if rt.state == StepState.READY:
                self._start_attempt(rt)

    def _check_done(self) -> None:
        if self.run_state not in (RunState.RUNNING, RunState.PAUSED):
            return
        if all(self._steps[s.id].state.satisfies_needs for s in self.runbook.forward_steps):
            self._set_run_state(RunState.DONE, "every step succeeded or was skipped")

    def _unfinished_phases(self) -> set[str]:
        out = set()
        for step in self.runbook.forward_steps:
            if not self._steps[step.id].state.terminal:
                out.add(step.phase)
        return out

    def _next_due(self) -> datetime | None:
        """The next time something may happen by itself (a step falls due, a retry, a trigger)."""
        times: list[datetime] = []
        if self.run_state.ended:
            return None
        if self.run_state != RunState.ROLLING_BACK:
            for step in self.runbook.forward_steps:
                rt = self._steps[step.id]
                if rt.state == StepState.SCHEDULED and self._needs_met(step.id):
                    due = self.runbook.due_at(step.id)
                    if rt.retry_at is not None:
                        due = max(due, rt.retry_at)
                    times.append(due)
        deadline = self._triggers.next_deadline(self._unfinished_phases())
        if deadline is not None:
            times.append(deadline)
        times.extend(self._rollback_wakeups())
        return min(times) if times else None

    def _should_jump(self, next_due: datetime | None) -> datetime | None:
        """In a rehearsal, skip an idle gap: nothing running or ready, the next thing in the future."""
        if not self.jump_idle or next_due is None or self.paused:
            return None
        if any(rt.state in (StepState.RUNNING, StepState.READY) for rt in self._steps.values()):
            return None
        if any(
            rt.state == StepState.WAITING and rt.gate is not None and rt.gate.kind != "start"
            for rt in self._steps.values()
        ):
            return None
        if next_due <= self.clock.now():
            return None
        return next_due

    # -- attempts --------------------------------------------------------------------

    def _start_attempt(self, rt: StepRuntime) -> None:
        now = self.clock.now()
        rt.attempt += 1
        rt.cancel = threading.Event()
        rt.timed_out = False
        rt.stop_requested_wall = None
        rt.intent = None
        rt.started_clock, rt.started_wall = now, time.time()
        rt.ended_clock = rt.ended_wall = None
        rt.progress = {}
        rt.over_budget_reported = False
        rt.gate = None
        self._set_state(rt, StepState.RUNNING, f"attempt {rt.attempt}")
        thread = threading.Thread(
            target=self._attempt_body, args=(rt.id, rt.attempt, rt.cancel), name=f"step:{rt.id}", daemon=True
        )
        rt.thread = thread
        thread.start()

    def _attempt_body(self, step_id: str, attempt: int, cancel: threading.Event) -> None:
        outcome, reason = "succeeded", ""
        try:
            kind = self.runbook.kind_of(step_id)()
            params = self._params[step_id]
            step = self.runbook.step(step_id)
            artifacts = private_dir(self.journal.path.parent / "runs" / str(self.run_id) / step_id)
            # A rehearsal compresses waiting, never work: while a working step runs the clock
            # keeps wall speed, so the window's countdown and lateness measure real seconds.
            holds = self.rehearsal and not (kind.waits or kind.asks_only)
            ctx = StepContext(
                step_id=step_id,
                title=step.label,
                attempt=attempt,
                params=params,
                connections=self._connections,
                host=self,
                cancel=cancel,
                clock=self.clock,
                artifacts=artifacts,
                dry_run=self.dry_run,
                checkpoint=self.journal.checkpoint(self.run_id, step_id),
                base_dir=self.runbook.base_dir,
                t0=self.runbook.t0,
                holds_real_time=holds,
            )
            effect = kind.effect_of(params)
            # A probe after a step the dry run did not run would look at what that step did not
            # make (an empty v2) and raise false alarms: it is not run either.
            skipped_needs = [n for n in step.needs if self._steps[n].not_run] if self.dry_run else []
            if self.dry_run and effect != Effect.PROBE:
                ctx.log(f"dry run: would {kind.describe(params)}")
                outcome, reason = "not_run", f"dry run: {effect.value} step not run"
            elif skipped_needs:
                ctx.log(f"dry run: would {kind.describe(params)}, after {', '.join(skipped_needs)}")
                outcome, reason = "not_run", f"dry run: needs {', '.join(skipped_needs)}, which did not run"
            else:
                with self.clock.real_time() if holds else contextlib.nullcontext():
                    kind.run(ctx)
        except StepCancelled as exc:
            outcome, reason = "cancelled", str(exc) or "cancelled"
        except StepFailed as exc:
            outcome, reason = "failed", str(exc)
        except Exception as exc:
            outcome, reason = "failed", f"{type(exc).__name__}: {exc}"
            self._pump.add(step_id, attempt, traceback.format_exc().splitlines())
        finally:
            self._pump.flush()
            with self._lock:
                self._attempt_finished(step_id, attempt, outcome, reason)

    def _attempt_finished(self, step_id: str, attempt: int, outcome: str, reason: str) -> None:
        rt = self._steps[step_id]
        if rt.attempt != attempt or rt.state not in (StepState.RUNNING, StepState.WAITING) or rt.cancel is None:
            return  # an abandoned attempt finishing late: its result no longer counts
        step = self.runbook.step(step_id)
        rt.thread, rt.cancel, rt.gate = None, None, None
        rt.ended_clock, rt.ended_wall = self.clock.now(), time.time()
        intent, intent_reason = rt.intent, rt.intent_reason
        rt.intent, rt.intent_reason, rt.stop_requested_wall = None, "", None
        if rt.timed_out and outcome != "succeeded":
            abandoned = reason if reason.startswith("did not stop") else ""
            reason = f"timed out after {format_duration(step.timeout or timedelta(0), precise=True)}"
            outcome, reason = "failed", reason + (f"; {abandoned}" if abandoned else "")
        if intent == "quit":
            if rt.state == StepState.WAITING and self.runbook.kind_of(step_id).asks_only:
                # Still waiting for the operator: the next process asks again.
                self._set_state(rt, StepState.WAITING, "the cockpit stopped while this step waited")
            else:
                self._set_state(rt, StepState.INTERRUPTED, "the cockpit stopped while this step ran")
        elif intent == "skip":
            self._set_state(rt, StepState.SKIPPED, intent_reason)
        elif intent == "done":
            self._succeed(rt, intent_reason)
        elif outcome == "succeeded":
            self._succeed(rt, "")
        elif outcome == "not_run":
            rt.not_run = True
            self._set_state(rt, StepState.SKIPPED, reason)
        elif intent == "rollback" and outcome == "failed":
            # It failed on its own as the rollback began, often with the very finding that
            # called the rollback: its reason is worth more than "cancelled".
            self._set_state(rt, StepState.FAILED, reason)
        elif intent in ("cancel", "rollback") or outcome == "cancelled":
            self._set_state(rt, StepState.CANCELLED, intent_reason or reason)
        elif rt.retries_left > 0 and not (
            self.run_state == RunState.ROLLING_BACK and not self.runbook.is_rollback_step(step_id)
        ):
            done = step.retries - rt.retries_left
            rt.retries_left -= 1
            delay = step.retry_delay * (2**done)
            rt.retry_at = self.clock.now() + delay
            self._set_state(
                rt,
                StepState.SCHEDULED,
                f"failed: {reason}; retry {done + 1} of {step.retries} in {format_duration(delay)}",
            )
        else:
            self._set_state(rt, StepState.FAILED, reason)
            self._apply_answer(rt)
        self._wake.notify_all()

    def _succeed(self, rt: StepRuntime, reason: str) -> None:
        self._completion += 1
        rt.completed_seq = self._completion
        rt.not_run = False
        self._set_state(rt, StepState.SUCCEEDED, reason)

    def _log(self, rt: StepRuntime, line: str) -> None:
        self._pump.add(rt.id, rt.attempt, [f"[cockpit] {line}"])

    # -- running to an end ------------------------------------------------------------------

    def outcome(self) -> Outcome:
        """Where the run stands for a headless caller: still moving, or which end it reached."""
        with self._lock:
            return self._outcome()

    def _outcome(self) -> Outcome:
        if self.run_state == RunState.DONE:
            return Outcome.DONE
        if self.run_state == RunState.ROLLED_BACK:
            return Outcome.ROLLED_BACK
        if self.run_state == RunState.ABANDONED:
            return Outcome.ABANDONED
        states = [rt.state for rt in self._steps.values()]
        if StepState.RUNNING in states or (StepState.READY in states and not self.paused):
            return Outcome.RUNNING
        # An answered gate: its step resumes as soon as its thread wakes.
        if any(rt.gate is not None and rt.gate.answered.is_set() for rt in self._steps.values()):
            return Outcome.RUNNING
        if self._rollback_gate_open():
            return Outcome.WAITING
        if self.run_state == RunState.ROLLING_BACK:
            return self._rollback_outcome()
        if self.paused:
            return Outcome.WAITING
        # Something will still happen by itself: a step falling due, a retry.
        if any(
            rt.state == StepState.SCHEDULED and not self._blocked(rt.id)
            for rt in self._steps.values()
            if not self.runbook.is_rollback_step(rt.id)
        ):
            return Outcome.RUNNING
        if any(s in (StepState.FAILED, StepState.CANCELLED) for s in states):
            return Outcome.FAILED
        return Outcome.WAITING

    def _blocked(self, step_id: str, seen: set[str] | None = None) -> bool:
        """True when a step can never start without the operator (a need failed, waits, or is blocked)."""
        seen = seen or set()
        if step_id in seen:
            return True
        seen.add(step_id)
        for need in self.runbook.step(step_id).needs:
            state = self._steps[need].state
            if state.satisfies_needs:
                continue
            if state.needs_operator or self._blocked(need, seen):
                return True
        return False

    def wait_until_settled(self, timeout: float | None = None) -> Outcome:
        """Block until the run ends or cannot move without an operator."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                outcome = self._outcome()
                if outcome != Outcome.RUNNING:
                    return outcome
                remaining = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
                if remaining <= 0:
                    return outcome
                self._wake.wait(remaining)

    def stop(self) -> None:
        """Stop the engine: running attempts are cancelled and recorded `interrupted`."""
        with self._lock:
            for rt in self._steps.values():
                if rt.cancel is not None and rt.state in (StepState.RUNNING, StepState.WAITING):
                    rt.intent = "quit"
                    rt.cancel.set()
            self._wake.notify_all()
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline:
            with self._lock:
                if not any(rt.cancel is not None for rt in self._steps.values()):
                    break
            time.sleep(0.02)
        with self._lock:
            for rt in self._steps.values():
                if rt.cancel is not None:
                    self._attempt_finished(rt.id, rt.attempt, "cancelled", "")
            self._stopping = True
            self._wake.notify_all()
        if self._scheduler is not None:
            self._scheduler.join(timeout=5)
        self._pump.stop()

    def running_steps(self) -> list[str]:
        with self._lock:
            return [
                rt.id
                for rt in self._steps.values()
                if rt.state in (StepState.RUNNING, StepState.WAITING) and rt.cancel is not None
            ]

    def view(self) -> Any:
        with self._lock:
            return build_view(self)

    def step_runtime(self, step_id: str) -> StepRuntime:
        return self._steps[step_id]

    @property
    def artifacts_root(self) -> Path:
        return self.journal.path.parent / "runs" / str(self.run_id)
