"""`cockpit status`: the journal's view of a run, as text or as one JSON document.

Both forms are built from the same facts: every step in the runbook's order with its state as
an operator should read it (a step the journal holds as running while no process drives the
run is interrupted; a rollback step of a run that ended without a rollback was not needed),
every trigger armed or fired, the rollback, and every operator action.
"""

from __future__ import annotations

import time
import tomllib
from typing import Any

from cockpit.clock import format_duration
from cockpit.events import ItemChecked, RunState
from cockpit.journal import Journal, RunRecord
from cockpit.lock import holder_of

NOT_NEEDED = "not needed"


def _describe_when(when: Any) -> str:
    if not isinstance(when, dict):
        return "?"
    if "step" in when:
        return f"{when.get('step')} {when.get('state')}"
    if "metric" in when:
        return f"{when.get('metric')} > {when.get('above')}"
    if "phase" in when:
        return f"{when.get('phase')} overdue {when.get('overdue')}"
    return "?"


def _local(wall: float | None) -> str | None:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall)) if wall is not None else None


def status_facts(journal: Journal, run: RunRecord, lock_path: Any = None) -> dict[str, Any]:
    """Everything `cockpit status` says of a run, as plain data."""
    try:
        document = tomllib.loads(run.runbook_text)
    except tomllib.TOMLDecodeError:
        document = {}
    rollback_phases = {
        p.get("id") for p in document.get("phase", []) if isinstance(p, dict) and p.get("kind") == "rollback"
    }
    declared = [s for s in document.get("step", []) if isinstance(s, dict) and isinstance(s.get("id"), str)]
    holder = holder_of(lock_path) if lock_path is not None else None
    ended = RunState(run.state).ended
    driven = bool(holder)
    records = journal.steps(run.id)
    plan = set((run.rollback or {}).get("plan") or [])
    steps: dict[str, dict[str, Any]] = {}  # in the runbook's order
    for step in declared:
        step_id = step["id"]
        in_rollback = step.get("phase") in rollback_phases
        rec = records.get(step_id)
        state = rec.state if rec is not None else "scheduled"
        note = ("not run (dry run) " if rec is not None and rec.not_run else "") + (rec.reason if rec else "")
        end = rec.ended_wall if rec is not None else None
        if rec is not None and state in ("running", "waiting") and rec.attempt and not driven and not ended:
            state = "interrupted"
            note = "the cockpit stopped while it ran; `cockpit` continues the run and asks: retry, skip or done"
            end = end or max(run.heartbeat_wall or 0.0, rec.started_wall or 0.0) or None
        elif state == "scheduled" and in_rollback and step_id not in plan:
            if ended:
                state, note = NOT_NEEDED, "rollback step: the run ended without a rollback"
            else:
                note = "rollback step: runs only in a rollback"
        elif state == "scheduled" and ended:
            state, note = "not run", f"the run ended ({run.state.replace('_', ' ')}) first"
        took = None
        if rec is not None and rec.started_wall is not None:
            took = (end if end is not None else time.time()) - rec.started_wall
        steps[step_id] = {
            "title": step.get("title", step_id),
            "rollback_step": in_rollback,
            "state": state,
            "attempt": rec.attempt if rec else 0,
            "took_s": took,
            "note": note,
            "started": _local(rec.started_wall) if rec else None,
            "ended": _local(end),
        }
    fired = journal.fired_triggers(run.id)
    triggers = []
    for trigger in document.get("trigger", []):
        if not isinstance(trigger, dict) or "id" not in trigger:
            continue
        when, reason = fired.get(trigger["id"], (None, ""))
        triggers.append(
            {
                "id": trigger["id"],
                "title": trigger.get("title", trigger["id"]),
                "when": _describe_when(trigger.get("when")),
                "action": trigger.get("action"),
                "fired": trigger["id"] in fired,
                "fired_at": when.isoformat() if when else None,
                "reason": reason,
            }
        )
    actions = [
        {"at": _local(wall), "operator": operator, "action": action, "step": step, "detail": detail}
        for wall, operator, action, step, detail in journal.actions(run.id)
    ]
    # A checklist item ticked by its check: what the check saw, for the review after.
    checks = [
        {
            "at": _local(event.wall),
            "step": event.step_id,
            "item": event.item,
            "passed": event.passed,
            "reason": event.reason,
            "evidence": list(event.evidence),
        }
        for event in journal.events(run.id, types=["item_checked"])
        if isinstance(event, ItemChecked)
    ]
    return {
        "run": {
            "id": run.id,
            "name": run.name,
            "state": run.state,
            "mode": run.mode,
            "dry_run": run.dry_run,
            "paused": run.paused,
            "started": _local(run.created_wall),
            "ended": _local(run.ended_wall),
            "clock": run.clock.isoformat(timespec="seconds") if run.clock else None,
            "driven_by": holder or None,
        },
        "steps": steps,
        "triggers": triggers,
        "rollback": run.rollback,
        "actions": actions,
        "checks": checks,
        "metrics": journal.metrics(run.id),
    }


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def status_text(facts: dict[str, Any]) -> str:
    run = facts["run"]
    lines = [
        f"run {run['id']}: {run['name']} ({'dry run ' if run['dry_run'] else ''}{run['mode']}) is {run['state']}"
        + (" (paused)" if run["paused"] else "")
    ]
    lines.append(f"started {run['started']}" + (f", ended {run['ended']}" if run["ended"] else ""))
    if run["clock"]:
        lines.append(f"run clock at {run['clock']}")
    holder = run["driven_by"]
    if holder:
        lines.append(f"driven now by process {holder.get('pid')} on {holder.get('host')} ({holder.get('operator')})")
    elif not RunState(run["state"]).ended:
        lines.append("no process drives it now: `cockpit` (or `cockpit run`) continues it")
    lines += ["", f"{'step':<24} {'state':<12} {'try':>3} {'took':>7}  note"]
    for step_id, step in facts["steps"].items():
        took = format_duration(step["took_s"], precise=True) if step["took_s"] is not None else "-"
        lines.append(
            f"{step_id:<24} {step['state']:<12} {step['attempt']:>3} {took:>7}  {_cut(step['note'], 70)}".rstrip()
        )
    if facts["triggers"]:
        lines += ["", "triggers:"]
        for trigger in facts["triggers"]:
            mark = "fired" if trigger["fired"] else "armed" if not RunState(run["state"]).ended else "not fired"
            text = f"  {trigger['id']:<20} {mark:<9} {trigger['when']} -> {trigger['action']}"
            if trigger["fired"]:
                text += f"; at {trigger['fired_at'] or '?'}: {trigger['reason']}"
            lines.append(text)
    rollback = facts["rollback"]
    if rollback:
        where = "finished" if rollback.get("finished") else f"at step {rollback.get('position', 0) + 1}"
        lines.append(
            f"rollback: {rollback.get('reason')}; plan {', '.join(rollback.get('plan') or []) or '(not yet)'}; {where}"
        )
    if facts["actions"]:
        lines += ["", f"operator actions ({len(facts['actions'])}):"]
        for action in facts["actions"]:
            lines.append(
                f"  {action['at']} {action['operator']}: {action['action']}"
                + (f" {action['step']}" if action["step"] else "")
                + (f": {action['detail']}" if action["detail"] else "")
            )
    passed = [c for c in facts["checks"] if c["passed"]]
    if passed:
        lines += ["", f"items ticked by their checks ({len(passed)}):"]
        for check in passed:
            seen = f" ({check['evidence'][-1]})" if check["evidence"] else ""
            lines.append(f"  {check['at']} {check['step']}: {check['item']}{seen}")
    return "\n".join(lines)
