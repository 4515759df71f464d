"""`convex.run`: call a deployed Convex function over the Functions HTTP API.

A query is a probe; a mutation or an action changes v2. With `loop = true` the function is
called again while its value says it is not done (`isDone` false), passing the value's
`continueCursor` back as the `cursor` argument; each cursor is checkpointed, so a resumed step
continues from the last page it finished. With `status`, the step then polls a status
function until it reports done and shows its progress: this is how a `@convex-dev/migrations`
run, which schedules its own batches and returns at once, is driven and watched.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from cockpit.step_api import ConnectionRef, Effect, Step, StepContext, StepFailed, StepParams, parse_duration
from steps.convex.client import ConvexClient, ConvexFunctionError

_FUNCTION_PATH = r"^[A-Za-z0-9_./-]+(:[A-Za-z0-9_]+)?$"


class StatusPoll(StepParams):
    function: str = Field(pattern=_FUNCTION_PATH, description="a query that reports the run's state")
    args: dict[str, Any] = Field(default_factory=dict)
    every: str = Field(default="2s", description="how often to ask")
    select: str | None = Field(default=None, description='dotted path into the value, e.g. "0" for a list\'s first')
    done_field: str = "isDone"
    progress_field: str = "processed"
    state_field: str = "state"
    failed_states: list[str] = Field(default_factory=lambda: ["failed", "canceled"])
    error_field: str = "error"
    total: int | None = Field(default=None, ge=0, description="the count progress runs to, when known")

    @model_validator(mode="after")
    def _every_is_a_duration(self) -> StatusPoll:
        parse_duration(self.every)
        return self


class RunParams(StepParams):
    connection: Annotated[str, ConnectionRef("convex")]
    function: str = Field(pattern=_FUNCTION_PATH, description="module:function, e.g. migrations:run")
    type: Literal["query", "mutation", "action"] = "mutation"
    args: dict[str, Any] = Field(default_factory=dict)
    loop: bool = Field(default=False, description="call again while the value's isDone is false")
    cursor_arg: str = "cursor"
    cursor_field: str = "continueCursor"
    done_field: str = "isDone"
    max_calls: int = Field(default=1_000_000, ge=1, description="a guard against a cursor that never ends")
    status: StatusPoll | None = None
    expect: dict[str, Any] | None = Field(default=None, description="field = value the (last) value must hold")


def select(value: Any, path: str | None) -> Any:
    """Follow a dotted path (`a.0.b`) into a function's value."""
    if not path:
        return value
    for part in path.split("."):
        if isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise StepFailed(f"the value has nothing at {path!r} (stopped at {part!r})")
    return value


def short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RunStep(Step[RunParams]):
    """Calls one Convex function; a probe when it is a query."""

    kind = "convex.run"
    effect = Effect.MUTATE
    Params = RunParams
    resumes = True

    def effect_of(self, params: RunParams) -> Effect:
        return Effect.PROBE if params.type == "query" and params.status is None else Effect.MUTATE

    def describe(self, params: RunParams) -> str:
        how = " until done" if params.loop else ""
        watch = f", then watch {params.status.function}" if params.status else ""
        return f"run the {params.type} {params.function}({short(params.args, 80)}){how} on {params.connection!r}{watch}"

    def run(self, ctx: StepContext[RunParams]) -> None:
        params = ctx.params
        connection = ctx.connection(params.connection)
        with ConvexClient(connection.url, connection.deploy_key, cancel=ctx.cancel, log=ctx.log) as client:
            value = self._call(ctx, client, params)
            if params.status is not None:
                value = self._watch(ctx, client, params.status)
        if params.expect:
            wrong = [
                f"{key} is {_shown(_get(value, key))}, expected {short(want, 60)}"
                for key, want in params.expect.items()
                if _get(value, key) != want
            ]
            if wrong:
                raise StepFailed("; ".join(wrong))
            ctx.log(f"expect holds: {short(params.expect)}")

    def _call(self, ctx: StepContext[RunParams], client: ConvexClient, params: RunParams) -> Any:
        if ctx.checkpoint.get("called") and not params.loop:
            ctx.log(f"{params.function} was called before this resume; not calling it twice")
            return ctx.checkpoint.get("value")
        calls = int(ctx.checkpoint.get("calls", 0))
        cursor = ctx.checkpoint.get("cursor")
        if params.loop and calls:
            if ctx.checkpoint.get("done"):
                ctx.log(f"{params.function} finished before this resume ({calls:,} calls)")
                return ctx.checkpoint.get("value")
            ctx.log(f"continuing {params.function} after {calls:,} calls")
        while True:
            args = dict(params.args)
            if params.loop:
                args[params.cursor_arg] = cursor
            try:
                value = client.call(params.type, params.function, args)
            except ConvexFunctionError as exc:
                detail = f" ({short(exc.data)})" if exc.data is not None else ""
                raise StepFailed(f"{exc}{detail}") from None
            calls += 1
            if not params.loop:
                ctx.log(f"{params.function} returned {short(value)}")
                ctx.checkpoint.update_all({"called": True, "value": _small(value)})
                return value
            if not isinstance(value, dict) or params.done_field not in value:
                raise StepFailed(f"{params.function} returned no {params.done_field!r} to loop on: {short(value)}")
            done = bool(value[params.done_field])
            cursor = None if done else value.get(params.cursor_field)
            ctx.checkpoint.update_all({"calls": calls, "cursor": cursor, "done": done, "value": _small(value)})
            ctx.progress(calls, None, "calls", params.function)  # a stable label: it names the bar
            if done:
                ctx.log(f"{params.function} done after {calls:,} calls; last value {short(value)}")
                return value
            if cursor is None:
                raise StepFailed(f"{params.function} is not done but returned no {params.cursor_field!r}")
            if calls >= params.max_calls:
                raise StepFailed(f"{params.function} was still not done after {calls:,} calls (max_calls)")

    def _watch(self, ctx: StepContext[RunParams], client: ConvexClient, status: StatusPoll) -> Any:
        every = parse_duration(status.every).total_seconds()
        last_logged = ""
        while True:
            ctx.raise_if_cancelled()
            try:
                raw = client.query(status.function, status.args)
            except ConvexFunctionError as exc:
                raise StepFailed(f"status {exc}") from None
            value = select(raw, status.select)
            if not isinstance(value, dict):
                raise StepFailed(f"{status.function} answered {short(value)}, not an object")
            state = value.get(status.state_field)
            processed = value.get(status.progress_field)
            summary = f"state {state}, {status.progress_field} {processed}"
            if summary != last_logged:
                ctx.log(f"{status.function}: {summary}")
                last_logged = summary
            if isinstance(processed, int | float):
                ctx.progress(processed, status.total, "documents", status.function)
            if state in status.failed_states:
                error = value.get(status.error_field)
                raise StepFailed(f"{status.function} reports {state}" + (f": {error}" if error else ""))
            if value.get(status.done_field):
                return value
            ctx.sleep(every)


def _get(value: Any, path: str) -> Any:
    try:
        return select(value, path)
    except StepFailed:
        return _MISSING


_MISSING = object()


def _shown(value: Any) -> str:
    return "missing" if value is _MISSING else short(value, 60)


def _small(value: Any) -> Any:
    """The value, if it is small enough to keep in the journal's checkpoint."""
    return value if len(json.dumps(value, default=str)) <= 4096 else None
