"""The engine: schedules and runs a runbook's steps on worker threads, and takes the operator's
actions, journaling every change before anyone sees it.

It is composed of parts that share one `LiveRun` (the run's state, under its one lock), each
built here with what it uses:

- `Publisher` journals each change, then publishes it to subscribers (the journal-then-publish path);
- `Transitions` changes a step's or the run's state, and tells the triggers;
- `OperatorActions` checks and applies what the operator asks; `CommandLineAnswers` applies
  the `--answer` given up front through the same actions;
- `StepServices` is what a running step calls (log, progress, checkpoints, questions);
- `Attempts` runs each attempt on its worker thread and records how it ended;
- `Rollback` drives the rollback sequence; `TriggerResponse` acts on a fired trigger;
- `Scheduler` is the thread that decides what starts when;
- `RunOpening` starts a new run or continues the unfinished one from the journal.

Readers get a frozen `RunView` (`cockpit.engine.views`), never the live state.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from cockpit.clock import Clock
from cockpit.engine.attempts import Attempts
from cockpit.engine.command_line_answers import CommandLineAnswers
from cockpit.engine.live_run import DEFAULT_GRACE, EngineOptions, LiveRun
from cockpit.engine.opening import RunConflict, RunOpening
from cockpit.engine.operator_actions import ActionRefused, OperatorActions
from cockpit.engine.publisher import Publisher, Subscriber
from cockpit.engine.rollback import CONFIRM_WORD, Rollback
from cockpit.engine.rollback_state import RollbackState
from cockpit.engine.scheduler import Scheduler
from cockpit.engine.step_runtime import StepRuntime
from cockpit.engine.step_services import StepServices
from cockpit.engine.transitions import Transitions
from cockpit.engine.trigger_response import TriggerResponse
from cockpit.engine.views import Outcome, RunView, build_view
from cockpit.events import RunState, StepState
from cockpit.journal import Journal
from cockpit.logpump import LogPump
from cockpit.operator import Operator
from cockpit.plan import Plan
from cockpit.runbook import Runbook

__all__ = ["CONFIRM_WORD", "ActionRefused", "Engine", "Outcome", "RollbackState", "RunConflict", "RunView"]


class Engine:
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
        options = EngineOptions(
            rehearsal=rehearsal,
            dry_run=dry_run,
            new_run=new_run,
            jump_idle=rehearsal if jump_idle is None else jump_idle,
            grace=grace,
            command=command,
        )
        # The run's state, shared by the parts; tests that stage a scene set it directly.
        self.live = live = LiveRun(runbook, journal, clock, operator, options, answers=answers, env=env)
        self._publisher = publisher = Publisher(live)
        self._pump = pump = LogPump(publisher.logs, publisher.progress, redact=live.redact)
        transitions = Transitions(live, publisher, pump)
        self._actions = actions = OperatorActions(live, publisher, transitions)
        answered = CommandLineAnswers(live, actions)
        services = StepServices(live, publisher, transitions, pump, answered)
        self._attempts = attempts = Attempts(live, transitions, pump, answered, services)
        self._rollback = rollback = Rollback(live, publisher, transitions, attempts, answered)
        # A state change may fire a trigger, and a trigger may start a rollback that changes
        # states: the one link made after construction.
        transitions.respond_to_triggers_with(TriggerResponse(live, publisher, transitions, rollback).respond)
        self._scheduler = Scheduler(live, publisher, transitions, attempts, rollback, answered)
        self._opening = RunOpening(live, publisher, transitions, answered)

    # -- the run's life -----------------------------------------------------------------------

    def resolve_secrets(self) -> None:
        """Resolve every ${VAR}; raise RunbookError naming each unset one at its line."""
        self._opening.resolve_secrets()

    def open(self) -> None:
        """Resolve secrets, then start a new run or continue the unfinished one."""
        self._opening.open()

    def start(self) -> None:
        self._pump.start()
        self._scheduler.start()

    def stop(self) -> None:
        """Stop the engine: running attempts are cancelled and recorded `interrupted`."""
        self._attempts.stop_all()
        self._scheduler.stop()
        self._pump.stop()

    def subscribe(self, subscriber: Subscriber) -> None:
        self._publisher.subscribe(subscriber)

    # -- what readers see ---------------------------------------------------------------------

    def view(self) -> RunView:
        with self.live.lock:
            return build_view(self.live, self._scheduler.outcome())

    def outcome(self) -> Outcome:
        """Where the run stands for a headless caller: still moving, or which end it reached."""
        with self.live.lock:
            return self._scheduler.outcome()

    def wait_until_settled(self, timeout: float | None = None) -> Outcome:
        """Block until the run ends or cannot move without an operator."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.live.lock:
            while True:
                outcome = self._scheduler.outcome()
                if outcome != Outcome.RUNNING:
                    return outcome
                remaining = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
                if remaining <= 0:
                    return outcome
                self.live.wake.wait(remaining)

    def wait_until_idle(self, timeout: float | None = None) -> Outcome:
        """Block until the run cannot move now: it settled (as `wait_until_settled`), or what is
        left falls due later. Returns the outcome, RUNNING for "later"."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.live.lock:
            while True:
                outcome = self._scheduler.outcome()
                if outcome != Outcome.RUNNING or self._scheduler.nothing_due_now():
                    return outcome
                remaining = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
                if remaining <= 0:
                    return outcome
                self.live.wake.wait(remaining)

    def running_steps(self) -> list[str]:
        with self.live.lock:
            return [rt.id for rt in self.live.live_attempts() if rt.state in (StepState.RUNNING, StepState.WAITING)]

    def step_runtime(self, step_id: str) -> StepRuntime:
        return self.live.step(step_id)

    def rollback_plan(self) -> list[str]:
        """The steps a rollback begun now would run, in order."""
        with self.live.lock:
            return self._rollback.plan()

    # -- the operator's actions ---------------------------------------------------------------

    def start_step(self, step_id: str, operator: Operator) -> None:
        self._actions.start_step(step_id, operator)

    def pause(self, operator: Operator, reason: str = "") -> None:
        self._actions.pause(operator, reason)

    def resume(self, operator: Operator) -> None:
        self._actions.resume(operator)

    def retry(self, step_id: str, operator: Operator) -> None:
        self._actions.retry(step_id, operator)

    def skip(self, step_id: str, reason: str, operator: Operator) -> None:
        self._actions.skip(step_id, reason, operator)

    def mark_done(self, step_id: str, reason: str, operator: Operator) -> None:
        self._actions.mark_done(step_id, reason, operator)

    def cancel(self, step_id: str, operator: Operator) -> None:
        self._actions.cancel(step_id, operator)

    def answer(self, step_id: str, yes: bool, operator: Operator, typed: str | None = None) -> None:
        self._actions.answer(step_id, yes, operator, typed)

    def tick(self, step_id: str, item: int, operator: Operator, note: str = "") -> None:
        self._actions.tick(step_id, item, operator, note)

    def recheck(self, step_id: str, operator: Operator) -> None:
        self._actions.recheck(step_id, operator)

    def rollback(self, operator: Operator, reason: str, typed: str | None = None) -> None:
        self._rollback.request(operator, reason, typed)

    def decline_rollback(self, operator: Operator, reason: str) -> None:
        self._rollback.decline(operator, reason)

    # -- the run's facts, read-only ---------------------------------------------------------------

    @property
    def runbook(self) -> Runbook:
        return self.live.runbook

    @property
    def journal(self) -> Journal:
        return self.live.journal

    @property
    def clock(self) -> Clock:
        return self.live.clock

    @property
    def operator(self) -> Operator:
        return self.live.operator

    @property
    def plan(self) -> Plan:
        return self.live.plan

    @property
    def run_id(self) -> int:
        return self.live.run_id

    @property
    def run_state(self) -> RunState:
        return self.live.state

    @property
    def paused(self) -> bool:
        return self.live.paused

    @property
    def resumed(self) -> bool:
        return self.live.resumed

    @property
    def rehearsal(self) -> bool:
        return self.live.options.rehearsal

    @property
    def dry_run(self) -> bool:
        return self.live.options.dry_run

    @property
    def rollback_state(self) -> RollbackState | None:
        return self.live.rollback

    @property
    def ponr_passed(self) -> bool:
        return self.live.ponr_passed

    @property
    def artifacts_root(self) -> Path:
        return self.live.artifacts_root
