"""The planned schedule of a runbook: when each step starts and ends if all goes to plan.

A step's planned start is the latest of its own time (`at`, else its phase's) and the planned
ends of its needs; its planned end adds its budget. The window phase's critical path is the
chain of steps whose ends bind each other's starts up to the window's last planned end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cockpit.runbook import Runbook


@dataclass(frozen=True)
class PlannedStep:
    step_id: str
    phase_id: str
    due: timedelta  # earliest start, from `at`
    start: timedelta
    end: timedelta
    budget: timedelta | None
    bound_by: str | None  # the need whose end sets this step's start, if any


@dataclass(frozen=True)
class Plan:
    steps: dict[str, PlannedStep]
    order: tuple[str, ...]
    phase_start: dict[str, timedelta]
    phase_end: dict[str, timedelta]
    window_phase: str | None
    window: timedelta | None
    window_planned: timedelta | None  # last planned end in the window phase, from the phase's start
    window_budget_sum: timedelta | None
    critical_path: tuple[str, ...]

    @property
    def window_slack(self) -> timedelta | None:
        if self.window is None or self.window_planned is None:
            return None
        return self.window - self.window_planned


def topological_order(runbook: Runbook, step_ids: list[str]) -> list[str]:
    """Steps ordered so that needs come first; ties by time, then by position in the file."""
    position = {s.id: i for i, s in enumerate(runbook.steps)}
    wanted = set(step_ids)
    pending = {s: {n for n in runbook.step(s).needs if n in wanted} for s in step_ids}
    out: list[str] = []
    while pending:
        ready = [s for s, needs in pending.items() if not needs]
        if not ready:  # a cycle: check() refuses these, but never loop forever
            ready = list(pending)
        ready.sort(key=lambda s: (runbook.offset_of(s), position[s]))
        first = ready[0]
        out.append(first)
        del pending[first]
        for needs in pending.values():
            needs.discard(first)
    return out


def compute_plan(runbook: Runbook) -> Plan:
    forward = [s.id for s in runbook.forward_steps]
    order = topological_order(runbook, forward)
    planned: dict[str, PlannedStep] = {}
    for step_id in order:
        step = runbook.step(step_id)
        due = runbook.offset_of(step_id)
        start = due
        bound_by = None
        for need in step.needs:
            if need in planned and planned[need].end > start:
                start = planned[need].end
                bound_by = need
        budget = step.budget
        end = start + (budget or timedelta(0))
        planned[step_id] = PlannedStep(step_id, step.phase, due, start, end, budget, bound_by)

    phase_start: dict[str, timedelta] = {}
    phase_end: dict[str, timedelta] = {}
    for phase in runbook.phases:
        if phase.kind == "rollback":
            continue
        at = phase.at or timedelta(0)
        phase_start[phase.id] = at
        ends = [p.end for p in planned.values() if p.phase_id == phase.id]
        phase_end[phase.id] = max([at, *ends])

    window_phase = runbook.window_phase
    window = runbook.header.window
    window_planned = None
    budget_sum = None
    critical: list[str] = []
    if window_phase is not None:
        in_window = [p for p in planned.values() if p.phase_id == window_phase.id]
        start = window_phase.at or timedelta(0)
        if window is not None:
            phase_end[window_phase.id] = start + window
        if in_window:
            last = max(in_window, key=lambda p: (p.end, -order.index(p.step_id)))
            window_planned = last.end - start
            budget_sum = sum((p.budget or timedelta(0) for p in in_window), timedelta(0))
            node: str | None = last.step_id
            while node is not None and planned[node].phase_id == window_phase.id:
                critical.append(node)
                node = planned[node].bound_by
            critical.reverse()
    return Plan(
        steps=planned,
        order=tuple(order),
        phase_start=phase_start,
        phase_end=phase_end,
        window_phase=window_phase.id if window_phase else None,
        window=window,
        window_planned=window_planned,
        window_budget_sum=budget_sum,
        critical_path=tuple(critical),
    )
