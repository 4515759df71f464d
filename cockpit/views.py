"""Builds the frozen `RunView` of an engine: what every reader of the run sees."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING

from cockpit.events import StepState
from cockpit.runbook import MetricCondition, PhaseOverdueCondition, StepStateCondition, Trigger
from cockpit.runtime import (
    GateView,
    PhaseView,
    ProgressView,
    RollbackView,
    RunView,
    StepView,
    TriggerView,
)

if TYPE_CHECKING:
    from cockpit.engine import Engine


def describe_condition(trigger: Trigger) -> str:
    when = trigger.when
    if isinstance(when, StepStateCondition):
        return f"{when.step} {when.state}"
    if isinstance(when, MetricCondition):
        return f"{when.metric} > {when.above:g}"
    if isinstance(when, PhaseOverdueCondition):
        return f"{when.phase} overdue {int(when.overdue.total_seconds() // 60)}m"
    return "?"


def build_view(engine: Engine) -> RunView:
    """A consistent copy of the run; call with the engine lock held."""
    rb = engine.runbook
    now = engine.clock.now()
    wall = time.time()
    steps: dict[str, StepView] = {}
    rollback_plan = set(engine.rollback_state.plan or []) if engine.rollback_state else set()
    for step in rb.steps:
        rt = engine.step_runtime(step.id)
        in_rollback = rb.is_rollback_step(step.id)
        planned = engine.plan.steps.get(step.id)
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
            gate = GateView(rt.gate.kind, rt.gate.question, rt.gate.confirm, rt.gate.items, frozenset(rt.gate.ticked))
        params = engine._params.get(step.id)
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
        for s in engine._triggers.statuses()
    )
    state = engine.rollback_state
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
        run_id=engine.run_id,
        name=rb.name,
        mode="rehearsal" if engine.rehearsal else "live",
        dry_run=engine.dry_run,
        state=engine.run_state.value,
        paused=engine.paused,
        now=now,
        t0=rb.t0,
        window_start=window_start,
        window_end=window_end,
        phases=phases,
        steps=steps,
        triggers=triggers,
        rollback=rollback,
        ponr_passed=engine.ponr_passed,
        outcome=engine._outcome(),
        metrics=dict(engine._metrics),
        speed=engine.clock.speed,
        operator=str(engine.operator),
    )
