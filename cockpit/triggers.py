"""Rollback triggers: conditions armed for the whole run, evaluated on every event.

A trigger fires at most once per run. `{step, state}` fires when the step enters that state;
`{metric, above}` when a step publishes a value above the threshold; `{phase, overdue}` when
the phase is unfinished past its planned end plus the allowance (checked on every tick).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cockpit.clock import format_duration
from cockpit.plan import Plan
from cockpit.runbook import (
    MetricCondition,
    PhaseOverdueCondition,
    Runbook,
    StepStateCondition,
    Trigger,
)


@dataclass(frozen=True)
class Firing:
    trigger: Trigger
    reason: str


@dataclass(frozen=True)
class TriggerStatus:
    trigger: Trigger
    fired: bool
    fired_at: datetime | None
    reason: str


class TriggerWatch:
    """Holds which triggers fired; decides which fire next. Not thread-safe: the engine locks."""

    def __init__(self, runbook: Runbook, plan: Plan, fired: dict[str, tuple[datetime | None, str]]) -> None:
        self.runbook = runbook
        self.plan = plan
        self._fired = dict(fired)

    def _fire(self, trigger: Trigger, reason: str, now: datetime | None) -> Firing | None:
        if trigger.id in self._fired:
            return None
        self._fired[trigger.id] = (now, reason)
        return Firing(trigger, reason)

    def on_step_state(self, step_id: str, state: str, now: datetime | None) -> list[Firing]:
        out = []
        for trigger in self.runbook.triggers:
            when = trigger.when
            if isinstance(when, StepStateCondition) and when.step == step_id and when.state == state:
                firing = self._fire(trigger, f"step {step_id!r} is {state}", now)
                if firing:
                    out.append(firing)
        return out

    def on_metric(self, name: str, value: float, now: datetime | None) -> list[Firing]:
        out = []
        for trigger in self.runbook.triggers:
            when = trigger.when
            if isinstance(when, MetricCondition) and when.metric == name and value > when.above:
                firing = self._fire(trigger, f"metric {name} = {value:g} is above {when.above:g}", now)
                if firing:
                    out.append(firing)
        return out

    def on_time(self, now: datetime, unfinished_phases: Iterable[str]) -> list[Firing]:
        unfinished = set(unfinished_phases)
        out = []
        for trigger in self.runbook.triggers:
            when = trigger.when
            if not isinstance(when, PhaseOverdueCondition) or when.phase not in unfinished:
                continue
            end = self.plan.phase_end.get(when.phase)
            if end is None:
                continue
            limit = self.runbook.t0 + end + when.overdue
            if now > limit:
                late = now - (self.runbook.t0 + end)
                firing = self._fire(
                    trigger, f"phase {when.phase!r} is {format_duration(late)} past its planned end", now
                )
                if firing:
                    out.append(firing)
        return out

    def next_deadline(self, unfinished_phases: Iterable[str]) -> datetime | None:
        """The earliest time an overdue trigger could fire (so the scheduler wakes for it)."""
        unfinished = set(unfinished_phases)
        times = []
        for trigger in self.runbook.triggers:
            when = trigger.when
            if (
                isinstance(when, PhaseOverdueCondition)
                and when.phase in unfinished
                and trigger.id not in self._fired
                and when.phase in self.plan.phase_end
            ):
                times.append(
                    self.runbook.t0 + self.plan.phase_end[when.phase] + when.overdue + timedelta(milliseconds=1)
                )
        return min(times) if times else None

    def statuses(self) -> list[TriggerStatus]:
        out = []
        for trigger in self.runbook.triggers:
            fired = self._fired.get(trigger.id)
            out.append(
                TriggerStatus(trigger, fired is not None, fired[0] if fired else None, fired[1] if fired else "")
            )
        return out
