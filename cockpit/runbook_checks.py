"""The checks behind `cockpit check`: shape of each table, then every cross-reference.

`parse_document` validates each table on its own (so one bad step does not hide the
others), and `cross_check` then looks at the runbook as a whole: ids, needs, cycles, undo,
triggers, connections, times.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from cockpit import secrets
from cockpit.clock import format_offset
from cockpit.connections import CONNECTION_KINDS
from cockpit.runbook import (
    MetricCondition,
    Phase,
    PhaseOverdueCondition,
    RunbookHeader,
    RunbookStep,
    StepStateCondition,
    Trigger,
    _did_you_mean,
    condition_model,
)
from cockpit.step import ConnectionRef, Step, StepParams, StepRef

if TYPE_CHECKING:
    from cockpit.runbook import ProblemCollector, Runbook

TOP_LEVEL = ("runbook", "connections", "phase", "step", "trigger")
_ARRAYS = ("phase", "step", "trigger")


def parse_document(
    document: dict[str, Any],
    collect: ProblemCollector,
    kinds: Mapping[str, type[Step]],
    env: Mapping[str, str],
) -> dict[str, Any] | None:
    """Validate every table; return the fields of a `Runbook`, or None when the shape is broken."""
    for key in document:
        if key not in TOP_LEVEL:
            collect.error((key,), f"unknown top-level key {key!r}{_did_you_mean(key, TOP_LEVEL)}")
    for key in _ARRAYS:
        value = document.get(key)
        if value is not None and not isinstance(value, list):
            collect.error((key,), f"{key} must be an array of tables: write [[{key}]]")
            document[key] = []

    header = _parse_header(document, collect)
    connections, raw_connections = _parse_connections(document, collect, env)
    phases = _parse_list(document, "phase", Phase, collect)
    steps = _parse_list(document, "step", RunbookStep, collect)
    triggers = _parse_triggers(document, collect)
    params = _parse_params(document.get("step", []), collect, kinds, env, collect.source.parent)
    declared = {
        key: frozenset(
            raw["id"] for raw in document.get(key, []) if isinstance(raw, dict) and isinstance(raw.get("id"), str)
        )
        for key in _ARRAYS
    }
    _check_duplicate_ids(document, collect)
    indices = {
        "phase": tuple(i for i, _ in phases),
        "step": tuple(i for i, _ in steps),
        "trigger": tuple(i for i, _ in triggers),
    }

    if header is None:
        return None
    return {
        "header": header,
        "connections": connections,
        "raw_connections": raw_connections,
        "phases": tuple(p for _, p in phases),
        "steps": tuple(s for _, s in steps),
        "triggers": tuple(t for _, t in triggers),
        "params": params,
        "indices": indices,
        "declared": declared,
    }


def _parse_header(document: dict[str, Any], collect: ProblemCollector) -> RunbookHeader | None:
    raw = document.get("runbook")
    if raw is None:
        collect.error((), "missing [runbook] table (name, t0, window)")
        return None
    if not isinstance(raw, dict):
        collect.error(("runbook",), "runbook must be a table: write [runbook]")
        return None
    try:
        return RunbookHeader.model_validate(raw)
    except ValidationError as exc:
        collect.validation(exc, ("runbook",), "[runbook]", RunbookHeader)
        return None


def _parse_connections(
    document: dict[str, Any], collect: ProblemCollector, env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    raw = document.get("connections", {})
    if not isinstance(raw, dict):
        collect.error(("connections",), "connections must be tables: write [connections.NAME]")
        return {}, {}
    parsed: dict[str, Any] = {}
    raws: dict[str, dict[str, Any]] = {}
    for name, table in raw.items():
        path = ("connections", name)
        if not isinstance(table, dict):
            collect.error(path, f"connection {name!r} must be a table: write [connections.{name}]")
            continue
        kind = table.get("kind")
        if kind is None:
            collect.error(
                path, f"connection {name!r}: missing required key 'kind' (one of: {', '.join(CONNECTION_KINDS)})"
            )
            continue
        model = CONNECTION_KINDS.get(kind)
        if model is None:
            collect.error(
                path + ("kind",),
                f"connection {name!r}: unknown connection kind {kind!r}"
                f"{_did_you_mean(str(kind), CONNECTION_KINDS)}; "
                f"one of: {', '.join(CONNECTION_KINDS)}",
            )
            continue
        try:
            parsed[name] = model.model_validate(table)
            raws[name] = table
        except ValidationError as exc:
            collect.validation(exc, path, f"connection {name!r}", model)
            continue
        _warn_unset(table, path, collect, env)
    return parsed, raws


def _warn_unset(value: Any, path: tuple[str | int, ...], collect: ProblemCollector, env: Mapping[str, str]) -> None:
    """An unset ${VAR} is a warning for `check`; a run that needs it refuses to start."""
    if isinstance(value, dict):
        for k, v in value.items():
            _warn_unset(v, path + (k,), collect, env)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _warn_unset(v, path + (i,), collect, env)
    else:
        for name in secrets.references(value):
            if name not in env:
                collect.warn(path, f"${{{name}}} is not set (a run will need it)")


def _parse_list(
    document: dict[str, Any], key: str, model: type[BaseModel], collect: ProblemCollector
) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    for index, raw in enumerate(document.get(key, [])):
        if not isinstance(raw, dict):
            collect.error((key, index), f"each {key} must be a table: write [[{key}]]")
            continue
        context = _context(key, raw)
        try:
            out.append((index, model.model_validate(raw)))
        except ValidationError as exc:
            collect.validation(exc, (key, index), context, model)
    return out


def _context(key: str, raw: dict[str, Any]) -> str:
    ident = raw.get("id")
    return f"{key} {ident!r}" if isinstance(ident, str) else f"{key} (no id)"


def _parse_triggers(document: dict[str, Any], collect: ProblemCollector) -> list[tuple[int, Trigger]]:
    triggers: list[tuple[int, Trigger]] = []
    for index, raw in enumerate(document.get("trigger", [])):
        if not isinstance(raw, dict):
            collect.error(("trigger", index), "each trigger must be a table: write [[trigger]]")
            continue
        context = _context("trigger", raw)
        fields = dict(raw)
        when = fields.get("when")
        ok = True
        if "when" in fields:
            model = condition_model(when)
            if model is None:
                collect.error(
                    ("trigger", index, "when"),
                    f"{context}: when must be {{step, state}}, {{metric, above}} or {{phase, overdue}}",
                )
                ok = False
                fields["when"] = MetricCondition(metric="_", above=0)
            else:
                try:
                    fields["when"] = model.model_validate(when)
                except ValidationError as exc:
                    collect.validation(exc, ("trigger", index, "when"), context, model)
                    ok = False
                    fields["when"] = MetricCondition(metric="_", above=0)
        try:
            trigger = Trigger.model_validate(fields)
        except ValidationError as exc:
            collect.validation(exc, ("trigger", index), context, Trigger)
            continue
        if ok:
            triggers.append((index, trigger))
    return triggers


def _parse_params(
    raw_steps: list[Any],
    collect: ProblemCollector,
    kinds: Mapping[str, type[Step]],
    env: Mapping[str, str],
    base_dir: Any,
) -> dict[str, StepParams]:
    """Validate each step's `with` by its kind's model, even when other keys of the step are wrong."""
    params: dict[str, StepParams] = {}
    for index, raw in enumerate(raw_steps):
        if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
            continue
        raw_id = raw.get("id")
        step_id = raw_id if isinstance(raw_id, str) else f"#{index + 1}"
        kind_name = raw["kind"]
        kind = kinds.get(kind_name)
        if kind is None:
            collect.error(
                ("step", index, "kind"),
                f"step {step_id!r}: unknown step kind {kind_name!r}{_did_you_mean(kind_name, kinds)}",
            )
            continue
        with_ = raw.get("with", {})
        if not isinstance(with_, dict):
            continue  # the step's own model reports a `with` that is not a table
        try:
            # The context lets a kind check files it names, relative to the runbook.
            validated = kind.Params.model_validate(with_, context={"base_dir": base_dir})
        except ValidationError as exc:
            collect.validation(exc, ("step", index, "with"), f"step {step_id!r} ({kind_name})", kind.Params)
            continue
        params.setdefault(step_id, validated)
        _warn_unset(with_, ("step", index, "with"), collect, env)
    return params


def connection_fields(params: type[StepParams]) -> dict[str, str]:
    """The parameters of a kind that name a connection, and the kind each must be."""
    return _marked_fields(params, ConnectionRef)


def step_fields(params: type[StepParams]) -> dict[str, str]:
    """The parameters of a kind that name another step, and the kind that step must be."""
    return _marked_fields(params, StepRef)


def _marked_fields(params: type[StepParams], marker: type[ConnectionRef] | type[StepRef]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, info in params.model_fields.items():
        for meta in info.metadata:
            if isinstance(meta, marker):
                out[info.alias or name] = meta.kind
        annotation = info.annotation
        for arg in typing.get_args(annotation):
            for meta in getattr(arg, "__metadata__", ()):
                if isinstance(meta, marker):
                    out[info.alias or name] = meta.kind
    return out


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


def _check_duplicate_ids(document: dict[str, Any], collect: ProblemCollector) -> None:
    """Judged on the document as written: an item that fails its own checks still claims its id."""
    for key in _ARRAYS:
        seen: dict[str, int] = {}
        for index, raw in enumerate(document.get(key, [])):
            ident = raw.get("id") if isinstance(raw, dict) else None
            if not isinstance(ident, str):
                continue
            if ident in seen:
                first = collect.lines.line_of((key, seen[ident], "id"))
                collect.error((key, index, "id"), f"duplicate {key} id {ident!r} (first defined at line {first})")
            else:
                seen[ident] = index


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
                f"step {step.id!r}: no phase {step.phase!r}{_did_you_mean(step.phase, phase_ids)}",
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
                    path, f"step {step.id!r}: needs {need!r}, which is not a step{_did_you_mean(need, step_ids)}"
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
                    path, f"step {step.id!r}: undo {step.undo!r} is not a step{_did_you_mean(step.undo, step_ids)}"
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
    for name, wanted in connection_fields(kind.Params).items():
        value = step.with_.get(name)
        if value is None:
            continue
        path = _step_path(runbook, step, "with", name)
        connection = runbook.connections.get(value)
        if connection is None:
            collect.error(
                path,
                f"step {step.id!r}: no connection {value!r}"
                f"{_did_you_mean(str(value), runbook.connections)} "
                f"(define [connections.{value}] with kind = {wanted!r})",
            )
        elif connection.kind != wanted:
            collect.error(
                path,
                f"step {step.id!r}: connection {value!r} is {connection.kind!r}, "
                f"but {step.kind} needs a {wanted!r} connection",
            )
    for name, wanted in step_fields(kind.Params).items():
        value = step.with_.get(name)
        if value is None:
            continue
        path = _step_path(runbook, step, "with", name)
        if not runbook.has_step(value):
            collect.error(
                path,
                f"step {step.id!r}: {name} names no step {value!r}"
                f"{_did_you_mean(str(value), [s.id for s in runbook.steps])} "
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
                f"trigger {trigger.id!r}: no step {when.step!r}{_did_you_mean(when.step, step_ids)}",
            )
        if isinstance(when, PhaseOverdueCondition):
            if when.phase not in phase_ids:
                collect.error(
                    ("trigger", raw_index, "when", "phase"),
                    f"trigger {trigger.id!r}: no phase {when.phase!r}{_did_you_mean(when.phase, phase_ids)}",
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
