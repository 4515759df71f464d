"""The first half of `cockpit check`: each table of a runbook validated on its own, so that one
bad step does not hide the others' problems (`parse_document`)."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from cockpit import secrets
from cockpit.connections import CONNECTION_KINDS
from cockpit.runbook import (
    MetricCondition,
    Phase,
    RunbookHeader,
    RunbookStep,
    Trigger,
    condition_model,
    did_you_mean,
)
from cockpit.step import ConnectionRef, Effect, Step, StepParams, StepRef, embedded_probes

if TYPE_CHECKING:
    from cockpit.runbook import ProblemCollector

TOP_LEVEL = ("runbook", "connections", "phase", "step", "trigger")
_ARRAYS = ("phase", "step", "trigger")


def parse_document(
    document: dict[str, Any],
    collect: ProblemCollector,
    kinds: Mapping[str, type[Step[Any]]],
    env: Mapping[str, str],
) -> dict[str, Any] | None:
    """Validate every table; return the fields of a `Runbook`, or None when the shape is broken."""
    for key in document:
        if key not in TOP_LEVEL:
            collect.error((key,), f"unknown top-level key {key!r}{did_you_mean(key, TOP_LEVEL)}")
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
                f"{did_you_mean(str(kind), CONNECTION_KINDS)}; "
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
    kinds: Mapping[str, type[Step[Any]]],
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
                f"step {step_id!r}: unknown step kind {kind_name!r}{did_you_mean(kind_name, kinds)}",
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
        _check_embedded_probes(validated, ("step", index, "with"), f"step {step_id!r}", collect, kinds, base_dir)
    return params


def _check_embedded_probes(
    validated: StepParams,
    where: tuple[str | int, ...],
    context: str,
    collect: ProblemCollector,
    kinds: Mapping[str, type[Step[Any]]],
    base_dir: Any,
) -> None:
    """A probe embedded in a step (a checklist item's check) must be a known kind, and a probe."""
    for path, call in embedded_probes(validated):
        at = (*where, *path)
        kind = kinds.get(call.kind)
        if kind is None:
            collect.error((*at, "kind"), f"{context}: unknown step kind {call.kind!r}{did_you_mean(call.kind, kinds)}")
            continue
        try:
            probe = kind.Params.model_validate(call.with_, context={"base_dir": base_dir})
        except ValidationError as exc:
            collect.validation(exc, (*at, "with"), f"{context}, its {call.kind} check", kind.Params)
            continue
        effect = kind().effect_of(probe)
        if effect != Effect.PROBE:
            collect.error(
                (*at, "kind"),
                f"{context}: a check must only look, but {call.kind} with these parameters is a {effect.value} step",
            )


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
