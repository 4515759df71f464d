"""`cockpit plan`: the timeline with absolute times, budgets and the window total."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from cockpit.clock import format_duration, format_offset
from cockpit.plan import compute_plan
from cockpit.runbook import Runbook


def _local_zone() -> tzinfo:
    zone = datetime.now().astimezone().tzinfo
    assert zone is not None
    return zone


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def plan_report(runbook: Runbook, local: tzinfo | None = None) -> str:
    """The timeline: every phase and step with absolute starts in both zones, budgets and needs."""
    plan = compute_plan(runbook)
    local = local or _local_zone()
    zone = runbook.t0.tzinfo
    t0 = runbook.t0
    zone_name = t0.strftime("UTC%z")
    local_name = datetime.now(local).strftime("%Z") or "local"
    lines = [
        f"{runbook.name}",
        f"T-0 is {t0:%Y-%m-%d %H:%M} {zone_name} (runbook zone) = {t0.astimezone(local):%Y-%m-%d %H:%M} "
        f"{local_name} (local)",
        "",
        f"{'step':<24} {'offset':<9} {'start, ' + zone_name:<17} {'start, ' + local_name:<17} {'budget':>7}  needs",
    ]
    for phase in runbook.phases:
        steps = runbook.steps_in(phase.id)
        if phase.kind == "rollback":
            lines.append("")
            lines.append(f"== {phase.label} (runs only when a rollback runs)")
            for step in steps:
                budget = format_duration(step.budget) if step.budget else "-"
                needs = ", ".join(step.needs) or "-"
                lines.append(f"  {_cut(step.id, 22):<22} {'-':<9} {'-':<17} {'-':<17} {budget:>7}  {needs}")
            continue
        at = format_offset(phase.at or timedelta(0))
        start = t0 + (phase.at or timedelta(0))
        window = ""
        if phase.window and plan.window is not None:
            window = f", window {format_duration(plan.window)}"
        lines.append("")
        lines.append(f"== {phase.label} at {at}: {start.astimezone(zone):%a %b %d %H:%M}{window}")
        for step in steps:
            p = plan.steps[step.id]
            when = t0 + p.start
            offset = format_offset(p.start)
            budget = format_duration(step.budget) if step.budget else "-"
            needs = ", ".join(step.needs) or "-"
            flag = " *" if step.id in plan.critical_path else "  "
            mode = " (operator starts)" if step.start == "operator" else ""
            lines.append(
                f"{flag}{_cut(step.id, 22):<22} {offset:<9} {when.astimezone(zone):%Y-%m-%d %H:%M} "
                f"{when.astimezone(local):%Y-%m-%d %H:%M} {budget:>7}  {needs}{mode}"
            )
    lines.append("")
    if plan.window_phase is not None and plan.window is not None:
        planned = plan.window_planned or timedelta(0)
        slack = plan.window - planned
        verdict = (
            f"{format_duration(slack)} to spare" if slack >= timedelta(0) else f"OVER by {format_duration(-slack)}"
        )
        lines.append(
            f"Window: planned {format_duration(planned)} of {format_duration(plan.window)} "
            f"({verdict}); budgets in the window add up to "
            f"{format_duration(plan.window_budget_sum or timedelta(0))}"
        )
        if plan.critical_path:
            total = sum((plan.steps[s].budget or timedelta(0) for s in plan.critical_path), timedelta(0))
            lines.append(f"Critical path (*): {' -> '.join(plan.critical_path)} = {format_duration(total)}")
    unbudgeted = [
        s.id
        for s in runbook.forward_steps
        if s.budget is None and runbook.window_phase is not None and s.phase == runbook.window_phase.id
    ]
    if unbudgeted:
        lines.append(f"Without a budget in the window (planned as 0s): {', '.join(unbudgeted)}")
    if runbook.triggers:
        lines.append(
            "Triggers: "
            + "; ".join(
                f"{t.id} -> {t.action}" + (f" within {format_duration(t.within)}" if t.within else "")
                for t in runbook.triggers
            )
        )
    return "\n".join(lines)
