"""Opening a run: resolve the secrets, then start a new run or continue the unfinished one
from the journal, re-deciding what each step does after a stop."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from cockpit import attempt_processes, secrets
from cockpit.engine.command_line_answers import CommandLineAnswers
from cockpit.engine.live_run import LiveRun
from cockpit.engine.publisher import Publisher
from cockpit.engine.rollback_state import RollbackState
from cockpit.engine.step_runtime import StepRuntime
from cockpit.engine.transitions import Transitions
from cockpit.events import RunOpened, RunState, RunStateChanged, StepState
from cockpit.journal import RunRecord
from cockpit.runbook import Problem, RunbookError
from cockpit.triggers import TriggerWatch


class RunConflict(RuntimeError):
    """The unfinished run cannot be continued with these options."""


class RunOpening:
    def __init__(
        self, run: LiveRun, publisher: Publisher, transitions: Transitions, answers: CommandLineAnswers
    ) -> None:
        self._run = run
        self._publisher = publisher
        self._transitions = transitions
        self._answers = answers

    def resolve_secrets(self) -> None:
        """Resolve every ${VAR}; raise RunbookError naming each unset one at its line."""
        live = self._run
        problems: list[Problem] = []
        rb = live.runbook
        for name, raw in rb.raw_connections.items():
            unset = _unset(raw, live.env)
            for variable in unset:
                problems.append(
                    Problem(
                        rb.source,
                        rb.line_of("connections", name, _key_with_ref(raw, variable)),
                        f"connection {name!r}: {secrets.UnsetVariable(variable)}",
                    )
                )
            if unset:
                continue
            try:
                resolved = {
                    key: secrets.resolve(
                        value,
                        live.env,
                        live.redact,
                        address=key in secrets.ADDRESS_FIELDS,
                        plain=key in secrets.PLAIN_FIELDS,
                    )
                    for key, value in raw.items()
                }
                live.connections[name] = type(rb.connections[name]).model_validate(resolved)
            except ValueError as exc:
                problems.append(
                    Problem(
                        rb.source,
                        rb.line_of("connections", name),
                        f"connection {name!r}: after substituting variables: {exc}",
                    )
                )
        for step in rb.steps:
            unset = _unset(step.with_, live.env)
            for variable in unset:
                problems.append(
                    Problem(
                        rb.source,
                        rb.step_line(step.id, "with", _key_with_ref(step.with_, variable)),
                        f"step {step.id!r}: {secrets.UnsetVariable(variable)}",
                    )
                )
            if unset:
                continue
            try:
                resolved = secrets.resolve(step.with_, live.env, live.redact)
                live.params[step.id] = rb.kind_of(step.id).Params.model_validate(
                    resolved, context={"base_dir": rb.base_dir}
                )
            except ValueError as exc:
                problems.append(
                    Problem(
                        rb.source,
                        rb.step_line(step.id, "with"),
                        f"step {step.id!r}: after substituting variables: {live.redact(str(exc))}",
                    )
                )
        for trigger in rb.triggers:
            if trigger.notify is None:
                continue
            raw = trigger.notify.model_dump(exclude_none=True)
            line = rb.line_of("trigger", rb.index_of("trigger", trigger), "notify")
            unset = _unset(raw, live.env)
            for variable in unset:
                problems.append(
                    Problem(rb.source, line, f"trigger {trigger.id!r}: notify: {secrets.UnsetVariable(variable)}")
                )
            if not unset:
                live.notify[trigger.id] = type(trigger.notify).model_validate(
                    secrets.resolve(raw, live.env, live.redact)
                )
        if problems:
            raise RunbookError(problems)

    def open(self) -> None:
        """Resolve secrets, then start a new run or continue the unfinished one."""
        live = self._run
        self.resolve_secrets()
        rb = live.runbook
        source = str(rb.source.resolve())
        mode = "rehearsal" if live.options.rehearsal else "live"
        last = live.journal.latest_run(source)
        continuing = last is not None and not RunState(last.state).ended
        if continuing and last is not None and not live.options.new_run:
            if last.mode != mode or last.dry_run != live.options.dry_run:
                kind = ("dry run" if last.dry_run else "") + (" rehearsal" if last.mode == "rehearsal" else " live run")
                raise RunConflict(
                    f"the unfinished run {last.id} is a{kind.strip() and ' ' + kind.strip()}; continue it with the "
                    "same options, or start afresh with --new (the old run is kept, marked abandoned)"
                )
            live.run_id = last.id
            live.resumed = True
            self._restore(last)
        else:
            if continuing and last is not None:
                live.journal.record(
                    last.id,
                    RunStateChanged(
                        state=RunState.ABANDONED.value, reason=f"abandoned by {live.operator} (--new)", wall=time.time()
                    ),
                    run={"state": RunState.ABANDONED.value, "ended_wall": time.time()},
                    action=(str(live.operator), "abandon", None, "--new"),
                )
            live.run_id = live.journal.create_run(
                source=source,
                name=rb.name,
                digest=rb.digest,
                runbook_text=rb.text,
                mode=mode,
                dry_run=live.options.dry_run,
                options={"speed": live.clock.speed},
            )
            for step in rb.steps:
                live.steps[step.id] = StepRuntime(step.id, retries_left=step.retries)
        live.triggers = TriggerWatch(rb, live.plan, live.journal.fired_triggers(live.run_id))
        live.completions = max((s.completed_seq or 0 for s in live.steps.values()), default=0)
        with live.lock:
            self._publisher.emit(
                RunOpened(
                    run_id=live.run_id,
                    runbook=rb.name,
                    mode=mode,
                    dry_run=live.options.dry_run,
                    resumed=live.resumed,
                    operator=str(live.operator),
                )
            )
            if live.resumed:
                self._after_restore()

    def _restore(self, run: RunRecord) -> None:
        live = self._run
        records = live.journal.steps(run.id)
        live.state = RunState(run.state)
        live.paused = run.paused
        for step in live.runbook.steps:
            rec = records.get(step.id)
            rt = StepRuntime(step.id, retries_left=step.retries)
            if rec is not None:
                rt.state = StepState(rec.state)
                rt.attempt = rec.attempt
                rt.retries_left = rec.retries_left
                rt.reason = rec.reason
                rt.started_clock, rt.ended_clock = rec.started_clock, rec.ended_clock
                rt.started_wall, rt.ended_wall = rec.started_wall, rec.ended_wall
                rt.completed_seq = rec.completed_seq
                rt.operator_started = rec.operator_started
                rt.not_run = rec.not_run
                if rt.state in (StepState.RUNNING, StepState.WAITING) and rt.started_wall is not None:
                    # No process runs it now: its time stops where the last one was last seen.
                    rt.ended_wall = rec.ended_wall or max(run.heartbeat_wall or 0.0, rt.started_wall)
            rt.log_count = live.journal.log_count(run.id, step.id)
            live.steps[step.id] = rt
        live.metrics = live.journal.metrics(run.id)
        live.rollback = RollbackState.from_json(run.rollback) if run.rollback else None

    def _after_restore(self) -> None:
        live = self._run
        for rt in live.steps.values():
            asks_only = live.runbook.kind_of(rt.id).asks_only
            if rt.state == StepState.WAITING and rt.attempt > 0 and asks_only:
                # It was waiting for the operator, not working: ask again.
                rt.operator_started = True
                self._transitions.step(rt, StepState.SCHEDULED, "asks again: the cockpit stopped while it waited")
            elif rt.state == StepState.RUNNING or (rt.state == StepState.WAITING and rt.attempt > 0):
                retry = "continues from its checkpoint" if live.runbook.kind_of(rt.id).resumes else "starts over"
                reason = f"the cockpit stopped while this step ran; retry ({retry}), skip or mark done"
                record = live.journal.checkpoint(live.run_id, rt.id).get(attempt_processes.RECORD)
                stopped, left = attempt_processes.after_crash(record) if record else ([], [])
                if left:
                    # Nothing is decided about a step whose work still runs: each answer stops it first.
                    rt.left_running = attempt_processes.left_running(left)
                    reason = f"{rt.left_running}; {reason} (each stops it first)"
                self._transitions.step(rt, StepState.INTERRUPTED, reason)
                for line in stopped:
                    self._transitions.log(rt, line)
                self._answers.apply(rt)
            elif rt.state in (StepState.READY, StepState.WAITING):
                # Not started yet: the scheduler re-decides (and re-opens a start gate).
                self._transitions.step(rt, StepState.SCHEDULED, "re-evaluated after restart")
            elif rt.state in (StepState.FAILED, StepState.CANCELLED):
                self._answers.apply(rt)


def _unset(value: Any, env: Mapping[str, str]) -> list[str]:
    """Every variable `value` references that the environment lacks, each once, in order."""
    return list(dict.fromkeys(name for name in secrets.references(value) if name not in env))


def _key_with_ref(value: Mapping[str, Any], name: str) -> str:
    for key, v in value.items():
        if name in set(secrets.references(v)):
            return str(key)
    return ""
