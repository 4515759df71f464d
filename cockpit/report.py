"""Plain-text reports for the command line: `cockpit plan` and `cockpit status`."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, tzinfo

from cockpit.clock import format_duration, format_offset
from cockpit.events import RunState
from cockpit.journal import Journal, RunRecord
from cockpit.lock import holder_of
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
        f"{'step':<24} {'offset':<9} {'start, ' + zone_name:<17} {'start, ' + local_name:<17} "
        f"{'budget':>7}  needs",
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
            lines.append(f"{flag}{_cut(step.id, 22):<22} {offset:<9} {when.astimezone(zone):%Y-%m-%d %H:%M} "
                         f"{when.astimezone(local):%Y-%m-%d %H:%M} {budget:>7}  {needs}{mode}")
    lines.append("")
    if plan.window_phase is not None and plan.window is not None:
        planned = plan.window_planned or timedelta(0)
        slack = plan.window - planned
        verdict = (f"{format_duration(slack)} to spare" if slack >= timedelta(0)
                   else f"OVER by {format_duration(-slack)}")
        lines.append(f"Window: planned {format_duration(planned)} of {format_duration(plan.window)} "
                     f"({verdict}); budgets in the window add up to "
                     f"{format_duration(plan.window_budget_sum or timedelta(0))}")
        if plan.critical_path:
            total = sum((plan.steps[s].budget or timedelta(0) for s in plan.critical_path), timedelta(0))
            lines.append(f"Critical path (*): {' -> '.join(plan.critical_path)} = {format_duration(total)}")
    unbudgeted = [s.id for s in runbook.forward_steps if s.budget is None and
                  runbook.window_phase is not None and s.phase == runbook.window_phase.id]
    if unbudgeted:
        lines.append(f"Without a budget in the window (planned as 0s): {', '.join(unbudgeted)}")
    if runbook.triggers:
        lines.append("Triggers: " + "; ".join(f"{t.id} -> {t.action}" + (f" within {format_duration(t.within)}"
                                                                          if t.within else "")
                                              for t in runbook.triggers))
    return "\n".join(lines)


def status_report(journal: Journal, run: RunRecord, lock_path: object = None) -> str:
    """The journal's view of a run, for `cockpit status`."""
    steps = journal.steps(run.id)
    lines = [f"run {run.id}: {run.name} ({'dry run ' if run.dry_run else ''}{run.mode}) is {run.state}"
             + (" (paused)" if run.paused else "")]
    lines.append(f"started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(run.created_wall))}"
                 + (f", ended {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(run.ended_wall))}"
                    if run.ended_wall else ""))
    if run.clock is not None:
        lines.append(f"run clock at {run.clock.isoformat(timespec='seconds')}")
    holder = holder_of(lock_path) if lock_path is not None else None  # type: ignore[arg-type]
    if holder:
        lines.append(f"driven now by process {holder.get('pid')} on {holder.get('host')} ({holder.get('operator')})")
    elif not RunState(run.state).ended:
        lines.append("no process drives it now: `cockpit run` continues it")
    lines.append("")
    lines.append(f"{'step':<24} {'state':<12} {'try':>3} {'took':>7}  note")
    order, rollback_steps = _step_order(run)
    for step_id in order:
        rec = steps.get(step_id)
        if rec is None:
            lines.append(f"{step_id:<24} {'scheduled':<12} {0:>3} {'-':>7}")
            continue
        took = "-"
        if rec.started_wall is not None:
            end = rec.ended_wall if rec.ended_wall is not None else time.time()
            took = format_duration(end - rec.started_wall, precise=True)
        note = ("not run (dry run) " if rec.not_run else "") + rec.reason
        if rec.state == "scheduled" and step_id in rollback_steps and not run.rollback:
            note = "rollback step: runs only in a rollback"
        lines.append(f"{step_id:<24} {rec.state:<12} {rec.attempt:>3} {took:>7}  {_cut(note, 70)}")
    fired = journal.fired_triggers(run.id)
    if fired:
        lines.append("")
        for trigger, (when, reason) in fired.items():
            lines.append(f"trigger {trigger} fired at {when.isoformat(timespec='seconds') if when else '?'}: {reason}")
    if run.rollback:
        rb = run.rollback
        lines.append(f"rollback: {rb.get('reason')}; plan {', '.join(rb.get('plan') or []) or '(not yet)'}"
                     f"; {'finished' if rb.get('finished') else 'at step ' + str(rb.get('position', 0) + 1)}")
    actions = journal.actions(run.id)
    if actions:
        lines.append("")
        lines.append("operator actions:")
        for wall, operator, action, step, detail in actions[-10:]:
            lines.append(f"  {time.strftime('%H:%M:%S', time.localtime(wall))} {operator}: {action}"
                         + (f" {step}" if step else "") + (f": {detail}" if detail else ""))
    return "\n".join(lines)


def _step_order(run: RunRecord) -> tuple[list[str], set[str]]:
    """Steps in the order of the runbook the run started with, and which are rollback steps."""
    import tomllib

    try:
        document = tomllib.loads(run.runbook_text)
    except tomllib.TOMLDecodeError:
        return [], set()
    rollback_phases = {p.get("id") for p in document.get("phase", []) if isinstance(p, dict)
                       and p.get("kind") == "rollback"}
    steps = [s for s in document.get("step", []) if isinstance(s, dict) and isinstance(s.get("id"), str)]
    return [s["id"] for s in steps], {s["id"] for s in steps if s.get("phase") in rollback_phases}
