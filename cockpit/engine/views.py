"""What every reader of a run sees: frozen views of the engine's state, and how they are built.

`RunView`/`StepView` are immutable copies that the screen, the headless printer and `cockpit
status` read without touching the engine's state; `build_view` makes one under the run's lock.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from cockpit.engine.live_run import LiveRun
from cockpit.events import StepState
from cockpit.runbook import MetricCondition, PhaseOverdueCondition, StepStateCondition, Trigger


class Outcome(StrEnum):
    """What a headless run ends with; maps to the exit code."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    WAITING = "waiting"
    ABANDONED = "abandoned"

    @property
    def exit_code(self) -> int:
        return {
            Outcome.DONE: 0,
            Outcome.FAILED: 1,
            Outcome.ROLLED_BACK: 3,
            Outcome.WAITING: 4,
            Outcome.ABANDONED: 1,
            Outcome.RUNNING: 4,
        }[self]


@dataclass(frozen=True)
class ProgressView:
    label: str
    done: float
    total: float | None
    unit: str
    rate: float | None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))

    @property
    def eta_seconds(self) -> float | None:
        if not self.total or not self.rate or self.rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate)


@dataclass(frozen=True)
class GateView:
    kind: str
    question: str
    confirm: str | None
    items: tuple[str, ...]
    ticked: frozenset[int]
    notes: Mapping[int, str] = field(default_factory=dict)  # why an item's check did not tick it


@dataclass(frozen=True)
class StepView:
    id: str
    title: str
    phase: str
    kind: str
    effect: str
    state: StepState
    attempt: int
    reason: str
    due: datetime | None
    planned_start: timedelta | None
    planned_end: timedelta | None
    budget: timedelta | None
    started: datetime | None
    ended: datetime | None
    elapsed: timedelta | None
    late_by: timedelta | None
    progress: tuple[ProgressView, ...]
    gate: GateView | None
    not_run: bool
    retry_at: datetime | None
    in_rollback: bool
    start_mode: str
    log_count: int
    undo: str | None
    needs: tuple[str, ...]
    point_of_no_return: bool
    resumes: bool = False  # a retry continues from the checkpoint (else it starts over)
    left_running: str = ""  # "pid 4321 still running `pg_dump` since 23:04": stopped before any answer

    def bars(self, room: int) -> tuple[ProgressView, ...]:
        """At most `room` of the step's progress bars, in the order reported: the unfinished
        first, then the last finished (a step that moves through many tables reports a bar per
        table, and the one at work must not fall off the end)."""
        if len(self.progress) <= room:
            return self.progress
        unfinished = [n for n, bar in enumerate(self.progress) if bar.total is None or bar.done < bar.total]
        finished = [n for n in range(len(self.progress)) if n not in unfinished]
        chosen = set(unfinished[:room])
        chosen.update(finished[len(finished) - (room - len(chosen)) :] if room > len(chosen) else [])
        return tuple(bar for n, bar in enumerate(self.progress) if n in chosen)


@dataclass(frozen=True)
class TriggerView:
    id: str
    title: str
    condition: str
    action: str
    within: timedelta | None
    fired: bool
    fired_at: datetime | None
    reason: str


@dataclass(frozen=True)
class RollbackView:
    reason: str
    trigger_id: str | None
    deadline: datetime | None
    plan: tuple[str, ...]
    position: int
    awaiting_confirmation: bool
    finished: bool
    ok: bool | None


@dataclass(frozen=True)
class PhaseView:
    id: str
    title: str
    kind: str
    at: timedelta | None
    window: bool
    step_ids: tuple[str, ...]


@dataclass(frozen=True)
class RunView:
    run_id: int
    name: str
    mode: str  # live | rehearsal
    dry_run: bool
    state: str
    paused: bool
    now: datetime
    t0: datetime
    window_start: datetime | None
    window_end: datetime | None
    phases: tuple[PhaseView, ...]
    steps: dict[str, StepView]
    triggers: tuple[TriggerView, ...]
    rollback: RollbackView | None
    ponr_passed: bool
    outcome: Outcome
    metrics: dict[str, float]
    speed: float
    operator: str

    @property
    def window_left(self) -> timedelta | None:
        if self.window_end is None:
            return None
        return self.window_end - self.now


def describe_condition(trigger: Trigger) -> str:
    when = trigger.when
    if isinstance(when, StepStateCondition):
        return f"{when.step} {when.state}"
    if isinstance(when, MetricCondition):
        return f"{when.metric} > {when.above:g}"
    if isinstance(when, PhaseOverdueCondition):
        return f"{when.phase} overdue {int(when.overdue.total_seconds() // 60)}m"
    return "?"


def build_view(run: LiveRun, outcome: Outcome) -> RunView:
    """A consistent copy of the run; call with the run's lock held."""
    rb = run.runbook
    now = run.clock.now()
    wall = time.time()
    steps: dict[str, StepView] = {}
    rollback_plan = set(run.rollback.plan or []) if run.rollback else set()
    for step in rb.steps:
        rt = run.step(step.id)
        in_rollback = rb.is_rollback_step(step.id)
        planned = run.plan.steps.get(step.id)
        elapsed = None
        if rt.started_wall is not None:
            # Durations are wall time: work is not compressed in a rehearsal.
            live = rt.state in (StepState.RUNNING, StepState.WAITING) and rt.cancel is not None
            end = wall if live or rt.ended_wall is None else rt.ended_wall
            elapsed = timedelta(seconds=max(0.0, end - rt.started_wall))
        late = None
        if step.budget is not None and elapsed is not None and elapsed > step.budget:
            late = elapsed - step.budget
        gate = None
        if rt.gate is not None:
            gate = GateView(
                rt.gate.kind,
                rt.gate.question,
                rt.gate.confirm,
                rt.gate.items,
                frozenset(rt.gate.ticked),
                dict(rt.gate.notes),
            )
        params = run.params.get(step.id)
        kind = rb.kind_of(step.id)
        effect = kind().effect_of(params).value if params is not None else kind.effect.value
        steps[step.id] = StepView(
            id=step.id,
            title=step.label,
            phase=step.phase,
            kind=step.kind,
            effect=effect,
            state=rt.state,
            attempt=rt.attempt,
            reason=rt.reason,
            due=None if in_rollback else rb.due_at(step.id),
            planned_start=planned.start if planned else None,
            planned_end=planned.end if planned else None,
            budget=step.budget,
            started=rt.started_clock,
            ended=rt.ended_clock,
            elapsed=elapsed,
            late_by=late,
            progress=tuple(ProgressView(p.label, p.done, p.total, p.unit, p.rate) for p in rt.progress.values()),
            gate=gate,
            not_run=rt.not_run,
            left_running=rt.left_running,
            retry_at=rt.retry_at,
            in_rollback=in_rollback or step.id in rollback_plan,
            start_mode=step.start,
            log_count=rt.log_count,
            undo=step.undo,
            needs=tuple(step.needs),
            point_of_no_return=step.point_of_no_return,
            resumes=kind.resumes,
        )
    triggers = tuple(
        TriggerView(
            s.trigger.id,
            s.trigger.label,
            describe_condition(s.trigger),
            s.trigger.action,
            s.trigger.within,
            s.fired,
            s.fired_at,
            s.reason,
        )
        for s in run.triggers.statuses()
    )
    state = run.rollback
    rollback = None
    if state is not None:
        rollback = RollbackView(
            state.reason,
            state.trigger_id,
            state.deadline,
            tuple(state.plan or ()),
            state.position,
            state.awaiting_confirmation,
            state.finished,
            state.ok,
        )
    window = rb.window_phase
    window_start = window_end = None
    if window is not None and rb.header.window is not None:
        window_start = rb.t0 + (window.at or timedelta(0))
        window_end = window_start + rb.header.window
    phases = tuple(
        PhaseView(p.id, p.label, p.kind, p.at, p.window, tuple(s.id for s in rb.steps_in(p.id))) for p in rb.phases
    )
    return RunView(
        run_id=run.run_id,
        name=rb.name,
        mode=run.options.mode,
        dry_run=run.options.dry_run,
        state=run.state.value,
        paused=run.paused,
        now=now,
        t0=rb.t0,
        window_start=window_start,
        window_end=window_end,
        phases=phases,
        steps=steps,
        triggers=triggers,
        rollback=rollback,
        ponr_passed=run.ponr_passed,
        outcome=outcome,
        metrics=dict(run.metrics),
        speed=run.clock.speed,
        operator=str(run.operator),
    )
