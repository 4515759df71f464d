"""Running a step's attempts: each on its own worker thread, with its timeout, budget and
cancellation watched, and its end recorded as the state the step goes to (succeeded, retried,
failed, or what the operator decided while it ran)."""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from cockpit.clock import format_duration
from cockpit.engine.command_line_answers import CommandLineAnswers
from cockpit.engine.live_run import LiveRun
from cockpit.engine.step_runtime import StepRuntime
from cockpit.engine.step_services import StepServices
from cockpit.engine.transitions import Transitions
from cockpit.events import RunState, StepState
from cockpit.journal import private_dir
from cockpit.logpump import LogPump
from cockpit.runbook_parse import connection_fields
from cockpit.step import Effect, Step, StepCancelled, StepContext, StepFailed, StepParams


class Attempts:
    def __init__(
        self,
        run: LiveRun,
        transitions: Transitions,
        pump: LogPump,
        answers: CommandLineAnswers,
        services: StepServices,
    ) -> None:
        self._run = run
        self._transitions = transitions
        self._pump = pump
        self._answers = answers
        self._services = services

    def start(self, rt: StepRuntime) -> None:
        """Start an attempt of a ready step on a new worker thread. Call with the run's lock held."""
        now = self._run.clock.now()
        rt.attempt += 1
        rt.cancel = threading.Event()
        rt.start_requested = False
        rt.timed_out = False
        rt.stop_requested_wall = None
        rt.intent = None
        rt.started_clock, rt.started_wall = now, time.time()
        rt.ended_clock = rt.ended_wall = None
        rt.progress = {}
        rt.over_budget_reported = False
        rt.gate = None
        self._transitions.step(rt, StepState.RUNNING, f"attempt {rt.attempt}")
        thread = threading.Thread(
            target=self._body, args=(rt.id, rt.attempt, rt.cancel), name=f"step:{rt.id}", daemon=True
        )
        rt.thread = thread
        thread.start()

    def watch(self, now: datetime) -> None:
        """Cancel attempts past their timeout, alert on budgets, abandon those that will not stop."""
        # Work runs at real speed even in a compressed rehearsal, so budgets and timeouts are
        # measured in wall seconds: a rehearsal then predicts how long the window's work takes.
        live = self._run
        wall = time.time()
        for rt in live.steps.values():
            if rt.state not in (StepState.RUNNING, StepState.WAITING) or rt.cancel is None:
                continue
            step = live.runbook.step(rt.id)
            elapsed = wall - (rt.started_wall or wall)
            if step.timeout is not None and elapsed >= step.timeout.total_seconds() and not rt.timed_out:
                rt.timed_out = True
                rt.stop_requested_wall = wall
                rt.cancel.set()
                self._transitions.log(rt, f"timeout: {format_duration(step.timeout, precise=True)} passed; cancelling")
            budget = step.budget
            if budget is not None and not rt.over_budget_reported and elapsed > budget.total_seconds():
                rt.over_budget_reported = True
                self._transitions.alert(
                    "warning", f"step {rt.id!r} is over its budget of {format_duration(budget)}", rt.id
                )
            grace = live.options.grace
            if rt.stop_requested_wall is not None and wall - rt.stop_requested_wall > grace:
                self._transitions.log(rt, f"the attempt did not stop within {grace:g}s; abandoned")
                self.finished(rt.id, rt.attempt, "failed", "did not stop when cancelled; its thread was abandoned")

    def stop_all(self) -> None:
        """Stop every live attempt for the cockpit's exit; each is recorded `interrupted`."""
        live = self._run
        with live.lock:
            for rt in live.live_attempts():
                if rt.state in (StepState.RUNNING, StepState.WAITING) and rt.cancel is not None:
                    # Not a stop the watch may abandon: the exit waits its own grace below.
                    rt.intent = "quit"
                    rt.cancel.set()
            live.wake.notify_all()
        deadline = time.monotonic() + live.options.grace
        while time.monotonic() < deadline:
            with live.lock:
                if not live.live_attempts():
                    break
            time.sleep(0.02)
        with live.lock:
            for rt in live.live_attempts():
                self.finished(rt.id, rt.attempt, "cancelled", "")

    def _body(self, step_id: str, attempt: int, cancel: threading.Event) -> None:
        live = self._run
        outcome, reason = "succeeded", ""
        try:
            kind = live.runbook.kind_of(step_id)()
            params = live.params[step_id]
            step = live.runbook.step(step_id)
            # A rehearsal compresses waiting, never work: while a working step runs the clock
            # keeps wall speed, so the window's countdown and lateness measure real seconds.
            holds = live.options.rehearsal and not (kind.waits or kind.asks_only)
            ctx = StepContext(
                step_id=step_id,
                title=step.label,
                attempt=attempt,
                params=params,
                connections=live.connections,
                host=self._services,
                cancel=cancel,
                clock=live.clock,
                artifacts=private_dir(live.artifacts_root / step_id),
                dry_run=live.options.dry_run,
                checkpoint=live.journal.checkpoint(live.run_id, step_id),
                base_dir=live.runbook.base_dir,
                t0=live.runbook.t0,
                window=live.runbook.header.window,
                runbook_name=live.runbook.name,
                holds_real_time=holds,
            )
            effect = kind.effect_of(params)
            # A probe after a step the dry run did not run would look at what that step did not
            # make (an empty v2) and raise false alarms: it is not run either.
            dry_run = live.options.dry_run
            skipped_needs = [n for n in step.needs if live.steps[n].not_run] if dry_run else []
            off = switched_off(kind, params, live.connections)
            if off:
                reason = f"connection {', '.join(repr(name) for name in off)} is switched off (enabled = false)"
                ctx.log(f"skipped: {reason}")
                outcome = "skipped"
            elif dry_run and effect != Effect.PROBE and not kind.dry_runs:
                ctx.log(f"dry run: would {kind.describe(params)}")
                outcome, reason = "not_run", f"dry run: {effect.value} step not run"
            elif skipped_needs:
                ctx.log(f"dry run: would {kind.describe(params)}, after {', '.join(skipped_needs)}")
                outcome, reason = "not_run", f"dry run: needs {', '.join(skipped_needs)}, which did not run"
            else:
                with live.clock.real_time() if holds else contextlib.nullcontext():
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
            with live.lock:
                self.finished(step_id, attempt, outcome, reason)

    def finished(self, step_id: str, attempt: int, outcome: str, reason: str) -> None:
        """Record how an attempt ended. Call with the run's lock held."""
        live = self._run
        rt = live.steps[step_id]
        if rt.attempt != attempt or rt.state not in (StepState.RUNNING, StepState.WAITING) or rt.cancel is None:
            return  # an abandoned attempt finishing late: its result no longer counts
        step = live.runbook.step(step_id)
        rt.thread, rt.cancel, rt.gate = None, None, None
        rt.ended_clock, rt.ended_wall = live.clock.now(), time.time()
        intent, intent_reason = rt.intent, rt.intent_reason
        rt.intent, rt.intent_reason, rt.stop_requested_wall = None, "", None
        if rt.timed_out and outcome != "succeeded":
            abandoned = reason if reason.startswith("did not stop") else ""
            reason = f"timed out after {format_duration(step.timeout or timedelta(0), precise=True)}"
            outcome, reason = "failed", reason + (f"; {abandoned}" if abandoned else "")
        change = self._transitions
        if intent == "quit":
            if rt.state == StepState.WAITING and live.runbook.kind_of(step_id).asks_only:
                # Still waiting for the operator: the next process asks again.
                change.step(rt, StepState.WAITING, "the cockpit stopped while this step waited")
            else:
                change.step(rt, StepState.INTERRUPTED, "the cockpit stopped while this step ran")
        elif intent == "skip":
            change.step(rt, StepState.SKIPPED, intent_reason)
        elif intent == "done":
            change.succeed(rt, intent_reason)
        elif outcome == "succeeded":
            change.succeed(rt, "")
        elif outcome == "not_run":
            rt.not_run = True
            change.step(rt, StepState.SKIPPED, reason)
        elif outcome == "skipped":
            change.step(rt, StepState.SKIPPED, reason)
        elif intent == "rollback" and outcome == "failed":
            # It failed on its own as the rollback began, often with the very finding that
            # called the rollback: its reason is worth more than "cancelled".
            change.step(rt, StepState.FAILED, reason)
        elif intent in ("cancel", "rollback") or outcome == "cancelled":
            change.step(rt, StepState.CANCELLED, intent_reason or reason)
        elif rt.retries_left > 0 and not (
            live.state == RunState.ROLLING_BACK and not live.runbook.is_rollback_step(step_id)
        ):
            done = step.retries - rt.retries_left
            rt.retries_left -= 1
            delay = step.retry_delay * (2**done)
            rt.retry_at = live.clock.now() + delay
            change.step(
                rt,
                StepState.SCHEDULED,
                f"failed: {reason}; retry {done + 1} of {step.retries} in {format_duration(delay)}",
            )
        else:
            change.step(rt, StepState.FAILED, reason)
            self._answers.apply(rt)
        live.wake.notify_all()


def switched_off(kind: Step[Any], params: StepParams, connections: Mapping[str, Any]) -> list[str]:
    """The connections a step names that are switched off, when its kind cannot run without
    them (every connection must be off for a kind that runs with some of them off)."""
    values = params.model_dump(by_alias=True)
    fields = connection_fields(type(params))
    named = [
        str(values[field]) for field in fields if isinstance(values.get(field), str) and values[field] in connections
    ]
    off = [name for name in named if getattr(connections[name], "enabled", True) is False]
    if kind.runs_with_connections_off and len(off) < len(named):
        return []
    return off
