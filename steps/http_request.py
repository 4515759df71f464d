"""`http.request`: one call of a REST API that changes something (scale the v1 API service to
zero, pause the v1 database's project), and optionally the wait until the change has happened.

The request goes once: when its answer is in, the checkpoint says so, and a retried or resumed
attempt goes straight to the wait, so a POST is never sent twice by the cockpit. The answer's
status must be one of `expect_status`; its JSON is logged (secrets masked) and the numbers at
the `capture` paths become metrics. With `poll`, a GET of `poll.url` is repeated every
`interval` until the value at its `json_path` equals `equals`, or `within` passes.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cockpit.step_api import (
    ConnectionRef,
    Duration,
    Effect,
    Step,
    StepCancelled,
    StepContext,
    StepFailed,
    StepParams,
    format_duration,
)
from steps.http import json_path

SHOWN_BODY = 2000  # characters of an answer's body in the log


class Poll(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="absolute URL, or a path under the connection's base_url; GET")
    json_path: str = Field(description='e.g. "$.status"')
    equals: Any = Field(description="the value that says the change has happened")
    interval: Duration = Field(default=timedelta(seconds=10))
    within: Duration = Field(default=timedelta(minutes=10))


class RequestParams(StepParams):
    url: str = Field(description="absolute URL, or a path under the connection's base_url")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    connection: Annotated[str | None, ConnectionRef("http")] = None
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json", description="the request's body, as JSON")
    expect_status: int | list[int] = Field(default_factory=lambda: [200, 201, 202, 204])
    capture: dict[str, str] = Field(default_factory=dict, description="metric name -> JSON path of a number")
    poll: Poll | None = None
    timeout: Duration = Field(default=timedelta(seconds=30), description="per request")


class RequestStep(Step[RequestParams]):
    """Calls a REST API once, then waits for what the call started to be done."""

    kind = "http.request"
    effect = Effect.MUTATE
    Params = RequestParams
    resumes = True

    def effect_of(self, params: RequestParams) -> Effect:
        return Effect.PROBE if params.method == "GET" and params.poll is None else Effect.MUTATE

    def describe(self, params: RequestParams) -> str:
        wait = f", then wait for {params.poll.json_path} = {json.dumps(params.poll.equals)}" if params.poll else ""
        return f"{params.method} {params.url}{wait}"

    def run(self, ctx: StepContext[RequestParams]) -> None:
        import httpx

        params = ctx.params
        base, headers = "", dict(params.headers)
        if params.connection is not None:
            conn = ctx.connection(params.connection)
            base, headers = conn.base_url, {**conn.headers, **headers}
        timeout = params.timeout.total_seconds()
        with httpx.Client(timeout=timeout, follow_redirects=False, headers=headers) as client:
            if ctx.checkpoint.get("answered"):
                ctx.log(
                    f"{params.method} {params.url} was answered before ({ctx.checkpoint['answered']}); not sent again"
                )
            else:
                self._call(ctx, client, _absolute(base, params.url))
            if params.poll is not None:
                self._wait(ctx, client, _absolute(base, params.poll.url), params.poll)

    def _call(self, ctx: StepContext[RequestParams], client: Any, url: str) -> None:
        import httpx

        params = ctx.params
        expected = params.expect_status if isinstance(params.expect_status, list) else [params.expect_status]
        try:
            answer = client.request(params.method, url, json=params.json_body)
        except httpx.HTTPError as exc:
            # No answer: the server may or may not have acted. A retry sends it again, which the
            # calls this kind is for (scale to a number, pause) take as the same request.
            raise StepFailed(f"{params.method} {url}: {type(exc).__name__}: {exc}") from None
        body = _shown(answer)
        ctx.log(f"{params.method} {url} -> {answer.status_code}" + (f": {body}" if body else ""))
        if answer.status_code not in expected:
            raise StepFailed(
                f"{params.method} {url} answered {answer.status_code}, expected {' or '.join(map(str, expected))}"
                + (f": {body[:300]}" if body else "")
            )
        ctx.checkpoint["answered"] = answer.status_code
        if params.capture:
            self._capture(ctx, answer)

    @staticmethod
    def _capture(ctx: StepContext[RequestParams], answer: Any) -> None:
        try:
            document = answer.json()
        except ValueError:
            raise StepFailed("capture: the answer is not JSON") from None
        for name, path in ctx.params.capture.items():
            try:
                value = json_path(document, path)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise StepFailed(f"capture {name}: {path}: {exc}") from None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise StepFailed(f"capture {name}: {path} is {json.dumps(value)}, not a number")
            ctx.metric(name, float(value))

    @staticmethod
    def _wait(ctx: StepContext[RequestParams], client: Any, url: str, poll: Poll) -> None:
        import httpx

        deadline = ctx.clock.now() + poll.within  # the run's clock: a rehearsal compresses the wait
        last = ""
        while True:
            ctx.raise_if_cancelled()
            try:
                answer = client.get(url)
                value = json_path(answer.json(), poll.json_path) if answer.status_code == 200 else None
                seen = json.dumps(value) if answer.status_code == 200 else f"HTTP {answer.status_code}"
            except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
                value, seen = None, f"{type(exc).__name__}: {exc}"
            if seen != last:
                ctx.log(f"GET {url}: {poll.json_path} is {seen}")
                last = seen
            if value == poll.equals:
                return
            if ctx.clock.now() >= deadline:
                raise StepFailed(
                    f"{poll.json_path} of {url} is still {seen} after {format_duration(poll.within)},"
                    f" not {json.dumps(poll.equals)}"
                )
            if ctx.sleep(poll.interval.total_seconds()):
                raise StepCancelled("cancelled while waiting")


def _absolute(base: str, url: str) -> str:
    if re.match(r"^https?://", url) or not base:
        return url
    return base.rstrip("/") + "/" + url.lstrip("/")


def _shown(answer: Any) -> str:
    """The answer's body on one line, JSON compacted, cut to SHOWN_BODY characters."""
    text = answer.text.strip()
    try:
        text = json.dumps(answer.json(), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        text = " ".join(text.split())
    return text if len(text) <= SHOWN_BODY else text[:SHOWN_BODY] + "…"
