"""Opening a run, split out of `cockpit.engine`: resolve the secrets, then start a new run or
continue the unfinished one from the journal, re-deciding what each step does after a stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cockpit import secrets
from cockpit.events import Event, RunOpened, RunState, RunStateChanged, StepState
from cockpit.journal import RunRecord
from cockpit.runbook import Problem, RunbookError
from cockpit.runtime import StepRuntime
from cockpit.triggers import TriggerWatch

if TYPE_CHECKING:
    from cockpit.clock import Clock
    from cockpit.journal import Journal
    from cockpit.operator import Operator
    from cockpit.plan import Plan
    from cockpit.runbook import Runbook
    from cockpit.step import StepParams


class RunConflict(RuntimeError):
    """The unfinished run cannot be continued with these options."""


class RunOpening:
    if TYPE_CHECKING:
        runbook: Runbook
        journal: Journal
        clock: Clock
        env: Mapping[str, str]
        redact: secrets.Redactor
        operator: Operator
        plan: Plan
        rehearsal: bool
        dry_run: bool
        new_run: bool
        resumed: bool
        paused: bool
        run_id: int
        run_state: RunState
        _lock: threading.RLock
        _steps: dict[str, StepRuntime]
        _params: dict[str, StepParams]
        _connections: dict[str, Any]
        _metrics: dict[str, float]
        _triggers: TriggerWatch
        _completion: int

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
        def _apply_answer(self, rt: StepRuntime) -> None: ...
        def _restore_rollback(self, data: dict[str, Any] | None) -> None: ...

    def resolve_secrets(self) -> None:
        """Resolve every ${VAR}; raise RunbookError naming each unset one at its line."""
        problems: list[Problem] = []
        rb = self.runbook
        for name, raw in rb.raw_connections.items():
            unset = _unset(raw, self.env)
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
                    key: secrets.resolve(value, self.env, self.redact, address=key in secrets.ADDRESS_FIELDS)
                    for key, value in raw.items()
                }
                self._connections[name] = type(rb.connections[name]).model_validate(resolved)
            except ValueError as exc:
                problems.append(
                    Problem(
                        rb.source,
                        rb.line_of("connections", name),
                        f"connection {name!r}: after substituting variables: {exc}",
                    )
                )
        for step in rb.steps:
            unset = _unset(step.with_, self.env)
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
                resolved = secrets.resolve(step.with_, self.env, self.redact)
                self._params[step.id] = rb.kind_of(step.id).Params.model_validate(
                    resolved, context={"base_dir": rb.base_dir}
                )
            except ValueError as exc:
                problems.append(
                    Problem(
                        rb.source,
                        rb.step_line(step.id, "with"),
                        f"step {step.id!r}: after substituting variables: {self.redact(str(exc))}",
                    )
                )
        if problems:
            raise RunbookError(problems)

    def open(self) -> None:
        """Resolve secrets, then start a new run or continue the unfinished one."""
        self.resolve_secrets()
        rb = self.runbook
        source = str(rb.source.resolve())
        mode = "rehearsal" if self.rehearsal else "live"
        last = self.journal.latest_run(source)
        continuing = last is not None and not RunState(last.state).ended
        if continuing and last is not None and not self.new_run:
            if last.mode != mode or last.dry_run != self.dry_run:
                kind = ("dry run" if last.dry_run else "") + (" rehearsal" if last.mode == "rehearsal" else " live run")
                raise RunConflict(
                    f"the unfinished run {last.id} is a{kind.strip() and ' ' + kind.strip()}; continue it with the "
                    "same options, or start afresh with --new (the old run is kept, marked abandoned)"
                )
            self.run_id = last.id
            self.resumed = True
            self._restore(last)
        else:
            if continuing and last is not None:
                self.journal.record(
                    last.id,
                    RunStateChanged(
                        state=RunState.ABANDONED.value, reason=f"abandoned by {self.operator} (--new)", wall=time.time()
                    ),
                    run={"state": RunState.ABANDONED.value, "ended_wall": time.time()},
                    action=(str(self.operator), "abandon", None, "--new"),
                )
            self.run_id = self.journal.create_run(
                source=source,
                name=rb.name,
                digest=rb.digest,
                runbook_text=rb.text,
                mode=mode,
                dry_run=self.dry_run,
                options={"speed": self.clock.speed},
            )
            for step in rb.steps:
                self._steps[step.id] = StepRuntime(step.id, retries_left=step.retries)
        self._triggers = TriggerWatch(rb, self.plan, self.journal.fired_triggers(self.run_id))
        self._completion = max((s.completed_seq or 0 for s in self._steps.values()), default=0)
        with self._lock:
            self._emit(
                RunOpened(
                    run_id=self.run_id,
                    runbook=rb.name,
                    mode=mode,
                    dry_run=self.dry_run,
                    resumed=self.resumed,
                    operator=str(self.operator),
                )
            )
            if self.resumed:
                self._after_restore()

    def _restore(self, run: RunRecord) -> None:
        records = self.journal.steps(run.id)
        self.run_state = RunState(run.state)
        self.paused = run.paused
        for step in self.runbook.steps:
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
            rt.log_count = self.journal.log_count(run.id, step.id)
            self._steps[step.id] = rt
        self._metrics = self.journal.metrics(run.id)
        self._restore_rollback(run.rollback)

    def _after_restore(self) -> None:
        for rt in self._steps.values():
            asks_only = self.runbook.kind_of(rt.id).asks_only
            if rt.state == StepState.WAITING and rt.attempt > 0 and asks_only:
                # It was waiting for the operator, not working: ask again.
                rt.operator_started = True
                self._set_state(rt, StepState.SCHEDULED, "asks again: the cockpit stopped while it waited")
            elif rt.state == StepState.RUNNING or (rt.state == StepState.WAITING and rt.attempt > 0):
                retry = "continues from its checkpoint" if self.runbook.kind_of(rt.id).resumes else "starts over"
                self._set_state(
                    rt,
                    StepState.INTERRUPTED,
                    f"the cockpit stopped while this step ran; retry ({retry}), skip or mark done",
                )
                self._apply_answer(rt)
            elif rt.state in (StepState.READY, StepState.WAITING):
                # Not started yet: the scheduler re-decides (and re-opens a start gate).
                self._set_state(rt, StepState.SCHEDULED, "re-evaluated after restart")
            elif rt.state in (StepState.FAILED, StepState.CANCELLED):
                self._apply_answer(rt)


def _unset(value: Any, env: Mapping[str, str]) -> list[str]:
    """Every variable `value` references that the environment lacks, each once, in order."""
    return list(dict.fromkeys(name for name in secrets.references(value) if name not in env))


def _key_with_ref(value: Mapping[str, Any], name: str) -> str:
    for key, v in value.items():
        if name in set(secrets.references(v)):
            return str(key)
    return ""
