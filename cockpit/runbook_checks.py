"""The second half of `cockpit check`: the runbook as a whole, once each table is valid on its
own (`cross_check`): ids, needs, cycles, undo, triggers, connections, times."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cockpit.clock import format_offset
from cockpit.runbook import (
    Phase,
    PhaseOverdueCondition,
    RunbookStep,
    StepStateCondition,
    did_you_mean,
)
from cockpit.runbook_parse import connection_fields, step_fields
from cockpit.step import StepParams, embedded_probes

if TYPE_CHECKING:
    from cockpit.runbook import ProblemCollector, Runbook


def cross_check(runbook: Runbook, collect: ProblemCollector) -> None:
    """Every check that needs the whole runbook: ids, references, cycles, times."""
    _check_phases(runbook, collect)
    _check_steps(runbook, collect)
    _check_cycles(runbook, collect)
    _check_triggers(runbook, collect)
    if not any(p.severity == "error" for p in collect.problems):
        _check_window(runbook, collect)


def _check_window(runbook: Runbook, collect: ProblemCollector) -> None:
    """The window's planned work (its critical path of budgets) against `window`: a plan that
    cannot fit is sound to run, but the operator should know before the night."""
    from cockpit.clock import format_duration
    from cockpit.plan import compute_plan

    plan = compute_plan(runbook)
    if plan.window is None or plan.window_planned is None or plan.window_planned <= plan.window:
        return
    over = plan.window_planned - plan.window
    collect.warn(
        ("runbook", "window"),
        f"the window's planned work takes {format_duration(plan.window_planned)}, "
        f"over window = {format_duration(plan.window)} by {format_duration(over)} (`cockpit plan` shows "
        "its critical path)",
    )


def _step_path(runbook: Runbook, step: RunbookStep, *key: str | int) -> tuple[str | int, ...]:
    return ("step", runbook.index_of("step", step), *key)


def _phase_path(runbook: Runbook, phase: Phase, *key: str | int) -> tuple[str | int, ...]:
    return ("phase", runbook.index_of("phase", phase), *key)


def _check_phases(runbook: Runbook, collect: ProblemCollector) -> None:
    windows = [p for p in runbook.phases if p.window]
    rollbacks = [p for p in runbook.phases if p.kind == "rollback"]
    for extra in windows[1:]:
        collect.error(
            _phase_path(runbook, extra, "window"),
            f"phase {extra.id!r}: a second window phase (the window is {windows[0].id!r}); "
            "only one phase may set window = true",
        )
    for extra in rollbacks[1:]:
        collect.error(
            _phase_path(runbook, extra, "kind"),
            f"phase {extra.id!r}: a second rollback phase (the rollback phase is {rollbacks[0].id!r})",
        )
    if windows and runbook.header.window is None:
        collect.error(
            ("runbook",),
            f"phase {windows[0].id!r} is the window phase, but [runbook] has no "
            'window (its planned length, e.g. window = "30m")',
        )
    for phase in runbook.phases:
        if phase.kind == "rollback":
            if phase.at is not None:
                collect.error(
                    _phase_path(runbook, phase, "at"),
                    f"phase {phase.id!r}: the rollback phase has no 'at': its steps run only when a rollback runs",
                )
            if phase.window:
                collect.error(
                    _phase_path(runbook, phase, "window"),
                    f"phase {phase.id!r}: the rollback phase cannot be the window phase",
                )
        elif phase.at is None:
            collect.error(
                _phase_path(runbook, phase), f"phase {phase.id!r}: missing required key 'at' (e.g. at = \"T-0\")"
            )


def _check_steps(runbook: Runbook, collect: ProblemCollector) -> None:
    phase_ids = runbook.declared["phase"]
    step_ids = runbook.declared["step"]
    rollback_phase = runbook.rollback_phase
    for step in runbook.steps:
        if step.phase not in phase_ids:
            collect.error(
                _step_path(runbook, step, "phase"),
                f"step {step.id!r}: no phase {step.phase!r}{did_you_mean(step.phase, phase_ids)}",
            )
            continue
        if not runbook.has_phase(step.phase):
            continue  # the phase itself is invalid and reported
        phase = runbook.phase(step.phase)
        in_rollback = phase.kind == "rollback"
        for i, need in enumerate(step.needs):
            path = _step_path(runbook, step, "needs", i)
            if need == step.id:
                collect.error(path, f"step {step.id!r} needs itself")
            elif need not in step_ids:
                collect.error(
                    path, f"step {step.id!r}: needs {need!r}, which is not a step{did_you_mean(need, step_ids)}"
                )
            elif not in_rollback and _in_rollback_phase(runbook, need):
                collect.error(
                    path, f"step {step.id!r}: needs {need!r}, a rollback-phase step, which runs only during a rollback"
                )
        if len(set(step.needs)) != len(step.needs):
            collect.warn(_step_path(runbook, step, "needs"), f"step {step.id!r}: needs lists a step twice")
        if step.undo is not None:
            path = _step_path(runbook, step, "undo")
            if step.undo not in step_ids:
                collect.error(
                    path, f"step {step.id!r}: undo {step.undo!r} is not a step{did_you_mean(step.undo, step_ids)}"
                )
            elif runbook.has_step(step.undo) and (
                rollback_phase is None or runbook.step(step.undo).phase != rollback_phase.id
            ):
                collect.error(path, f"step {step.id!r}: undo {step.undo!r} must be a step of the rollback phase")
            if in_rollback:
                collect.error(path, f"step {step.id!r}: a rollback-phase step cannot have an undo")
        if in_rollback and step.at is not None:
            collect.error(
                _step_path(runbook, step, "at"),
                f"step {step.id!r}: rollback-phase steps have no 'at': they run when a rollback runs",
            )
        if not in_rollback and step.at is not None and phase.at is not None and step.at < phase.at:
            collect.error(
                _step_path(runbook, step, "at"),
                f"step {step.id!r}: at {format_offset(step.at)} is before its phase "
                f"{phase.id!r} at {format_offset(phase.at)}",
            )
        if step.timeout is not None and step.timeout <= timedelta(0):
            collect.error(_step_path(runbook, step, "timeout"), f"step {step.id!r}: timeout must be positive")
        if step.budget is not None and step.timeout is not None and step.timeout < step.budget:
            collect.warn(_step_path(runbook, step, "timeout"), f"step {step.id!r}: timeout is shorter than its budget")
        _check_step_connections(runbook, step, collect)


def _check_step_connections(runbook: Runbook, step: RunbookStep, collect: ProblemCollector) -> None:
    kind = runbook.kinds.get(step.kind)
    params = runbook.params.get(step.id)
    if kind is None or params is None:
        return
    _check_references(runbook, step, kind.Params, step.with_, ("with",), collect)
    # A probe embedded in the step (a checklist item's check) names connections and steps too.
    for path, call in embedded_probes(params):
        probe = runbook.kinds.get(call.kind)
        if probe is not None:
            _check_references(runbook, step, probe.Params, call.with_, ("with", *path, "with"), collect)


def _check_references(
    runbook: Runbook,
    step: RunbookStep,
    model: type[StepParams],
    with_: Mapping[str, Any],
    where: tuple[str | int, ...],
    collect: ProblemCollector,
) -> None:
    for name, wanted in connection_fields(model).items():
        value = with_.get(name)
        if value is None:
            continue
        path = _step_path(runbook, step, *where, name)
        connection = runbook.connections.get(value)
        if connection is None:
            collect.error(
                path,
                f"step {step.id!r}: no connection {value!r}"
                f"{did_you_mean(str(value), runbook.connections)} "
                f"(define [connections.{value}] with kind = {wanted!r})",
            )
        elif connection.kind != wanted:
            collect.error(
                path,
                f"step {step.id!r}: connection {value!r} is {connection.kind!r}, "
                f"but {step.kind if where == ('with',) else 'its check'} needs a {wanted!r} connection",
            )
    for name, wanted in step_fields(model).items():
        value = with_.get(name)
        if value is None:
            continue
        path = _step_path(runbook, step, *where, name)
        if not runbook.has_step(value):
            collect.error(
                path,
                f"step {step.id!r}: {name} names no step {value!r}"
                f"{did_you_mean(str(value), [s.id for s in runbook.steps])} "
                f"(it must be a {wanted} step)",
            )
        elif runbook.step(value).kind != wanted:
            collect.error(
                path,
                f"step {step.id!r}: {name} names step {value!r}, which is {runbook.step(value).kind}, not {wanted}",
            )


def _in_rollback_phase(runbook: Runbook, step_id: str) -> bool:
    if not runbook.has_step(step_id):
        return False
    phase_id = runbook.step(step_id).phase
    return runbook.has_phase(phase_id) and runbook.phase(phase_id).kind == "rollback"


def _check_cycles(runbook: Runbook, collect: ProblemCollector) -> None:
    step_ids = {s.id for s in runbook.steps}
    graph = {s.id: [n for n in s.needs if n in step_ids and n != s.id] for s in runbook.steps}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    reported: set[frozenset[str]] = set()

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        trail.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt) :] + [nxt]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    step = runbook.step(node)
                    index = step.needs.index(nxt)
                    collect.error(_step_path(runbook, step, "needs", index), "cycle in needs: " + " -> ".join(cycle))
            elif state.get(nxt) is None:
                visit(nxt, trail)
        trail.pop()
        state[node] = 2

    for step in runbook.steps:
        if state.get(step.id) is None:
            visit(step.id, [])


def _check_triggers(runbook: Runbook, collect: ProblemCollector) -> None:
    step_ids = runbook.declared["step"]
    phase_ids = runbook.declared["phase"]
    for position, trigger in enumerate(runbook.triggers):
        raw_index = runbook.indices["trigger"][position]
        when = trigger.when
        if isinstance(when, StepStateCondition) and when.step not in step_ids:
            collect.error(
                ("trigger", raw_index, "when", "step"),
                f"trigger {trigger.id!r}: no step {when.step!r}{did_you_mean(when.step, step_ids)}",
            )
        if isinstance(when, PhaseOverdueCondition):
            if when.phase not in phase_ids:
                collect.error(
                    ("trigger", raw_index, "when", "phase"),
                    f"trigger {trigger.id!r}: no phase {when.phase!r}{did_you_mean(when.phase, phase_ids)}",
                )
            elif runbook.has_phase(when.phase) and runbook.phase(when.phase).kind == "rollback":
                collect.error(
                    ("trigger", raw_index, "when", "phase"),
                    f"trigger {trigger.id!r}: the rollback phase has no schedule to be overdue against",
                )
        if trigger.action == "rollback" and runbook.rollback_phase is None:
            collect.error(
                ("trigger", raw_index, "action"),
                f"trigger {trigger.id!r}: action 'rollback' but the runbook has no rollback phase",
            )
        if trigger.within is not None and trigger.action != "rollback":
            collect.warn(
                ("trigger", raw_index, "within"), f"trigger {trigger.id!r}: within applies only to action 'rollback'"
            )
        notify = trigger.notify
        if notify is not None and notify.connection is not None:
            found = runbook.connections.get(notify.connection)
            if found is None or found.kind != "smtp":
                what = "not a connection of the runbook" if found is None else f"a {found.kind} connection, not smtp"
                collect.error(
                    ("trigger", raw_index, "notify", "connection"),
                    f"trigger {trigger.id!r}: notify.connection {notify.connection!r} is {what}",
                )
