"""The sixty days on one screen: each phase with its date and how far it got, then what the
next 24 hours hold, what waits for the operator and what is overdue (`cockpit due`'s lists,
from the live view)."""

from __future__ import annotations

from datetime import timedelta

from rich.text import Text

from cockpit.clock import format_duration, format_offset
from cockpit.due import DueStep, due_list
from cockpit.engine.views import RunView, StepView
from cockpit.events import StepState
from cockpit.plan import Plan
from cockpit.runbook import Runbook

HORIZON = timedelta(hours=24)
_DONE = (StepState.SUCCEEDED, StepState.SKIPPED)
_OPERATOR = (StepState.WAITING, StepState.FAILED, StepState.INTERRUPTED, StepState.CANCELLED)
# Rows listed per section; the rest are counted on a last line.
SECTION_ROWS = 4


def timeline_lines(view: RunView, runbook: Runbook, plan: Plan, width: int = 80) -> list[Text]:
    lines = [_fit(Text(f"Sixty days of {view.name}", style="bold"), width)]
    now_shown = False
    for phase in view.phases:
        if phase.kind == "rollback" or not phase.step_ids:
            continue
        if not now_shown and view.t0 + plan.phase_start.get(phase.id, timedelta(0)) > view.now:
            lines.append(_now_line(view, width))
            now_shown = True
        lines.append(_phase_line(view, plan, phase.id, phase.title, phase.step_ids, width))
    if not now_shown:
        lines.append(_now_line(view, width))
    states = {step_id: step.state.value for step_id, step in view.steps.items()}
    listing = due_list(runbook, plan, states, view.now, HORIZON)
    waiting = [view.steps[s.step_id] for s in listing.steps if s.who == "operator" and s.status != "coming"]
    sections = [
        ("Overdue", "bold red", [_due_row(s, view, width) for s in listing.of("overdue")]),
        (
            "Waits for the operator",
            "bold yellow",
            [_fit(Text(f"  {s.id:<18} {s.state.value:<11} {_gate_note(s)}"), width) for s in waiting],
        ),
        (
            "Next 24 hours",
            "bold",
            [_due_row(s, view, width) for s in listing.of("coming")],
        ),
    ]
    for title, style, rows in sections:
        lines.append(Text(""))
        lines.append(Text(f"{title}: {len(rows) or 'nothing'}", style=style if rows else "dim"))
        lines.extend(rows[:SECTION_ROWS])
        if len(rows) > SECTION_ROWS:
            lines.append(Text(f"  and {len(rows) - SECTION_ROWS} more (cockpit due lists them all)", style="dim"))
    return lines


def _phase_line(view: RunView, plan: Plan, phase_id: str, title: str, step_ids: tuple[str, ...], width: int) -> Text:
    steps = [view.steps[s] for s in step_ids]
    done = sum(1 for s in steps if s.state in _DONE)
    start = view.t0 + plan.phase_start.get(phase_id, timedelta(0))
    end = view.t0 + plan.phase_end.get(phase_id, timedelta(0))
    running = [s.id for s in steps if s.state == StepState.RUNNING]
    asking = [s.id for s in steps if s.state in _OPERATOR]
    if done == len(steps):
        mark, style, note = "✔", "green", "done"
    elif running or asking:
        mark, style = "▶", "bold cyan"
        parts = [f"running {', '.join(running)}"] if running else []
        parts += [f"waits: {', '.join(asking)}"] if asking else []
        note = " · ".join(parts)
    elif start > view.now:
        mark, style, note = "·", "dim", f"in {format_duration(start - view.now)}"
    else:
        mark, style = "▶", "cyan"
        upcoming = [(s.due, s.id) for s in steps if s.state == StepState.SCHEDULED and s.due is not None]
        note = "under way"
        if upcoming:
            due, step_id = min(upcoming)
            note += f" · next {step_id} at {format_offset(due - view.t0)}"
    local = start.astimezone(view.t0.tzinfo)
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{mark} ", style=style)
    line.append(f"{format_offset(start - view.t0):<8} {local:%a %d %b}  ")
    line.append(f"{title:<20.20} ", style="bold" if mark == "▶" else "")
    line.append(f"{done}/{len(steps)}  ")
    if end - start >= timedelta(days=1) and mark != "✔":
        note += f" · to {end.astimezone(view.t0.tzinfo):%a %d %b}"
    line.append(note, style=style if mark != "·" else "dim")
    return _fit(line, width)


def _now_line(view: RunView, width: int) -> Text:
    local = view.now.astimezone(view.t0.tzinfo)
    label = f" now {local:%a %d %b %H:%M} ({format_offset(view.now - view.t0)}) "
    return _fit(Text(f"──{label}".ljust(width, "─"), style="bold magenta"), width)


def _due_row(step: DueStep, view: RunView, width: int) -> Text:
    when = step.planned.astimezone(view.t0.tzinfo)
    return _fit(
        Text(f"  {step.step_id:<18} {format_offset(step.offset):<8} {when:%a %H:%M}  {step.who:<8} {step.title}"),
        width,
    )


def _gate_note(step: StepView) -> str:
    gate = step.gate
    if gate is not None and gate.kind == "checklist":
        return f"checklist: {len(gate.ticked)} of {len(gate.items)} ticked"
    if gate is not None:
        return gate.question
    return step.reason or step.title


def _fit(text: Text, width: int) -> Text:
    text.no_wrap = True
    text.overflow = "ellipsis"
    text.truncate(width, overflow="ellipsis")
    return text
