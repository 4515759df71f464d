"""The "what now" line, under the header on every screen: what waits for the operator, by name,
what it asks, and the keys that answer it; when nothing waits, what runs and what comes next.

Nothing covers it and nothing cuts its keys: a long question gives way first (`squeeze`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from cockpit.clock import format_duration, format_offset
from cockpit.events import StepState
from widgets.format import squeeze

if TYPE_CHECKING:
    from cockpit.engine.views import RunView, StepView

ENDED = ("done", "rolled_back", "abandoned")
CALL_STYLE = "bold black on yellow"
URGENT_STYLE = "bold white on red"


@dataclass(frozen=True)
class Call:
    """One thing only the operator can settle."""

    subject: str  # `go-no-go asks:`
    detail: str  # the question, or why; cut first when the line is short
    keys: str  # `type GO · a answer`
    step_id: str | None
    urgent: bool = False


def operator_calls(view: RunView) -> list[Call]:
    """Everything waiting for the operator, most urgent first."""
    calls: list[Call] = []
    rollback = view.rollback
    if rollback is not None and rollback.awaiting_confirmation:
        calls.append(Call("ROLLBACK asked:", rollback.reason, "b confirm (type ROLLBACK)", None, urgent=True))
    steps = list(view.steps.values())
    for step in steps:
        if step.state == StepState.INTERRUPTED:
            calls.append(
                Call(f"{step.id} interrupted:", step.reason, "r retry · k skip · d done", step.id, urgent=True)
            )
    for step in sorted((s for s in steps if s.gate is not None), key=lambda s: not s.point_of_no_return):
        calls.append(_gate_call(step))
    rolling_back = view.state == "rolling_back"
    if view.state not in ENDED:
        # A failed step the run waits on: in a rollback only the rollback's own steps count.
        for step in steps:
            if step.state != StepState.FAILED or step.retry_at is not None or step.in_rollback != rolling_back:
                continue
            keys = "r retry · k skip · d done" + ("" if rolling_back else " · b roll back")
            calls.append(Call(f"{step.id} failed:", step.reason, keys, step.id, urgent=True))
    if view.paused and view.state == "running":
        calls.append(Call("paused:", "no new step starts", "p resume", None))
    return calls


def _gate_call(step: StepView) -> Call:
    gate = step.gate
    assert gate is not None
    mark = "⚠ " if step.point_of_no_return else ""
    if gate.kind == "start":
        return Call(f"{mark}{step.id} waits for you to start it:", step.title, "a start · k skip", step.id)
    if gate.kind == "checklist":
        left = [item for i, item in enumerate(gate.items) if i not in gate.ticked]
        return Call(
            f"{step.id} checklist {len(gate.ticked)}/{len(gate.items)}:", left[0] if left else "", "a tick", step.id
        )
    keys = f"type {gate.confirm} · a answer" if gate.confirm else "a answer"
    if step.point_of_no_return:
        keys += " · point of no return"
    return Call(f"{mark}{step.id} asks:", gate.question, keys, step.id)


def what_now(view: RunView, width: int) -> Text:
    calls = operator_calls(view)
    if calls:
        call = calls[0]
        style = URGENT_STYLE if call.urgent else CALL_STYLE
        head = Text(f" ⚑ {call.subject} ", style=style)
        more = f"  (+{len(calls) - 1} more)" if len(calls) > 1 else ""
        tail = Text(f"  {call.keys}{more} ", style="bold")
        return squeeze(head, Text(call.detail), tail, width)
    return _status(view, width)


def _status(view: RunView, width: int) -> Text:
    """Nothing waits for the operator: what the run is doing, and what comes next."""
    if view.state == "done":
        return Text(" ✔ done: every step succeeded or was skipped · ctrl+q quits", style="green")
    if view.state == "rolled_back":
        return Text(" rolled back: `cockpit status` has the record · ctrl+q quits", style="bold red")
    if view.state == "abandoned":
        return Text(" this run was abandoned", style="dim")
    running = [s for s in view.steps.values() if s.state == StepState.RUNNING]
    head = Text(" ")
    if view.state == "rolling_back" and view.rollback is not None:
        head.append("rolling back ", style="bold red")
    if running:
        first = running[0]
        head.append(f"▶ {first.id}", style="bold cyan")
        detail = Text()
        bar = first.bars(1)[0] if first.progress else None
        if bar is not None and bar.fraction is not None:
            detail.append(f" {bar.fraction * 100:.0f}%")
            if bar.eta_seconds is not None:
                detail.append(f" ETA {format_duration(bar.eta_seconds)}")
        if len(running) > 1:
            detail.append(f" + {', '.join(s.id for s in running[1:])}", style="cyan")
        return squeeze(head, detail, _next(view), width)
    nothing = Text("nothing runs", style="dim")
    return squeeze(head, nothing, _next(view), width)


def _next(view: RunView) -> Text:
    """What comes next: in a rollback its next step, otherwise the next step due."""
    rollback = view.rollback
    if view.state == "rolling_back" and rollback is not None:
        later = rollback.plan[rollback.position + 1 :]
        return Text(f"  then: {', '.join(later)}" if later else "  the rollback's last step", style="dim")
    return _next_due(view)


def _next_due(view: RunView) -> Text:
    """`next: resolve after import`, or `next: dns-cutover at T+10m10s (in 4m)`."""
    due = [s for s in view.steps.values() if s.state == StepState.SCHEDULED and s.due is not None and not s.in_rollback]
    if not due:
        return Text("")
    step = min(due, key=lambda s: (s.due, s.planned_start or s.due - view.t0))  # type: ignore[operator]
    assert step.due is not None
    unmet = [n for n in step.needs if not view.steps[n].state.satisfies_needs]
    if step.due <= view.now and unmet:
        return Text(f"  next: {step.id} after {', '.join(unmet)}", style="dim")
    text = Text(f"  next: {step.id} at {format_offset(step.due - view.t0)}", style="dim")
    if step.due > view.now:
        text.append(f" (in {format_duration(step.due - view.now)})", style="dim")
    return text


class WhatNow(Static):
    """Under the header on every screen; never covered."""

    DEFAULT_CSS = """
    WhatNow { height: 1; background: $boost; }
    """

    def show(self, view: RunView) -> None:
        self.update(what_now(view, self.size.width or 80))
