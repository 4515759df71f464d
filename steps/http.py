"""HTTP kinds: `http.check`, the smoke tests of an endpoint."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field

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

_UNSET: Any = object()
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class HttpCheckParams(StepParams):
    url: str = Field(description="absolute URL, or a path under the connection's base_url")
    method: Literal["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    connection: Annotated[str | None, ConnectionRef("http")] = None
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    expect_status: int | list[int] = 200
    body_contains: str | None = None
    json_path: str | None = Field(default=None, description='e.g. "$.status" or "$.items[0].id"')
    equals: Any = Field(default=_UNSET, description="the value json_path must hold")
    max_latency: Duration | None = None
    repeat: int = Field(default=1, ge=1, le=10_000, description="how many times to check; every one must pass")
    or_gone: bool = Field(
        default=False,
        description="a refused connection or a name that no longer resolves passes too: the service is gone",
    )
    interval: Duration = Field(default=timedelta(seconds=1), description="pause between checks")
    timeout: Duration = Field(default=timedelta(seconds=10), description="per request")


class HttpCheckStep(Step[HttpCheckParams]):
    """Calls an endpoint and checks status, body, a JSON value and latency, `repeat` times."""

    kind = "http.check"
    effect = Effect.PROBE
    Params = HttpCheckParams

    def effect_of(self, params: HttpCheckParams) -> Effect:
        return Effect.PROBE if params.method in _SAFE_METHODS else Effect.MUTATE

    def describe(self, params: HttpCheckParams) -> str:
        return f"{params.method} {params.url} and expect {params.expect_status}"

    def run(self, ctx: StepContext[HttpCheckParams]) -> None:
        import httpx

        params = ctx.params
        url, headers = params.url, dict(params.headers)
        if params.connection is not None:
            conn = ctx.connection(params.connection)
            if not re.match(r"^https?://", url):
                url = conn.base_url.rstrip("/") + "/" + url.lstrip("/")
            headers = {**conn.headers, **headers}
        expected = params.expect_status if isinstance(params.expect_status, list) else [params.expect_status]
        failures: list[str] = []  # one entry per failed check, whatever went wrong with it
        worst = 0.0
        timeout = params.timeout.total_seconds()
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            for n in range(1, params.repeat + 1):
                ctx.raise_if_cancelled()
                started = time.perf_counter()
                try:
                    response = client.request(params.method, url, headers=headers, content=params.body)
                except httpx.HTTPError as exc:
                    if params.or_gone and isinstance(exc, httpx.ConnectError):
                        ctx.log(f"{params.method} {url} -> gone ({type(exc).__name__}: {exc})")
                    else:
                        failures.append(f"check {n}: {type(exc).__name__}: {exc}")
                        ctx.log(f"{params.method} {url} -> {type(exc).__name__}: {exc}")
                    worst = max(worst, time.perf_counter() - started)
                else:
                    latency = time.perf_counter() - started
                    worst = max(worst, latency)
                    problems = _judge(response, expected, params, latency)
                    ctx.log(
                        f"{params.method} {url} -> {response.status_code} in {latency * 1000:.0f} ms"
                        + (f": {'; '.join(problems)}" if problems else "")
                    )
                    if problems:
                        failures.append(f"check {n}: {'; '.join(problems)}")
                ctx.progress(n, params.repeat, "checks")
                if n < params.repeat and ctx.sleep(params.interval.total_seconds()):
                    raise StepCancelled("cancelled between checks")
        ctx.metric(f"{ctx.step_id}.failures", len(failures))
        ctx.metric(f"{ctx.step_id}.latency_ms", round(worst * 1000, 1))
        if failures:
            shown = "; ".join(failures[:3]) + (f" (and {len(failures) - 3} more)" if len(failures) > 3 else "")
            raise StepFailed(f"{len(failures)} of {params.repeat} checks failed: {shown}")


def _judge(response: Any, expected: list[int], params: HttpCheckParams, latency: float) -> list[str]:
    problems = []
    if response.status_code not in expected:
        # The body of an unexpected status is an error page: judging its content adds only noise.
        return [f"status {response.status_code}, expected {' or '.join(map(str, expected))}"]
    if params.body_contains is not None and params.body_contains not in response.text:
        problems.append(f"body does not contain {params.body_contains!r}")
    if params.json_path is not None:
        try:
            value = json_path(response.json(), params.json_path)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            problems.append(f"{params.json_path}: {exc}")
        else:
            if params.equals is not _UNSET and value != params.equals:
                problems.append(f"{params.json_path} is {json.dumps(value)}, expected {json.dumps(params.equals)}")
    if params.max_latency is not None and latency > params.max_latency.total_seconds():
        problems.append(f"took {latency * 1000:.0f} ms, over {format_duration(params.max_latency, precise=True)}")
    return problems


_PATH_PART = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def json_path(document: Any, path: str) -> Any:
    """Follow a simple path (`$.a.b[0].c`) into a JSON document."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    value = document
    pos = 0
    while pos < len(text):
        m = _PATH_PART.match(text, pos)
        if not m:
            raise ValueError(f"bad path at {text[pos:]!r}")
        if m.group(1) is not None:
            if not isinstance(value, dict):
                raise TypeError(f"{m.group(1)!r} is not in a JSON object")
            if m.group(1) not in value:
                raise KeyError(f"no key {m.group(1)!r}")
            value = value[m.group(1)]
        else:
            if not isinstance(value, list):
                raise TypeError(f"[{m.group(2)}] is not in a JSON array")
            value = value[int(m.group(2))]
        pos = m.end()
    return value
